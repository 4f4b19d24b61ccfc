"""The state store's contract: limits, charges, counter states, and the ``StateStore`` seam.

Both stores count in integers: tokens and requests as they are, dollars in micro-dollars, times in
microseconds, so the memory store and the Redis Lua scripts reach the same decisions exactly
(three charges of $0.10 fit a $0.30 budget; in floats they would not).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from wardgate.state.windows import Window, window_span

__all__ = [
    "Charge",
    "CounterState",
    "Limit",
    "ReserveResult",
    "StateStore",
    "StateUnavailable",
    "Unit",
]

#: How long a reservation's record (and its "settled" marker) outlives its expiry, so a late
#: settle still charges the window the reservation was made in, and a repeated one is a no-op.
GRACE_S = 3600.0
#: Counters not touched for this long leave the admin snapshot's index.
INDEX_RETENTION_S = 35 * 86400.0


class StateUnavailable(Exception):
    """The shared state cannot be reached; the gateway decides whether to fail closed or open."""


class Unit(StrEnum):
    """What a counter counts."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    USD = "usd"

    @property
    def scale(self) -> int:
        """Stored integer units per unit (micro-dollars for ``usd``)."""
        return 1_000_000 if self is Unit.USD else 1


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter and its cap, e.g. ``Limit("team:search", Window.DAY, Unit.TOKENS, 2_000_000)``."""

    scope: str
    """Who is counted: ``team:search``, ``key:search-prod``, ``user:search:u-42``, ``session:search:abc``."""
    window: Window
    unit: Unit
    limit: float
    """Cap per window; for ``rate_minute``, units refilled per minute."""
    burst: float | None = None
    """``rate_minute`` only: bucket size, the most admitted at once (default: ``limit``)."""
    counter_id: str = field(init=False, repr=False, compare=False)
    """The counter's identity, ``<scope>:<window>:<unit>``, the same whatever the cap."""
    stored_cap: int = field(init=False, repr=False, compare=False)
    """``limit`` in stored integer units (read on every reserve and settle: computed once)."""
    stored_bucket: int = field(init=False, repr=False, compare=False)
    """``bucket`` in stored integer units."""
    emission: float = field(init=False, repr=False, compare=False)
    """Rate windows: microseconds one stored unit occupies in the bucket (GCRA's emission interval)."""
    is_rate: bool = field(init=False, repr=False, compare=False)
    """``window.is_rate``, kept as a field: the enum property is a Python call, read on every reserve and settle."""
    scale: int = field(init=False, repr=False, compare=False)
    """``unit.scale``, for the same reason."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", Window(self.window))
        object.__setattr__(self, "unit", Unit(self.unit))
        object.__setattr__(self, "counter_id", f"{self.scope}:{self.window.value}:{self.unit.value}")
        if not self.scope or "\x1e" in self.scope or "\x1f" in self.scope:
            # \x1e and \x1f delimit fields in the Redis store's records: a scope built from a
            # client-supplied user id must not be able to forge one.
            raise ValueError(f"invalid limit scope: {self.scope!r}")
        if not (self.limit >= 0 and math.isfinite(self.limit)):
            raise ValueError(f"{self.scope}: limit must be a finite number >= 0")
        if self.burst is not None and not self.window.is_rate:
            raise ValueError(f"{self.scope}: burst applies to rate windows only")
        if self.window.is_rate and self.bucket <= 0:
            raise ValueError(f"{self.scope}: a rate limit needs limit and burst > 0")
        object.__setattr__(self, "is_rate", self.window.is_rate)
        object.__setattr__(self, "scale", self.unit.scale)
        cap = to_stored(self.scale, self.limit)
        object.__setattr__(self, "stored_cap", cap)
        object.__setattr__(self, "stored_bucket", to_stored(self.scale, self.bucket))
        object.__setattr__(self, "emission", self.window.period_s * 1_000_000 / cap if self.window.is_rate and cap
                           else math.inf)

    @property
    def bucket(self) -> float:
        """The burst size of a rate limit."""
        return self.limit if self.burst is None else self.burst


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~4x to build, and this one is built per request
class Charge:
    """An amount to count against one limit."""

    limit: Limit
    amount: float


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~4x to build, and this one is built per request
class CounterState:
    """A counter as seen by one operation, in the limit's units (dollars for ``usd``).

    For a rate limit ``used`` is what the bucket holds (0 when full of capacity again), ``reserved``
    is 0, ``remaining`` what could be admitted now, and ``resets_at`` when the bucket is full again.
    """

    limit: Limit
    used: float
    reserved: float
    remaining: float
    resets_at: float | None


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~4x to build, and this one is built per request
class ReserveResult:
    ok: bool
    denied: CounterState | None
    """The first counter that refused (in charge order), None when ``ok``."""
    states: tuple[CounterState, ...]
    """Every counter, in charge order, after the reservation (as found, if refused)."""
    retry_after_s: float | None = None
    """When refused: seconds until the same charge could pass (rate: when the bucket has room;
    calendar window: its reset), None if waiting cannot help (``total``, or a charge over the cap)."""


@runtime_checkable
class StateStore(Protocol):
    """Budgets, rate limits and loop counters, checked and charged atomically."""

    async def reserve(
        self, team: str, reservation_id: str, charges: Sequence[Charge], ttl_s: float, now: float | None = None
    ) -> ReserveResult:
        """All charges fit (used + unexpired reservations + amount <= limit; rate buckets have room)
        and are held under ``reservation_id`` until settled, released or ``now + ttl_s``; or nothing is."""
        ...

    async def settle(
        self,
        team: str,
        reservation_id: str,
        actual: Iterable[Charge] | Mapping[Limit, float],
        now: float | None = None,
    ) -> bool:
        """Drops the reservation and charges the actual usage; False if it was already settled/released."""
        ...

    async def release(self, team: str, reservation_id: str, now: float | None = None) -> bool:
        """Drops the reservation without charging; False if it was already settled/released."""
        ...

    async def hit(self, team: str, key: str, window_s: float, now: float | None = None) -> int:
        """Records one event for ``key``; returns the events in the last ``window_s`` seconds, this one included."""
        ...

    async def hit_many(self, team: str, keys: list[str], window_s: float, now: float | None = None) -> list[int]:
        """``hit`` on each key, at once (one round trip); the counts in ``keys`` order."""
        ...

    async def snapshot(self, team: str, now: float | None = None) -> list[CounterState]:
        """Every counter the team used in the last 35 days, in its current window."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# ---- shared arithmetic of both stores (integers only; not part of the public surface) ----


def check_team(team: str) -> None:
    # The team becomes the Redis Cluster hash tag: braces would end or split it.
    if not team or "{" in team or "}" in team:
        raise ValueError(f"invalid team name for the state store: {team!r}")


def to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def to_stored(scale: int, amount: float) -> int:
    """An amount in a unit as stored (an int): ``scale`` is the unit's (``Limit.scale``)."""
    if not (amount >= 0 and math.isfinite(amount)):
        raise ValueError(f"a charge must be a finite amount >= 0, got {amount!r}")
    return round(amount * scale)


def from_stored(scale: int, value: float) -> float:
    return value / scale if scale != 1 else float(value)


def merge_charges(charges: Iterable[Charge]) -> list[tuple[Limit, int]]:
    """Stored amounts per counter, in first-seen order (two charges on one counter add up)."""
    return list(_merged(charges).values())


def _merged(charges: Iterable[Charge]) -> dict[str, tuple[Limit, int]]:
    merged: dict[str, tuple[Limit, int]] = {}
    for charge in charges:
        limit = charge.limit
        stored = to_stored(limit.scale, charge.amount)
        cid = limit.counter_id
        known = merged.get(cid)
        merged[cid] = (known[0], known[1] + stored) if known else (limit, stored)
    return merged


def actual_by_counter(actual: Iterable[Charge] | Mapping[Limit, float]) -> dict[str, tuple[Limit, int]]:
    if type(actual) is not list and isinstance(actual, Mapping):  # a list (what the gateway passes) is no Mapping
        actual = [Charge(limit, amount) for limit, amount in actual.items()]
    return _merged(actual)


_LOOK_UP: Any = object()


def window_state(limit: Limit, used: int, reserved: int, now: float, resets_at: float | None = _LOOK_UP) -> CounterState:
    """``resets_at``: the end of the window at ``now`` when the caller already has it (saves a lookup)."""
    scale = limit.scale
    if resets_at is _LOOK_UP:
        resets_at = window_span(limit.window, now).resets_at
    return CounterState(limit, from_stored(scale, used), from_stored(scale, reserved),
                        from_stored(scale, max(0, limit.stored_cap - used - reserved)), resets_at)


def rate_state(limit: Limit, tat_us: float, now_us: int) -> CounterState:
    held = max(0.0, tat_us - now_us) / limit.emission
    scale = limit.scale
    return CounterState(limit, from_stored(scale, held), 0.0,
                        from_stored(scale, max(0, math.floor(limit.stored_bucket - held + 1e-9))),
                        max(tat_us, now_us) / 1_000_000)


def retry_after(limit: Limit, amount: int, now: float, rate_wait_us: float) -> float | None:
    if limit.window.is_rate:
        return None if amount > limit.stored_bucket else rate_wait_us / 1_000_000
    resets_at = window_span(limit.window, now).resets_at
    if resets_at is None or amount > limit.stored_cap:
        return None
    return resets_at - now
