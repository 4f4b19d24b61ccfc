"""The admin API's read side: ``/admin/traces``, ``/admin/traces/{id}``, ``/admin/budgets`` (SPEC §3).

Only ``server.admin_keys`` bearers get in; with no admin key configured the admin API is closed.
The keys are compared as sha256 digests with ``hmac.compare_digest``, so neither the content nor the
length of a configured key leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from aiohttp import web

from wardgate.errors import error_body
from wardgate.keys import GENERATION
from wardgate.tracestore import TraceQuery, parse_since, store_for

__all__ = ["admin_authorized", "handle_budgets", "handle_trace", "handle_traces"]

_MAX_LIMIT = 1000


def admin_authorized(request: web.Request) -> bool:
    """True when the request carries one of the current config's admin keys as a bearer token."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    given = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    ok = False
    for key in request.app[GENERATION].config.server.admin_keys:
        if key:  # an unset ${WARDGATE_ADMIN_KEY} must not admit an empty token
            ok |= hmac.compare_digest(given, hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())
    return ok


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _refusal(request: web.Request) -> web.Response | None:
    if admin_authorized(request):
        return None
    return web.Response(status=401, body=error_body(401, "invalid_api_key", "an admin key is required"),
                        content_type="application/json")


def _bad(message: str, param: str) -> web.Response:
    return web.Response(status=400, body=error_body(400, "invalid_request", message, param),
                        content_type="application/json")


def _query(q: Any) -> TraceQuery | web.Response:
    tags = []
    for tag in q.getall("tag", []):
        key, sep, value = tag.partition("=")
        if not sep or not key:
            return _bad("tag must be key=value", "tag")
        tags.append((key, value))
    try:
        since = parse_since(q["since"]) if q.get("since") else None
        limit = min(int(q.get("limit", 50)), _MAX_LIMIT)
    except ValueError as exc:
        return _bad(str(exc), "since" if "since" in str(exc) else "limit")
    feedback = q.get("feedback")
    if feedback not in (None, "negative", "positive", "any"):
        return _bad("feedback must be negative, positive or any", "feedback")
    return TraceQuery(team=q.get("team"), outcome=q.get("outcome"), stage=q.get("stage"), tags=tuple(tags),
                      since=since, anomaly=q.get("anomaly") in ("1", "true", "yes"), feedback=feedback, limit=limit)


async def handle_traces(request: web.Request) -> web.Response:
    """GET /admin/traces?team=&outcome=&stage=&tag=k=v&since=1h&anomaly=1&feedback=negative&limit=50"""
    refused = _refusal(request)
    if refused is not None:
        return refused
    query = _query(request.query)
    if isinstance(query, web.Response):
        return query
    try:
        store = store_for(request.app[GENERATION].config)
    except ValueError as exc:
        return _json({"error": {"message": str(exc), "type": "server_error", "param": None, "code": "no_trace_store"}},
                     503)
    return _json({"object": "list", "data": await store.find(query)})


async def handle_trace(request: web.Request) -> web.Response:
    """GET /admin/traces/{id}: the record and its feedback."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    request_id = request.match_info["request_id"]
    try:
        store = store_for(request.app[GENERATION].config)
    except ValueError as exc:
        return _json({"error": {"message": str(exc), "type": "server_error", "param": None, "code": "no_trace_store"}},
                     503)
    record = await store.get(request_id)
    if record is None:
        return web.Response(status=404, body=error_body(404, "not_found", f"no trace {request_id!r}"),
                            content_type="application/json")
    return _json({"trace": record, "feedback": await store.feedback(request_id)})


async def handle_budgets(request: web.Request) -> web.Response:
    """GET /admin/budgets?team=T: every counter the team used recently, in its current window."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    gen = request.app[GENERATION]
    team = request.query.get("team")
    if not team or team not in gen.config.teams:
        return _bad("team must name a configured team", "team")
    states = await gen.services.store.snapshot(team)
    return _json({"team": team, "counters": [
        {"scope": s.limit.scope, "window": s.limit.window.value, "unit": s.limit.unit.value, "limit": s.limit.limit,
         "used": s.used, "reserved": s.reserved, "remaining": s.remaining, "resets_at": s.resets_at}
        for s in states]})
