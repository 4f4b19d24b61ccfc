"""Feedback, the rephrase and abandon signals, and anomaly flags: in the traces and in /metrics (issue 5)."""

from __future__ import annotations

import asyncio
import random
from collections import deque

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OTHER_KEY, TEAM_KEY
from tests.fakes import Scripted, chat_body
from wardgate.anomaly import FIGURES, AnomalyDetector, _Series
from wardgate.exchange import Exchange, Outcome
from wardgate.feedback import SignalTracker

AUTH = {"Authorization": f"Bearer {TEAM_KEY}"}


async def _metric(gw, name: str, **labels: str) -> float:
    text = await (await gw.client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def _feedback_records(gw, request_id: str, source: str, timeout_s: float = 3.0) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [r for r in gw.records() if r.get("schema") == "wardgate.feedback/1"
                 and r["request_id"] == request_id and r["source"] == source]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_an_oversized_feedback_body_is_413_not_500(gateway):
    huge = {"request_id": "req_x", "score": 1, "comment": "x" * 300_000}  # over the fixture's 200,000 bytes
    resp = await gateway.client.post("/v1/feedback", headers=AUTH, json=huge)
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "request_too_large"
    record = await gateway.trace(resp.headers["x-wardgate-request-id"])
    assert record["status"] == 413 and record["outcome"] == "error"


async def test_feedback_on_own_requests_only(gateway):
    resp = await gateway.client.post("/v1/chat/completions", headers=AUTH,
                                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request_id = resp.headers["x-wardgate-request-id"]
    ok = await gateway.client.post("/v1/feedback", headers=AUTH, json={
        "request_id": request_id, "score": -1, "comment": "cited the wrong doc", "labels": ["retrieval"]})
    assert ok.status == 200 and (await ok.json())["status"] == "recorded"
    (record,) = await _feedback_records(gateway, request_id, "api")
    assert record["team"] == "search" and record["score"] == -1 and record["labels"] == ["retrieval"]
    assert record["comment"] == "cited the wrong doc" and record["time"].endswith("Z")
    assert await _metric(gateway, "wardgate_feedback_total", team="search", source="api") == 1
    foreign = await gateway.client.post("/v1/feedback", headers={"Authorization": f"Bearer {OTHER_KEY}"},
                                        json={"request_id": request_id, "score": 1})
    assert foreign.status == 404 and (await foreign.json())["error"]["code"] == "not_found"
    unknown = await gateway.client.post("/v1/feedback", headers=AUTH, json={"request_id": "req_nope", "score": 1})
    assert unknown.status == 404
    for body in ({"request_id": request_id}, {"request_id": request_id, "score": "bad"},
                 {"request_id": request_id, "score": 1, "labels": "x"}, [1]):
        bad = await gateway.client.post("/v1/feedback", headers=AUTH, json=body)
        assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_request"
    anonymous = await gateway.client.post("/v1/feedback", json={"request_id": request_id, "score": 1})
    assert anonymous.status == 401
    # The feedback route is a /v1 route: traced like the others, and the answer names its record.
    await gateway.trace(anonymous.headers["x-wardgate-request-id"])
    assert len(await _feedback_records(gateway, request_id, "api", timeout_s=0.3)) == 1


async def test_a_rephrase_is_negative_feedback_on_the_earlier_answer(gateway):
    session = {**AUTH, "x-wardgate-session": "chat-42"}
    first = await gateway.client.post("/v1/chat/completions", headers=session, json={"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "how do I reset the router password on the admin page"}]})
    unrelated = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "how do I reset the router "
                 "password on the admin page"}]}  # the same text from another session is not a rephrase
    await gateway.client.post("/v1/chat/completions", headers={**AUTH, "x-wardgate-session": "other"}, json=unrelated)
    again = await gateway.client.post("/v1/chat/completions", headers=session, json={"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "how can I reset my router password on its admin page?"}]})
    (signal,) = await _feedback_records(gateway, first.headers["x-wardgate-request-id"], "rephrase")
    assert signal["score"] == -1 and signal["by_request_id"] == again.headers["x-wardgate-request-id"]
    assert signal["team"] == "search"
    assert await _metric(gateway, "wardgate_feedback_total", team="search", source="rephrase") == 1
    # An exact resend is a retry (or a loop), not a rephrase.
    await gateway.client.post("/v1/chat/completions", headers=session, json={"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "how can I reset my router password on its admin page?"}]})
    assert await _feedback_records(gateway, again.headers["x-wardgate-request-id"], "rephrase", 0.3) == []


def _exchange(request_id: str, outcome: Outcome, session: str = "s1", text: str = "hello there") -> Exchange:
    ex = Exchange(request_id=request_id, route="/v1/chat/completions", headers={"x-wardgate-session": session})
    ex.team_name, ex.session_id, ex.outcome = "t", session, outcome
    ex.body = {"messages": [{"role": "user", "content": text}]}
    return ex


def test_abandon_after_an_error_and_silence():
    emitted: list[dict] = []
    now = [1000.0]
    tracker = SignalTracker(emitted.append, abandon_after_s=30, clock=lambda: now[0])
    tracker.observe(_exchange("r1", Outcome.ERROR, "s1"))
    tracker.observe(_exchange("r2", Outcome.BLOCKED, "s2"))
    now[0] += 10
    tracker.observe(_exchange("r3", Outcome.SERVED, "s2", text="something else entirely"))  # s2 came back
    now[0] += 25
    assert tracker.sweep() == 1
    assert [(r["request_id"], r["source"], r["score"]) for r in emitted] == [("r1", "abandon", -1.0)]
    now[0] += 100
    assert tracker.sweep() == 0 and tracker.owner("r3") == "t"


def test_a_rewording_within_the_window_is_a_rephrase_and_nothing_is_kept_past_it():
    emitted: list[dict] = []
    now = [1000.0]
    tracker = SignalTracker(emitted.append, rephrase_window_s=60, clock=lambda: now[0])
    first = "how do I reset my router password when the admin page does not load"
    tracker.observe(_exchange("r1", Outcome.SERVED, "s1", text=first))
    now[0] += 5
    tracker.observe(_exchange("r2", Outcome.SERVED, "s1", text=first.replace("how do I", "how can I")))
    assert [(r["request_id"], r["source"], r["by_request_id"]) for r in emitted] == [("r1", "rephrase", "r2")]
    tracker.observe(_exchange("r3", Outcome.SERVED, "s2", text="an unrelated question about taxes"))
    now[0] += 61
    assert tracker.sweep() == 0
    assert not tracker._last  # past the window no message text is held
    tracker.observe(_exchange("r4", Outcome.SERVED, "s1", text=first))
    assert len(emitted) == 1


async def test_fifty_times_the_usual_completion_is_an_anomaly(gateway):
    usual = {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}
    gateway.upstream.default = Scripted(body=chat_body("fine", usage=usual))
    for n in range(24):
        resp = await gateway.client.post("/v1/chat/completions", headers=AUTH, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {n}"}]})
        assert resp.status == 200
    normal = await gateway.trace(resp.headers["x-wardgate-request-id"])
    assert not [v for v in normal["verdicts"] if v["stage"] == "anomaly"]
    gateway.upstream.then(Scripted(body=chat_body("long " * 300, usage={
        "prompt_tokens": 20, "completion_tokens": 300, "total_tokens": 320})))
    resp = await gateway.client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "question 99"}]})
    assert resp.status == 200  # flagged, never blocked
    record = await gateway.trace(resp.headers["x-wardgate-request-id"])
    flags = {v["code"]: v for v in record["verdicts"] if v["stage"] == "anomaly"}
    assert "anomaly.completion_tokens" in flags and flags["anomaly.completion_tokens"]["action"] == "flag"
    assert "50.0x the median 6" in flags["anomaly.completion_tokens"]["message"]
    assert await _metric(gateway, "wardgate_anomalies_total", team="search", model="gpt-4o-mini",
                         figure="completion_tokens") == 1
    assert await _metric(gateway, "wardgate_verdicts_total", stage="anomaly", code="anomaly.completion_tokens",
                         action="flag") == 1


def test_session_token_acceleration_is_flagged_once():
    detector = AnomalyDetector(session_span=3, session_ratio=4.0, session_min_tokens=1000)
    codes = []
    for n, tokens in enumerate([100, 120, 110, 130, 150, 140, 400, 900, 2000, 2100]):
        ex = _exchange(f"r{n}", Outcome.SERVED)
        ex.model_alias = "m"
        ex.response.usage = {"prompt_tokens": tokens - 10, "completion_tokens": 10, "total_tokens": tokens}
        codes.append([v.code for v in detector.check(ex, 10.0)])
    flagged = [n for n, c in enumerate(codes) if "anomaly.session_tokens" in c]
    assert flagged == [8]  # 400+900+2000 against 130+150+140; then it re-arms instead of repeating


def test_the_cheap_threshold_gate_never_skips_a_value_the_full_judgement_would_flag():
    detector, rng = AnomalyDetector(), random.Random(7)
    for _ in range(400):
        figure = rng.choice(FIGURES)
        base = rng.choice([0, 0.5, 5, 100, 1e-5, 3000])
        spread = base * rng.choice([0, 0.01, 0.3, 1]) + rng.choice([0, 1e-6, 1])
        series = _Series(deque((max(0.0, rng.gauss(base, spread)) for _ in range(rng.randint(20, 256))), maxlen=256))
        series.recompute(figure, detector._z, detector._ratio)
        for value in (0.0, base, base * rng.uniform(0, 100), rng.uniform(0, 1e4), base / rng.uniform(1, 100)):
            if detector._judge(figure, value, series) is not None:
                assert not series.low < value < series.high, (figure, value, series)
