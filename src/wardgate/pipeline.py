"""Runs stages in order on the request and in reverse on the response; times them; fails closed.

Envoy's filter chain: a stage may answer locally (a block), the upstream call is the terminal step,
and every stage whose request phase ran gets its response phase, whatever happened in between.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, Protocol

import structlog

from wardgate.exchange import ALLOW, Action, Exchange, Span, Verdict

__all__ = ["Pipeline", "Stage"]

_log = structlog.get_logger("wardgate.pipeline")
_ALLOW, _BLOCK = Action.ALLOW, Action.BLOCK


class Stage(Protocol):
    """A step of the chain. Configured once; keeps no per-request state on ``self``.

    ``on_request`` / ``on_response`` are coroutine functions when they wait for something (a state
    store, the network), plain functions when they only compute: a plain call saves the coroutine
    (~0.5 µs a phase, 8 stages a request).
    """

    name: str
    responds: bool
    """Optional, default True. False: ``on_response`` is a no-op and the pipeline never calls it."""
    checks_request: bool
    """Optional, default True. False: ``on_request`` is a no-op and the pipeline never calls it (the
    stage still gets its response phase)."""

    def on_request(self, ex: Exchange) -> Verdict | Awaitable[Verdict]: ...

    def on_response(self, ex: Exchange) -> Verdict | Awaitable[Verdict]: ...


Phase = tuple[Callable[[Exchange], Any], bool]
"""A stage's phase as the pipeline calls it: the bound method, and whether it is a coroutine function."""


def _failure(stage: Stage, exc: BaseException) -> Verdict:
    return Verdict(Action.BLOCK, code=f"{stage.name}.error", status=503, error_code="guardrail_unavailable",
                   message=f"the {stage.name} guardrail is unavailable", score=None)


def _phase(method: Callable[[Exchange], Any]) -> Phase:
    return method, inspect.iscoroutinefunction(method)


def _plan(stages: Sequence[Stage]) -> tuple[tuple[Stage, bool, Phase | None], ...]:
    """Each stage with whether it has a response phase, and its request phase (None: it has none)."""
    return tuple((stage, getattr(stage, "responds", True),
                  _phase(stage.on_request) if getattr(stage, "checks_request", True) else None) for stage in stages)


class Pipeline:
    """``front`` stages run for every request (they find the team and its policy); then the policy's."""

    def __init__(self, front: Sequence[Stage], by_policy: Mapping[str | None, Sequence[Stage]]) -> None:
        self.front = tuple(front)
        self.by_policy = {name: tuple(stages) for name, stages in by_policy.items()}
        # What each stage has and how it is called, read once here rather than per request.
        self._front_plan = _plan(self.front)
        self._plans = {name: _plan(stages) for name, stages in self.by_policy.items()}
        self._response_phases: dict[int, Phase] = {
            id(stage): _phase(stage.on_response) for stage in (*self.front, *(s for ss in self.by_policy.values() for s in ss))}

    def _failed(self, ex: Exchange, stage: Stage, phase: str, exc: Exception) -> Verdict:
        # A guardrail bug or outage must not become a 500 or a silent pass.
        _log.error("stage_failed", stage=stage.name, phase=phase, request_id=ex.request_id, error=repr(exc))
        verdict = _failure(stage, exc)
        if ex.policy is not None and ex.policy.fail_open:
            verdict = Verdict(Action.FLAG, code=f"{stage.name}.error", message=verdict.message)
        return verdict

    @staticmethod
    def _record(ex: Exchange, stage: Stage, phase: str, started: float, verdict: Verdict) -> Verdict:
        ex.spans.append(Span(stage.name, phase, (perf_counter() - started) * 1000.0, verdict.action))
        if verdict.action is _ALLOW:
            return verdict
        stamped = Verdict(verdict.action, verdict.code, verdict.message, verdict.status, verdict.score,
                          verdict.error_code, verdict.headers, stage.name)
        ex.verdicts.append(stamped)
        return stamped

    async def run_request(self, ex: Exchange) -> Verdict:
        """Run request phases in order; stop at the first block and return it."""
        verdict = await self._requests(ex, self._front_plan)
        if verdict.blocks:
            return verdict
        return await self._requests(ex, self._plans.get(ex.team.policy if ex.team else None, ()))  # team known now

    async def _requests(self, ex: Exchange, plan: tuple[tuple[Stage, bool, Phase | None], ...]) -> Verdict:
        # Each phase is called in this loop, not through a helper coroutine: one coroutine less per stage.
        ran = ex.stages_ran
        for stage, responds, request in plan:
            if responds:
                ran.append(stage)  # the stages whose response phase runs, in reverse
            if request is None:
                continue
            call, is_async = request
            started = perf_counter()
            try:
                verdict = await call(ex) if is_async else call(ex)
            except Exception as exc:  # noqa: BLE001 - _failed turns it into a 503 or a flag
                verdict = self._failed(ex, stage, "request", exc)
            verdict = self._record(ex, stage, "request", started, verdict)
            if verdict.action is _BLOCK:
                return verdict
        return ALLOW

    async def _responses(self, ex: Exchange, stop_at_block: bool) -> Verdict:
        """Response phases in reverse; the first block, returned at once or after the rest ran."""
        first_block = ALLOW
        phases = self._response_phases
        for stage in reversed(ex.stages_ran):
            call, is_async = phases[id(stage)]
            started = perf_counter()
            try:
                verdict = await call(ex) if is_async else call(ex)
            except Exception as exc:  # noqa: BLE001 - _failed turns it into a 503 or a flag
                verdict = self._failed(ex, stage, "response", exc)
            verdict = self._record(ex, stage, "response", started, verdict)
            if verdict.action is _BLOCK and first_block is ALLOW:
                if stop_at_block:
                    return verdict
                first_block = verdict
        return first_block

    async def run_checkpoint(self, ex: Exchange) -> Verdict:
        """Response phases on a partial answer (stream checkpoints); the first block wins."""
        return await self._responses(ex, stop_at_block=True)

    async def run_response(self, ex: Exchange) -> Verdict:
        """Response phases in reverse, exactly once per exchange, all of them even after a block.

        Every stage sees the end (budgets settle, loops count) even when an earlier one blocked.
        """
        if ex.final:
            return ALLOW
        ex.final = True
        return await self._responses(ex, stop_at_block=False)
