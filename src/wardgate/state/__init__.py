"""Budgets, rate limits and loop counters: checked and charged atomically, in memory or in Redis."""

from wardgate.state.memory import MemoryStateStore
from wardgate.state.protocol import (
    Charge,
    CounterState,
    Limit,
    ReserveResult,
    StateStore,
    StateUnavailable,
    Unit,
)
from wardgate.state.redis import RedisStateStore
from wardgate.state.windows import Window, WindowSpan, window_span

__all__ = [
    "Charge",
    "CounterState",
    "Limit",
    "MemoryStateStore",
    "RedisStateStore",
    "ReserveResult",
    "StateStore",
    "StateUnavailable",
    "Unit",
    "Window",
    "WindowSpan",
    "window_span",
]
