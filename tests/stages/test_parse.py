"""The parse stage refuses bodies the guardrails and the upstream could read differently, naming the field."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import TEAM_KEY, gateway_yaml
from wardgate.app import create_app
from wardgate.config.load import load_config_text

_CHAT = b'"model": "gpt-4o-mini", "messages": [{"role": "user", "content": %s}]'


def _deep(levels: int) -> bytes:
    return b'"x": ' + b"[" * levels + b"]" * levels


@pytest.mark.parametrize(("body", "words"), [
    (b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', "'model'"),
    (b'{' + _CHAT % b'"hi"' + b', "metadata": {"a": 1, "b": {"c": 2, "c" : 3}}}', "'c'"),
    (b'{' + _CHAT % b'"say \\"x\\": 1"' + b', "user": "u", "user": "v"}', "'user'"),
    (b'{' + _CHAT % b'"a\\\\"' + b', "seed": 1, "seed": 2}', "'seed'"),
    # Compact bodies (no whitespace at all: the memchr count), and a duplicate behind `"k" :`.
    (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"seed":1,"seed":2}', "'seed'"),
    (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"say \\":\\""}],"n":1,"n":2}', "'n'"),
    (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"model" :"gpt-4o"}', "'model'"),
    (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"user"\n:"a","user":"b"}', "'user'"),
    (b'{' + _CHAT % b'"hi"' + b', ' + _deep(70) + b'}', "nested deeper"),
    (b'{' + _CHAT % b'"hi"' + b', "seed": 123456789012345678901234567890}', "'seed'"),
    (b'{' + _CHAT % b'"hi"' + b', "tools": 1.5}', "'tools'"),
    (b'{' + _CHAT % b'"hi"' + b', "tools": {"type": "function"}}', "'tools'"),
])
async def test_ambiguous_or_hostile_bodies_get_a_400_naming_the_problem(gateway, body, words):
    resp = await gateway.client.post("/v1/chat/completions", data=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    payload = await resp.json()
    assert resp.status == 400 and payload["error"]["code"] == "invalid_request", payload
    assert words in payload["error"]["message"]
    assert not gateway.upstream.received
    assert (await gateway.trace(resp.headers["x-wardgate-request-id"]))["status"] == 400


@pytest.mark.parametrize("content", [b'"say \\"x\\": 1 and \\\\\\": too"', b'"C:\\\\dir\\\\"', b'"a" ', b'"\\u0022k\\u0022: 1"'])
async def test_escaped_quotes_and_colons_in_strings_are_not_keys(gateway, content):
    body = b'{' + _CHAT % content + b', "seed": 7}'
    resp = await gateway.client.post("/v1/chat/completions", data=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert resp.status == 200, await resp.text()
    sent = orjson.loads(body)
    assert gateway.upstream.received[-1]["body"]["messages"] == sent["messages"]


async def test_a_string_longer_than_the_limit_is_named(aiohttp_client, fake_upstream, tmp_path):
    text = gateway_yaml(fake_upstream.url, tmp_path / "traces.jsonl").replace(
        "max_body_bytes: 200000", "max_body_bytes: 200000, max_string_chars: 100")
    client = await aiohttp_client(create_app(load_config_text(text, env={})), server_kwargs={"host": "127.0.0.1"})
    for body, where in [(b'{' + _CHAT % (b'"' + b"x" * 150 + b'"') + b'}', "messages.0.content"),
                        (b'{' + _CHAT % b'"hi"' + b', "metadata": {"' + b"k" * 150 + b'": 1}}', "a key")]:
        resp = await client.post("/v1/chat/completions", data=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
        payload = await resp.json()
        assert resp.status == 400 and where in payload["error"]["message"], payload
    assert not fake_upstream.received


def test_the_duplicate_key_count_agrees_with_the_stdlib_on_random_bodies():
    import json
    import random

    from wardgate.stages.parse import _count_keys, _duplicate_key

    rng = random.Random(5)
    pieces = ['x', '"', '\\\\', ':', '":', '\\":', ' : ', 'k', '\\"k\\": 1']

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))

    def obj(depth: int) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = []
        for _ in range(rng.randint(0, 4)):
            key = rng.choice(["a", "b", "c", text()])
            value = obj(depth + 1) if depth < 3 and rng.random() < 0.3 else text()
            pairs.append((key, value))
        return pairs

    def dump(pairs: list[tuple[str, object]]) -> str:
        sep = rng.choice([":", ": ", " :", "\n:", ":\t"])
        return "{" + ",".join(json.dumps(k) + sep + (dump(v) if isinstance(v, list) else json.dumps(v))
                              for k, v in pairs) + "}"

    for _ in range(3000):
        raw = dump(obj(0)).encode()
        parsed = json.loads(raw)
        keys = _count_keys(parsed, 1, 100, 0)
        try:
            json.loads(raw, object_pairs_hook=lambda p: dict(p) if len(dict(p)) == len(p) else (_ for _ in ()).throw(KeyError))
            duplicated = False
        except KeyError:
            duplicated = True
        assert (_duplicate_key(raw, keys) is not None) == duplicated, raw
