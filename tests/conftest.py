"""Shared fixtures: real services on loopback (skipped on a laptop without them, failed in CI)."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _need(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{service} is not reachable on {host}:{port}"
    if os.environ.get("WARDGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (WARDGATE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """A Redis URL on loopback; each test should use its own key prefix or database."""
    _need("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def postgres_dsn() -> str:
    """A PostgreSQL DSN on loopback (user postgres, trust auth, database postgres)."""
    _need("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    return f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


# --- the gateway under test, against a scripted fake upstream on loopback -------------------------

import asyncio  # noqa: E402
import textwrap  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402

from tests.fakes import FakeUpstream, on_loopback  # noqa: E402
from tests.front_server import FrontTestServer  # noqa: E402
from wardgate.app import create_app  # noqa: E402
from wardgate.config import load_config_text  # noqa: E402

TEAM_KEY = "team-key-search-0001"
OTHER_KEY = "team-key-other-0002"


def gateway_yaml(upstream_url: str, traces: Path, extra: str = "", policy: str = "{}",
                 team_overrides: dict[str, str] | None = None) -> str:
    """A config with two teams, three models (one forbidden to 'other'), the jsonl sink at ``traces``."""
    return textwrap.dedent(f"""\
        version: 1
        server: {{max_body_bytes: 200000}}
        upstreams:
          fake: {{base_url: "{upstream_url}", api_key: "sk-upstream-secret", max_retries: 1}}
          echo: {{kind: echo}}
        models:
          gpt-4o-mini: {{upstream: fake, model: up-model, price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
          echo-model: {{upstream: echo}}
          text-embedding-3-small: {{upstream: fake}}
        teams:
          search:
            keys: [{{id: search-dev, value: "{TEAM_KEY}"}}]
            policy: p
            models: ["*"]
        {_team_lines(team_overrides)}
          other:
            keys: [{{id: other-dev, value: "{OTHER_KEY}"}}]
            policy: p
            models: [echo-model]
        policies:
          p: {policy}
        sinks:
          - {{type: jsonl, path: "{traces}"}}
        spill_dir: "{traces.parent / 'spill'}"
        """) + textwrap.dedent(extra)


def _team_lines(overrides: dict[str, str] | None) -> str:
    """Extra keys for team ``search``, indented to sit inside it after dedent."""
    return "\n        ".join(f"    {k}: {v}" for k, v in (overrides or {}).items())


@dataclass
class Gateway:
    client: Any
    upstream: FakeUpstream
    traces: Path

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("/v1"))

    async def trace(self, request_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """The trace record of one request, waiting for the async writer to deliver it."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            for record in self.records():
                if record.get("request_id") == request_id:
                    return record
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no trace record for {request_id}")
            await asyncio.sleep(0.05)

    def records(self) -> list[dict[str, Any]]:
        if not self.traces.exists():
            return []
        data = self.traces.read_bytes()
        # The writer may be halfway through a line: only what ends in a newline is a whole record.
        whole = data[: data.rfind(b"\n") + 1]
        return [orjson.loads(line) for line in whole.splitlines() if line.strip()]


@pytest.fixture
async def fake_upstream(aiohttp_server) -> Any:
    return await on_loopback(aiohttp_server, FakeUpstream())


@pytest.fixture
def make_gateway(aiohttp_client, fake_upstream, tmp_path):
    """Build and start the real app from YAML (``extra`` appended, ``policy`` for policy ``p``)."""

    async def make(extra: str = "", policy: str = "{}", env: dict[str, str] | None = None,
                   team_overrides: dict[str, str] | None = None, clock: Any = None) -> Gateway:
        traces = tmp_path / "traces.jsonl"
        text = gateway_yaml(fake_upstream.url, traces, extra, policy, team_overrides)
        config = load_config_text(text, env=env or {})
        app = create_app(config, clock=clock) if clock is not None else create_app(config)
        client = await aiohttp_client(FrontTestServer(app, host="127.0.0.1"))
        return Gateway(client, fake_upstream, traces)

    return make


@pytest.fixture
async def gateway(make_gateway) -> Gateway:
    return await make_gateway()
