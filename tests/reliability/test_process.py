"""Reload and shutdown with real signals against a real `wardgate serve` process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import TEAM_KEY
from tests.reliability.chaos import Fault, closed_port
from tests.reliability.conftest import ADMIN_KEY, chaos_yaml

_ROOT = Path(__file__).resolve().parents[2]


class Served:
    """A `wardgate serve` child process on a free port, its log captured to a file."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc, self.base, self.log = proc, f"http://127.0.0.1:{port}", log

    async def get(self, path: str, key: str = ADMIN_KEY) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as s, s.get(self.base + path, headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, await r.json()

    async def wait_for(self, predicate, timeout_s: float = 5.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            status, body = await self.get("/admin/config")
            if status == 200 and predicate(body):
                return body
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)


async def _serve(config: Path, tmp: Path, *args: str) -> Served:
    port = closed_port()
    log = tmp / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(_ROOT / "src")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wardgate", "serve", "--config", str(config),
                                                "--port", str(port), *args, stdout=log.open("wb"),
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    served = Served(proc, port, log)
    for _ in range(200):
        try:
            async with aiohttp.ClientSession() as s, s.get(served.base + "/healthz") as r:
                if r.status == 200:
                    return served
        except aiohttp.ClientError:
            pass
        assert proc.returncode is None, log.read_text()
        await asyncio.sleep(0.05)
    raise AssertionError("wardgate serve did not start: " + log.read_text())


@pytest.fixture
async def served(chaos, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(chaos_yaml(chaos.url, tmp_path / "traces.jsonl"))
    s = await _serve(config, tmp_path)
    yield s, config
    if s.proc.returncode is None:
        s.proc.kill()
        await s.proc.wait()


async def test_sighup_reloads_a_valid_config_and_refuses_an_invalid_one(served):
    s, config = served
    body = await s.wait_for(lambda b: b["generation"] == 1)
    assert "sk-upstream-secret-1234" not in orjson.dumps(body).decode() and TEAM_KEY not in orjson.dumps(body).decode()
    assert body["config"]["upstreams"]["primary"]["api_key"] == "***"
    assert (await s.get("/admin/config", key="not-the-admin-key"))[0] == 401

    original = config.read_text()
    config.write_text(original.replace("  backup: {upstream: echo}\n", "  backup: {upstream: echo}\n  added: {upstream: echo}\n"))
    assert config.read_text() != original
    s.proc.send_signal(signal.SIGHUP)
    await s.wait_for(lambda b: b["generation"] == 2 and b["last_error"] is None)
    _, models = await s.get("/v1/models", key=TEAM_KEY)
    assert "added" in {m["id"] for m in models["data"]}

    good = config.read_text()
    config.write_text(good.replace("shutdown_grace_s: 5", "shutdown_grace_s: 5, bogus_key: 1"))
    s.proc.send_signal(signal.SIGHUP)
    body = await s.wait_for(lambda b: b["last_error"] is not None)
    assert body["generation"] == 2 and f"{config}:2: server.bogus_key" in body["last_error"]
    _, ready = await s.get("/readyz")
    assert ready["generation"] == 2 and ready["config"]["last_error"] == body["last_error"]
    assert f"{config}:2: server.bogus_key" in s.log.read_text()  # logged with FILE:LINE
    _, models = await s.get("/v1/models", key=TEAM_KEY)
    assert "added" in {m["id"] for m in models["data"]}  # the old generation still serves

    config.write_text(good)
    async with aiohttp.ClientSession() as session, \
            session.post(s.base + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as r:
        assert r.status == 200 and (await r.json())["generation"] == 3


async def test_sigterm_lets_an_in_flight_stream_finish_flushes_the_trace_and_exits_0(served, chaos, tmp_path):
    s, _ = served
    chaos.then(Fault("stall", after_chunks=2, delay_s=0.25))  # under idle_timeout_s: a slow, healthy stream
    async with aiohttp.ClientSession() as session:
        resp = await session.post(s.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {TEAM_KEY}"},
                                  json={"model": "solo", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        s.proc.send_signal(signal.SIGTERM)
        rest = await resp.content.read()
        request_id = resp.headers["x-wardgate-request-id"]
    text = (first + rest).decode()
    assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text
    assert await asyncio.wait_for(s.proc.wait(), 10.0) == 0
    records = [orjson.loads(line) for line in (tmp_path / "traces.jsonl").read_bytes().splitlines()]
    [record] = [r for r in records if r.get("request_id") == request_id]
    assert record["outcome"] == "served" and record["stream"] is True


async def test_several_workers_with_the_memory_store_are_refused(chaos, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(chaos_yaml(chaos.url, tmp_path / "traces.jsonl"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wardgate", "serve", "--config", str(config),
                                                "--workers", "2", stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "PYTHONPATH": str(_ROOT / "src")})
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"--workers > 1 needs a shared state store" in err and b"backend: redis" in err
