"""The gateway with an admin key, for the observability tests (the shared fixture has none)."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway, gateway_yaml
from tests.front_server import FrontTestServer
from wardgate.app import create_app
from wardgate.config import load_config_text

ADMIN_KEY = "admin-key-observe-0001"
_SERVER = "server: {max_body_bytes: 200000}"


@pytest.fixture
def make_observed(aiohttp_client, fake_upstream, tmp_path):
    async def make(policy: str = "{}", extra: str = "") -> Gateway:
        traces = tmp_path / "traces.jsonl"
        text = gateway_yaml(fake_upstream.url, traces, extra, policy)
        assert _SERVER in text
        text = text.replace(_SERVER, f'server: {{max_body_bytes: 200000, admin_keys: ["{ADMIN_KEY}", ""]}}')
        client = await aiohttp_client(FrontTestServer(create_app(load_config_text(text, env={})), host="127.0.0.1"))
        return Gateway(client, fake_upstream, traces)

    return make
