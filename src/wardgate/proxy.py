"""aiohttp handlers: web.Request -> Exchange -> Pipeline -> Response / SSE relay.

Every /v1 request ends in exactly one trace record, whatever happened (SPEC §4).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import orjson
import structlog
from aiohttp import web

from wardgate.answer import absorb_body, cost_of
from wardgate.errors import GatewayError, envelope
from wardgate.exchange import Exchange, Outcome, Verdict
from wardgate.ids import random_hex
from wardgate.keys import CLOCK, GENERATION, RECORDER
from wardgate.relay import relay_stream
from wardgate.runtime import Generation

__all__ = ["API_ROUTES", "Answer", "handle_api", "handle_models", "handle_unknown", "serve_api"]

_log = structlog.get_logger("wardgate.proxy")
_JSON = "application/json"
API_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
"""The guarded routes, all ``POST``, all served by ``handle_api``."""


def _new_request_id() -> str:
    return "req_" + random_hex(12)


def _headers(ex: Exchange) -> dict[str, str]:
    headers = {"x-wardgate-request-id": ex.request_id, **ex.response_headers}
    if "traceparent" in ex.extra:  # W3C trace context: the client learns the span the gateway made (issue 5)
        headers["traceparent"] = ex.extra["traceparent"]
    return headers


class Answer(NamedTuple):
    """A whole JSON answer. The HTTP/1.1 front writes it as is; aiohttp's handlers wrap it in a
    ``web.Response`` (~3 µs to build, and a multidict the front would only read back)."""

    status: int
    headers: dict[str, str]
    body: bytes


def _web(answer: Answer | web.StreamResponse) -> web.StreamResponse:
    if isinstance(answer, Answer):
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)
    return answer


def _json_response(ex: Exchange, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> Answer:
    headers = _headers(ex)
    headers.update(extra)
    headers["x-wardgate-overhead-ms"] = f"{ex.overhead_ms():.3f}"
    headers["content-type"] = _JSON  # as a header: web.Response's content_type= argument re-parses it every time
    ex.status = status
    return Answer(status, headers, body)


def _error_response(ex: Exchange, err: GatewayError, outcome: Outcome = Outcome.ERROR) -> Answer:
    body = err.envelope()
    ex.error, ex.outcome = body["error"], outcome
    return _json_response(ex, err.status, orjson.dumps(body), err.headers)


def _block_response(ex: Exchange, verdict: Verdict) -> Answer:
    param = next((v for k, v in verdict.headers if k == "x-wardgate-param"), None)
    headers = tuple((k, v) for k, v in verdict.headers if k != "x-wardgate-param")
    err = GatewayError(verdict.status, verdict.error_code or "blocked", verdict.message or "blocked", param, headers)
    # blocked: a rule refused it (key, allowlist, guardrail, budget); error: the request itself was bad.
    malformed = verdict.stage == "parse" or verdict.error_code == "model_not_found"
    outcome = Outcome.ERROR if malformed else Outcome.BLOCKED
    return _error_response(ex, err, outcome)


def _body_for(ex: Exchange) -> Any:
    """Build the body for an upstream model; reuse the client's bytes when nothing changed."""

    def build(upstream_model: str) -> bytes:
        body = ex.body or {}
        needs_usage = ex.stream and not ex.client_wants_usage and ex.route == "/v1/chat/completions"
        if not ex.body_changed and body.get("model") == upstream_model and not needs_usage:
            return ex.raw_body
        out = dict(body)
        out["model"] = upstream_model
        if needs_usage:
            out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return orjson.dumps(out)

    return build


async def _read_body(request: web.Request, ex: Exchange, limit: int) -> GatewayError | None:
    too_large = GatewayError(413, "request_too_large", f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    try:
        ex.raw_body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large
    return too_large if len(ex.raw_body) > limit else None


async def _serve(request: web.Request, gen: Generation, ex: Exchange) -> Answer | Any:
    problem = await _read_body(request, ex, gen.config.server.max_body_bytes)
    if problem:
        return _error_response(ex, problem)
    verdict = await gen.pipeline.run_request(ex)
    if verdict.blocks:
        return _block_response(ex, verdict)
    try:
        reply = await gen.upstreams.send(ex, _body_for(ex))
    except GatewayError as err:
        await gen.pipeline.run_response(ex)
        return _error_response(ex, err)
    if ex.stream and reply.chunks is not None:
        return await relay_stream(request, ex, reply, gen.pipeline, _headers(ex), checkpoints=bool(ex.stages_ran))
    return await _finish_whole(ex, gen, reply.status, reply.body)


async def _finish_whole(ex: Exchange, gen: Generation, status: int, raw: bytes) -> Answer:
    ex.response.status = status
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if status >= 400 or not isinstance(body, dict):
        await gen.pipeline.run_response(ex)
        if status < 400:  # a 2xx that is not a JSON object: the upstream broke the protocol
            return _error_response(ex, GatewayError(502, "upstream_error", "the upstream sent an invalid body"))
        err = body.get("error") if isinstance(body, dict) else None
        ex.error = err if isinstance(err, dict) else envelope(status, "upstream_error", f"upstream HTTP {status}")["error"]
        ex.outcome = Outcome.ERROR
        payload = raw if isinstance(err, dict) else orjson.dumps({"error": ex.error})
        return _json_response(ex, status, payload)
    absorb_body(ex.response, body)
    ex.response.complete = True
    verdict = await gen.pipeline.run_response(ex)
    if verdict.blocks:
        return _block_response(ex, verdict)
    ex.outcome = Outcome.SERVED
    out = orjson.dumps(ex.response.body) if ex.response.body_changed else raw
    return _json_response(ex, status, out)


def _finalize(request: web.Request, ex: Exchange) -> None:
    if ex.model is not None and ex.response.usage is not None:
        ex.cost_usd = cost_of(ex.response.usage, ex.model.price)
    # After the response is on its way: the record costs the client no latency (DESIGN.md).
    asyncio.get_running_loop().call_soon(request.app[RECORDER].record, ex, ex.elapsed_ms())


async def handle_api(request: web.Request) -> web.StreamResponse:
    return _web(await serve_api(request))


async def serve_api(request: web.Request) -> Answer | Any:
    """One API request, from aiohttp or the HTTP/1.1 front (``front.FrontRequest``): an ``Answer``,
    or the streamed response ``relay_stream`` wrote (aiohttp's, or the front's ``FrontStream``)."""
    gen = request.app[GENERATION]
    ex = Exchange(request_id=_new_request_id(), route=request.path, headers=request.headers, config=gen.config,
                  received=request.app[CLOCK]())
    if request.headers.get("x-request-id"):
        ex.extra["client_request_id"] = request.headers["x-request-id"][:128]
    try:
        return await _serve(request, gen, ex)
    except asyncio.CancelledError:
        # The client went away: record it, settle what ran (shielded), and let the cancel go on.
        ex.outcome, ex.status = Outcome.ERROR, ex.status or 499
        ex.error = {"message": "client disconnected", "type": "client_closed", "param": None, "code": "client_closed"}
        await asyncio.shield(gen.pipeline.run_response(ex))
        raise
    except ConnectionError:
        ex.outcome, ex.status = Outcome.ERROR, ex.status or 499
        ex.error = {"message": "client disconnected", "type": "client_closed", "param": None, "code": "client_closed"}
        await asyncio.shield(gen.pipeline.run_response(ex))
        raise
    except Exception as exc:  # a bug must not crash the process or lose the record
        _log.exception("unhandled_error", request_id=ex.request_id)
        await asyncio.shield(gen.pipeline.run_response(ex))
        return _error_response(ex, GatewayError(500, "internal_error", f"internal error ({type(exc).__name__})"))
    finally:
        _finalize(request, ex)


async def handle_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models: only the models the caller's team may use."""
    gen = request.app[GENERATION]
    ex = Exchange(request_id=_new_request_id(), route=request.path, headers=request.headers, config=gen.config,
                  received=request.app[CLOCK]())
    try:
        verdict = gen.pipeline.front[0].on_request(ex)  # Authenticate: a plain function
        if verdict.blocks:
            ex.verdicts.append(verdict)
            return _web(_block_response(ex, verdict))
        team = ex.team
        names = [m for m in gen.config.models if team and ("*" in team.models or m in team.models)]
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "wardgate"} for m in names]
        ex.outcome = Outcome.SERVED
        return _web(_json_response(ex, 200, orjson.dumps({"object": "list", "data": data})))
    finally:
        _finalize(request, ex)


async def handle_unknown(request: web.Request) -> web.StreamResponse:
    """Any other /v1 path or method: a 404 in OpenAI's envelope, and a trace record."""
    gen = request.app[GENERATION]
    ex = Exchange(request_id=_new_request_id(), route=request.path, headers=request.headers, config=gen.config,
                  received=request.app[CLOCK]())
    try:
        err = GatewayError(404, "not_found", f"Unknown route: {request.method} {request.path}")
        if request.method not in ("GET", "POST") or request.path in _KNOWN:
            err = GatewayError(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")
        return _web(_error_response(ex, err))
    finally:
        _finalize(request, ex)


_KNOWN = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models",
                    "/v1/feedback"})
