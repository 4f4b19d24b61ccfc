"""The error tree and the one place that renders OpenAI error envelopes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["GatewayError", "envelope", "error_body"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


@dataclass(eq=False)
class GatewayError(Exception):
    """A refusal or failure the client is told about (SPEC §3 error table)."""

    status: int
    code: str
    message: str
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def envelope(self) -> dict[str, Any]:
        return envelope(self.status, self.code, self.message, self.param)


def envelope(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope: every SDK surfaces ``error.message`` and ``error.code``."""
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
            "param": param,
            "code": code,
        }
    }


def error_body(status: int, code: str, message: str, param: str | None = None) -> bytes:
    return orjson.dumps(envelope(status, code, message, param))
