from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.sinks import trace_record
from wardgate.sinks import PostgresSink, build_sink, query_traces


@pytest.fixture
async def table(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"wardgate_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f"DROP TABLE IF EXISTS {name}, {name}_feedback")
    await conn.close()


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


def _feedback(request_id: str, score: float, source: str = "api") -> dict:
    return {"schema": "wardgate.feedback/1", "request_id": request_id, "team": "search",
            "time": "2026-11-24T10:05:00Z", "score": score, "comment": None, "labels": [], "source": source}


async def test_roundtrip_and_query_by_team_outcome_and_time(postgres_dsn: str, table: str) -> None:
    sink = build_sink({"type": "postgres", "dsn": postgres_dsn, "table": table, "retention_days": None})
    await sink.open()
    records = [
        trace_record(0, team="search", outcome="served", time="2026-11-24T10:00:00.000Z"),
        trace_record(1, team="search", outcome="blocked", time="2026-11-24T11:00:00.000Z"),
        trace_record(2, team="ads", outcome="served", time="2026-11-24T12:00:00.000Z"),
        trace_record(3, team=None, outcome="error", time="2026-11-24T13:00:00.000Z"),
    ]
    await sink.write(records)
    await sink.close()

    assert await query_traces(postgres_dsn, table) == records[::-1]
    assert [r["request_id"] for r in await query_traces(postgres_dsn, table, team="search")] == \
        ["r-000001", "r-000000"]
    assert [r["request_id"] for r in await query_traces(postgres_dsn, table, outcome="served")] == \
        ["r-000002", "r-000000"]
    since = datetime(2026, 11, 24, 11, 30, tzinfo=UTC)
    assert [r["request_id"] for r in await query_traces(postgres_dsn, table, since=since)] == \
        ["r-000003", "r-000002"]
    assert [r["request_id"] for r in await query_traces(
        postgres_dsn, table, team="search", outcome="served", since="2026-11-24T09:00:00Z", limit=5)] == \
        ["r-000000"]
    assert len(await query_traces(postgres_dsn, table, limit=2)) == 2


async def test_a_redelivered_batch_is_not_duplicated(postgres_dsn: str, table: str) -> None:
    sink = PostgresSink(postgres_dsn, table=table)
    await sink.open()
    batch = [trace_record(i) for i in range(50)] + [_feedback("r-000001", 1.0), _feedback("r-000001", 0.0)]
    await sink.write(batch)
    await sink.write(batch)  # the reply was lost, the writer retried from the spill file
    await sink.write([trace_record(50), _feedback("r-000002", 1.0, source="rephrase")])
    await sink.close()
    assert await _count(postgres_dsn, table) == 51
    assert await _count(postgres_dsn, f"{table}_feedback") == 3


async def test_columns_are_queryable_and_nul_characters_do_not_poison_a_batch(
        postgres_dsn: str, table: str) -> None:
    sink = PostgresSink(postgres_dsn, table=table)
    await sink.open()
    poisoned = trace_record(1)
    poisoned["response"] = {"content": "a\x00b"}
    await sink.write([trace_record(0), poisoned])
    await sink.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        row = await conn.fetchrow(
            f'SELECT team, key_id, "user", model, route, status, outcome, schema, '
            f"record->'response'->>'content' AS content FROM {table} WHERE request_id = 'r-000001'")
    finally:
        await conn.close()
    assert dict(row) == {"team": "search", "key_id": "search-prod", "user": "u-1", "model": "gpt-4o-mini",
                         "route": "/v1/chat/completions", "status": 200, "outcome": "served",
                         "schema": "wardgate.trace/1", "content": "ab"}


async def test_retention_deletes_old_rows(postgres_dsn: str, table: str) -> None:
    sink = PostgresSink(postgres_dsn, table=table, retention_days=30)
    await sink.open()
    now = datetime.now(UTC)
    await sink.write([trace_record(0, time="2020-01-01T00:00:00Z"),
                      trace_record(1, time=now.isoformat()),
                      {**_feedback("r-000000", 1.0), "time": "2020-01-01T00:00:00Z"}])
    assert await sink.purge() == 2
    await sink.close()
    assert [r["request_id"] for r in await query_traces(postgres_dsn, table)] == ["r-000001"]


def test_rejects_a_table_name_that_is_not_an_identifier() -> None:
    with pytest.raises(ValueError):
        PostgresSink("postgresql://x", table="traces; DROP TABLE users")
