"""Turns a finished Exchange into its trace record and metrics; hands the record to the sinks.

Runs at the end of every request; the record is queued, never written on the request path.
"""

from __future__ import annotations

import structlog

from wardgate.exchange import Exchange
from wardgate.metrics import Metrics
from wardgate.sinks.writer import SinkWriter
from wardgate.trace import build_record

__all__ = ["Recorder"]

_log = structlog.get_logger("wardgate.access")


class Recorder:
    def __init__(self, writer: SinkWriter, metrics: Metrics, access_log: bool = False) -> None:
        self._writer = writer
        self._metrics = metrics
        self._access_log = access_log

    def record(self, ex: Exchange, total_ms: float) -> None:
        try:
            record = build_record(ex, total_ms)
        except Exception:  # a record must never be lost to a bug in one field: keep the essentials
            _log.exception("trace_build_failed", request_id=ex.request_id)
            record = {"schema": "wardgate.trace/1", "request_id": ex.request_id, "route": ex.route,
                      "status": ex.status, "outcome": ex.outcome.value if ex.outcome else "error",
                      "error": {"message": "trace record incomplete"}}
        self._writer.submit(record)
        self._metrics.observe(ex, total_ms)
        if self._access_log:
            _log.info("request", request_id=ex.request_id, team=ex.team_name, route=ex.route, model=ex.model_alias,
                      status=ex.status, outcome=record["outcome"], ms=round(total_ms, 2))
