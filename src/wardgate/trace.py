"""The trace record (SPEC §4): one per /v1 request, built from the finished Exchange."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import lru_cache
from math import floor
from typing import Any

import orjson

from wardgate.exchange import OUTCOME_VALUE, Exchange

__all__ = ["SCHEMA", "build_record", "iso_time"]

SCHEMA = "wardgate.trace/1"
_CONTENT_FIELDS = ("messages", "prompt", "input", "instructions", "tools")
_PARAM_FIELDS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "tool_choice", "n", "seed",
                 "response_format", "parallel_tool_calls")
# The request fields a record keeps, in record order, and each one's rank in that order.
_RANK = {name: i for i, name in enumerate(_CONTENT_FIELDS + _PARAM_FIELDS)}
_KEPT = frozenset(_RANK)
# Under log.content hashes/none a verdict message is kept only from stages that word it from kinds, counts and
# config, never from the text (tool_calls quotes argument values, output safety may quote the answer).
_WORDED_FROM_METADATA = frozenset({"authenticate", "parse", "route", "secrets", "pii", "injection", "loops",
                                   "budget", "anomaly"})
# Error codes whose messages the gateway writes itself from metadata (upstream_error may quote the upstream).
_METADATA_ERRORS = frozenset({"invalid_api_key", "model_not_allowed", "model_not_found", "request_too_large",
                              "budget_exceeded", "rate_limited", "loop_detected", "upstream_timeout",
                              "state_unavailable", "guardrail_unavailable", "not_found", "method_not_allowed",
                              "client_closed", "internal_error"})
# ".000Z" ... ".999Z": the millisecond tail of an ISO time, a tuple index instead of a format call.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


@lru_cache(maxsize=8)
def _to_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso_time(epoch: float) -> str:
    """``2026-11-24T10:00:00.123Z``; the part up to the second is formatted once per second."""
    if epoch >= 0.0:  # floor is int() for these, at half the cost
        second = floor(epoch)
        return _to_second(second) + _MILLIS[floor((epoch - second) * 1000)]
    second = int(epoch)
    return f"{_to_second(second)}.{int((epoch - second) * 1000):03d}Z"


def _sha(value: Any) -> str:
    raw = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return "sha256:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _request_content(body: Any, mode: str) -> dict[str, Any] | None:
    if mode == "none" or not isinstance(body, dict):
        return None
    # The few fields a body has, found by one C-level pass over its keys (not 14 lookups), in record order.
    present = _KEPT.intersection(body)
    if not present:
        return {}
    names = sorted(present, key=_RANK.__getitem__) if len(present) > 1 else present
    if mode != "hashes":
        return {name: body[name] for name in names}
    out: dict[str, Any] = {}
    for name in names:
        value = body[name]
        if name in _PARAM_FIELDS:
            out[name] = value
        else:
            out[name] = [_sha(v) for v in value] if isinstance(value, list) else _sha(value)
    return out


def _response_content(ex: Exchange, mode: str) -> dict[str, Any] | None:
    resp = ex.response
    if mode == "none" or resp.status is None:
        return None
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in resp.tool_calls] if resp.tool_calls else []
    if mode == "hashes":
        return {"content": _sha(resp.text) if resp.text else None,
                "tool_calls": [{"id": c["id"], "name": c["name"], "arguments": _sha(c["arguments"])} for c in calls],
                "finish_reason": resp.finish_reason}
    return {"content": resp.text or None, "tool_calls": calls, "finish_reason": resp.finish_reason}


def _verdicts(ex: Exchange, mode: str) -> list[dict[str, Any]]:
    out = [v.to_record() for v in ex.verdicts]
    if mode in ("hashes", "none"):
        for v in out:
            if v["stage"] not in _WORDED_FROM_METADATA and v["message"] is not None:
                v["message"] = _sha(v["message"]) if mode == "hashes" else None
    return out


def _error(ex: Exchange, mode: str) -> dict[str, Any] | None:
    """The client's error; under hashes/none its message only if the gateway worded it from metadata."""
    err = ex.error
    if err is None or mode in ("full", "redacted") or not isinstance(err, dict):
        return err
    message = err.get("message")
    worded = {v.message: v.stage in _WORDED_FROM_METADATA for v in ex.verdicts if v.message}
    if message is None or worded.get(message, err.get("code") in _METADATA_ERRORS):
        return err
    return {**err, "message": _sha(str(message)) if mode == "hashes" else None}


def _r(value: float, scale: float) -> float:
    """``value`` (>= 0) to ``1 / scale``: an integer count divided back is the double nearest that
    decimal, so it prints short, at a fifth of ``round()``'s cost. ``floor`` is ``int`` for values
    >= 0 at half its cost (~400 instructions against ~850)."""
    return floor(value * scale + 0.5) / scale


def build_record(ex: Exchange, total_ms: float) -> dict[str, Any]:
    """Every SPEC §4 field, ``None`` where unknown. Never a key, never a redacted value."""
    policy = ex.policy
    mode = policy.log.content if policy is not None else "redacted"
    usage = ex.response.usage
    # Per-stage totals and the span list, in one pass.
    stages: dict[str, float] = {}
    spans = []
    append = spans.append
    for span in ex.spans:
        name, ms = span.stage, span.duration_ms
        stages[name] = stages[name] + ms if name in stages else ms
        # Action is a str enum: orjson writes its value, and it compares equal to it in process.
        append({"stage": name, "phase": span.phase, "ms": _r(ms, 10000.0), "action": span.action})
    for name, ms in stages.items():  # in place: same keys, same order
        stages[name] = _r(ms, 1000.0)
    upstream_ms, ttft_ms, outcome = ex.upstream_ms, ex.ttft_ms, ex.outcome
    return {
        "schema": SCHEMA,
        "request_id": ex.request_id,
        "trace_id": ex.trace_id,
        "session_id": ex.session_id,
        "time": iso_time(ex.received),
        "team": ex.team_name,
        "key_id": ex.key.id if ex.key else None,
        "user": ex.user,
        "route": ex.route,
        "model": ex.model_alias,
        "upstream": ex.upstream_name,
        "upstream_model": ex.upstream_model,
        "stream": ex.stream,
        "status": ex.status,
        "outcome": OUTCOME_VALUE[outcome] if outcome else None,
        # List comprehensions are a function call each in 3.11, even over an empty list.
        "verdicts": _verdicts(ex, mode) if ex.verdicts else [],
        "redactions": [{"entity": r.entity, "count": r.count, "where": r.where} for r in ex.redactions]
        if ex.redactions else [],
        "usage": dict(usage) if usage else None,
        "cost_usd": ex.cost_usd,
        "timings_ms": {
            "total": _r(total_ms, 1000.0),
            "overhead": _r(max(0.0, total_ms - upstream_ms), 1000.0),
            "upstream": _r(upstream_ms, 1000.0) if ex.attempts else None,
            "ttft": _r(ttft_ms, 1000.0) if ttft_ms is not None else None,
            "stages": stages,
        },
        "tags": ex.tags,
        "prompt": ex.prompt_ref,
        "request": _request_content(ex.body, mode),
        "response": _response_content(ex, mode),
        "error": _error(ex, mode),
        "attempts": ex.attempts,
        "spans": spans,
        "extra": ex.extra_record(),
    }
