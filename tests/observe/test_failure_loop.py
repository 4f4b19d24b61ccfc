"""The scripted scenario of issue 5, on the real CLI: a bad tool call is served and flagged → ``traces``
finds it → ``show`` says where it went wrong → ``cases add`` → ``replay`` fails while the model still
misbehaves and passes once it behaves. Plus the admin API it uses."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted, chat_body
from tests.observe.conftest import ADMIN_KEY
from wardgate.cases import load_cases
from wardgate.cli import main

AUTH = {"Authorization": f"Bearer {TEAM_KEY}"}
TOOLS = [{"type": "function", "function": {"name": "book_table", "parameters": {
    "type": "object", "properties": {"people": {"type": "integer"}, "time": {"type": "string"}},
    "required": ["people", "time"], "additionalProperties": False}}}]
REQUEST = {"model": "gpt-4o-mini", "tools": TOOLS,
           "messages": [{"role": "user", "content": "book a table for four at eight"}]}


def _call(arguments: dict) -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": "book_table", "arguments": orjson.dumps(arguments).decode()}}


BAD = Scripted(body=chat_body(None, tool_calls=[_call({"people": "four", "time": "20:00"})]))
GOOD = Scripted(body=chat_body(None, tool_calls=[_call({"people": 4, "time": "20:00"})]))


async def cli(capsys, *argv: str) -> tuple[int, str]:
    """The CLI in-process, in a thread of its own (it runs its own event loop) while the gateway serves."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def test_bad_tool_call_to_case_to_replay(make_observed, tmp_path, capsys):
    gw = await make_observed(policy="{tool_calls: {action: flag}}")
    gw.upstream.then(BAD)
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json=REQUEST)
    assert resp.status == 200  # served: the policy only flags
    request_id = resp.headers["x-wardgate-request-id"]
    await gw.trace(request_id)
    ok = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "just chat"}]})
    await gw.trace(ok.headers["x-wardgate-request-id"])

    code, out = await cli(capsys, "traces", "--path", str(gw.traces), "--stage", "tool_calls")
    assert code == 0 and request_id in out and ok.headers["x-wardgate-request-id"] not in out
    assert "tool_calls.schema_violation:flag" in out

    code, out = await cli(capsys, "show", request_id, "--path", str(gw.traces))
    assert code == 0 and "response" in out and "tool_calls.schema_violation" in out
    assert "where it went wrong: the model's answer: tool_calls flagged tool_calls.schema_violation" in out

    cases_dir = tmp_path / "cases"
    code, out = await cli(capsys, "cases", "add", request_id, "--label", "booking-args", "--path", str(gw.traces),
                          "--dir", str(cases_dir))
    assert code == 0 and "valid-tool-calls" in out
    (case,) = load_cases(cases_dir)
    assert case.request["tools"] == TOOLS and case.observed["outcome"] == "served"
    code, _ = await cli(capsys, "cases", "add", request_id, "--label", "booking-args", "--path", str(gw.traces),
                        "--dir", str(cases_dir))
    assert code == 2  # already in the library

    gateway = str(gw.client.make_url("/v1"))
    gw.upstream.then(BAD)
    code, out = await cli(capsys, "replay", str(cases_dir), "--gateway", gateway, "--key", TEAM_KEY)
    assert code == 1 and "FAIL" in out and "valid-tool-calls" in out
    assert "skipped no-verdict:tool_calls" in out  # flags need the trace: not passed silently
    gw.upstream.then(BAD)
    code, out = await cli(capsys, "replay", str(cases_dir), "--gateway", gateway, "--key", TEAM_KEY,
                          "--admin-key", ADMIN_KEY)
    assert code == 1 and "no-verdict:tool_calls: tool_calls.schema_violation (flag)" in out
    gw.upstream.then(GOOD)
    code, out = await cli(capsys, "replay", str(cases_dir), "--gateway", gateway, "--key", TEAM_KEY,
                          "--admin-key", ADMIN_KEY)
    assert code == 0 and "1 passed, 0 failed, 0 check(s) skipped" in out
    assert gw.upstream.last["body"]["tools"] == TOOLS
    replayed = [r for r in gw.records() if (r.get("tags") or {}).get("case") == case.id]
    assert len(replayed) == 3


async def test_expectations_and_an_unreachable_gateway(make_observed, tmp_path, capsys):
    gw = await make_observed()
    gw.upstream.then(Scripted(body=chat_body("Paris is the capital.")))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "capital of France?"}]})
    request_id = resp.headers["x-wardgate-request-id"]
    await gw.trace(request_id)
    cases_dir = str(tmp_path / "cases")
    code, _ = await cli(capsys, "cases", "add", request_id, "--label", "geo", "--path", str(gw.traces), "--dir",
                        cases_dir, "--expect", "contains:Paris", "--expect", "not-contains:Lyon")
    assert code == 0
    gw.upstream.then(Scripted(body=chat_body("It is Lyon.")))
    code, out = await cli(capsys, "replay", cases_dir, "--gateway", str(gw.client.make_url("/")), "--key", TEAM_KEY)
    assert code == 1 and "contains:Paris" in out and "not-contains:Lyon" in out
    code, out = await cli(capsys, "replay", cases_dir, "--gateway", "http://127.0.0.1:9", "--key", TEAM_KEY)
    assert code == 2 and "could not replay" in out
    code, _ = await cli(capsys, "cases", "add", request_id, "--label", "x", "--path", str(gw.traces), "--dir",
                        cases_dir, "--expect", "bogus")
    assert code == 2


async def test_admin_api(make_observed):
    gw = await make_observed(policy="{tool_calls: {action: flag}}")
    gw.upstream.then(BAD)
    flagged = await gw.client.post("/v1/chat/completions", headers={**AUTH, "x-wardgate-tags": "feature=booking"},
                                   json=REQUEST)
    plain = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    for r in (flagged, plain):
        await gw.trace(r.headers["x-wardgate-request-id"])
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for headers in ({}, AUTH, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {ADMIN_KEY}x"}):
        assert (await gw.client.get("/admin/traces", headers=headers)).status == 401
    listing = await (await gw.client.get("/admin/traces?stage=tool_calls&tag=feature=booking", headers=admin)).json()
    assert [r["request_id"] for r in listing["data"]] == [flagged.headers["x-wardgate-request-id"]]
    everything = await (await gw.client.get("/admin/traces?team=search&limit=10", headers=admin)).json()
    assert len(everything["data"]) == 2 and everything["data"][0]["request_id"] == plain.headers["x-wardgate-request-id"]
    one = await gw.client.get(f"/admin/traces/{flagged.headers['x-wardgate-request-id']}", headers=admin)
    assert one.status == 200 and (await one.json())["trace"]["outcome"] == "served"
    assert (await gw.client.get("/admin/traces/req_missing", headers=admin)).status == 404
    assert (await gw.client.get("/admin/traces?since=yesterday-ish", headers=admin)).status == 400
    budgets = await gw.client.get("/admin/budgets?team=search", headers=admin)
    assert budgets.status == 200 and (await budgets.json())["team"] == "search"
    assert (await gw.client.get("/admin/budgets?team=nobody", headers=admin)).status == 400


async def test_admin_api_is_closed_without_an_admin_key(make_gateway):
    gw = await make_gateway()
    assert (await gw.client.get("/admin/traces", headers={"Authorization": "Bearer "})).status == 401
    assert (await gw.client.get("/admin/budgets?team=search", headers={"Authorization": "Bearer x"})).status == 401


_CASE = {"schema": "wardgate.case/1", "id": "c1", "label": "l", "route": "/v1/chat/completions", "model": "m",
         "request": {"model": "m", "messages": []}}


def test_a_malformed_case_file_names_the_line_and_the_problem(tmp_path):
    for line, words in ((b"[1]", "a case is a JSON object"), (b"{oops", "not a case"),
                        (orjson.dumps({k: v for k, v in _CASE.items() if k != "id"}), "the field 'id' is missing"),
                        (orjson.dumps({**_CASE, "route": 5}), "'route' must be a /v1/ path"),
                        (orjson.dumps({**_CASE, "expect": [5]}), "'expect' a list of objects"),
                        (orjson.dumps({**_CASE, "expect": [{"check": "nope"}]}), "unknown check 'nope'")):
        (tmp_path / "cases.jsonl").write_bytes(orjson.dumps(_CASE) + b"\n" + line + b"\n")
        with pytest.raises(ValueError, match=f"cases.jsonl:2: .*{words}"):
            load_cases(tmp_path)
