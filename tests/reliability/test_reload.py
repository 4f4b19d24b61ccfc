"""Reload in-process: file watching, and in-flight requests finishing under their own generation."""

from __future__ import annotations

import asyncio

from tests.conftest import TEAM_KEY
from tests.reliability.chaos import Fault
from tests.reliability.conftest import ADMIN_KEY, chaos_yaml
from wardgate.app import create_app
from wardgate.config import load_config

_ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _app(aiohttp_client, chaos, tmp_path, watch: str = ""):
    path = tmp_path / "gateway.yaml"
    path.write_text(chaos_yaml(chaos.url, tmp_path / "traces.jsonl").replace("shutdown_grace_s: 5", f"shutdown_grace_s: 5{watch}"))
    client = await aiohttp_client(create_app(load_config(str(path)), config_path=str(path)))
    return client, path


async def _generation(client) -> int:
    return (await (await client.get("/readyz")).json())["generation"]


async def test_a_changed_file_is_reloaded_when_watching(aiohttp_client, chaos, tmp_path):
    client, path = await _app(aiohttp_client, chaos, tmp_path, watch=", watch_config_s: 0.05")
    assert await _generation(client) == 1
    path.write_text(path.read_text().replace("  backup: {upstream: echo}\n", "  backup: {upstream: echo}\n  added: {upstream: echo}\n"))
    for _ in range(100):
        if await _generation(client) == 2:
            break
        await asyncio.sleep(0.05)
    models = await (await client.get("/v1/models", headers={"Authorization": f"Bearer {TEAM_KEY}"})).json()
    assert "added" in {m["id"] for m in models["data"]}


async def test_in_flight_stream_finishes_under_the_old_generation(aiohttp_client, chaos, tmp_path):
    client, path = await _app(aiohttp_client, chaos, tmp_path)
    chaos.then(Fault("stall", after_chunks=2, delay_s=0.25))
    resp = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TEAM_KEY}"},
                             json={"model": "solo", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    await resp.content.readuntil(b"\n\n")
    path.write_text(path.read_text().replace("  solo: {upstream: primary, model: up-model}\n", ""))
    reloaded = await (await client.post("/admin/reload", headers=_ADMIN)).json()
    assert reloaded["ok"] and reloaded["generation"] == 2
    assert (await resp.content.read()).rstrip().endswith(b"data: [DONE]")
    after = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TEAM_KEY}"},
                              json={"model": "solo", "messages": [{"role": "user", "content": "hi"}]})
    assert after.status == 404  # new requests see the new config


async def test_reload_needs_an_admin_key_and_reports_an_invalid_config(aiohttp_client, chaos, tmp_path):
    client, path = await _app(aiohttp_client, chaos, tmp_path)
    assert (await client.post("/admin/reload")).status == 401
    assert (await client.post("/admin/reload", headers={"Authorization": f"Bearer {TEAM_KEY}"})).status == 401
    path.write_text(path.read_text().replace("max_retries: 2", "max_retries: many"))
    resp = await client.post("/admin/reload", headers=_ADMIN)
    body = await resp.json()
    assert resp.status == 409 and body["generation"] == 1 and "upstreams.primary.max_retries" in body["error"]
    assert body["error"].startswith(f"{path}:")
