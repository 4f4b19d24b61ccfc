"""Agent loop guards: bound what one session can do (issue 4, SPEC §2 ``loops``).

A session is ``x-wardgate-session`` or derived from the conversation (see stages/parse.py). Rules:
too many requests in the window, the same request repeated, too many tool rounds since the user
last spoke, and the model calling the same tool with the same arguments again and again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import orjson

from wardgate.config.schema import LoopsPolicy
from wardgate.exchange import ALLOW, Action, Exchange, Verdict
from wardgate.state import StateStore, StateUnavailable

__all__ = ["Loops", "tool_rounds", "repeated_tool_call"]


def tool_rounds(messages: list[Any]) -> int:
    """Assistant turns with tool calls since the last user message."""
    rounds = 0
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            break
        if message.get("role") == "assistant" and message.get("tool_calls"):
            rounds += 1
    return rounds


def _canonical_args(arguments: Any) -> str:
    try:
        return orjson.dumps(orjson.loads(arguments), option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONDecodeError, TypeError):
        return str(arguments).strip()


def repeated_tool_call(messages: list[Any]) -> tuple[str, int]:
    """The most repeated (tool, arguments) call in the conversation and how often it was made."""
    calls: Counter[tuple[str, str]] | None = None  # built at the first call: most requests have none
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                if calls is None:
                    calls = Counter()
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    calls[(str(fn.get("name")), _canonical_args(fn.get("arguments")))] += 1
    if not calls:
        return "", 0
    (name, _), count = calls.most_common(1)[0]
    return name, count


def _request_digest(body: dict[str, Any]) -> str:
    """The request without fields that vary between identical retries (stream, user, metadata)."""
    get = body.get  # a dict display, not a comprehension: ~5k instructions less a request
    keep = {"model": get("model"), "messages": get("messages"), "tools": get("tools"), "prompt": get("prompt"),
            "input": get("input"), "instructions": get("instructions")}
    return hashlib.sha256(orjson.dumps(keep, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class Loops:
    name = "loops"
    responds = False

    def __init__(self, policy: LoopsPolicy, store: StateStore, fail_open: bool) -> None:
        self._policy = policy
        self._store = store
        self._fail_open = fail_open

    def _refuse(self, rule: str, message: str, count: int) -> Verdict:
        action = Action.BLOCK if self._policy.action == "block" else Action.FLAG
        return Verdict(action, code=f"loops.{rule}", status=429, error_code="loop_detected",
                       message=f"loop guard ({rule}): {message}", score=float(count),
                       headers=(("x-should-retry", "false"),))

    async def on_request(self, ex: Exchange) -> Verdict:
        p, body = self._policy, ex.body or {}
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        rounds = tool_rounds(messages)
        if rounds > p.max_tool_rounds:
            return self._refuse("max_tool_rounds", f"{rounds} tool rounds since the last user message "
                                f"(limit {p.max_tool_rounds})", rounds)
        name, repeats = repeated_tool_call(messages)
        if repeats >= p.max_identical_tool_calls:
            return self._refuse("identical_tool_calls", f"the model called '{name}' with the same arguments "
                                f"{repeats} times (limit {p.max_identical_tool_calls})", repeats)
        if not ex.session_id or not ex.team_name:
            return ALLOW
        try:
            in_window, same = await self._store.hit_many(
                ex.team_name, [f"loop:req:{ex.session_id}", f"loop:same:{ex.session_id}:{_request_digest(body)}"],
                p.window_s, now=ex.received)
        except StateUnavailable:
            if self._fail_open:
                return Verdict(Action.FLAG, code="loops.state_unavailable", message="loop counters unreachable")
            return Verdict(Action.BLOCK, code="loops.state_unavailable", status=503, error_code="state_unavailable",
                           message="the loop-guard store is unreachable; refusing (state.on_error: closed)")
        ex.extra["loops"] = {"session_requests": in_window, "identical_requests": same, "tool_rounds": rounds}
        if in_window > p.max_requests_per_session:
            return self._refuse("max_requests_per_session", f"{in_window} requests in this session within "
                                f"{p.window_s:g}s (limit {p.max_requests_per_session})", in_window)
        if same > p.max_identical_requests:
            return self._refuse("identical_requests", f"the same request was sent {same} times within "
                                f"{p.window_s:g}s (limit {p.max_identical_requests})", same)
        return ALLOW

    async def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
