"""What the input guardrails share: the text view of the exchange and verdict building."""

from __future__ import annotations

from typing import Any

from wardgate.exchange import Action, Exchange, Verdict
from wardgate.textview import TextRef, request_texts

__all__ = ["decide", "note_scan", "texts_of"]


def texts_of(ex: Exchange) -> list[TextRef]:
    """The exchange's texts, computed once; stages that rewrite them write through ``TextRef.replace``."""
    if ex.texts is None:
        ex.texts = request_texts(ex.route, ex.body)
    return ex.texts


def note_scan(ex: Exchange, stage: str, texts: list[TextRef], **facts: Any) -> None:
    """Record truthfully, in the trace, which texts a check ran on."""
    # One plain loop: a request holds few texts, and two map chains and a set() cost ~2x as much.
    chars, roles = 0, set()
    for ref in texts:
        chars += len(ref.text)
        roles.add(ref.role)
    ex.extra[stage] = {"texts": len(texts), "chars": chars, "where": sorted(roles), **facts}


def decide(action: str, code: str, message: str, error_code: str, score: float | None = None) -> Verdict:
    """A policy action (block or flag) turned into a verdict."""
    if action == "block":
        return Verdict(Action.BLOCK, code=code, message=message, status=400, error_code=error_code, score=score)
    return Verdict(Action.FLAG, code=code, message=message, score=score)
