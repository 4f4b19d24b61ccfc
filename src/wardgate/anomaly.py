"""Anomaly flags: a served request far outside its own team × model history gets an ``anomaly`` verdict.

Per team × model and per figure (prompt tokens, completion tokens, latency, cost, tool calls) a
bounded window of recent values gives a robust centre and spread (median and MAD, recomputed every
few observations so the per-request cost stays O(1) amortized). A value counts as anomalous when
its robust z-score is large *and* it is several times the median: the z-score alone fires on tiny
spreads (a model that always answers 5 tokens), the ratio alone on tiny medians. A session whose
token use accelerates (the last few requests together use several times what the few before did)
is flagged likewise. Flags never block (issue 5); they are verdicts with ``Action.FLAG``.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import OrderedDict, deque
from dataclasses import dataclass

from wardgate.exchange import Action, Exchange, Outcome, Verdict

__all__ = ["FIGURES", "AnomalyDetector"]

FIGURES = ("prompt_tokens", "completion_tokens", "latency_ms", "cost_usd", "tool_calls")
# Which side is suspicious: a fast or cheap answer is no incident, a silent model or a lost tool call may be.
_TWO_SIDED = frozenset({"completion_tokens", "tool_calls"})
# The smallest spread worth measuring in each figure's unit, so a constant history does not divide by zero.
_MIN_SCALE = {"prompt_tokens": 1.0, "completion_tokens": 1.0, "latency_ms": 5.0, "cost_usd": 1e-6, "tool_calls": 1.0}
_MAD_TO_SIGMA = 1.4826
_TOOL_ROUTES = frozenset({"/v1/chat/completions", "/v1/responses"})
# A member read off its Enum class goes through the metaclass: ~900 instructions; a module global ~20.
_SERVED = Outcome.SERVED


@dataclass(slots=True)
class _Series:
    values: deque[float]
    median: float = 0.0
    scale: float = 1.0
    stale: int = 1_000_000  # forces a first computation
    high: float = math.inf
    """Below this a value cannot be high (both the z-score and the ratio test say so): no judging."""
    low: float = -math.inf
    """Above this a value cannot be low."""

    def recompute(self, figure: str, z: float, ratio: float) -> None:
        self.stale = 0
        ordered = sorted(self.values)
        self.median = _median(ordered)
        centre = self.median
        mad = _median_deviation(ordered, centre)
        self.scale = max(mad * _MAD_TO_SIGMA, 0.05 * abs(self.median), _MIN_SCALE[figure])
        floor = _MIN_SCALE[figure]
        self.high = max(centre + z * self.scale, ratio * max(centre, floor))
        self.low = centre - z * self.scale if figure in _TWO_SIDED else -math.inf


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _median_deviation(ordered: list[float], centre: float) -> float:
    """``_median(sorted([abs(v - centre) for v in ordered]))`` without building or sorting the deviations.

    Below ``centre`` the deviations ``centre - v`` ascend walking down from it, above it ``v - centre``
    ascend walking up (each equals ``abs(v - centre)`` exactly: IEEE subtraction is sign-symmetric), so
    the k-th smallest of the two runs is found by a binary search over how many come from below:
    ~10 steps, against a list of 256 differences and a sort (~190,000 instructions a recompute).
    """
    n = len(ordered)
    split = bisect_left(ordered, centre)  # ordered[:split] < centre <= ordered[split:]
    above_n = n - split
    # The (mid + 1) smallest deviations (mid = n // 2 when n is odd, n // 2 - 1 when even): i from below.
    k = n // 2 if n % 2 else n // 2 - 1
    lo, hi = max(0, k + 1 - above_n), min(k + 1, split)
    while lo < hi:
        i = (lo + hi) // 2  # i from below and k + 1 - i from above: too few from below if below[i] < above[k - i]
        if centre - ordered[split - 1 - i] < ordered[split + k - i] - centre:
            lo = i + 1
        else:
            hi = i
    i, j = lo, k + 1 - lo
    if i == 0:
        kth = ordered[split + j - 1] - centre
    elif j == 0:
        kth = centre - ordered[split - i]
    else:
        kth = max(centre - ordered[split - i], ordered[split + j - 1] - centre)
    if n % 2:
        return kth
    # The next smallest: the nearer of the next one below and the next one above.
    if i == split:
        after = ordered[split + j] - centre
    elif j == above_n:
        after = centre - ordered[split - 1 - i]
    else:
        after = min(centre - ordered[split - 1 - i], ordered[split + j] - centre)
    return (kth + after) / 2.0


@dataclass(slots=True)
class _Session:
    tokens: list[int]
    """The last ``2 * session_span`` requests' total tokens, oldest first."""
    seen: float


class AnomalyDetector:
    """Checks each finished exchange against its history, then adds it to that history."""

    def __init__(self, *, window: int = 256, min_history: int = 20, z_threshold: float = 8.0, ratio: float = 3.0,
                 refresh_every: int = 32, session_span: int = 3, session_ratio: float = 4.0,
                 session_min_tokens: int = 2000, max_sessions: int = 20_000, session_ttl_s: float = 3600.0) -> None:
        self._window = window
        self._min_history = min_history
        self._z = z_threshold
        self._ratio = ratio
        self._every = refresh_every
        self._span = session_span
        self._session_ratio = session_ratio
        self._session_min = session_min_tokens
        self._max_sessions = max_sessions
        self._ttl = session_ttl_s
        self._series: dict[tuple[str, str], dict[str, _Series]] = {}  # team, model -> figure -> series
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def check(self, ex: Exchange, total_ms: float) -> list[Verdict]:
        """The anomaly verdicts for ``ex`` (also appended to ``ex.verdicts``); empty for most requests."""
        if ex.outcome is not _SERVED or ex.team_name is None or ex.model_alias is None:
            return []
        key = (ex.team_name, ex.model_alias)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = {figure: _Series(deque(maxlen=self._window)) for figure in FIGURES}
        observe = self._observe
        found = [v] if (v := observe(series, "latency_ms", total_ms)) else []
        usage = ex.response.usage
        if usage:
            if v := observe(series, "prompt_tokens", float(usage.get("prompt_tokens") or 0)):
                found.append(v)
            if v := observe(series, "completion_tokens", float(usage.get("completion_tokens") or 0)):
                found.append(v)
        if ex.cost_usd is not None and (v := observe(series, "cost_usd", ex.cost_usd)):
            found.append(v)
        if ex.route in _TOOL_ROUTES and (v := observe(series, "tool_calls", float(len(ex.response.tool_calls)))):
            found.append(v)
        if usage and ex.session_id:
            accel = self._session(f"{ex.team_name}\x1f{ex.session_id}", int(usage.get("total_tokens") or 0))
            if accel is not None:
                found.append(accel)
        if found:
            ex.verdicts.extend(found)
        return found

    def _observe(self, by_figure: dict[str, _Series], figure: str, value: float) -> Verdict | None:
        series = by_figure[figure]
        values = series.values
        verdict = None
        if len(values) >= self._min_history:
            stale = series.stale = series.stale + 1
            # The centre and spread move slowly once the window is full: recomputed every half window
            # then (two sorts of 256 values), and always before a value outside the gate is judged.
            # (Two comparisons, not max(): a builtin call costs ~400 instructions, 5 times a request.)
            if stale >= self._every and stale >= len(values) >> 1:
                series.recompute(figure, self._z, self._ratio)
            if not series.low < value < series.high:  # most values: two comparisons, no judging
                if series.stale:
                    series.recompute(figure, self._z, self._ratio)
                if not series.low < value < series.high:
                    verdict = self._judge(figure, value, series)
        values.append(value)
        return verdict

    def _judge(self, figure: str, value: float, s: _Series) -> Verdict | None:
        z = (value - s.median) / s.scale
        floor = _MIN_SCALE[figure]
        times = max(value, floor) / max(s.median, floor)
        high = z >= self._z and times >= self._ratio
        low = figure in _TWO_SIDED and -z >= self._z and times <= 1.0 / self._ratio
        if not (high or low):
            return None
        n = len(s.values)
        how = f"{times:.1f}x" if high else f"{1.0 / times:.1f}x below"
        message = (f"{figure} {value:g} is {how} the median {s.median:g} of the last {n} requests "
                   f"of this team and model (robust z {z:+.1f})")
        return Verdict(Action.FLAG, code=f"anomaly.{figure}", message=message, score=round(abs(z), 2), stage="anomaly")

    def _session(self, key: str, tokens: int) -> Verdict | None:
        now = time.monotonic()
        sessions = self._sessions
        state = sessions.get(key)
        if state is None or now - state.seen > self._ttl:
            # One-shot traffic makes one of these per request: a small list, not a deque (a 64-slot block).
            sessions[key] = _Session([tokens], now)
            if len(sessions) > self._max_sessions:
                sessions.popitem(last=False)
            return None
        sessions.move_to_end(key)
        state.seen = now
        history = state.tokens
        history.append(tokens)
        if len(history) > 2 * self._span:
            del history[0]
        if len(history) < 2 * self._span:
            return None
        before, recent = sum(history[:self._span]), sum(history[self._span:])
        if recent < self._session_min or recent < self._session_ratio * max(before, 1):
            return None
        state.tokens.clear()  # re-arm: the next flag needs a fresh acceleration, not the same one again
        times = recent / max(before, 1)
        message = (f"session token use accelerates: the last {self._span} requests used {recent} tokens, "
                   f"{times:.1f}x the {before} of the {self._span} before")
        return Verdict(Action.FLAG, code="anomaly.session_tokens", message=message, score=round(times, 2),
                       stage="anomaly")
