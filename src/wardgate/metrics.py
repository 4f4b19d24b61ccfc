"""Prometheus metrics (SPEC §5). One registry per app, so tests can run several apps in a process."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from wardgate.exchange import ACTION_VALUE, OUTCOME_VALUE, Action, Exchange

__all__ = ["Metrics"]

_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models",
                     "/v1/feedback"})
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class _Histogram:
    """Plain counts per bucket: observed on the request path without the client library's lock per call."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0


class _Series:
    """What one (team, model, route, outcome) has seen: the per-request figures of SPEC §5."""

    __slots__ = ("completion", "cost", "duration", "overhead", "prompt", "requests", "ttft")

    def __init__(self) -> None:
        self.requests = 0
        self.duration = _Histogram(len(_LATENCY))
        self.overhead = _Histogram(len(_OVERHEAD))
        self.ttft = _Histogram(len(_LATENCY))
        self.prompt = self.completion = 0
        self.cost = 0.0


def _observe(hist: _Histogram, bounds: tuple[float, ...], value: float) -> None:
    hist.counts[bisect_left(bounds, value)] += 1  # le is inclusive: the first bound >= value
    hist.sum += value


def _add(into: _Histogram, hist: _Histogram) -> None:
    into.counts = [a + b for a, b in zip(into.counts, hist.counts, strict=True)]
    into.sum += hist.sum


def _add_histogram(family: HistogramMetricFamily, labels: list[str], hist: _Histogram,
                   bounds: tuple[float, ...]) -> None:
    cumulative, running = [], 0
    for bound, count in zip((*(floatToGoString(b) for b in bounds), "+Inf"), hist.counts, strict=True):
        running += count
        cumulative.append((bound, running))
    family.add_metric(labels, cumulative, hist.sum)


class _RequestCollector(Collector):
    """Exposes the per-request series at scrape time; the label sets of each metric are summed here."""

    def __init__(self, series: dict[tuple[str, str, str, str], _Series]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("wardgate_requests", "Requests by outcome",
                                       labels=["team", "model", "route", "outcome"])
        durations: dict[tuple[str, str, str], _Histogram] = {}
        overheads: dict[str, _Histogram] = {}
        ttfts: dict[tuple[str, str], _Histogram] = {}
        totals: dict[tuple[str, str], list[float]] = {}  # prompt tokens, completion tokens, cost
        for (team, model, route, outcome), s in list(self._series.items()):
            requests.add_metric([team, model, route, outcome], s.requests)
            _add(durations.setdefault((team, model, route), _Histogram(len(_LATENCY))), s.duration)
            _add(overheads.setdefault(route, _Histogram(len(_OVERHEAD))), s.overhead)
            _add(ttfts.setdefault((team, model), _Histogram(len(_LATENCY))), s.ttft)
            total = totals.setdefault((team, model), [0, 0, 0.0])
            total[0] += s.prompt
            total[1] += s.completion
            total[2] += s.cost
        duration = HistogramMetricFamily("wardgate_request_duration_seconds", "Whole request time",
                                         labels=["team", "model", "route"])
        for labels, hist in durations.items():
            _add_histogram(duration, list(labels), hist, _LATENCY)
        overhead = HistogramMetricFamily("wardgate_overhead_seconds", "Gateway time, upstream excluded",
                                         labels=["route"])
        for route, hist in overheads.items():
            _add_histogram(overhead, [route], hist, _OVERHEAD)
        ttft = HistogramMetricFamily("wardgate_ttft_seconds", "Time to first token", labels=["team", "model"])
        tokens = CounterMetricFamily("wardgate_tokens", "Tokens", labels=["team", "model", "kind"])
        cost = CounterMetricFamily("wardgate_cost_usd", "Cost in USD", labels=["team", "model"])
        for (team, model), hist in ttfts.items():
            _add_histogram(ttft, [team, model], hist, _LATENCY)
            prompt, completion, usd = totals[(team, model)]
            tokens.add_metric([team, model, "prompt"], prompt)
            tokens.add_metric([team, model, "completion"], completion)
            cost.add_metric([team, model], usd)
        yield from (requests, duration, overhead, ttft, tokens, cost)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        r.register(_RequestCollector(self._series))
        self.verdicts = Counter("wardgate_verdicts_total", "Guardrail verdicts", ["stage", "code", "action"], registry=r)
        self.budget_remaining = Gauge("wardgate_budget_remaining", "Budget remaining", ["team", "window", "unit"], registry=r)
        self.sink_records = Gauge("wardgate_sink_records_total", "Trace records by sink and state", ["sink", "state"], registry=r)
        self.anomalies = Counter("wardgate_anomalies_total", "Anomaly flags", ["team", "model", "figure"], registry=r)
        self.feedback = Counter("wardgate_feedback_total", "Feedback records (source: api, rephrase, abandon)",
                                ["team", "source"], registry=r)
        # The children of .labels() per label tuple: labels() validates and locks on every call. Bounded
        # like the client's own table of children (stage and action are fixed sets, codes come from the code).
        self._verdict_children: dict[tuple[str, str, Action], Any] = {}

    def observe(self, ex: Exchange, total_ms: float) -> None:
        route = ex.route if ex.route in _ROUTES else "other"
        key = (ex.team_name or "", (ex.model_alias or "") if ex.model is not None else "", route,
               OUTCOME_VALUE[ex.outcome] if ex.outcome else "error")
        s = self._series.get(key)
        if s is None:  # bounded: team and model come from the config (or are ""), route and outcome are fixed sets
            s = self._series[key] = _Series()
        s.requests += 1
        _observe(s.duration, _LATENCY, total_ms / 1000.0)
        _observe(s.overhead, _OVERHEAD, max(0.0, total_ms - ex.upstream_ms) / 1000.0)
        if ex.ttft_ms is not None:
            _observe(s.ttft, _LATENCY, ex.ttft_ms / 1000.0)
        usage = ex.response.usage
        if usage:
            s.prompt += usage["prompt_tokens"]
            s.completion += usage["completion_tokens"]
        if ex.cost_usd:
            s.cost += ex.cost_usd
        if not ex.verdicts:
            return
        team, model = ex.team_name or "", ex.model_alias or ""
        children = self._verdict_children
        for v in ex.verdicts:
            key = (v.stage or "", v.code or "", v.action)
            child = children.get(key)
            if child is None:
                child = children[key] = self.verdicts.labels(key[0], key[1], ACTION_VALUE[v.action])
            child.inc()
            if v.stage == "anomaly":
                self.anomalies.labels(team, model, (v.code or "").removeprefix("anomaly.")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
