"""Server-sent events: split a byte stream into events and format events (pure)."""

from __future__ import annotations

import orjson

__all__ = ["DONE", "MAX_EVENT_BYTES", "EventSplitter", "EventTooLarge", "data_of", "error_event", "format_data"]

DONE = b"[DONE]"


MAX_EVENT_BYTES = 8 * 1024 * 1024
"""An unfinished event longer than this is a broken (or hostile) upstream, not an answer."""


class EventTooLarge(ValueError):
    """The upstream sent more than ``MAX_EVENT_BYTES`` without ending an event."""


class EventSplitter:
    """Per chunk received, the event blocks it completed (without their blank lines), so a relay can
    answer each network read with one write. Separators ``\\n\\n`` or ``\\r\\n\\r\\n``; chunks cut anywhere.

    A plain object, not an async generator: the relay reads the upstream itself, and each generator
    layer between them cost ~1.2 µs a chunk (20+ chunks a stream)."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events ``chunk`` completed. Raises ``EventTooLarge`` when the unfinished part passes
        ``max_event_bytes``: memory stays bounded."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if buffer.find(b"\r") >= 0:  # not `in`: see data_of
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        self._buffer = parts.pop()
        if len(self._buffer) > self._max:
            raise EventTooLarge(f"the upstream sent {len(self._buffer)} bytes without ending an event")
        return [p for p in parts if p]

    def close(self) -> list[bytes]:
        """What is left at the end of the stream: one last event without its blank line, if any."""
        rest, self._buffer = self._buffer.strip(b"\n"), b""
        return [rest] if rest.strip() else []


def data_of(event: bytes) -> bytes | None:
    """The joined ``data:`` payload of one event, or None for comments/other fields only."""
    # find, not `b"\n" not in event`: CPython 3.11's bytes.__contains__ first tries its argument as an
    # int and builds (then drops) a TypeError; bytes.find checks for a buffer first. timeit on one
    # ~60-byte event: 259 ns against 179 ns, once per event of every stream.
    if event.startswith(b"data: ") and event.find(b"\n") < 0:
        return event[6:]
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[5:].removeprefix(b" "))
    return b"\n".join(parts) if parts else None


def format_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def error_event(error: dict) -> bytes:
    """The one event that ends a stream cut by the gateway (OpenAI's mid-stream error shape)."""
    return format_data(orjson.dumps(error))
