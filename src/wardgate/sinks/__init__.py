"""Trace sinks and the writer that feeds them without slowing a request (SPEC §4, §5).

``build_sink`` turns one validated ``sinks:`` entry into a :class:`Sink`; :class:`SinkWriter` fans
records out to them.
"""

from __future__ import annotations

from typing import Any

from wardgate.sinks.http import HttpSink, HttpSinkError
from wardgate.sinks.jsonl import JsonlSink
from wardgate.sinks.postgres import PostgresSink, query_traces
from wardgate.sinks.protocol import Record, Sink
from wardgate.sinks.redis_stream import RedisStreamSink
from wardgate.sinks.writer import SinkWriter

__all__ = [
    "HttpSink",
    "HttpSinkError",
    "JsonlSink",
    "PostgresSink",
    "Record",
    "RedisStreamSink",
    "Sink",
    "SinkWriter",
    "build_sink",
    "query_traces",
]


def build_sink(spec: dict[str, Any]) -> Sink:
    """Build one sink from a validated config entry (``type`` plus that type's keys).

    An optional ``name`` overrides the default name (the type); the writer suffixes duplicates.
    """
    kind = spec.get("type")
    named = {"name": spec["name"]} if spec.get("name") else {}
    try:
        if kind == "jsonl":
            return JsonlSink(spec["path"], max_bytes=spec.get("max_bytes"),
                             rotate_daily=spec.get("rotate_daily", True),
                             retention_days=spec.get("retention_days"), **named)
        if kind == "redis_stream":
            return RedisStreamSink(spec["url"], stream=spec.get("stream", "wardgate:traces"),
                                   maxlen=spec.get("maxlen", 100_000), **named)
        if kind == "postgres":
            return PostgresSink(spec["dsn"], table=spec.get("table", "wardgate_traces"),
                                retention_days=spec.get("retention_days", 30), **named)
        if kind == "http":
            return HttpSink(spec["url"], headers=spec.get("headers"), batch_size=spec.get("batch_size"),
                            timeout_s=spec.get("timeout_s", 10.0), **named)
    except KeyError as missing:
        raise ValueError(f"{kind} sink needs {missing.args[0]!r}") from None
    raise ValueError(f"unknown sink type {kind!r} (expected jsonl, redis_stream, postgres or http)")
