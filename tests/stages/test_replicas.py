"""Several real gateway processes sharing one Redis: budgets hold exactly across replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.fakes import Scripted, chat_body
from wardgate.tokens import count_messages

KEY = "replica-team-key-0001"
MESSAGES = [{"role": "user", "content": "hello replicas"}]
PER_REQUEST = count_messages(MESSAGES, "up-model") + 5
USAGE = {"prompt_tokens": PER_REQUEST - 5, "completion_tokens": 5, "total_tokens": PER_REQUEST}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, upstream: str, redis_url: str, budget_tokens: int, ttl_s: float) -> Path:
    path = tmp / "gateway.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        upstreams: {{fake: {{base_url: "{upstream}", max_retries: 0}}}}
        models: {{gpt-4o-mini: {{upstream: fake, model: up-model}}}}
        teams:
          r:
            keys: [{{id: r1, value: "{KEY}"}}]
            budgets: [{{window: day, tokens: {budget_tokens}}}]
            policy: p
        policies: {{p: {{loops: {{action: off}}}}}}
        state: {{backend: redis, redis_url: "{redis_url}", key_prefix: "wgtest-{uuid.uuid4().hex[:8]}",
                 reservation_ttl_s: {ttl_s}}}
        sinks: [{{type: jsonl, path: "{tmp}/traces-${{WG_REPLICA}}.jsonl"}}]
        spill_dir: "{tmp}/spill-${{WG_REPLICA}}"
        """))
    return path


async def _start(config: Path, n: int) -> tuple[list[subprocess.Popen], list[int]]:
    procs, ports = [], []
    for i in range(n):
        port = _free_port()
        env = {**os.environ, "WG_REPLICA": str(i)}
        procs.append(subprocess.Popen([sys.executable, "-m", "wardgate", "serve", "--config", str(config),
                                       "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        ports.append(port)
    async with aiohttp.ClientSession() as http:
        for port in ports:
            for _ in range(600):  # 30 s: three interpreters start at once on a busy 2-core machine
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"gateway on {port} did not start")
    return procs, ports


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _chat(http: aiohttp.ClientSession, port: int) -> tuple[int, str | None]:
    async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                         json={"model": "gpt-4o-mini", "max_tokens": 5, "messages": MESSAGES}) as resp:
        body = await resp.json()
        return resp.status, (body.get("error") or {}).get("code")


async def test_three_replicas_never_overspend(fake_upstream, redis_url, tmp_path):
    admitted_budget = 41
    fake_upstream.default = Scripted(body=chat_body("ok", usage=USAGE), delay_s=0.02)
    config = _config(tmp_path, fake_upstream.url, redis_url, PER_REQUEST * admitted_budget, ttl_s=600)
    procs, ports = await _start(config, 3)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=300)) as http:
            results = await asyncio.gather(*[_chat(http, ports[i % 3]) for i in range(300)])
    finally:
        _stop(procs)
    admitted = [r for r in results if r[0] == 200]
    assert len(admitted) == admitted_budget
    assert all(r == (429, "budget_exceeded") for r in results if r[0] != 200)
    records = [orjson.loads(line) for i in range(3) for line in (tmp_path / f"traces-{i}.jsonl").read_bytes().splitlines()]
    assert len(records) == 300  # every request, admitted or refused, has its record (flushed on SIGTERM)
    assert sum(1 for r in records if r.get("status") == 429) == 300 - admitted_budget


async def test_a_replica_killed_mid_request_frees_its_reservation_on_expiry(fake_upstream, redis_url, tmp_path):
    fake_upstream.default = Scripted(body=chat_body("ok", usage=USAGE))
    config = _config(tmp_path, fake_upstream.url, redis_url, PER_REQUEST, ttl_s=1.5)
    procs, ports = await _start(config, 2)
    try:
        async with aiohttp.ClientSession() as http:
            fake_upstream.then(Scripted(body=chat_body("slow", usage=USAGE), delay_s=30))
            hung = asyncio.ensure_future(_chat(http, ports[0]))
            await asyncio.sleep(0.5)  # the reservation is held by replica 0 ...
            assert await _chat(http, ports[1]) == (429, "budget_exceeded")
            procs[0].kill()  # ... which dies without settling
            with pytest.raises(aiohttp.ClientError):
                await hung
            await asyncio.sleep(1.5)
            assert await _chat(http, ports[1]) == (200, None)  # the lost reservation expired
    finally:
        _stop(procs)
