"""Parse and check the request body; read the wardgate headers; derive the session.

Bad input gets a 400 naming the offending field (SPEC §3), never a 500.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson

from wardgate.config.schema import Config
from wardgate.exchange import ALLOW, Action, Exchange, Verdict
from wardgate.ids import random_hex

__all__ = ["Parse"]

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_REQUIRED = {"/v1/chat/completions": "messages", "/v1/completions": "prompt", "/v1/embeddings": "input",
             "/v1/responses": "input"}


def _bad(message: str, param: str | None = None) -> Verdict:
    return Verdict(Action.BLOCK, code="parse.invalid_request", message=message, status=400,
                   error_code="invalid_request", score=None, headers=(("x-wardgate-param", param),) if param else ())


_HUGE = float(2**64)
"""Numbers beyond 64 bits: orjson reads them as lossy floats, so the upstream would see another value."""


def _path(parts: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in parts)


def _shape_problem(body: dict[str, Any], max_depth: int, max_chars: int, keys: list[int]) -> Verdict | None:
    """Nesting depth, string lengths (keys too) and number sizes, naming the first offending field.

    Counts the object keys it walks into ``keys[0]`` (for the duplicate-key fast path)."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(body, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if depth > max_depth:
            return _bad(f"the request body is nested deeper than {max_depth} levels", _path(path) or None)
        if isinstance(item, dict):
            keys[0] += len(item)
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in pairs:
            if isinstance(key, str) and len(key) > max_chars:
                return _bad(f"a key is longer than {max_chars} characters", _path(path) or None)
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1, path + (key,)))
            elif isinstance(value, str):
                if len(value) > max_chars:
                    return _bad(f"'{_path(path + (key,))}' is longer than {max_chars} characters", _path(path + (key,)))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) >= _HUGE:
                return _bad(f"'{_path(path + (key,))}' is a number too large to represent exactly", _path(path + (key,)))
    return None


class _Shape(Exception):
    """The fast walk met something over a limit: the slow walk names it."""


def _count_keys(node: Any, depth: int, max_depth: int, max_chars: int) -> int:
    """The object keys under ``node``, raising ``_Shape`` past a limit. ``max_chars`` 0: no string can be
    too long (the whole body is shorter), so lengths are not looked at. No paths: they are built only
    for the error message, by ``_shape_problem``."""
    if depth > max_depth:
        raise _Shape
    if type(node) is dict:
        count = len(node)
        if max_chars and any(len(k) > max_chars for k in node):
            raise _Shape
        values: Any = node.values()
    else:
        count, values = 0, node
    for value in values:
        kind = type(value)
        if kind is str:
            if max_chars and len(value) > max_chars:
                raise _Shape
        elif kind is dict or kind is list:
            count += _count_keys(value, depth + 1, max_depth, max_chars)
        elif (kind is int or kind is float) and not -_HUGE < value < _HUGE:
            raise _Shape
    return count


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


_KEY_END = re.compile(rb'"\s*:')
_ESCAPED_KEY_END = re.compile(rb'\\"\s*:')


def _duplicate_key(raw: bytes, parsed_keys: int) -> str | None:
    """A key given twice in one object. Parsers disagree on which value wins (orjson and Python keep
    the last, others the first), so a guardrail could check one value while the upstream uses the
    other: such a body is refused. The stdlib scanner is the one that exposes the pairs (~2 us/KB)."""
    # Every `"` followed by `:` ends a key, unless it is an escaped quote inside a string (an odd run of
    # backslashes before it; rare, found by a literal search): as many keys written as parsed means
    # none was given twice (the usual case, ~1 µs/KB).
    written = len(_KEY_END.findall(raw))
    for match in _ESCAPED_KEY_END.finditer(raw):
        run = 0
        while match.start() - run >= 0 and raw[match.start() - run] == 0x5C:  # the backslashes before the quote
            run += 1
        written -= run % 2
    if written == parsed_keys:
        return None
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None  # orjson accepted it; the stdlib's stricter corners are not the client's problem
    return None


def _check_messages(messages: Any, limit: int) -> Verdict | None:
    if not isinstance(messages, list) or not messages:
        return _bad("'messages' must be a non-empty array", "messages")
    if len(messages) > limit:
        return _bad(f"'messages' has {len(messages)} items; the limit is {limit}", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return _bad(f"messages[{i}] must be an object", f"messages.{i}")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            return _bad(f"messages[{i}].role must be one of {sorted(_ROLES)}", f"messages.{i}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return _bad(f"messages[{i}].content must be a string or an array", f"messages.{i}.content")
    return None


def _first_text(messages: list[Any], role: str) -> str:
    for message in messages:  # unchecked on routes other than chat: any JSON value may be here
        if isinstance(message, dict) and message.get("role") == role:
            content = message.get("content")
            return content if isinstance(content, str) else orjson.dumps(content).decode()
    return ""


def _tags(header: str) -> dict[str, str]:
    tags = {}
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            tags[key.strip()[:64]] = value.strip()[:256]
    return tags


class Parse:
    name = "parse"
    responds = False

    def __init__(self, config: Config) -> None:
        self._max_depth = config.server.max_json_depth
        self._max_chars = config.server.max_string_chars
        self._max_messages = config.server.max_messages

    def on_request(self, ex: Exchange) -> Verdict:
        try:
            body = orjson.loads(ex.raw_body)
        except orjson.JSONDecodeError as exc:
            return _bad(f"the request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _bad("the request body must be a JSON object")
        try:
            keys = _count_keys(body, 1, self._max_depth, 0 if len(ex.raw_body) <= self._max_chars else self._max_chars)
        except (_Shape, RecursionError):
            counted = [0]
            problem = _shape_problem(body, self._max_depth, self._max_chars, counted)
            if problem:
                return problem
            keys = counted[0]
        duplicate = _duplicate_key(ex.raw_body, keys)
        if duplicate is not None:
            return _bad(f"the key '{duplicate[:100]}' appears twice in one object", duplicate[:100])
        ex.body = body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _bad("'model' is required and must be a string", "model")
        ex.model_alias = model
        required = _REQUIRED.get(ex.route)
        if required and required not in body:
            return _bad(f"'{required}' is required", required)
        if ex.route == "/v1/chat/completions":
            problem = _check_messages(body["messages"], self._max_messages)
            if problem:
                return problem
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            return _bad("'tools' must be an array", "tools")
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            return _bad("'stream' must be a boolean", "stream")
        ex.stream = bool(stream)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            return _bad("'stream_options' must be an object", "stream_options")
        ex.client_wants_usage = bool(options and options.get("include_usage"))
        user = ex.headers.get("x-wardgate-user") or body.get("user")
        if user is not None and not isinstance(user, str):
            return _bad("'user' must be a string", "user")
        ex.user = user
        self._read_headers(ex, body)
        return ALLOW

    def _read_headers(self, ex: Exchange, body: dict[str, Any]) -> None:
        headers = ex.headers
        ex.tags = _tags(headers.get("x-wardgate-tags", ""))
        ex.prompt_ref = headers.get("x-wardgate-prompt")
        match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
        if match:
            ex.trace_id, ex.parent_span_id = match.group(1), match.group(2)
        else:
            ex.trace_id = random_hex(16)
        ex.extra["traceparent"] = f"00-{ex.trace_id}-{random_hex(8)}-01"
        session = headers.get("x-wardgate-session")
        if session:
            ex.session_id = session[:200]
        else:
            # Derived from the conversation (issue 4): the same agent run resends the same start.
            messages = body.get("messages") if isinstance(body.get("messages"), list) else []
            seed = "\x1f".join((ex.key.id if ex.key else "", ex.user or "", _first_text(messages, "system"),
                                _first_text(messages, "user") if messages else str(body.get("input") or body.get("prompt"))))
            ex.session_id = "s-" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:20]

    def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
