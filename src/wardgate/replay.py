"""Replay the failure library against a gateway and compare (issue 5): ``wardgate replay`` exits non-zero
on a regression so it can gate a user's CI.

Each case is sent again (non-streaming, optionally to another model) with the team key. What the
client sees is always checked: the outcome, block codes, the tool calls (validated here against the
case's own tool schemas) and the text. Flags are not visible to a client, so with an admin key the
run also reads each replayed request's trace from ``/admin/traces/{id}`` and compares verdicts
exactly; without one, checks that need flags are reported as skipped, never passed silently.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from wardgate.answer import absorb_body
from wardgate.cases import GUARDRAIL_STAGES, Case, Expectation
from wardgate.exchange import Response
from wardgate.stages.tool_calls import tool_call_problems

__all__ = ["Replayed", "evaluate", "replay_cases"]

# The block codes of SPEC §3 and the stage that gives each: what a client can tell without the trace.
_BLOCK_STAGE = {"prompt_injection": "injection", "secret_detected": "secrets", "pii_detected": "pii",
                "unsafe_output": "output", "invalid_tool_call": "tool_calls", "budget_exceeded": "budget",
                "rate_limited": "budget", "loop_detected": "loops"}


@dataclass(slots=True)
class Replayed:
    """What one replay of one case produced, and how it compared."""

    case: Case
    status: int | None = None
    request_id: str | None = None
    outcome: str | None = None
    text: str = ""
    error_code: str | None = None
    tool_problems: list[str] = field(default_factory=list)
    verdicts: list[dict[str, Any]] | None = None
    """Every verdict (from the trace) when an admin key allowed reading it, else None."""
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    transport_error: str | None = None


def _tools(request: dict[str, Any]) -> dict[str, Any]:
    tools = {}
    for tool in request.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools[fn["name"]] = fn.get("parameters") or {}
    return tools


def _verdict_keys(verdicts: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(v.get("stage"), v.get("code"), v.get("action")) for v in verdicts
            if v.get("stage") in GUARDRAIL_STAGES and v.get("code") not in ("pii.redacted", "secrets.redacted")}


def _check(e: Expectation, got: Replayed) -> tuple[bool | None, str]:
    """(passed, why); passed is None when the check needs verdicts the run could not read."""
    verdicts = got.verdicts
    if e.check == "valid_tool_calls":
        return not got.tool_problems, "; ".join(got.tool_problems)
    if e.check == "outcome":
        return got.outcome == e.value, f"outcome {got.outcome} ({got.error_code or got.status})"
    if e.check in ("contains", "not_contains", "matches"):
        value = e.value or ""
        hit = bool(re.search(value, got.text)) if e.check == "matches" else value in got.text
        return hit == (e.check != "not_contains"), f"answer text {got.text[:80]!r}"
    blocked_by = _BLOCK_STAGE.get(got.error_code or "")
    if verdicts is None:
        if e.check == "verdict" and blocked_by == e.stage:
            return True, ""
        if e.check == "no_verdict" and blocked_by is not None and (e.stage in (None, blocked_by)):
            return False, f"blocked by {blocked_by} ({got.error_code})"
        return None, "needs the trace (give --admin-key)"
    if e.check == "verdict":
        hit = any(v.get("stage") == e.stage and (e.code is None or v.get("code") == e.code) for v in verdicts)
        return hit, f"verdicts {sorted(_verdict_keys(verdicts))}"
    if e.check == "no_verdict":
        found = [v for v in verdicts if (v.get("stage") == e.stage if e.stage else v.get("stage") in GUARDRAIL_STAGES)
                 and v.get("code") not in ("pii.redacted", "secrets.redacted")]
        return not found, ", ".join(f"{v.get('code')} ({v.get('action')})" for v in found)
    if e.check == "same_verdicts":
        expected = _verdict_keys(got.case.observed.get("verdicts") or [])
        return _verdict_keys(verdicts) == expected, f"verdicts {sorted(_verdict_keys(verdicts))}, was {sorted(expected)}"
    return False, f"unknown check {e.check}"


def evaluate(got: Replayed) -> Replayed:
    """Fill ``failures`` and ``skipped`` from the case's expectations."""
    if got.transport_error:
        got.failures.append(f"could not replay: {got.transport_error}")
        return got
    for e in got.case.expect:
        passed, why = _check(e, got)
        if passed is None:
            got.skipped.append(f"{e.describe()}: {why}")
        elif not passed:
            got.failures.append(f"{e.describe()}: {why}" if why else e.describe())
    return got


def _absorb(got: Replayed, status: int, payload: Any) -> None:
    got.status = status
    if status == 200 and isinstance(payload, dict):
        resp = Response()
        absorb_body(resp, payload)
        got.outcome, got.text = "served", resp.text
        tools = _tools(got.case.request)
        got.tool_problems = [msg for call in resp.tool_calls for _, msg in tool_call_problems(call, tools, None, ())]
        return
    error = payload.get("error") if isinstance(payload, dict) else None
    got.error_code = error.get("code") if isinstance(error, dict) else None
    got.outcome = "blocked" if got.error_code in _BLOCK_STAGE or status in (401, 403) else "error"


async def _trace(session: aiohttp.ClientSession, base: str, admin_key: str, request_id: str,
                 wait_s: float) -> dict[str, Any] | None:
    """The replayed request's trace; sinks deliver within about a second (SPEC §4), so poll briefly."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        async with session.get(f"{base}/admin/traces/{request_id}",
                               headers={"authorization": f"Bearer {admin_key}"}) as resp:
            if resp.status == 200:
                return (await resp.json(loads=orjson.loads))["trace"]
            if resp.status != 404:
                raise RuntimeError(f"/admin/traces answered HTTP {resp.status}")
        if asyncio.get_running_loop().time() > deadline:
            return None
        await asyncio.sleep(0.1)


async def _one(session: aiohttp.ClientSession, base: str, case: Case, key: str, model: str | None,
               admin_key: str | None, run: str) -> Replayed:
    got = Replayed(case)
    body = {k: v for k, v in case.request.items() if k not in ("stream", "stream_options")}
    body["model"] = model or case.model
    headers = {"authorization": f"Bearer {key}", "x-wardgate-tags": f"replay={run},case={case.id}",
               "x-wardgate-session": f"replay-{run}-{case.id}"}
    try:
        async with session.post(base + case.route, data=orjson.dumps(body),
                                headers={**headers, "content-type": "application/json"}) as resp:
            raw = await resp.read()
            got.request_id = resp.headers.get("x-wardgate-request-id")
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = None
            _absorb(got, resp.status, payload)
        if admin_key and got.request_id:
            trace = await _trace(session, base, admin_key, got.request_id, wait_s=5.0)
            if trace is not None:
                got.verdicts = trace.get("verdicts") or []
                got.outcome = trace.get("outcome") or got.outcome
    except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
        got.transport_error = f"{type(exc).__name__}: {exc}"
    return evaluate(got)


async def replay_cases(cases: list[Case], gateway: str, key: str, *, model: str | None = None,
                       admin_key: str | None = None, concurrency: int = 4, timeout_s: float = 120.0) -> list[Replayed]:
    """Replay every case (``concurrency`` at a time); results in the cases' order."""
    base = gateway.rstrip("/").removesuffix("/v1")
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(max(1, concurrency))
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def guarded(case: Case) -> Replayed:
            async with gate:
                return await _one(session, base, case, key, model, admin_key, run)

        return list(await asyncio.gather(*(guarded(c) for c in cases)))
