"""Runs stages in order on the request and in reverse on the response; times them; fails closed.

Envoy's filter chain: a stage may answer locally (a block), the upstream call is the terminal step,
and every stage whose request phase ran gets its response phase, whatever happened in between.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import structlog

from wardgate.exchange import ALLOW, Action, Exchange, Span, Verdict

__all__ = ["Pipeline", "Stage"]

_log = structlog.get_logger("wardgate.pipeline")


class Stage(Protocol):
    """A step of the chain. Configured once; keeps no per-request state on ``self``."""

    name: str
    responds: bool
    """Optional, default True. False: ``on_response`` is a no-op and the pipeline never calls it."""
    checks_request: bool
    """Optional, default True. False: ``on_request`` is a no-op and the pipeline never calls it (the
    stage still gets its response phase)."""

    async def on_request(self, ex: Exchange) -> Verdict: ...

    async def on_response(self, ex: Exchange) -> Verdict: ...


def _failure(stage: Stage, exc: BaseException) -> Verdict:
    return Verdict(Action.BLOCK, code=f"{stage.name}.error", status=503, error_code="guardrail_unavailable",
                   message=f"the {stage.name} guardrail is unavailable", score=None)


def _plan(stages: Sequence[Stage]) -> tuple[tuple[Stage, bool, bool], ...]:
    return tuple((stage, getattr(stage, "responds", True), getattr(stage, "checks_request", True)) for stage in stages)


class Pipeline:
    """``front`` stages run for every request (they find the team and its policy); then the policy's."""

    def __init__(self, front: Sequence[Stage], by_policy: Mapping[str | None, Sequence[Stage]]) -> None:
        self.front = tuple(front)
        self.by_policy = {name: tuple(stages) for name, stages in by_policy.items()}
        # Each stage with whether it has a response and a request phase, read once here rather than per request.
        self._front_plan = _plan(self.front)
        self._plans = {name: _plan(stages) for name, stages in self.by_policy.items()}

    def _record(self, ex: Exchange, stage: Stage, phase: str, started: float, verdict: Verdict) -> Verdict:
        ex.spans.append(Span(stage.name, phase, (time.perf_counter() - started) * 1000.0, verdict.action))
        if verdict.action is Action.ALLOW:
            return verdict
        stamped = Verdict(verdict.action, verdict.code, verdict.message, verdict.status, verdict.score,
                          verdict.error_code, verdict.headers, stage.name)
        ex.verdicts.append(stamped)
        return stamped

    async def _run(self, ex: Exchange, stage: Stage, phase: str) -> Verdict:
        started = time.perf_counter()
        try:
            verdict = await (stage.on_request(ex) if phase == "request" else stage.on_response(ex))
        except Exception as exc:  # a guardrail bug or outage must not become a 500 or a silent pass
            _log.error("stage_failed", stage=stage.name, phase=phase, request_id=ex.request_id, error=repr(exc))
            verdict = _failure(stage, exc)
            if ex.policy is not None and ex.policy.fail_open:
                verdict = Verdict(Action.FLAG, code=f"{stage.name}.error", message=verdict.message)
        return self._record(ex, stage, phase, started, verdict)

    async def run_request(self, ex: Exchange) -> Verdict:
        """Run request phases in order; stop at the first block and return it."""
        verdict = await self._requests(ex, self._front_plan)
        if verdict.blocks:
            return verdict
        return await self._requests(ex, self._plans.get(ex.team.policy if ex.team else None, ()))  # team known now

    async def _requests(self, ex: Exchange, plan: tuple[tuple[Stage, bool, bool], ...]) -> Verdict:
        for stage, responds, checks_request in plan:
            if responds:
                ex.stages_ran.append(stage)  # the stages whose response phase runs, in reverse
            if not checks_request:
                continue
            verdict = await self._run(ex, stage, "request")
            if verdict.blocks:
                return verdict
        return ALLOW

    async def run_checkpoint(self, ex: Exchange) -> Verdict:
        """Response phases on a partial answer (stream checkpoints); the first block wins."""
        for stage in reversed(ex.stages_ran):
            verdict = await self._run(ex, stage, "response")
            if verdict.blocks:
                return verdict
        return ALLOW

    async def run_response(self, ex: Exchange) -> Verdict:
        """Response phases in reverse, exactly once per exchange, all of them even after a block.

        Every stage sees the end (budgets settle, loops count) even when an earlier one blocked.
        """
        if ex.final:
            return ALLOW
        ex.final = True
        first_block = ALLOW
        for stage in reversed(ex.stages_ran):
            verdict = await self._run(ex, stage, "response")
            if verdict.blocks and not first_block.blocks:
                first_block = verdict
        return first_block
