"""One text view for every endpoint: the texts the guardrails inspect, with their role and place.

Chat messages (system, user, assistant, tool results, content parts), tool-call arguments, legacy
completions prompts, embeddings inputs, Responses API inputs. Each text can be written back, so a
redacting stage rewrites the request body in place (issue 3: "one text view for every endpoint").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["TextRef", "request_texts"]

# Roles a text can have: the message roles, plus "tool_call" for arguments the model produced.
_ROLE_ALIASES = {"developer": "system", "function": "tool"}


@dataclass(slots=True)
class TextRef:
    role: str
    """system | user | assistant | tool | tool_call"""
    where: str
    """Dotted path into the request body, e.g. ``messages.3.content``."""
    text: str
    _container: Any
    _key: Any

    def replace(self, text: str) -> None:
        """Write a rewritten text back into the request body."""
        self._container[self._key] = text
        self.text = text


def _content(role: str, container: Any, key: Any, where: str) -> Iterator[TextRef]:
    value = container[key]
    if isinstance(value, str):
        yield TextRef(role, where, value, container, key)
    elif isinstance(value, list):
        for i, part in enumerate(value):
            if isinstance(part, str):
                yield TextRef(role, f"{where}.{i}", part, value, i)
            elif isinstance(part, dict):
                for field in ("text", "output", "input_text"):
                    if isinstance(part.get(field), str):
                        yield TextRef(role, f"{where}.{i}.{field}", part[field], part, field)
                        break


def _chat(body: dict[str, Any]) -> list[TextRef]:
    # A plain loop, not nested generators: an agent's request holds hundreds of messages, and every
    # guarded request walks them all.
    out: list[TextRef] = []
    add = out.append
    for n, message in enumerate(body.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        role = str(role) if role.__class__ is not str else role
        role = _ROLE_ALIASES.get(role, role)
        content = message.get("content", _ABSENT)
        if content.__class__ is str:
            add(TextRef(role, _CONTENT_PATHS[n] if n < _PATHS else f"messages.{n}.content", content, message,
                        "content"))
        elif content is not _ABSENT:
            out += _content(role, message, "content", f"messages.{n}.content")
        calls = message.get("tool_calls")
        if calls:
            for c, call in enumerate(calls if isinstance(calls, list) else ()):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    add(TextRef("tool_call", f"messages.{n}.tool_calls.{c}.function.arguments", fn["arguments"], fn,
                                "arguments"))
    return out


_ABSENT = object()
# "messages.N.content" of the first messages, built once: formatting it cost ~1k instructions a message.
_PATHS = 256
_CONTENT_PATHS = tuple(f"messages.{n}.content" for n in range(_PATHS))


def _responses(body: dict[str, Any]) -> Iterator[TextRef]:
    if isinstance(body.get("instructions"), str):
        yield TextRef("system", "instructions", body["instructions"], body, "instructions")
    given = body.get("input")
    if isinstance(given, str):
        yield TextRef("user", "input", given, body, "input")
        return
    for n, item in enumerate(given if isinstance(given, list) else ()):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call_output" and isinstance(item.get("output"), str):
            yield TextRef("tool", f"input.{n}.output", item["output"], item, "output")
        elif kind == "function_call" and isinstance(item.get("arguments"), str):
            yield TextRef("tool_call", f"input.{n}.arguments", item["arguments"], item, "arguments")
        elif "content" in item:
            role = _ROLE_ALIASES.get(str(item.get("role", "user")), str(item.get("role", "user")))
            yield from _content(role, item, "content", f"input.{n}.content")


def _strings(body: dict[str, Any], field: str) -> Iterator[TextRef]:
    value = body.get(field)
    if isinstance(value, str):
        yield TextRef("user", field, value, body, field)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield TextRef("user", f"{field}.{i}", item, value, i)


_BY_ROUTE: dict[str, Callable[[dict[str, Any]], Iterable[TextRef]]] = {
    "/v1/chat/completions": _chat,
    "/v1/responses": _responses,
    "/v1/completions": lambda body: _strings(body, "prompt"),
    "/v1/embeddings": lambda body: _strings(body, "input"),
}


def request_texts(route: str, body: dict[str, Any] | None) -> list[TextRef]:
    """Every inspectable text of a request body, in order."""
    if not isinstance(body, dict):
        return []
    walk = _BY_ROUTE.get(route)
    return list(walk(body)) if walk else []
