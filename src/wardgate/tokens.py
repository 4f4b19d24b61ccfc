"""Offline token counting: quicktok bundles the OpenAI encodings (tiktoken would download them).

Falls back to a cheap estimate (~4 characters a token) when quicktok is not importable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

__all__ = ["content_text", "count_messages", "count_messages_with", "count_tokens", "preload", "text_counter"]

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
    return text_counter(model)(text)


def _rough(text: str) -> int:
    """The estimate without quicktok: ~4 characters a token."""
    return max(1, len(text) // 4) if text else 0


def text_counter(model: str) -> Callable[[str], int]:
    """``count_tokens(text, model)`` as a one-argument function, the encoding looked up once: for a
    caller that counts many texts of one model (the budget stage, every message of every request)."""
    enc = _encoding(model)
    if enc is None:
        return _rough
    count = enc.count  # an int; 0 for ""
    return lambda text: count(text) if text else 0


def content_text(content: Any) -> str:
    """A message's text: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_messages(messages: list[Any], model: str = "gpt-4o") -> int:
    """Prompt tokens of a chat request's messages, as OpenAI counts them (tool calls included)."""
    return count_messages_with(messages, text_counter(model))


def count_messages_with(messages: list[Any], count: Callable[[str], int]) -> int:
    """``count_messages`` with a one-argument ``count(text)`` (``text_counter``, or a cached one, for
    long agent histories)."""
    total = _PER_REPLY
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        total += _PER_MESSAGE + count(content if type(content) is str else content_text(content))
        calls = message.get("tool_calls")
        if calls:
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    total += count(str(fn.get("name", ""))) + count(str(fn.get("arguments", "")))
    return total
