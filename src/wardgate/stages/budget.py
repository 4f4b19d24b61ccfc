"""Budgets and rate limits: reserve the worst case before forwarding, settle to the real usage after.

Every counter a request touches (team, key, end user, session; requests, tokens, USD) is checked and
reserved in one atomic step of the state store, so concurrent requests cannot overspend (issue 4).
``window: minute`` limits are smooth rate limits (GCRA); hour/day/month/total are calendar budgets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import structlog

from wardgate.answer import cost_of
from wardgate.config.schema import BudgetConfig, Config, PolicyConfig, TeamConfig
from wardgate.exchange import ALLOW, Action, Exchange, Verdict
from wardgate.scan_cache import ScanCache
from wardgate.state import (
    Charge,
    CounterState,
    Limit,
    MemoryStateStore,
    StateStore,
    StateUnavailable,
    Unit,
    Window,
)
from wardgate.textview import request_texts
from wardgate.tokens import count_messages_with, count_tokens, preload, text_counter

__all__ = ["Budget", "estimate_tokens"]

_log = structlog.get_logger("wardgate.budget")
_UNITS = (("requests", Unit.REQUESTS), ("tokens", Unit.TOKENS), ("usd", Unit.USD))


def _limits(scope: str, budgets: tuple[BudgetConfig, ...]) -> list[Limit]:
    out = []
    for budget in budgets:
        window = Window.RATE_MINUTE if budget.window == "minute" else Window(budget.window)
        for field, unit in _UNITS:
            cap = getattr(budget, field)
            if cap is not None:
                out.append(Limit(scope, window, unit, float(cap)))
    return out


def estimate_tokens(ex: Exchange, default_max: int, count: Callable[[str], int]) -> tuple[int, int]:
    """(prompt tokens, worst-case completion tokens); ``count(text)`` is the upstream model's counter
    (``tokens.text_counter``; the stage keeps one per model, each count kept per text, so an agent's
    resent history is not recounted)."""
    body = ex.body or {}
    route = ex.route
    if route == "/v1/chat/completions":
        prompt = count_messages_with(body.get("messages") or [], count)
    else:
        prompt = sum(count(t.text) for t in request_texts(route, body))
        if route == "/v1/embeddings":
            return prompt, 0
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    completion = cap if isinstance(cap, int) and 0 < cap else default_max
    n = body.get("n")
    return prompt, (completion * n if isinstance(n, int) and n > 0 else completion)


@lru_cache(maxsize=1024)
def _reset_text(total: int) -> str:
    """OpenAI's reset format for whole seconds: ``1s``, ``6m0s``, ``2h3m4s``."""
    # Cached per whole second: every request within a second shows the same day window reset, and
    # formatting it costs ~10x the lookup. 1,024 entries of a few dozen bytes each.
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


def ratelimit_headers(states: tuple[CounterState, ...], now: float) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` from the tightest counter of each unit."""
    # One pass for both units; a counter replaces the tightest so far only when strictly lower, so
    # ties keep the first in charge order, as min() does.
    requests = tokens = None
    for state in states:
        unit = state.limit.unit
        if unit is _REQUESTS:
            if requests is None or state.remaining < requests.remaining:
                requests = state
        elif unit is _TOKENS and (tokens is None or state.remaining < tokens.remaining):
            tokens = state
    headers: dict[str, str] = {}
    if requests is not None:
        _put(headers, _REQUEST_HEADERS, requests, now)
    if tokens is not None:
        _put(headers, _TOKEN_HEADERS, tokens, now)
    return headers


_REQUEST_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
_TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


def _put(headers: dict[str, str], names: tuple[str, str, str], tight: CounterState, now: float) -> None:
    limit_name, remaining_name, reset_name = names
    headers[limit_name] = str(int(tight.limit.limit))
    headers[remaining_name] = str(int(tight.remaining))
    resets_at = tight.resets_at
    headers[reset_name] = _reset_text(max(0, math.ceil(resets_at - now))) if resets_at else "0s"


_REQUESTS, _TOKENS, _USD = Unit.REQUESTS, Unit.TOKENS, Unit.USD
_AMOUNT_INDEX = {_REQUESTS: 0, _TOKENS: 1, _USD: 2}
"""Where a limit's amount sits in ``_charges``' (requests, tokens, usd) tuple."""
_KEY_CACHE_MAX = 4096


class Budget:
    name = "budget"

    def __init__(self, policy: PolicyConfig, config: Config, store: StateStore, fallback: MemoryStateStore) -> None:
        self._store = store
        self._fallback = fallback
        self._fail_open = config.state.on_error == "open"
        self._ttl = config.state.reservation_ttl_s
        self._default_max = policy.default_max_tokens
        self._session_tokens = policy.loops.max_session_tokens if policy.loops.action != "off" else None
        self._session_usd = policy.loops.max_session_usd if policy.loops.action != "off" else None
        self._team_limits = {name: _limits(f"team:{name}", team.budgets) for name, team in config.teams.items()}
        self.active = bool(self._session_tokens or self._session_usd or any(self._team_limits.values())
                           or any(team.key_budgets or team.user_budgets for team in config.teams.values()))
        """False when no team has any budget and the policy caps no session: the stage would never count."""
        if self.active:  # the encodings this stage will count with, loaded before the first request needs them
            preload({model.model or alias for alias, model in config.models.items()})
        self._counts: dict[str, Callable[[str], int]] = {}
        """Per upstream model, its token counter, each count kept per message text (a ScanCache)."""
        self._fixed_cache: dict[tuple[str | None, str | None], tuple[TeamConfig, Any]] = {}
        """Per (team, key): see ``_fixed``."""

    def _applies(self, ex: Exchange, team: TeamConfig) -> bool:
        return bool(self._team_limits.get(ex.team_name or "") or (ex.key is not None and team.key_budgets)
                    or (ex.user and team.user_budgets) or (ex.session_id and (self._session_tokens or self._session_usd)))

    def _fixed(self, ex: Exchange, team: TeamConfig) -> tuple[tuple[tuple[Limit, int], ...], bool]:
        """The team's and the key's limits, each with where its amount sits in (requests, tokens, usd),
        and whether any counts dollars: the same for every request of a key, built once per process
        (constructing a Limit costs ~5k instructions)."""
        key_id = ex.key.id if ex.key is not None else None
        cached = self._fixed_cache.get((ex.team_name, key_id))
        if cached is not None and cached[0] is team:
            return cached[1]
        limits = list(self._team_limits.get(ex.team_name or "", ()))
        if key_id is not None:
            limits += _limits(f"key:{key_id}", team.key_budgets)
        fixed = (tuple((limit, _AMOUNT_INDEX[limit.unit]) for limit in limits), any(limit.unit is _USD for limit in limits))
        if len(self._fixed_cache) >= _KEY_CACHE_MAX:  # keys come from the config; this only bounds the unexpected
            self._fixed_cache.clear()
        self._fixed_cache[(ex.team_name, key_id)] = (team, fixed)
        return fixed

    def _charges(self, ex: Exchange, team: TeamConfig, prompt: int, completion: int) -> list[Charge]:
        limits, usd_counted = self._fixed(ex, team)
        if ex.user or (ex.session_id and (self._session_tokens or self._session_usd)):
            # Per user or session: scopes from the request, built per request.
            more: list[Limit] = []
            if ex.user:
                more += _limits(f"user:{ex.team_name}:{ex.user}", team.user_budgets)
            if ex.session_id and (self._session_tokens or self._session_usd):
                session = f"session:{ex.team_name}:{ex.session_id}"
                if self._session_tokens:
                    more.append(Limit(session, Window.TOTAL, Unit.TOKENS, float(self._session_tokens)))
                if self._session_usd:
                    more.append(Limit(session, Window.TOTAL, Unit.USD, float(self._session_usd)))
            limits += tuple((limit, _AMOUNT_INDEX[limit.unit]) for limit in more)
            usd_counted = usd_counted or any(limit.unit is _USD for limit in more)
        # The price only matters to a limit in dollars: without one, cost_of is not called.
        usd = (cost_of({"prompt_tokens": prompt, "completion_tokens": completion}, ex.model.price) or 0.0
               if usd_counted and ex.model else 0.0)
        amounts = (1.0, float(prompt + completion), usd)
        return [Charge(limit, amounts[i]) for limit, i in limits]

    async def on_request(self, ex: Exchange) -> Verdict:
        team = ex.team
        if team is None or ex.team_name is None:
            return ALLOW
        if not self._applies(ex, team):
            return ALLOW  # no counter for this request: no token counting, no store round trip
        count = self._counts.get(ex.upstream_model or "")
        if count is None:  # one cache per model: the count of a text depends on the model's encoding
            # min_chars 32, not ScanCache's 256: counting even a 70-character system prompt costs ~8k
            # instructions (the tokenizer drops and retakes the GIL), a hit ~1k.
            cache: ScanCache[int] = ScanCache(max_chars=16 * 1024 * 1024, min_chars=32)
            compute, get = text_counter(ex.upstream_model or "gpt-4o"), cache.get
            count = self._counts[ex.upstream_model or ""] = lambda text: get(text, compute)
        prompt, completion = estimate_tokens(ex, self._default_max, count)
        charges = self._charges(ex, team, prompt, completion)
        ex.extra["budget"] = {"estimate": {"prompt_tokens": prompt, "completion_tokens": completion}, "store": "primary"}
        try:
            result = await self._store.reserve(ex.team_name, ex.request_id, charges, self._ttl, now=ex.received)
        except StateUnavailable as exc:
            if not self._fail_open:
                _log.warning("state_unavailable", request_id=ex.request_id, error=str(exc))
                return Verdict(Action.BLOCK, code="budget.state_unavailable", status=503, error_code="state_unavailable",
                               message="the budget store is unreachable; refusing (state.on_error: closed)")
            _log.warning("state_unavailable_fail_open", request_id=ex.request_id, error=str(exc))
            ex.extra["budget"]["store"] = "memory_fallback"
            result = await self._fallback.reserve(ex.team_name, ex.request_id, charges, self._ttl, now=ex.received)
            flagged = Verdict(Action.FLAG, code="budget.state_unavailable",
                              message="budget store unreachable: counted in this process only (state.on_error: open)")
            if result.ok:
                ex.extra["_budget_reserved"] = True
                return flagged
        else:
            ex.extra["_budget_reserved"] = result.ok
        ex.response_headers.update(ratelimit_headers(result.states, ex.received))
        if result.ok:
            return ALLOW
        return self._refusal(result.denied, result.retry_after_s)

    def _refusal(self, denied: CounterState | None, retry_after: float | None) -> Verdict:
        assert denied is not None
        limit = denied.limit
        what = f"{limit.unit.value} {limit.window.value.replace('rate_', 'per ')}"
        headers: list[tuple[str, str]] = []
        if retry_after is not None:
            headers.append(("retry-after", str(max(1, math.ceil(retry_after)))))
        if limit.scope.startswith("session:"):
            headers.append(("x-should-retry", "false"))
            return Verdict(Action.BLOCK, code="loops.session_cap", status=429, error_code="loop_detected",
                           message=f"loop guard: this session reached its cap of {limit.limit:g} {limit.unit.value}",
                           headers=tuple(headers))
        if limit.window.is_rate:
            return Verdict(Action.BLOCK, code="budget.rate_limited", status=429, error_code="rate_limited",
                           message=f"rate limit reached for {limit.scope}: {limit.limit:g} {what}; retry later",
                           headers=tuple(headers))
        headers.append(("x-should-retry", "false"))
        return Verdict(Action.BLOCK, code="budget.exceeded", status=429, error_code="budget_exceeded",
                       message=f"budget exceeded for {limit.scope}: {limit.limit:g} {limit.unit.value} per "
                               f"{limit.window.value} (used {denied.used:g}, reserved {denied.reserved:g})",
                       headers=tuple(headers))

    def _actual(self, ex: Exchange) -> dict[str, Any] | None:
        usage = ex.response.usage
        if usage is not None:
            return usage
        if not ex.response.text and not ex.response.tool_calls:
            return None  # nothing was delivered: release the whole reservation
        # A stream cut before its usage chunk: charge the prompt and what was delivered.
        est = ex.extra.get("budget", {}).get("estimate", {})
        delivered = count_tokens(ex.response.text + "".join(c.arguments for c in ex.response.tool_calls),
                                 ex.upstream_model or "gpt-4o")
        return {"prompt_tokens": est.get("prompt_tokens", 0), "completion_tokens": delivered,
                "total_tokens": est.get("prompt_tokens", 0) + delivered}

    async def on_response(self, ex: Exchange) -> Verdict:
        if not ex.final or not ex.extra.get("_budget_reserved") or ex.team is None or ex.team_name is None:
            return ALLOW
        store = self._fallback if ex.extra["budget"]["store"] == "memory_fallback" else self._store
        usage = self._actual(ex)
        try:
            if usage is None:
                await store.release(ex.team_name, ex.request_id)
                ex.extra["budget"]["settled"] = "released"
                return ALLOW
            prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
            actual = self._charges(ex, ex.team, prompt, completion)
            await store.settle(ex.team_name, ex.request_id, actual)
            ex.extra["budget"]["settled"] = {"prompt_tokens": prompt, "completion_tokens": completion}
        except StateUnavailable:
            # The reservation expires on its own (ttl); the usage of this request is lost to the budget.
            ex.extra["budget"]["settled"] = "state_unavailable"
            return Verdict(Action.FLAG, code="budget.settle_failed", message="could not settle: budget store unreachable")
        return ALLOW
