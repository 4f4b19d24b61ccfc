"""The real gateway in-process against the chaos upstream; budgets on, loop guards off."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEAM_KEY, Gateway
from tests.fakes import on_loopback
from tests.front_server import FrontTestServer
from tests.reliability.chaos import ChaosUpstream, closed_port
from wardgate.app import create_app
from wardgate.config import load_config_text
from wardgate.keys import GENERATION

ADMIN_KEY = "admin-key-reliability-01"


def chaos_yaml(upstream_url: str, traces: Path, retries: int = 2, breaker_failures: int = 3) -> str:
    return textwrap.dedent(f"""\
        version: 1
        server: {{admin_keys: ["{ADMIN_KEY}"], shutdown_grace_s: 5}}
        upstreams:
          primary: {{base_url: "{upstream_url}", api_key: "sk-upstream-secret-1234", max_retries: {retries},
                     ttfb_timeout_s: 0.4, idle_timeout_s: 0.3, breaker_failures: {breaker_failures},
                     breaker_cooldown_s: 0.3}}
          dead: {{base_url: "http://127.0.0.1:{closed_port()}/v1", max_retries: 1, connect_timeout_s: 1}}
          echo: {{kind: echo}}
        models:
          main: {{upstream: primary, model: up-model, fallbacks: [backup],
                  price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
          solo: {{upstream: primary, model: up-model}}
          gone: {{upstream: dead, fallbacks: [backup]}}
          gone-solo: {{upstream: dead}}
          backup: {{upstream: echo}}
        teams:
          search:
            keys: [{{id: search-dev, value: "{TEAM_KEY}"}}]
            policy: p
            budgets: [{{window: day, tokens: 1000000}}]
        policies:
          p: {{loops: {{action: off}}}}
        sinks:
          - {{type: jsonl, path: "{traces}"}}
        spill_dir: "{traces.parent / 'spill'}"
        """)


@pytest.fixture
async def chaos(aiohttp_server) -> ChaosUpstream:
    return await on_loopback(aiohttp_server, ChaosUpstream())


@pytest.fixture
def make_chaos_gateway(aiohttp_client, chaos, tmp_path):
    async def make(retries: int = 2, breaker_failures: int = 3) -> Gateway:
        traces = tmp_path / "traces.jsonl"
        config = load_config_text(chaos_yaml(chaos.url, traces, retries, breaker_failures), env={})  # type: ignore[attr-defined]
        client = await aiohttp_client(FrontTestServer(create_app(config), host="127.0.0.1"))
        return Gateway(client, chaos, traces)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def gw(make_chaos_gateway) -> Gateway:
    return await make_chaos_gateway()


async def team_tokens(gw: Gateway) -> tuple[float, float]:
    """(used, reserved) tokens of team search's daily budget, read from the state store."""
    store = gw.client.app[GENERATION].services.store
    states = [s for s in await store.snapshot("search") if s.limit.unit.value == "tokens"]
    return (states[0].used, states[0].reserved) if states else (0.0, 0.0)


async def post(gw: Gateway, model: str, stream: bool = False, **extra: Any):
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}], **extra}
    return await gw.client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
