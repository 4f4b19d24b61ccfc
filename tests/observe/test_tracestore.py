"""Reading traces back: jsonl files with their rotated siblings, and the PostgreSQL sink; every filter."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from wardgate.cli import main
from wardgate.sinks import JsonlSink, PostgresSink
from wardgate.tracestore import (
    JsonlTraceStore,
    PostgresTraceStore,
    TraceQuery,
    parse_since,
)


def _trace(n: int, *, team: str = "search", outcome: str = "served", verdicts=(), tags=None, age_s: float = 0) -> dict:
    when = datetime.now(UTC) - timedelta(seconds=age_s)
    return {"schema": "wardgate.trace/1", "request_id": f"req_{n}", "team": team, "outcome": outcome,
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "status": 200,
            "verdicts": [dict(v) for v in verdicts], "tags": tags or {}, "model": "m", "route": "/v1/chat/completions"}


def _feedback(request_id: str, score: float, source: str = "api") -> dict:
    return {"schema": "wardgate.feedback/1", "request_id": request_id, "team": "search", "score": score,
            "time": datetime.now(UTC).isoformat(), "comment": None, "labels": [], "source": source}


FLAG_TOOL = {"stage": "tool_calls", "action": "flag", "code": "tool_calls.schema_violation"}
ANOMALY = {"stage": "anomaly", "action": "flag", "code": "anomaly.latency_ms"}
RECORDS = [
    _trace(1, age_s=7200, verdicts=[FLAG_TOOL]),
    _trace(2, team="other", outcome="blocked", age_s=30, verdicts=[{"stage": "injection", "action": "block", "code": "injection.x"}]),
    _trace(3, tags={"feature": "search"}, age_s=20, verdicts=[ANOMALY]),
    _trace(4, tags={"feature": "chat"}, age_s=10),
    _feedback("req_3", -1.0), _feedback("req_4", 1.0), _feedback("req_1", -1.0, source="rephrase"),
]
QUERIES = {
    TraceQuery(): ["req_4", "req_3", "req_2", "req_1"],
    TraceQuery(team="search"): ["req_4", "req_3", "req_1"],
    TraceQuery(outcome="blocked"): ["req_2"],
    TraceQuery(stage="tool_calls"): ["req_1"],
    TraceQuery(tags=(("feature", "search"),)): ["req_3"],
    TraceQuery(anomaly=True): ["req_3"],
    TraceQuery(feedback="negative"): ["req_3", "req_1"],
    TraceQuery(feedback="positive"): ["req_4"],
    TraceQuery(since=parse_since("1h")): ["req_4", "req_3", "req_2"],
    TraceQuery(limit=2): ["req_4", "req_3"],
}


async def test_jsonl_store_reads_rotated_files_and_filters(tmp_path):
    sink = JsonlSink(tmp_path / "traces.jsonl", max_bytes=400)  # forces several rotations
    await sink.open()
    for record in RECORDS:
        await sink.write([record])
        await asyncio.sleep(0.01)  # distinct mtimes: newest file last
    await sink.close()
    assert sink.rotated_files()
    old = min(sink.rotated_files(), key=lambda p: p.stat().st_mtime)
    assert b'"req_1"' in old.read_bytes()
    os.utime(old, (time.time() - 3 * 3600, time.time() - 3 * 3600))  # last written hours ago: --since skips it
    store = JsonlTraceStore(tmp_path / "traces.jsonl")
    assert old not in store.files(parse_since("1h")) and old in store.files()
    for query, expected in QUERIES.items():
        assert [r["request_id"] for r in await store.find(query)] == expected, query
    assert (await store.get("req_2"))["outcome"] == "blocked"
    assert [f["source"] for f in await store.feedback("req_1")] == ["rephrase"]
    assert await store.get("req_nope") is None


async def test_postgres_store_filters_in_sql_and_the_cli_reads_it(postgres_dsn, tmp_path, capsys):
    table = f"wg_obs_{uuid.uuid4().hex[:10]}"
    sink = PostgresSink(postgres_dsn, table=table)
    await sink.open()
    try:
        await sink.write(RECORDS)
        store = PostgresTraceStore(postgres_dsn, table)
        for query, expected in QUERIES.items():
            assert [r["request_id"] for r in await store.find(query)] == expected, query
        assert (await store.get("req_3"))["tags"] == {"feature": "search"}
        assert [f["score"] for f in await store.feedback("req_3")] == [-1.0]
        config = tmp_path / "gw.yaml"
        config.write_text(f"version: 1\nsinks:\n  - {{type: postgres, dsn: '{postgres_dsn}', table: {table}}}\n")
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["traces", "--config", str(config), "--stage", "tool_calls", "--json"])
        lines = capsys.readouterr().out.splitlines()
        assert code == 0 and [orjson.loads(x)["request_id"] for x in lines] == ["req_1"]
        code = await asyncio.to_thread(main, ["show", "req_1", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0 and "feedback: -1.0 (rephrase)" in out and "tool_calls flagged" in out
    finally:
        async with sink._pool.acquire() as conn:  # type: ignore[union-attr]
            await conn.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_feedback")
        await sink.close()


def test_since_spans_and_iso_times():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-11-24T10:00:00Z") == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-24T10:00:00") == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_cli_traces_needs_a_source(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WARDGATE_CONFIG", raising=False)
    assert main(["traces"]) == 2
    assert "--path" in capsys.readouterr().err


def test_lines_that_are_not_our_records_are_skipped_and_a_malformed_field_is_named(tmp_path, capsys):
    path = tmp_path / "traces.jsonl"
    odd_containers = {"schema": "wardgate.trace/1", "request_id": "req_odd", "verdicts": "x", "timings_ms": "x"}
    odd_scalars = {**_trace(2), "request_id": "req_scalars", "spans": [{"stage": "parse", "ms": "x"}]}
    lines = [orjson.dumps(_trace(1)), b"not json", b"[1, 2]", orjson.dumps({"request_id": None}),
             orjson.dumps(odd_containers), orjson.dumps(odd_scalars)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["traces", "--path", str(path), "--stage", "parse", "--anomaly"]) == 0
    assert main(["traces", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "req_1" in out and "req_scalars" in out and "req_odd" not in out
    assert main(["show", "--path", str(path), "req_scalars"]) == 2
    err = capsys.readouterr().err
    assert "malformed field" in err and "--json" in err and "Traceback" not in err
    assert main(["show", "--path", str(path), "--json", "req_scalars"]) == 0
    assert main(["show", "--path", str(path), "req_odd"]) == 2  # skipped: "no trace"
