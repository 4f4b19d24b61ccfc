"""Cost of writing a trace on the request path: ``Recorder.record()`` per request, with each sink type.

    .venv/bin/python bench/trace_cost.py [--requests 20000] [--redis-url ...] [--postgres-dsn ...]

``record()`` is everything the request path pays once the answer is sent: the anomaly check, the
SPEC §4 record (``build_record``), ``SinkWriter.submit``, the Prometheus metrics and the implicit
feedback tracker. Each scenario builds realistic finished exchanges (chat, 4 messages, tool call,
verdicts, spans, usage), times every ``record()`` call while the sink delivers in the background
(the loop yields every 16 requests), and prints p50/p99 in µs beside ``build_record`` alone.
Target (issue 5): p50 <= 200 µs with every sink.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from wardgate.config.schema import ModelConfig, PolicyConfig
from wardgate.exchange import (
    Action,
    Exchange,
    Outcome,
    Redaction,
    Span,
    ToolCall,
    Verdict,
)
from wardgate.metrics import Metrics
from wardgate.recorder import Recorder
from wardgate.sinks import (
    HttpSink,
    JsonlSink,
    PostgresSink,
    RedisStreamSink,
    Sink,
    SinkWriter,
)
from wardgate.trace import build_record

from sink_writer import collector  # bench/ is on sys.path when a bench script runs

_STAGES = ("authenticate", "parse", "route", "secrets", "pii", "injection", "output", "tool_calls", "loops", "budget")
_POLICY = PolicyConfig()
_MODEL = ModelConfig(upstream="openai")


def _exchange(i: int) -> Exchange:
    ex = Exchange(request_id=f"req_{uuid.uuid4().hex[:24]}", route="/v1/chat/completions",
                  headers={"x-wardgate-session": f"s-{i % 200}"})
    ex.team_name, ex.policy, ex.model, ex.model_alias = f"team-{i % 4}", _POLICY, _MODEL, "gpt-4o-mini"
    ex.session_id, ex.user, ex.trace_id = f"s-{i % 200}", f"u-{i % 50}", uuid.uuid4().hex
    ex.upstream_name, ex.upstream_model, ex.stream = "openai", "gpt-4o-mini", i % 2 == 0
    ex.body = {"model": "gpt-4o-mini", "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a support assistant for a shop. Answer briefly. " * 3},
        {"role": "user", "content": f"Where is my order {i}? I ordered it last week for <EMAIL_ADDRESS_1>."},
        {"role": "assistant", "content": "Let me check that for you."},
        {"role": "user", "content": "Please hurry, it was a gift. " * 4}],
        "tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": {
            "type": "object", "properties": {"order_id": {"type": "string"}}}}}]}
    ex.response.status, ex.response.complete, ex.response.finish_reason = 200, True, "stop"
    ex.response.text = "Your order shipped on Monday and should arrive by Thursday. " * 4
    ex.response.tool_calls = [ToolCall(0, "call_1", "lookup_order", '{"order_id": "A-1234"}')]
    ex.response.usage = {"prompt_tokens": 180 + i % 40, "completion_tokens": 60 + i % 15, "total_tokens": 250}
    ex.cost_usd, ex.upstream_ms, ex.ttft_ms = 0.00012, 420.0 + i % 50, 180.0
    ex.attempts = [{"model": "gpt-4o-mini", "upstream": "openai", "upstream_model": "gpt-4o-mini", "status": 200,
                    "ms": 420.0}]
    ex.spans = [Span(s, p, 0.02, Action.ALLOW) for p in ("request", "response") for s in _STAGES]
    ex.verdicts = [Verdict(Action.FLAG, "pii.redacted", "personal data redacted: EMAIL_ADDRESS", score=1.0, stage="pii")]
    ex.redactions = [Redaction("EMAIL_ADDRESS", 1, "input")]
    ex.outcome, ex.status, ex.tags, ex.prompt_ref = Outcome.SERVED, 200, {"feature": "support"}, "support@v3"
    return ex


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def _scenario(label: str, sink: Sink, n: int, spill: Path) -> None:
    writer = SinkWriter([sink], spill_dir=spill)
    await writer.start()
    recorder = Recorder(writer, Metrics())
    exchanges = [_exchange(i) for i in range(n)]
    build, whole = [], []
    for i, ex in enumerate(exchanges):
        started = time.perf_counter_ns()
        build_record(ex, 500.0)
        build.append((time.perf_counter_ns() - started) / 1000)
    for i, ex in enumerate(exchanges):
        ex.verdicts = ex.verdicts[:1]
        started = time.perf_counter_ns()
        recorder.record(ex, 500.0 + i % 37)
        whole.append((time.perf_counter_ns() - started) / 1000)
        if i % 16 == 15:
            await asyncio.sleep(0)  # let the sink deliver, as it would between requests
    closing = time.perf_counter()
    await writer.close(timeout_s=60)
    stats = writer.stats()[sink.name]
    print(f"{label:<14} record() p50 {statistics.median(whole):6.1f} µs  p99 {_pct(whole, 99):6.1f} µs   "
          f"build_record p50 {statistics.median(build):6.1f} µs   close {time.perf_counter() - closing:5.2f} s   "
          f"delivered {stats['delivered']} dropped {stats['dropped']}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    runner, url = await collector()
    table = f"wg_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scenarios: list[tuple[str, Sink]] = [
            ("jsonl", JsonlSink(root / "traces.jsonl")),
            ("redis_stream", RedisStreamSink(args.redis_url, stream=f"wg-bench-{uuid.uuid4().hex[:8]}", maxlen=50_000)),
            ("postgres", PostgresSink(args.postgres_dsn, table=table, retention_days=None)),
            ("http", HttpSink(url)),
        ]
        for label, sink in scenarios:
            try:
                await _scenario(label, sink, args.requests, root / f"spill-{label}")
            except OSError as exc:
                print(f"{label:<14} skipped: {exc}")
    await runner.cleanup()
    try:
        conn = await asyncpg.connect(args.postgres_dsn)
        await conn.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_feedback")
        await conn.close()
    except OSError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
