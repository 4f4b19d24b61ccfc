"""Feedback on requests: ``POST /v1/feedback`` and the implicit signals (SPEC §3, §4; issue 5).

Explicit feedback is accepted only for the caller's own team's request ids. Implicit signals come
from a small in-process tracker fed with every finished exchange:

- ``rephrase``: the same actor sends a near-identical but reworded last user message within
  ``rephrase_window_s`` after a served answer (the answer did not help). An exact resend is a retry
  or an agent loop (the loop guard's business), a resend after an error is a retry, and a request
  that arrived before the earlier one ended is a fan-out: none of them is a rephrase;
- ``abandon``: an actor whose request ended in an error or a refusal sends nothing more within
  ``abandon_after_s`` (checked lazily on every request and by a periodic sweep).

The actor is the ``x-wardgate-session`` header when given, else the team key and end user, else the
derived session. Both signals are feedback records with ``score: -1`` about the earlier request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import string
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
import structlog
from aiohttp import web

from wardgate.errors import GatewayError
from wardgate.exchange import Exchange, Outcome
from wardgate.ids import random_hex
from wardgate.keys import GENERATION, RECORDER
from wardgate.sinks.postgres import FEEDBACK_SCHEMA
from wardgate.sinks.protocol import Record
from wardgate.trace import iso_time
from wardgate.tracestore import store_for

__all__ = ["FEEDBACK_SCHEMA", "SignalTracker", "feedback_record", "handle_feedback", "sweep_signals"]

_log = structlog.get_logger("wardgate.feedback")
# bytes.translate is a C table lookup; str.translate with a dict costs ~30 ns a character.
_PUNCTUATION = bytes(32 if chr(b) in string.punctuation else b for b in range(256))
_SAMPLE = 48
_MAX_TEXT = 600  # the start of a message says whether it was reworded; bounded cost per request
_MAX_LABELS = 32
# A member read off its Enum class goes through the metaclass: ~900 instructions; a module global ~20.
_SERVED = Outcome.SERVED
_FAILED = (Outcome.ERROR, Outcome.BLOCKED)


def feedback_record(request_id: str, team: str | None, score: float | None, *, source: str,
                    comment: str | None = None, labels: list[str] | None = None, **extra: Any) -> Record:
    """One SPEC §4 feedback record."""
    return {"schema": FEEDBACK_SCHEMA, "request_id": request_id, "team": team, "time": iso_time(time.time()),
            "score": score, "comment": comment, "labels": labels or [], "source": source, **extra}


def _last_user_text(body: dict[str, Any] | None) -> str | None:
    if not isinstance(body, dict):
        return None
    items = body.get("messages") if "messages" in body else body.get("input", body.get("prompt"))
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return content if isinstance(content, str) else None
    return None


def _fingerprint(text: str) -> frozenset[int]:
    # split() and map(hash) run in C: a few µs per KB where a regex and a generator took ~20.
    # At most _SAMPLE hashes (the smallest: a bottom-k sketch, whose overlap estimates the full one).
    raw = text[:_MAX_TEXT].lower().encode("utf-8", "surrogatepass").translate(_PUNCTUATION)
    hashes = set(map(hash, raw.split()))
    return frozenset(hashes if len(hashes) <= _SAMPLE else sorted(hashes)[:_SAMPLE])


@dataclass(slots=True)
class _Last:
    request_id: str
    team: str
    at: float
    ended: float
    """Wall-clock end: a request received before it is concurrent (fan-out), not a reaction to the answer."""
    head: str | None
    """The first ``_MAX_TEXT`` characters of the last user message, in memory only, at most
    ``rephrase_window_s`` (then swept) and for at most ``max_actors`` actors. The word fingerprint is
    computed only when a next request could be a rephrase of it: most requests start a new actor or
    resend the same text."""
    exact: int
    served: bool


class SignalTracker:
    """Turns the stream of finished exchanges into rephrase and abandon feedback records."""

    def __init__(self, emit: Callable[[Record], None], *, rephrase_window_s: float = 60.0, similarity: float = 0.6,
                 abandon_after_s: float = 120.0, max_actors: int = 10_000, max_owners: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._window = rephrase_window_s
        self._similarity = similarity
        self._abandon_after = abandon_after_s
        self._max_actors = max_actors
        self._max_owners = max_owners
        self._clock = clock
        self._last: OrderedDict[str, _Last] = OrderedDict()
        self._pending: dict[str, str] = {}
        self._deadlines: deque[tuple[float, str, str, str]] = deque()
        self._owners: OrderedDict[str, str] = OrderedDict()

    def owner(self, request_id: str) -> str | None:
        """The team of a recent request handled by this process, None if unknown here."""
        return self._owners.get(request_id)

    def observe(self, ex: Exchange) -> None:
        if ex.team_name is None:
            return
        self._owners[ex.request_id] = ex.team_name
        if len(self._owners) > self._max_owners:
            self._owners.popitem(last=False)
        if ex.session_id is None or ex.route == "/v1/embeddings":
            return
        now = self._clock()
        self.sweep(now)
        actor = self._actor(ex)
        self._pending.pop(actor, None)  # the actor came back: not abandoned
        text = _last_user_text(ex.body)
        exact = hash(text)
        prev = self._last.get(actor)
        if (prev is not None and prev.served and text and prev.head and now - prev.at <= self._window
                and ex.received >= prev.ended and exact != prev.exact):
            words, before = _fingerprint(text), _fingerprint(prev.head)
            overlap = len(words & before) / len(words | before) if words and before else 0.0
            if overlap >= self._similarity:
                self._emit(feedback_record(prev.request_id, prev.team, -1.0, source="rephrase", labels=["rephrase"],
                                           by_request_id=ex.request_id, similarity=round(overlap, 3)))
        self._last[actor] = _Last(ex.request_id, ex.team_name, now, time.time(), text[:_MAX_TEXT] if text else None,
                                  exact, ex.outcome is _SERVED)
        self._last.move_to_end(actor)
        if len(self._last) > self._max_actors:
            self._last.popitem(last=False)
        if ex.outcome in _FAILED:
            self._pending[actor] = ex.request_id
            self._deadlines.append((now + self._abandon_after, actor, ex.request_id, ex.team_name))

    def sweep(self, now: float | None = None) -> int:
        """Emit ``abandon`` for every error whose actor stayed silent past the deadline; return how many."""
        now = self._clock() if now is None else now
        # Oldest first (moved to the end on every request): past the window none can be rephrased any more.
        while self._last and now - next(iter(self._last.values())).at > self._window:
            self._last.popitem(last=False)
        emitted = 0
        while self._deadlines and self._deadlines[0][0] <= now:
            _, actor, request_id, team = self._deadlines.popleft()
            if self._pending.get(actor) != request_id:
                continue  # the actor sent something since, or a later error replaced this one
            del self._pending[actor]
            self._emit(feedback_record(request_id, team, -1.0, source="abandon", labels=["abandon"],
                                       silent_s=self._abandon_after))
            emitted += 1
        return emitted

    @staticmethod
    def _actor(ex: Exchange) -> str:
        session = ex.headers.get("x-wardgate-session")
        if session:
            return f"{ex.team_name}\x1fs\x1f{session[:200]}"
        if ex.user:
            return f"{ex.team_name}\x1fu\x1f{ex.key.id if ex.key else ''}\x1f{ex.user}"
        return f"{ex.team_name}\x1fd\x1f{ex.session_id}"


async def sweep_signals(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: sweep for abandoned sessions every second, so an idle gateway still reports them."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                app[RECORDER].signals.sweep()
            except Exception:  # noqa: BLE001 - a bug here must not end the sweeps
                _log.exception("signal_sweep_failed")

    task = asyncio.create_task(loop(), name="wardgate-signal-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _parse(raw: bytes) -> tuple[str, float, str | None, list[str]]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GatewayError(400, "invalid_request", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_request", "the request body must be a JSON object")
    request_id, score = body.get("request_id"), body.get("score")
    comment, labels = body.get("comment"), body.get("labels") or []
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 200:
        raise GatewayError(400, "invalid_request", "'request_id' is required and must be a string", "request_id")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise GatewayError(400, "invalid_request", "'score' is required and must be a finite number", "score")
    if comment is not None and (not isinstance(comment, str) or len(comment) > _MAX_TEXT):
        raise GatewayError(400, "invalid_request", f"'comment' must be a string of at most {_MAX_TEXT} characters",
                           "comment")
    if (not isinstance(labels, list) or len(labels) > _MAX_LABELS
            or not all(isinstance(x, str) and 0 < len(x) <= 64 for x in labels)):
        raise GatewayError(400, "invalid_request", f"'labels' must be an array of at most {_MAX_LABELS} short strings",
                           "labels")
    return request_id, float(score), comment, labels


async def _owner(request: web.Request, request_id: str) -> str | None:
    team = request.app[RECORDER].signals.owner(request_id)
    if team is not None:
        return team
    try:  # handled by another process, or before a restart: ask the trace store
        record = await store_for(request.app[GENERATION].config).get(request_id)
    except Exception as exc:  # noqa: BLE001 - no readable store: the id is unknown here
        _log.warning("feedback_owner_lookup_failed", error=repr(exc))
        return None
    return record.get("team") if record else None


def _comment_for(ex: Exchange, comment: str | None) -> str | None:
    mode = ex.policy.log.content if ex.policy is not None else "redacted"
    if comment is None or mode in ("full", "redacted"):
        return comment
    return None if mode == "none" else "sha256:" + hashlib.sha256(comment.encode("utf-8", "surrogatepass")).hexdigest()


async def handle_feedback(request: web.Request) -> web.StreamResponse:
    """POST /v1/feedback ``{request_id, score, comment?, labels?}``; traced like every /v1 request."""
    gen, recorder = request.app[GENERATION], request.app[RECORDER]
    ex = Exchange(request_id="req_" + random_hex(12), route=request.path, headers=request.headers,
                  config=gen.config)
    status, payload = 200, b""
    try:
        authenticate = gen.pipeline.front[0]
        verdict = authenticate.on_request(ex)  # a plain function
        if verdict.blocks:
            ex.verdicts.append(replace(verdict, stage=authenticate.name))
            raise GatewayError(verdict.status, verdict.error_code or "invalid_api_key", verdict.message or "")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise GatewayError(413, "request_too_large", "the feedback body is larger than the server accepts") from None
        request_id, score, comment, labels = _parse(raw)
        if await _owner(request, request_id) != ex.team_name:
            # The same answer for "someone else's" and "no such id": ids of other teams stay secret.
            raise GatewayError(404, "not_found", f"no request {request_id!r} for this team", "request_id")
        record = feedback_record(request_id, ex.team_name, score, source="api", comment=_comment_for(ex, comment),
                                 labels=labels, key_id=ex.key.id if ex.key else None)
        recorder.feedback(record)
        ex.outcome = Outcome.SERVED
        payload = orjson.dumps({"object": "feedback", "request_id": request_id, "status": "recorded"})
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the record or crash the process
        err = exc if isinstance(exc, GatewayError) else GatewayError(500, "internal_error", "internal error")
        if not isinstance(exc, GatewayError):
            _log.exception("feedback_failed", request_id=ex.request_id)
        body = err.envelope()
        ex.error, status, payload = body["error"], err.status, orjson.dumps(body)
        ex.outcome = Outcome.BLOCKED if status in (401, 404) else Outcome.ERROR
    finally:
        ex.status = status
        recorder.record(ex, ex.elapsed_ms())
    return web.Response(status=status, body=payload, content_type="application/json",
                        headers={"x-wardgate-request-id": ex.request_id,
                                 "x-wardgate-overhead-ms": f"{ex.overhead_ms():.3f}"})
