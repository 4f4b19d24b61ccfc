"""The pipeline runs plain-function and coroutine stages alike: order, spans, blocks, failures."""

from __future__ import annotations

import asyncio

from wardgate import Action, Exchange, Pipeline, Verdict
from wardgate.config.schema import PolicyConfig


class Plain:
    def __init__(self, name: str, log: list[str], request: Verdict | Exception | None = None) -> None:
        self.name, self._log, self._request = name, log, request

    def on_request(self, ex: Exchange) -> Verdict:
        self._log.append(f"{self.name}:request")
        if isinstance(self._request, Exception):
            raise self._request
        return self._request or Verdict(Action.ALLOW)

    def on_response(self, ex: Exchange) -> Verdict:
        self._log.append(f"{self.name}:response")
        return Verdict(Action.ALLOW)


class Waiting(Plain):
    async def on_request(self, ex: Exchange) -> Verdict:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().on_request(ex)

    async def on_response(self, ex: Exchange) -> Verdict:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().on_response(ex)


def _exchange(fail_open: bool = False) -> Exchange:
    ex = Exchange(request_id="r1", route="/v1/chat/completions")
    ex.policy = PolicyConfig(fail_open=fail_open)
    return ex


async def test_both_kinds_run_in_order_and_are_timed():
    log: list[str] = []
    pipeline = Pipeline([Plain("a", log), Waiting("b", log)], {None: [Waiting("c", log), Plain("d", log)]})
    ex = _exchange()
    assert (await pipeline.run_request(ex)).action is Action.ALLOW
    assert (await pipeline.run_response(ex)).action is Action.ALLOW
    assert log == ["a:request", "b:request", "c:request", "d:request",
                   "d:response", "c:response", "b:response", "a:response"]
    assert [(s.stage, s.phase) for s in ex.spans] == [(n, "request") for n in "abcd"] + [(n, "response") for n in "dcba"]
    assert all(s.duration_ms >= 0 for s in ex.spans)


async def test_a_block_stops_the_request_phases_and_is_stamped_with_its_stage():
    log: list[str] = []
    refuse = Verdict(Action.BLOCK, code="x.no", status=400)
    pipeline = Pipeline([Plain("a", log)], {None: [Plain("b", log, refuse), Waiting("c", log)]})
    ex = _exchange()
    verdict = await pipeline.run_request(ex)
    assert verdict.blocks and verdict.stage == "b" and ex.verdicts == [verdict]
    assert "c:request" not in log
    await pipeline.run_response(ex)
    assert log[-2:] == ["b:response", "a:response"]  # every stage whose request ran gets its response


async def test_a_stage_that_raises_fails_closed_or_open_as_the_policy_says():
    for stage in (Plain("boom", [], RuntimeError("bug")), Waiting("boom", [], RuntimeError("bug"))):
        closed = await Pipeline([stage], {}).run_request(_exchange())
        assert closed.blocks and closed.status == 503 and closed.error_code == "guardrail_unavailable"
        ex = _exchange(fail_open=True)
        opened = await Pipeline([stage], {}).run_request(ex)
        assert not opened.blocks and ex.verdicts[0].action is Action.FLAG and ex.verdicts[0].code == "boom.error"
