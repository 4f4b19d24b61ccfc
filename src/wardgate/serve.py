"""Run the gateway: uvloop when available, graceful shutdown on SIGTERM/SIGINT, reload on SIGHUP,
N workers on one port.

Shutdown (issue 6): stop accepting, let in-flight requests and streams finish for up to
``server.shutdown_grace_s`` (then cancel them: they settle and are recorded as client_closed),
close the upstream session and the state store, flush every sink, exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys

import structlog
from aiohttp import web

from wardgate.app import create_app
from wardgate.config.schema import Config
from wardgate.front import FrontSite
from wardgate.reload import RELOADER

__all__ = ["run"]

_log = structlog.get_logger("wardgate.serve")


async def _serve(config: Config, host: str, port: int, sock: socket.socket | None, config_path: str | None) -> None:
    app = create_app(config, config_path=config_path)
    # handler_cancellation: a client that disconnects cancels its handler, and so the upstream call.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=config.server.shutdown_grace_s)
    await runner.setup()
    site: web.BaseSite
    if os.environ.get("WARDGATE_HTTP_SERVER") == "aiohttp":  # aiohttp's server for every route (A/B, fallback)
        site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port, reuse_address=True)
    else:
        site = FrontSite(runner, host, port, sock=sock)
    await site.start()
    # Everything built so far (config, compiled detectors, tokenizer tables) lives for the process:
    # moving it out of the collector's generations keeps full collections short under load.
    gc.freeze()
    # Each request allocates a few hundred short-lived objects and creates no cycles on the hot path;
    # collecting every 700 allocations (the default) costs more than it frees.
    gc.set_threshold(20_000, 50, 100)
    _log.info("listening", host=host, port=port, pid=os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task = loop.create_task(app[RELOADER].reload(app))
        reloads.add(task)  # keep a reference until it ends (the loop holds only a weak one)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    loop.remove_signal_handler(signal.SIGHUP)
    _log.info("shutting_down", grace_s=config.server.shutdown_grace_s)
    await runner.cleanup()  # stops accepting, waits for in-flight requests, flushes sinks


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(config: Config, host: str, port: int, workers: int = 1, config_path: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; with workers > 1, fork N processes sharing one SO_REUSEPORT port.

    ``config_path`` is what SIGHUP and ``POST /admin/reload`` reload from (None: the demo config).
    """
    _install_uvloop()
    if workers <= 1:
        asyncio.run(_serve(config, host, port, None, config_path))
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                asyncio.run(_serve(config, host, port, _bound_socket(host, port), config_path))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    forward = lambda signum, _frame: [os.kill(p, signum) for p in children]  # noqa: E731
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its own generation
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or (1 if code else 0)
    sys.stdout.flush()
    return status
