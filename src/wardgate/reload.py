"""Configuration reload: SIGHUP, ``POST /admin/reload``, and optional polling of the files' mtimes.

A reload loads the config from the same path, validates it, builds a new ``Generation`` on the same
ClientSession and state store, and swaps ``app[GENERATION]``: new requests take the new one while
in-flight requests finish under the one they started with (handlers read it once). An invalid
config is refused: the old generation stays, the ``FILE:LINE`` error is logged and kept for
``/readyz`` and ``GET /admin/config``.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import structlog
from aiohttp import web

from wardgate.admin import admin_authorized
from wardgate.config import ConfigError, load_config
from wardgate.config.schema import Config
from wardgate.errors import error_body
from wardgate.keys import GENERATION
from wardgate.runtime import Generation

__all__ = ["RELOADER", "ReloadResult", "Reloader", "masked_config", "setup_reload"]

_log = structlog.get_logger("wardgate.reload")
_MASK = "***"
_SECRET_FIELDS = frozenset({"api_key", "value", "admin_keys", "dsn"})
_URL_FIELDS = frozenset({"url", "redis_url", "base_url", "dsn"})
# Changing these needs a restart: they shape process-lifetime resources built once at start.
_RESTART_ONLY = (("sinks",), ("state",), ("spill_dir",), ("server", "host"), ("server", "port"),
                 ("server", "max_body_bytes"))


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    generation: int
    error: str | None = None
    restart_needed: tuple[str, ...] = ()
    """Sections that changed but only take effect after a restart."""


class Reloader:
    """Owns the reload state of one app: the path, the last outcome, the generation builder."""

    def __init__(self, path: str | None, build: Callable[[int, Config], Generation]) -> None:
        self.path = path
        self._build = build
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.loaded_at = time.time()
        self.reloads = 0

    async def reload(self, app: web.Application) -> ReloadResult:
        """Load, validate and swap; on any error keep the current generation and remember why."""
        async with self._lock:
            current = app[GENERATION]
            if self.path is None:
                return ReloadResult(False, current.number, "no config file to reload (built-in demo config)")
            try:
                config = await asyncio.to_thread(load_config, self.path)
                generation = self._build(current.number + 1, config)
            except ConfigError as exc:
                return self._refused(current, str(exc))
            except Exception as exc:  # noqa: BLE001 - a config that validates but cannot be built
                return self._refused(current, f"{self.path}:1: <root>: {type(exc).__name__}: {exc}")
            restart = tuple(".".join(p) for p in _RESTART_ONLY if _at(config, p) != _at(current.config, p))
            with warnings.catch_warnings():
                # aiohttp frowns on changing a started app's state; swapping this one key is the
                # design (handlers read it once per request). A future aiohttp that forbids it
                # would need a mutable holder under GENERATION instead.
                warnings.simplefilter("ignore", DeprecationWarning)
                app[GENERATION] = generation
            self.last_error, self.loaded_at, self.reloads = None, time.time(), self.reloads + 1
            _log.info("config_reloaded", generation=generation.number, path=self.path, restart_needed=list(restart))
            return ReloadResult(True, generation.number, None, restart)

    def _refused(self, current: Generation, error: str) -> ReloadResult:
        self.last_error = error
        for line in error.splitlines():
            _log.error("config_reload_refused", generation=current.number, problem=line)
        return ReloadResult(False, current.number, error)

    def status(self, app: web.Application) -> dict[str, Any]:
        return {"generation": app[GENERATION].number, "path": self.path, "loaded_at": self.loaded_at,
                "reloads": self.reloads, "last_error": self.last_error}

    def mtimes(self) -> tuple[tuple[str, float], ...]:
        """The config files and their modification times (a folder's ``*.yaml`` files)."""
        if self.path is None:
            return ()
        root = Path(self.path)
        files = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")) if root.is_dir() else [root]
        out = []
        for f in files:
            try:
                out.append((str(f), f.stat().st_mtime))
            except OSError:
                out.append((str(f), -1.0))
        return tuple(out)


RELOADER: web.AppKey[Reloader] = web.AppKey("reloader")


def _at(config: Config, path: tuple[str, ...]) -> Any:
    value: Any = config
    for part in path:
        value = getattr(value, part)
    return value


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return _MASK
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{_MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _mask(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        if key == "headers":  # upstream and sink headers usually carry credentials
            return {k: _MASK for k in value}
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if isinstance(value, str) and key in _URL_FIELDS:
        return _mask_url(value) if "://" in value else _MASK
    if key in _SECRET_FIELDS and value is not None:
        return _MASK
    return value


def masked_config(config: Config) -> dict[str, Any]:
    """The config as JSON with every secret masked: api keys, key values, admin keys, URL passwords."""
    return _mask(config.model_dump(mode="json"))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _refuse() -> web.Response:
    return web.Response(status=401, body=error_body(401, "invalid_api_key", "an admin key is required"),
                        content_type="application/json")


async def _post_reload(request: web.Request) -> web.Response:
    if not admin_authorized(request):
        return _refuse()
    result = await request.app[RELOADER].reload(request.app)
    body = {"ok": result.ok, "generation": result.generation, "error": result.error,
            "restart_needed": list(result.restart_needed)}
    return _json(body, 200 if result.ok else 409)


async def _get_config(request: web.Request) -> web.Response:
    if not admin_authorized(request):
        return _refuse()
    app = request.app
    body = {**app[RELOADER].status(app), "config": masked_config(app[GENERATION].config),
            "process": {"pid": os.getpid(), "asyncio_tasks": len(asyncio.all_tasks())}}
    return _json(body)


async def _watch(app: web.Application, every_s: float) -> None:
    reloader = app[RELOADER]
    seen = reloader.mtimes()
    while True:
        await asyncio.sleep(every_s)
        now = reloader.mtimes()
        if now != seen:
            seen = now
            await reloader.reload(app)


def setup_reload(app: web.Application, path: str | None, build: Callable[[int, Config], Generation],
                 watch_s: float = 0.0) -> None:
    """Register the admin routes and, when ``watch_s`` > 0, a task polling the files' mtimes."""
    app[RELOADER] = Reloader(path, build)
    app.router.add_post("/admin/reload", _post_reload)
    app.router.add_get("/admin/config", _get_config)
    if watch_s > 0 and path is not None:

        async def watcher(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(_watch(app, watch_s))
            yield
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        app.cleanup_ctx.append(watcher)
