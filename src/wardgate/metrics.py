"""Prometheus metrics (SPEC §5). One registry per app, so tests can run several apps in a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from wardgate.exchange import Exchange

__all__ = ["Metrics"]

_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models",
                     "/v1/feedback"})
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("wardgate_requests_total", "Requests by outcome", ["team", "model", "route", "outcome"], registry=r)
        self.duration = Histogram("wardgate_request_duration_seconds", "Whole request time", ["team", "model", "route"],
                                  buckets=_LATENCY, registry=r)
        self.overhead = Histogram("wardgate_overhead_seconds", "Gateway time, upstream excluded", ["route"],
                                  buckets=_OVERHEAD, registry=r)
        self.ttft = Histogram("wardgate_ttft_seconds", "Time to first token", ["team", "model"], buckets=_LATENCY, registry=r)
        self.tokens = Counter("wardgate_tokens_total", "Tokens", ["team", "model", "kind"], registry=r)
        self.cost = Counter("wardgate_cost_usd_total", "Cost in USD", ["team", "model"], registry=r)
        self.verdicts = Counter("wardgate_verdicts_total", "Guardrail verdicts", ["stage", "code", "action"], registry=r)
        self.budget_remaining = Gauge("wardgate_budget_remaining", "Budget remaining", ["team", "window", "unit"], registry=r)
        self.sink_records = Gauge("wardgate_sink_records_total", "Trace records by sink and state", ["sink", "state"], registry=r)
        self.anomalies = Counter("wardgate_anomalies_total", "Anomaly flags", ["team", "model", "figure"], registry=r)
        self._children: dict[tuple[str, str, str, str], tuple] = {}
        self.feedback = Counter("wardgate_feedback_total", "Feedback records (source: api, rephrase, abandon)",
                                ["team", "source"], registry=r)

    def _series(self, team: str, model: str, route: str, outcome: str) -> tuple:
        # labels() validates and locks on every call; the children of one label set are looked up once.
        key = (team, model, route, outcome)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 10_000:  # bounded: label values come from config, but be safe
                self._children.clear()
            children = self._children[key] = (
                self.requests.labels(team, model, route, outcome), self.duration.labels(team, model, route),
                self.overhead.labels(route), self.ttft.labels(team, model),
                self.tokens.labels(team, model, "prompt"), self.tokens.labels(team, model, "completion"),
                self.cost.labels(team, model))
        return children

    def observe(self, ex: Exchange, total_ms: float) -> None:
        route = ex.route if ex.route in _ROUTES else "other"
        outcome = ex.outcome.value if ex.outcome else "error"
        requests, duration, overhead, ttft, prompt, completion, cost = self._series(
            ex.team_name or "", (ex.model_alias or "") if ex.model is not None else "", route, outcome)
        requests.inc()
        duration.observe(total_ms / 1000.0)
        overhead.observe(max(0.0, total_ms - ex.upstream_ms) / 1000.0)
        if ex.ttft_ms is not None:
            ttft.observe(ex.ttft_ms / 1000.0)
        usage = ex.response.usage
        if usage:
            prompt.inc(usage["prompt_tokens"])
            completion.inc(usage["completion_tokens"])
        if ex.cost_usd:
            cost.inc(ex.cost_usd)
        if not ex.verdicts:
            return
        team, model = ex.team_name or "", ex.model_alias or ""
        for v in ex.verdicts:
            self.verdicts.labels(v.stage or "", v.code or "", v.action.value).inc()
            if v.stage == "anomaly":
                self.anomalies.labels(team, model, (v.code or "").removeprefix("anomaly.")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
