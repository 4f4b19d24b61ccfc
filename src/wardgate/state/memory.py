"""The in-process state store: one event loop, one process, the same semantics as the Redis store.

Every public method does its whole check-and-change without an ``await``, so on a single event loop
no other request can interleave between the check and the charge.
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wardgate.state.protocol import (
    GRACE_S,
    INDEX_RETENTION_S,
    Charge,
    CounterState,
    Limit,
    ReserveResult,
    actual_by_counter,
    check_team,
    merge_charges,
    rate_state,
    retry_after,
    to_us,
    window_state,
)
from wardgate.state.windows import WindowSpan, window_span

__all__ = ["MemoryStateStore"]

_SWEEP_EVERY_S = 60.0
_MAX_HIT_KEYS = 500_000
"""Loop-guard counters kept at most (~410 B each). One-shot traffic makes a new session per request,
so at 1,000 req/s the 600 s window alone would hold 1.2 M of them; past the cap the least recently
hit goes, as in nginx's ``limit_req`` zone."""
_TRIM_PER_CALL = 2
"""Entries looked at from the oldest end of a map per call that adds one: the maps shrink faster than
they grow, without a whole-map pass (a million entries would stall the event loop)."""
_MAX_CLOSED = 200_000
"""Settled reservations remembered at most (~430 B each), so a second settle of one counts nothing.
They are kept GRACE_S (an hour) otherwise: at 1,000 req/s, 3.6 M of them. The gateway settles each
reservation once, from the process that made it; the cap only bounds what a duplicate could reach."""


@dataclass(slots=True)
class _Counter:
    used: int = 0
    reserved: int = 0
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)  # reservation id -> (amount, expires_us)
    expiries: list[tuple[int, str]] = field(default_factory=list)  # heap of (expires_us, reservation id)
    drop_at: float | None = None  # when no reservation or settle can reach it any more; None: never

    def purge(self, now_us: int) -> None:
        while self.expiries and self.expiries[0][0] <= now_us:
            expires, rid = heapq.heappop(self.expiries)
            hold = self.holds.get(rid)
            if hold is not None and hold[1] == expires:
                del self.holds[rid]
                self.reserved -= hold[0]

    def drop_hold(self, rid: str) -> None:
        hold = self.holds.pop(rid, None)
        if hold is not None:
            self.reserved -= hold[0]
        # A settled hold leaves its heap entry behind until it would have expired (reservation_ttl_s,
        # 15 min by default): at 2,000 req/s, millions of entries. Rebuilt from the live holds once
        # the stale ones outnumber them, the heap stays about twice the requests in flight.
        if len(self.expiries) > 2 * len(self.holds) + 64:
            self.expiries = [(expires, r) for r, (_, expires) in self.holds.items()]
            heapq.heapify(self.expiries)


_Record = tuple[tuple[tuple[Limit, str, int], ...], float]
"""An open reservation, as a plain tuple (a dataclass cost a ~1.5k-instruction __init__ per request):
per counter its limit, the calendar window the reservation was made in ("" for rate limits) and the
stored amount held; then when no settle can reach the reservation any more."""


def _trim(entries: OrderedDict[Any, Any], cap: int, expired: Callable[[Any], bool]) -> None:
    """Forget up to _TRIM_PER_CALL entries from the oldest end: the expired ones, and any past ``cap``.

    An OrderedDict, not a dict: a dict finds its first entry by stepping over the slots its deleted
    entries left at the front, so trimming a plain dict oldest-first costs O(size) per call between
    two of its compactions (measured: 36 µs a call at 200,000 entries, 0.6 µs as an OrderedDict)."""
    for _ in range(_TRIM_PER_CALL):
        oldest = next(iter(entries))
        if len(entries) <= cap and not expired(entries[oldest]):
            return
        del entries[oldest]


class MemoryStateStore:
    """A `StateStore` for one process (tests, a single worker, demo mode)."""

    def __init__(self, max_hit_keys: int = _MAX_HIT_KEYS) -> None:
        if max_hit_keys < 1:
            raise ValueError("max_hit_keys must be >= 1")
        self._max_hit_keys = max_hit_keys
        self._counters: dict[tuple[str, str, str], _Counter] = {}
        self._rates: dict[tuple[str, str], float] = {}  # theoretical arrival time (µs) per rate counter
        self._records: dict[tuple[str, str], _Record] = {}  # open reservations
        self._closed: OrderedDict[tuple[str, str], float] = OrderedDict()  # settled or released, oldest first
        self._hits: OrderedDict[tuple[str, str], tuple[list[int], int]] = OrderedDict()  # event times, window (µs)
        self._index: dict[str, dict[str, tuple[Limit, float]]] = {}
        self._next_sweep = 0.0

    async def reserve(
        self, team: str, reservation_id: str, charges: Sequence[Charge], ttl_s: float, now: float | None = None
    ) -> ReserveResult:
        check_team(team)
        if not ttl_s > 0:
            raise ValueError("ttl_s must be > 0")
        now = time.time() if now is None else now
        now_us, expires_us = to_us(now), to_us(now + ttl_s)
        key = (team, reservation_id)
        if key in self._records or key in self._closed:
            raise ValueError(f"reservation {reservation_id!r} already exists")
        if now >= self._next_sweep:
            self._maybe_sweep(now)
        merged = merge_charges(charges)
        index = self._index.get(team)
        if index is None:
            index = self._index[team] = {}
        rates = self._rates
        # One pass decides, a second commits: per counter (limit, amount, rate key or None, the bucket's
        # tat before this charge, counter or None, span or None), so the commit and the states
        # reuse what the check looked up.
        plans: list[tuple[Limit, int, tuple[str, str] | None, float, _Counter | None, WindowSpan | None]] = []
        denied, wait_us = -1, 0.0
        for position, (limit, amount) in enumerate(merged):
            cid = limit.counter_id
            index[cid] = (limit, now)
            if limit.is_rate:
                step = limit.emission
                rate_key = (team, cid)
                tat = rates.get(rate_key, 0)
                allow_at = max(tat, now_us) + amount * step - limit.stored_bucket * step
                fits = allow_at <= now_us
                if not fits and denied < 0:
                    wait_us = math.floor(allow_at - now_us)
                plans.append((limit, amount, rate_key, tat, None, None))
            else:
                span = window_span(limit.window, now)
                counter = self._counter(team, limit, span, ttl_s)
                counter.purge(now_us)
                fits = counter.used + counter.reserved + amount <= limit.stored_cap
                plans.append((limit, amount, None, 0, counter, span))
            if not fits and denied < 0:
                denied = position
        ok = denied < 0
        states = []
        for limit, amount, rate_key, tat, counter, span in plans:
            if counter is None:
                if ok:
                    tat = rates[rate_key] = round(max(tat, now_us) + amount * limit.emission)
                states.append(rate_state(limit, tat, now_us))
            else:
                if ok:
                    counter.holds[reservation_id] = (amount, expires_us)
                    counter.reserved += amount
                    heapq.heappush(counter.expiries, (expires_us, reservation_id))
                states.append(window_state(limit, counter.used, counter.reserved, now, span.resets_at))
        if ok:
            self._records[key] = (
                tuple([(limit, "" if span is None else span.label, amount) for limit, amount, _, _, _, span in plans]),
                now + ttl_s + GRACE_S,
            )
            return ReserveResult(True, None, tuple(states))
        limit, amount = merged[denied]
        return ReserveResult(False, states[denied], tuple(states), retry_after(limit, amount, now, wait_us))

    async def settle(
        self,
        team: str,
        reservation_id: str,
        actual: Iterable[Charge] | Mapping[Limit, float],
        now: float | None = None,
    ) -> bool:
        return self._finish(team, reservation_id, actual_by_counter(actual), now, charge=True)

    async def release(self, team: str, reservation_id: str, now: float | None = None) -> bool:
        return self._finish(team, reservation_id, {}, now, charge=False)

    async def hit(self, team: str, key: str, window_s: float, now: float | None = None) -> int:
        return self._hit_keys(team, (key,), window_s, now)[0]

    async def hit_many(self, team: str, keys: list[str], window_s: float, now: float | None = None) -> list[int]:
        # One pass over the keys, not a coroutine (and a team check, a sweep check) per key: the
        # loop guard hits two keys a request.
        return self._hit_keys(team, keys, window_s, now)

    def _hit_keys(self, team: str, keys: Sequence[str], window_s: float, now: float | None) -> list[int]:
        check_team(team)
        now = time.time() if now is None else now
        self._maybe_sweep(now)
        now_us, window_us = to_us(now), to_us(window_s)
        hits = self._hits
        expired = lambda hit: hit[0][-1] <= now_us - hit[1]  # as Redis TTLs would
        counts = []
        for key in keys:
            # Moved to the end: the map runs from the least to the most recently hit counter.
            events, longest = hits.get((team, key)) or ([], 0)
            del events[: bisect_right(events, now_us - window_us)]
            insort(events, now_us)  # sorted, not appended: a clock stepping back must not break the cut above
            hits[(team, key)] = (events, max(longest, window_us))
            hits.move_to_end((team, key))
            _trim(hits, self._max_hit_keys, expired)
            counts.append(len(events))
        return counts

    async def snapshot(self, team: str, now: float | None = None) -> list[CounterState]:
        check_team(team)
        now = time.time() if now is None else now
        index = self._index.get(team, {})
        return [
            self._state(team, limit, now)
            for _, (limit, seen) in sorted(index.items())
            if seen >= now - INDEX_RETENTION_S
        ]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def _finish(
        self, team: str, rid: str, actual: dict[str, tuple[Limit, int]], now: float | None, *, charge: bool
    ) -> bool:
        check_team(team)
        now = time.time() if now is None else now
        now_us = to_us(now)
        key = (team, rid)
        if key in self._closed:
            return False
        record = self._records.pop(key, None)
        if record is not None:
            counters = self._counters
            entries, record_drop_at = record
            for limit, label, amount in entries:
                found = actual.pop(limit.counter_id, None)
                spent = (found[1] if found else amount) if charge else 0
                if limit.is_rate:
                    # Admission already took the estimate from the bucket; settle corrects it, release keeps it
                    # (a failed upstream call still counted against the rate).
                    if charge and spent != amount:  # _adjust_rate does nothing for a zero delta
                        self._adjust_rate(team, limit, spent - amount, now_us)
                    continue
                counter_key = (team, limit.counter_id, label)
                counter = counters.get(counter_key)
                if counter is None:
                    counter = counters[counter_key] = _Counter(drop_at=record_drop_at)
                counter.purge(now_us)
                counter.drop_hold(rid)
                counter.used += spent
        for limit, amount in actual.values():
            # Not reserved (or the record is gone): count it in the current window. Rate buckets are
            # left alone: without the reservation we cannot know what admission already took.
            if not limit.is_rate and amount:
                self._counter(team, limit, window_span(limit.window, now), 0.0).used += amount
                self._index.setdefault(team, {})[limit.counter_id] = (limit, now)
        self._closed[key] = now + GRACE_S
        _trim(self._closed, _MAX_CLOSED, lambda drop_at: drop_at <= now)
        return True

    def _counter(self, team: str, limit: Limit, span: WindowSpan, ttl_s: float) -> _Counter:
        key = (team, limit.counter_id, span.label)
        counter = self._counters.get(key)
        if counter is None:  # not setdefault: that would build a _Counter (two lists and a dict) each call
            counter = self._counters[key] = _Counter()
        if span.resets_at is not None:
            drop_at = span.resets_at + ttl_s + GRACE_S
            counter.drop_at = drop_at if counter.drop_at is None else max(counter.drop_at, drop_at)
        return counter

    def _tat(self, team: str, limit: Limit, now_us: int) -> float:
        return max(self._rates.get((team, limit.counter_id), 0), now_us)

    def _adjust_rate(self, team: str, limit: Limit, delta: int, now_us: int) -> None:
        if not delta:
            return
        tat = self._tat(team, limit, now_us) + delta * limit.emission
        if tat <= now_us:
            self._rates.pop((team, limit.counter_id), None)
        else:
            self._rates[(team, limit.counter_id)] = round(tat)

    def _state(self, team: str, limit: Limit, now: float) -> CounterState:
        now_us = to_us(now)
        if limit.window.is_rate:
            return rate_state(limit, self._rates.get((team, limit.counter_id), 0), now_us)
        counter = self._counters.get((team, limit.counter_id, window_span(limit.window, now).label))
        if counter is None:
            return window_state(limit, 0, 0, now)
        counter.purge(now_us)
        return window_state(limit, counter.used, counter.reserved, now)

    def _maybe_sweep(self, now: float) -> None:
        # Forget what no call can observe any more, as Redis TTLs do, so a long-lived process stays small.
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY_S
        now_us = to_us(now)
        self._counters = {k: c for k, c in self._counters.items() if c.drop_at is None or c.drop_at > now}
        self._rates = {k: tat for k, tat in self._rates.items() if tat > now_us}
        self._records = {k: r for k, r in self._records.items() if r[1] > now}
        for team, index in list(self._index.items()):
            kept = {cid: seen for cid, seen in index.items() if seen[1] >= now - INDEX_RETENTION_S}
            if kept:
                self._index[team] = kept
            else:
                del self._index[team]
