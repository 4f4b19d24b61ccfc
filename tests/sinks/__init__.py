"""Tests for wardgate.sinks; ``trace_record`` builds a SPEC §4 record for them."""

from __future__ import annotations

from typing import Any


def trace_record(i: int, *, run: str = "r", team: str | None = "search", outcome: str = "served",
                 time: str = "2026-11-24T10:00:00.123Z") -> dict[str, Any]:
    """A complete trace record whose ``request_id`` is unique per (run, i)."""
    return {
        "schema": "wardgate.trace/1", "request_id": f"{run}-{i:06d}", "trace_id": f"t-{i}",
        "session_id": f"s-{i % 7}", "time": time, "team": team, "key_id": f"{team}-prod",
        "user": f"u-{i % 13}", "route": "/v1/chat/completions", "model": "gpt-4o-mini",
        "upstream": "openai", "upstream_model": "gpt-4o-mini", "stream": i % 2 == 0,
        "status": 200 if outcome == "served" else 403, "outcome": outcome,
        "verdicts": [{"stage": "injection", "action": "flag", "code": "injection.override",
                      "score": 0.74, "message": "m"}],
        "redactions": [{"entity": "EMAIL_ADDRESS", "count": 1, "where": "input"}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908},
        "cost_usd": 0.000179, "timings_ms": {"total": 1412.5, "overhead": 0.9, "stages": {"redact": 0.21}},
        "tags": {"feature": "search"}, "prompt": None, "request": {"messages": ["hello"]},
        "response": {"content": "hi"}, "error": None,
    }
