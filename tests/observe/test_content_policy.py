"""log.content: hashes and none leave no message text in the logs; redacted leaves no PII value (issue 5)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import orjson
import pytest

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted, chat_body, chat_chunks

AUTH = {"Authorization": f"Bearer {TEAM_KEY}"}
TOOLS = [{"type": "function", "function": {"name": "send_note", "parameters": {
    "type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
    "required": ["to", "body"], "additionalProperties": False}}}]


def _all_logs(gw) -> str:
    """Every byte the sinks wrote: the trace file, its rotated siblings and the spill folder."""
    root: Path = gw.traces.parent
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


async def _exercise(gw, words: list[str]) -> list[str]:
    """Requests whose text (input, answer, tool arguments, errors that quote input) carries ``words``."""
    a, b, c, d, e, f = words
    ids = []
    call = {"id": "c1", "type": "function", "function": {"name": "send_note", "arguments": orjson.dumps(
        {"to": [c], "body": "x"}).decode()}}  # breaks the schema: tool_calls quotes the value in its message
    gw.upstream.then(Scripted(body=chat_body(f"the answer is {b}", tool_calls=[call])))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "tools": TOOLS,
        "messages": [{"role": "system", "content": f"you are {a}"}, {"role": "user", "content": f"tell me about {a}"}]})
    ids.append(resp.headers["x-wardgate-request-id"])
    gw.upstream.then(Scripted(chunks=chat_chunks(f"streamed {d} text", size=4)))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"stream {d}"}]})
    await resp.read()
    ids.append(resp.headers["x-wardgate-request-id"])
    # Upstream errors often quote the offending input back.
    gw.upstream.then(Scripted(status=400, body={"error": {"message": f"bad value '{e}' in messages[0]",
                                                          "type": "invalid_request_error", "code": "invalid_value"}}))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"about {e}"}]})
    assert resp.status == 400
    ids.append(resp.headers["x-wardgate-request-id"])
    gw.upstream.then(Scripted(status=500, body={"error": {"message": f"crashed on {f}"}}),
                     Scripted(status=500, body={"error": {"message": f"crashed on {f}"}}))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"about {f}"}]})
    assert resp.status == 502
    ids.append(resp.headers["x-wardgate-request-id"])
    return ids


@pytest.mark.parametrize("mode", ["hashes", "none"])
async def test_hashes_and_none_leave_no_message_text(make_gateway, mode):
    gw = await make_gateway(policy=f"{{log: {{content: {mode}}}, injection: {{action: off}}}}")
    words = [f"zq{secrets.token_hex(6)}" for _ in range(6)]
    ids = await _exercise(gw, words)
    records = [await gw.trace(i) for i in ids]
    logs = _all_logs(gw)
    for word in words:
        assert word not in logs
    first = records[0]
    assert any(v["stage"] == "tool_calls" for v in first["verdicts"])  # the flag survives, its quote does not
    if mode == "hashes":
        messages = first["request"]["messages"]
        system = {"role": "system", "content": f"you are {words[0]}"}
        expected = "sha256:" + hashlib.sha256(orjson.dumps(system, option=orjson.OPT_SORT_KEYS)).hexdigest()
        assert messages[0] == expected  # a caller can correlate with its own store
        assert first["response"]["tool_calls"][0]["name"] == "send_note"
        assert records[2]["error"]["message"].startswith("sha256:") and records[2]["error"]["code"] == "invalid_value"
    else:
        assert all(r["request"] is None and r["response"] is None for r in records)
        assert records[2]["error"]["message"] is None and records[2]["error"]["code"] == "invalid_value"


async def test_redacted_logs_hold_no_pii_value(make_gateway):
    gw = await make_gateway(policy="{pii: {action: redact, restore: true}, tool_calls: {action: flag}}")
    email = f"m.{secrets.token_hex(4)}@example-corp.com"
    phone = "+1 415 555 " + f"{secrets.randbelow(9000) + 1000}"
    call = {"id": "c1", "type": "function", "function": {"name": "send_note", "arguments": orjson.dumps(
        {"to": 7, "body": "call <PHONE_NUMBER_1>"}).decode()}}
    gw.upstream.then(Scripted(body=chat_body("I will write to <EMAIL_ADDRESS_1>.", tool_calls=[call])))
    resp = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "tools": TOOLS, "messages": [{"role": "user", "content": f"mail {email}, call {phone}"}]})
    answer = await resp.json()
    assert email in answer["choices"][0]["message"]["content"]  # restored for the client...
    gw.upstream.then(Scripted(chunks=chat_chunks("ok <EMAIL_ADDRESS_1> and <PHONE_NUMBER_1>", size=3)))
    streamed = await gw.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"{email} / {phone}"}]})
    assert email in (await streamed.read()).decode()
    feedback = await gw.client.post("/v1/feedback", headers=AUTH, json={
        "request_id": resp.headers["x-wardgate-request-id"], "score": -1, "comment": "wrong recipient"})
    assert feedback.status == 200
    for r in (resp, streamed):
        record = await gw.trace(r.headers["x-wardgate-request-id"])
        assert {x["entity"] for x in record["redactions"]} >= {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    logs = _all_logs(gw)  # ...and never logged
    assert email not in logs and phone not in logs and phone.replace(" ", "") not in logs
    assert "<EMAIL_ADDRESS_1>" in logs
