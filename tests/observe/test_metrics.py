"""GET /metrics after real requests: the per-request series of SPEC §5, as Prometheus parses them."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEAM_KEY

AUTH = {"Authorization": f"Bearer {TEAM_KEY}"}
_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def _samples(gw) -> list:
    text = await (await gw.client.get("/metrics")).text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


async def _settled(gw, served: int) -> list:
    """The samples once ``served`` chat requests are counted (the recorder runs after each response)."""
    for _ in range(100):
        samples = await _samples(gw)
        if _value(samples, "wardgate_requests_total", outcome="served") == served:
            return samples
        await asyncio.sleep(0.02)
    raise AssertionError("the served requests never appeared in /metrics")


async def test_request_series_count_every_request_once(gateway):
    for _ in range(3):
        assert (await gateway.client.post("/v1/chat/completions", headers=AUTH, json=_BODY)).status == 200
    refused = await gateway.client.post("/v1/chat/completions", headers=AUTH, json={**_BODY, "model": "nope"})
    assert refused.status == 404
    samples = await _settled(gateway, 3)
    chat = {"team": "search", "model": "gpt-4o-mini", "route": "/v1/chat/completions"}
    assert _value(samples, "wardgate_requests_total", outcome="served", **chat) == 3
    assert _value(samples, "wardgate_requests_total", outcome="error", route="/v1/chat/completions") == 1
    # A histogram: cumulative buckets ending in +Inf == _count, a positive _sum.
    buckets = [s for s in samples if s.name == "wardgate_request_duration_seconds_bucket"
               and all(s.labels.get(k) == v for k, v in chat.items())]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 3
    assert _value(samples, "wardgate_request_duration_seconds_count", **chat) == 3
    assert _value(samples, "wardgate_request_duration_seconds_sum", **chat) > 0
    assert _value(samples, "wardgate_overhead_seconds_count", route="/v1/chat/completions") == 4
    # The fake upstream reports 10 prompt and 5 completion tokens per answer.
    assert _value(samples, "wardgate_tokens_total", team="search", model="gpt-4o-mini", kind="prompt") == 30
    assert _value(samples, "wardgate_tokens_total", team="search", model="gpt-4o-mini", kind="completion") == 15
    assert _value(samples, "wardgate_ttft_seconds_count", team="search", model="gpt-4o-mini") == 0


async def test_a_value_on_a_bucket_bound_is_in_that_bucket():
    from wardgate.metrics import _LATENCY, _Histogram, _observe

    hist = _Histogram(len(_LATENCY))
    for value in (0.005, 0.0051, 120.0, 121.0):
        _observe(hist, _LATENCY, value)
    assert hist.counts[0] == 1 and hist.counts[1] == 1  # le="0.005" is inclusive, as in the Prometheus client
    assert hist.counts[len(_LATENCY) - 1] == 1 and hist.counts[-1] == 1  # 120 in le="120", 121 only in +Inf
