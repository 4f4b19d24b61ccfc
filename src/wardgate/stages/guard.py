"""What the input guardrails share: the text view of the exchange and verdict building."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from wardgate.exchange import Action, Exchange, Verdict
from wardgate.textview import TextRef, request_texts

__all__ = ["decide", "note_scan", "texts_of"]


def texts_of(ex: Exchange) -> list[TextRef]:
    """The exchange's texts, computed once; stages that rewrite them write through ``TextRef.replace``."""
    if ex.texts is None:
        ex.texts = request_texts(ex.route, ex.body)
    return ex.texts


_TEXT, _ROLE = attrgetter("text"), attrgetter("role")


def note_scan(ex: Exchange, stage: str, texts: list[TextRef], **facts: Any) -> None:
    """Record truthfully, in the trace, which texts a check ran on."""
    ex.extra[stage] = {"texts": len(texts), "chars": sum(map(len, map(_TEXT, texts))),
                       "where": sorted(set(map(_ROLE, texts))), **facts}


def decide(action: str, code: str, message: str, error_code: str, score: float | None = None) -> Verdict:
    """A policy action (block or flag) turned into a verdict."""
    if action == "block":
        return Verdict(Action.BLOCK, code=code, message=message, status=400, error_code=error_code, score=score)
    return Verdict(Action.FLAG, code=code, message=message, score=score)
