"""Random ids (request, trace, span): ``os.urandom`` read 4 KB at a time, one syscall per ~300 ids.

The bytes are the same kernel CSPRNG output a call per id would give; only the syscall is shared.
Called from the event loop thread only (no lock).
"""

from __future__ import annotations

import os

__all__ = ["random_hex"]

_BLOCK = 4096
_pool = b""
_pos = _BLOCK


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lower-case hex (``2 * nbytes`` characters)."""
    global _pool, _pos
    if _pos + nbytes > len(_pool):
        _pool, _pos = os.urandom(_BLOCK), 0
    start = _pos
    _pos = start + nbytes
    return _pool[start:_pos].hex()
