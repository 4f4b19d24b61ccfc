"""Offline token counting: quicktok bundles the OpenAI encodings (tiktoken would download them).

Falls back to a cheap estimate (~4 characters a token) when quicktok is not importable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

__all__ = ["content_text", "count_messages", "count_tokens", "preload"]

try:
    import quicktok as _quicktok
except ImportError:  # pragma: no cover - quicktok is a dependency; this keeps the gateway up without it
    _quicktok = None

# OpenAI's accounting for chat formatting: each message costs a few tokens beyond its text.
_PER_MESSAGE = 3
_PER_REPLY = 3


@lru_cache(maxsize=256)
def _encoding(model: str) -> Any:
    if _quicktok is None:
        return None
    try:
        return _quicktok.encoding_for_model(model)
    except Exception:  # unknown model names: the newest OpenAI encoding is the best guess
        return _quicktok.get_encoding("o200k_base")


def preload(models: Iterable[str]) -> None:
    """Load the encodings of ``models`` now: a first load reads ~0.3 s of tables, which would otherwise
    land on the first request that counts tokens."""
    for model in models:
        _encoding(model)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    if not text:
        return 0
    enc = _encoding(model)
    if enc is None:
        return max(1, len(text) // 4)
    return int(enc.count(text))


def content_text(content: Any) -> str:
    """A message's text: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_messages(messages: list[Any], model: str = "gpt-4o", count: Callable[[str, str], int] | None = None) -> int:
    """Prompt tokens of a chat request's messages, as OpenAI counts them (tool calls included).

    ``count(text, model)`` replaces ``count_tokens`` (e.g. a cached one, for long agent histories)."""
    count_tokens = count or _count_tokens
    total = _PER_REPLY
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += _PER_MESSAGE + count_tokens(content_text(message.get("content")), model)
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += count_tokens(str(fn.get("name", "")), model) + count_tokens(str(fn.get("arguments", "")), model)
    return total


_count_tokens = count_tokens
