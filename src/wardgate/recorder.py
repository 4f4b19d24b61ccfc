"""Turns a finished Exchange into its trace record and metrics; hands the record to the sinks.

Runs at the end of every request; the record is queued, never written on the request path.
"""

from __future__ import annotations

import structlog

from wardgate.anomaly import AnomalyDetector
from wardgate.exchange import Exchange
from wardgate.feedback import SignalTracker
from wardgate.metrics import Metrics
from wardgate.sinks.protocol import Record
from wardgate.sinks.writer import SinkWriter
from wardgate.trace import build_record

__all__ = ["Recorder"]

_log = structlog.get_logger("wardgate.access")


class Recorder:
    def __init__(self, writer: SinkWriter, metrics: Metrics, access_log: bool = False, *,
                 anomalies: AnomalyDetector | None = None, signals: SignalTracker | None = None) -> None:
        self._writer = writer
        self._sinks = writer.has_sinks  # fixed at construction; a property read costs a call per request
        self._metrics = metrics
        self._access_log = access_log
        self.anomalies = anomalies or AnomalyDetector()
        self.signals = signals or SignalTracker(self.feedback)
        """Implicit feedback (rephrase, abandon) and the request-id -> team index for POST /v1/feedback."""

    def feedback(self, record: Record) -> None:
        """Queue a feedback record (explicit or implicit) for the sinks and count it."""
        self._writer.submit(record)
        self._metrics.feedback.labels(record.get("team") or "", record.get("source") or "api").inc()

    def record(self, ex: Exchange, total_ms: float) -> None:
        try:  # before the record is built, so its flags are in it; a detector bug must not lose the record
            self.anomalies.check(ex, total_ms)
        except Exception:  # noqa: BLE001
            _log.exception("anomaly_check_failed", request_id=ex.request_id)
        if self._sinks:  # a record goes to every configured sink (SPEC §4); with none, none is built
            try:
                record = build_record(ex, total_ms)
            except Exception:  # a record must never be lost to a bug in one field: keep the essentials
                _log.exception("trace_build_failed", request_id=ex.request_id)
                record = {"schema": "wardgate.trace/1", "request_id": ex.request_id, "route": ex.route,
                          "status": ex.status, "outcome": ex.outcome.value if ex.outcome else "error",
                          "error": {"message": "trace record incomplete"}}
            self._writer.submit(record)
        self._metrics.observe(ex, total_ms)
        try:
            self.signals.observe(ex)
        except Exception:  # noqa: BLE001 - implicit feedback is best effort, the request is done
            _log.exception("signal_tracking_failed", request_id=ex.request_id)
        if self._access_log:
            _log.info("request", request_id=ex.request_id, team=ex.team_name, route=ex.route, model=ex.model_alias,
                      status=ex.status, outcome=ex.outcome.value if ex.outcome else "error", ms=round(total_ms, 2))
