"""Typed application keys: the long-lived objects one app holds (DESIGN.md rule 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from wardgate.metrics import Metrics
    from wardgate.recorder import Recorder
    from wardgate.runtime import Generation
    from wardgate.sinks.writer import SinkWriter

__all__ = ["CLOCK", "GENERATION", "METRICS", "RECORDER", "WRITER"]

GENERATION: web.AppKey[Generation] = web.AppKey("generation")
RECORDER: web.AppKey[Recorder] = web.AppKey("recorder")
WRITER: web.AppKey[SinkWriter] = web.AppKey("writer")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
"""Wall-clock time of a request's arrival (``time.time``); budgets' calendar windows follow it."""
