"""A circuit breaker per upstream, so a dead provider costs microseconds instead of timeouts.

Closed: requests flow and consecutive failures are counted. After ``failures`` in a row it opens:
requests are refused at once (the caller goes to the model's fallbacks) for ``cooldown_s``. Then it
is half-open: exactly one request is let through as a probe; its success closes the breaker, its
failure opens it for another cool-down. A probe that ends neither way (the client went away) frees
the slot so the next request probes instead.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["Breaker", "BreakerState"]


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """One upstream's breaker. Not thread-safe: one event loop per process owns it."""

    __slots__ = ("_clock", "_cooldown_s", "_failures", "_opened_at", "_probing", "_state", "_streak")

    def __init__(self, failures: int = 5, cooldown_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._streak = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._cooldown_s:
            return BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a request go to this upstream now? In half-open, only the one probe may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._state, self._probing = BreakerState.HALF_OPEN, True
        return True

    def success(self) -> None:
        self._state, self._streak, self._probing = BreakerState.CLOSED, 0, False

    def failure(self) -> None:
        self._streak += 1
        if self._probing or self._streak >= self._failures:
            self._state, self._opened_at = BreakerState.OPEN, self._clock()
        self._probing = False

    def abandon(self) -> None:
        """The request ended without telling whether the upstream works (e.g. a client disconnect)."""
        self._probing = False
