"""Server-sent events: split a byte stream into events and format events (pure)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import orjson

__all__ = ["DONE", "MAX_EVENT_BYTES", "EventTooLarge", "data_of", "error_event", "format_data", "iter_event_batches"]

DONE = b"[DONE]"


MAX_EVENT_BYTES = 8 * 1024 * 1024
"""An unfinished event longer than this is a broken (or hostile) upstream, not an answer."""


class EventTooLarge(ValueError):
    """The upstream sent more than ``MAX_EVENT_BYTES`` without ending an event."""


async def iter_event_batches(chunks: AsyncIterable[bytes],
                             max_event_bytes: int = MAX_EVENT_BYTES) -> AsyncIterator[list[bytes]]:
    """Per chunk received, the event blocks it completed (without their blank lines), so a relay can
    answer each network read with one write. Separators ``\\n\\n`` or ``\\r\\n\\r\\n``; chunks cut anywhere.
    Raises ``EventTooLarge`` when the unfinished part passes ``max_event_bytes``: memory stays bounded."""
    buffer = b""
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        buffer = parts.pop()
        if len(buffer) > max_event_bytes:
            raise EventTooLarge(f"the upstream sent {len(buffer)} bytes without ending an event")
        events = [p for p in parts if p]
        if events:
            yield events
    if buffer.strip():
        yield [buffer.strip(b"\n")]


def data_of(event: bytes) -> bytes | None:
    """The joined ``data:`` payload of one event, or None for comments/other fields only."""
    if event.startswith(b"data: ") and b"\n" not in event:
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
