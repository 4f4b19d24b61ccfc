"""Prompt injection in user input and, indirectly, in tool results and retrieved documents (issue 3)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from wardgate.config.schema import InjectionPolicy
from wardgate.detect.injection import (
    DEFAULT_THRESHOLD,
    HeuristicScorer,
    InjectionResult,
    InjectionScorer,
)
from wardgate.exchange import ALLOW, Exchange, Verdict
from wardgate.scan_cache import ScanCache
from wardgate.stages.guard import decide, note_scan, texts_of

__all__ = ["Injection"]


@functools.cache
def _default_scorer() -> HeuristicScorer:
    """Built once per process (~0.2 s of rule analysis) and shared by every policy and config
    generation: it holds no per-request state, and a reload must not stall the event loop."""
    return HeuristicScorer()


def _scoring(scorer: InjectionScorer, role: str) -> Callable[[str], InjectionResult]:
    return lambda text: scorer.score(text, role)  # positional: the protocol names no keyword


class Injection:
    name = "injection"
    responds = False

    def __init__(self, policy: InjectionPolicy, scorer: InjectionScorer | None = None) -> None:
        self._action = policy.action
        self._threshold = policy.threshold if policy.threshold is not None else DEFAULT_THRESHOLD
        self._roles = frozenset(policy.roles)
        self._scorer = scorer or _default_scorer()
        # One cache per role: the same text scores differently as a user message and as a tool result.
        self._caches: dict[str, ScanCache[InjectionResult]] = {r: ScanCache() for r in self._roles}
        # What scores a text of each message role (tool results are weighed as such, the rest as user text).
        self._score = {r: _scoring(self._scorer, "tool" if r == "tool" else "user") for r in self._roles}

    def on_request(self, ex: Exchange) -> Verdict:
        texts = [t for t in texts_of(ex) if t.role in self._roles]
        worst: tuple[InjectionResult, str, str] | None = None
        for ref in texts:
            result = self._caches[ref.role].get(ref.text, self._score[ref.role])
            if worst is None or result.score > worst[0].score:
                worst = (result, ref.where, ref.role)
        top = worst[0].score if worst else 0.0
        note_scan(ex, self.name, texts, max_score=round(top, 4), threshold=self._threshold)
        if worst is None or top < self._threshold:
            return ALLOW
        result, where, role = worst
        family = result.families[0] if result.families else "signals"
        kind = "indirect prompt injection" if role == "tool" else "prompt injection"
        detail = ", ".join(result.families + result.signals)
        return decide(self._action, f"injection.{family}", f"{kind} detected in {where} ({detail})",
                      "prompt_injection", round(top, 4))

    def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
