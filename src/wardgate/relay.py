"""Relay an upstream SSE stream to the client as it arrives, with stream checkpoints.

Events pass unchanged (no re-encoding) unless a delta filter rewrote their text; the usage chunk the
gateway asked for is stripped when the client did not ask for it; a block after the headers were
sent ends the stream with one OpenAI-style error event (SPEC §3).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web

from wardgate.answer import absorb_chunk, as_list
from wardgate.errors import envelope
from wardgate.exchange import Exchange, Outcome, Verdict
from wardgate.pipeline import Pipeline
from wardgate.sse import (
    DONE,
    EventSplitter,
    EventTooLarge,
    data_of,
    error_event,
    format_data,
)
from wardgate.upstream import Reply

__all__ = ["CHECKPOINT_CHARS", "relay_stream"]

_log = structlog.get_logger("wardgate.relay")

CHECKPOINT_CHARS = 400
"""Output guardrails see the text so far every this many characters, and at the end."""


def _run_filters(ex: Exchange, channel: str, text: str, finishing: bool) -> str:
    for f in ex.delta_filters:
        text = f.feed(channel, text)
        if finishing:
            text += f.flush(channel)
    return text


def _filtered(ex: Exchange, chunk: dict[str, Any], finishing: bool) -> bytes:
    """Re-encode a chunk whose text the delta filters rewrote (content and tool-call arguments)."""
    if chunk.get("type") == "response.output_text.delta":
        chunk["delta"] = _run_filters(ex, "content", chunk.get("delta") or "", finishing)
        return format_data(orjson.dumps(chunk))
    for choice in as_list(chunk.get("choices")):
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            seen = set()
            calls = as_list(delta.get("tool_calls"))
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    channel = f"tool:{call.get('index', 0)}"
                    seen.add(call.get("index", 0))
                    fn["arguments"] = _run_filters(ex, channel, fn["arguments"], finishing)
            if isinstance(delta.get("content"), str) or finishing:
                text = _run_filters(ex, "content", delta.get("content") or "", finishing)
                if text or delta.get("content") is not None:
                    delta["content"] = text
            if finishing:
                tails = [{"index": call.index, "function": {"arguments": tail}} for call in ex.response.tool_calls
                         if call.index not in seen and (tail := _run_filters(ex, f"tool:{call.index}", "", True))]
                if tails:
                    delta["tool_calls"] = calls + tails
        elif isinstance(choice.get("text"), str):
            choice["text"] = _run_filters(ex, "content", choice["text"], finishing)
    return format_data(orjson.dumps(chunk))


async def _block(resp: web.StreamResponse, ex: Exchange, verdict: Verdict) -> None:
    error = envelope(verdict.status, verdict.error_code or "blocked", verdict.message or "blocked")["error"]
    ex.outcome, ex.error = Outcome.BLOCKED, error
    ex.extra["stream_cut_at_chars"] = len(ex.response.text)
    await resp.write(error_event({"error": error}))


async def relay_stream(request: web.Request, ex: Exchange, reply: Reply, pipeline: Pipeline,
                       headers: dict[str, str], checkpoints: bool) -> web.StreamResponse:
    """Back-pressure: ``resp.write`` awaits the transport's drain once aiohttp's buffer passes its
    high-water mark, and the upstream is read only between writes (its reader pauses the socket when
    its own buffer fills), so a slow client slows the upstream instead of growing gateway memory."""
    headers = {**headers, "content-type": "text/event-stream", "cache-control": "no-cache"}
    # The HTTP/1.1 front's own stream (same prepare/write/write_eof), or aiohttp's.
    resp = (web.StreamResponse(status=200, headers=headers) if isinstance(request, web.BaseRequest)
            else request.stream_response(headers))
    resp.headers["x-wardgate-overhead-ms"] = f"{ex.overhead_ms():.3f}"
    await resp.prepare(request)
    ex.status = 200
    ex.response.status = 200
    try:
        try:
            await _pump(resp, ex, reply, pipeline, checkpoints)
        except Exception as exc:  # noqa: BLE001 - after the headers went out: one error event, never a hang
            # The upstream failed mid-stream (a TimeoutError is its idle_timeout_s between chunks or its
            # timeout_s), or a bug here: the client gets one error event and the stream ends.
            if isinstance(exc, TimeoutError):
                error = envelope(504, "upstream_timeout", "the upstream stream stalled (timed out)")
            elif isinstance(exc, aiohttp.ClientError | EventTooLarge):
                error = envelope(502, "upstream_error", f"the upstream stream failed: {type(exc).__name__}")
            else:
                _log.exception("relay_failed", request_id=ex.request_id)
                error = envelope(500, "internal_error", "internal error while relaying the stream")
            ex.outcome, ex.error = Outcome.ERROR, error["error"]
            ex.extra["stream_cut_at_chars"] = len(ex.response.text)
            await asyncio.shield(pipeline.run_response(ex))
            await resp.write(error_event({"error": ex.error}))
    finally:
        reply.release()
    return resp


async def _pump(resp: web.StreamResponse, ex: Exchange, reply: Reply, pipeline: Pipeline, checkpoints: bool) -> None:
    since_check = 0
    saw_done = False
    assert reply.chunks is not None
    out: list[bytes] = []  # what one upstream chunk completes goes out in one write, not one per event
    chunks, splitter, clock = reply.chunks, EventSplitter(), time.perf_counter
    ended = False
    while not ended:
        # The upstream is read here, not through generator layers (~1.2 µs a chunk each); time spent
        # waiting on it counts as upstream time, not gateway overhead.
        started = clock()
        try:
            received = await chunks.__anext__()
        except StopAsyncIteration:
            ended = True
        ex.upstream_ms += (clock() - started) * 1000.0
        events = splitter.close() if ended else splitter.feed(received)
        if not events:
            continue
        if ex.ttft_ms is None:
            ex.ttft_ms = ex.elapsed_ms()
        for event in events:
            payload = data_of(event)
            if payload is None or payload == DONE:
                saw_done = saw_done or payload == DONE
                if payload is None:
                    out.append(event + b"\n\n")
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                out.append(event + b"\n\n")
                continue
            if not isinstance(chunk, dict):
                out.append(event + b"\n\n")
                continue
            if "error" in chunk and "choices" not in chunk:
                ex.outcome = Outcome.ERROR
                ex.error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                out.append(event + b"\n\n")
                continue
            new = absorb_chunk(ex.response, chunk)
            if chunk.get("choices") == [] and chunk.get("usage") and not ex.client_wants_usage:
                continue  # the usage chunk the gateway asked for on the client's behalf
            if ex.delta_filters:
                finishing = any(isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ())
                out.append(_filtered(ex, chunk, finishing))
            else:
                out.append(event + b"\n\n")
            since_check += len(new)
            if checkpoints and since_check >= CHECKPOINT_CHARS:
                since_check = 0
                verdict = await pipeline.run_checkpoint(ex)
                if verdict.blocks:
                    if out:
                        await resp.write(b"".join(out))
                    await _block(resp, ex, verdict)
                    return
        if out:
            await resp.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
    ex.response.complete = ex.outcome is None
    verdict = await pipeline.run_response(ex)
    if verdict.blocks:
        await _block(resp, ex, verdict)
        return
    if saw_done:
        await resp.write(b"data: [DONE]\n\n")
    if ex.outcome is None:
        ex.outcome = Outcome.SERVED
