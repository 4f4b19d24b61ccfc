"""aiohttp's ``TestServer`` serving through wardgate's HTTP/1.1 front, as ``wardgate serve`` does.

The shared gateway fixtures use it, so the suite drives the production front; a few tests build
``aiohttp_client(app)`` directly and so keep aiohttp's own server (still what a connection is handed
to for the non-API routes, and ``WARDGATE_HTTP_SERVER=aiohttp``) under test too.
"""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.test_utils import TestServer
from yarl import URL

from wardgate.front import FrontSite

__all__ = ["FrontTestServer"]


class FrontTestServer(TestServer):
    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        sock = self.socket_factory(self.host, self.port or 0, socket.AF_INET)
        self.host, self.port = sock.getsockname()[:2]
        await FrontSite(self.runner, sock=sock).start()
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")
