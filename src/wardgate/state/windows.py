"""Counting windows: UTC calendar windows that reset at their boundary, and smooth rate windows.

A calendar window is named by a label (``202611`` for November 2026) that goes into the counter's
key, so a new window is simply a new key and the old one expires on its own TTL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

__all__ = ["Window", "WindowSpan", "window_span"]


class Window(StrEnum):
    """How a counter is counted over time."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    TOTAL = "total"
    #: A smooth rate limit (GCRA, i.e. a token bucket): ``limit`` units per minute refill
    #: continuously into a bucket of ``burst`` units (default: ``limit``), so 60 rpm admits a burst
    #: and then about one request a second, never 60 at 12:00:59 and 60 more at 12:01:00.
    RATE_MINUTE = "rate_minute"

    @property
    def is_rate(self) -> bool:
        """True for rate windows (GCRA), False for calendar windows and ``total``."""
        return self is Window.RATE_MINUTE

    @property
    def period_s(self) -> float:
        """The refill period of a rate window: ``limit`` units refill per ``period_s`` seconds."""
        if self is Window.RATE_MINUTE:
            return 60.0
        raise ValueError(f"{self.value} is not a rate window")


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~4x to build, and this one is built per request
class WindowSpan:
    """The calendar window that contains an instant."""

    label: str
    """Names the window inside counter keys; ``total`` for the window that never resets."""
    start: float | None
    """Unix time the window began (None for ``total``)."""
    resets_at: float | None
    """Unix time the next window begins (None for ``total``)."""


_LABEL_FORMATS = {
    Window.MINUTE: "%Y%m%d%H%M",
    Window.HOUR: "%Y%m%d%H",
    Window.DAY: "%Y%m%d",
    Window.MONTH: "%Y%m",
}


def window_span(window: Window, now: float) -> WindowSpan:
    """The UTC calendar window of ``window`` kind that contains the unix time ``now``."""
    if window is _TOTAL_WINDOW:
        return _TOTAL
    if window in _RATE_WINDOWS:
        raise ValueError(f"{window.value} has no calendar window")
    # Every UTC calendar boundary falls on a whole minute of unix time, so the minute decides the
    # window; caching by minute keeps datetime arithmetic off the per-request path.
    return _span_of_minute(window, _floor(now / 60))


_TOTAL = WindowSpan("total", None, None)
# Module constants: an enum member's attribute lookup (Window.TOTAL) and the is_rate property cost a
# few hundred instructions each, on every reserve and settle.
_TOTAL_WINDOW = Window.TOTAL
_RATE_WINDOWS = frozenset(w for w in Window if w.is_rate)
_floor = math.floor


@lru_cache(maxsize=512)
def _span_of_minute(window: Window, minute: int) -> WindowSpan:
    moment = datetime.fromtimestamp(minute * 60, tz=UTC)
    if window is Window.MINUTE:
        start = moment.replace(second=0, microsecond=0)
        length = 60.0
    elif window is Window.HOUR:
        start = moment.replace(minute=0, second=0, microsecond=0)
        length = 3600.0
    elif window is Window.DAY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        length = 86400.0
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        # Months differ in length: the boundary is the first instant of the next month.
        following = (
            start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        )
        return WindowSpan(start.strftime(_LABEL_FORMATS[window]), start.timestamp(), following.timestamp())
    begin = start.timestamp()
    return WindowSpan(start.strftime(_LABEL_FORMATS[window]), begin, begin + length)
