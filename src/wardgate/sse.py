"""Server-sent events: split a byte stream into events and format events (pure)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import orjson

__all__ = ["DONE", "data_of", "error_event", "format_data", "iter_events"]

DONE = b"[DONE]"


async def iter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield each event block (without its terminating blank line) as it completes.

    Accepts ``\\n\\n`` and ``\\r\\n\\r\\n`` separators and chunks cut anywhere.
    """
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        while True:
            cut = buffer.find(b"\n\n")
            if cut < 0:
                break
            event, buffer = buffer[:cut], buffer[cut + 2 :]
            if event:
                yield event
    if buffer.strip():
        yield buffer.strip(b"\n")


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
