"""The PostgreSQL sink (asyncpg pool): queryable columns plus the whole record as ``jsonb``.

Traces go to ``<table>`` keyed by ``request_id``; feedback records (``wardgate.feedback/1``) go to
``<table>_feedback`` keyed by a digest of their content, since one request may get several. Both
inserts use ``ON CONFLICT DO NOTHING``, so a batch delivered twice (its reply lost, then retried from
the spill file) leaves one row per record. Retention deletes rows older than ``retention_days`` once
at open and then every ``retention_interval_s`` in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import structlog

from wardgate.sinks.protocol import Record

__all__ = ["FEEDBACK_SCHEMA", "PostgresSink", "query_traces"]

FEEDBACK_SCHEMA = "wardgate.feedback/1"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_log = structlog.get_logger("wardgate.sinks")


class PostgresSink:
    """Inserts batches into ``<table>`` and ``<table>_feedback``, creating them on open."""

    def __init__(self, dsn: str, *, table: str = "wardgate_traces", retention_days: float | None = 30,
                 name: str = "postgres", timeout_s: float = 10.0,
                 retention_interval_s: float = 3600.0) -> None:
        self.name = name
        self.table = _identifier(table)
        self._feedback = _identifier(f"{table}_feedback")
        self._dsn = dsn
        self._retention = timedelta(days=retention_days) if retention_days else None
        self._retention_interval = retention_interval_s
        self._timeout = timeout_s
        self._pool: asyncpg.Pool | None = None
        self._janitor: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=2, timeout=self._timeout,
                                         command_timeout=self._timeout)
        try:
            async with pool.acquire() as conn:
                await conn.execute(_ddl(self.table, self._feedback))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        if self._retention is not None:
            await self._purge_logged()
            self._janitor = asyncio.create_task(self._retain_forever(), name=f"wardgate-{self.name}-retention")

    async def write(self, records: list[Record]) -> None:
        if self._pool is None:
            raise RuntimeError("postgres sink is not open")
        traces, feedback = [], []
        for record in records:
            if record.get("schema") == FEEDBACK_SCHEMA:
                feedback.append(_feedback_row(record))
            else:
                traces.append(_trace_row(record))
        async with self._pool.acquire() as conn, conn.transaction():
            if traces:
                await conn.executemany(
                    f'INSERT INTO {self.table} (request_id, time, team, key_id, "user", session_id, '
                    "model, route, status, outcome, schema, record) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb) ON CONFLICT DO NOTHING",
                    traces)
            if feedback:
                await conn.executemany(
                    f"INSERT INTO {self._feedback} (id, request_id, time, team, score, source, record) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT DO NOTHING", feedback)

    async def purge(self) -> int:
        """Delete rows older than the retention period now; return how many went."""
        if self._pool is None or self._retention is None:
            return 0
        cutoff = datetime.now(UTC) - self._retention
        deleted = 0
        async with self._pool.acquire() as conn:
            for table in (self.table, self._feedback):
                status = await conn.execute(f"DELETE FROM {table} WHERE time < $1", cutoff)
                deleted += int(status.rsplit(" ", 1)[-1])
        return deleted

    async def close(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._janitor
            self._janitor = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _retain_forever(self) -> None:
        while True:
            await asyncio.sleep(self._retention_interval)
            await self._purge_logged()

    async def _purge_logged(self) -> None:
        try:
            await self.purge()
        except Exception as exc:  # noqa: BLE001 - retention is best effort; next round retries
            _log.warning("retention_failed", sink=self.name, error=repr(exc))

async def query_traces(dsn: str, table: str = "wardgate_traces", *, team: str | None = None,
                       outcome: str | None = None, since: datetime | str | None = None,
                       limit: int = 100) -> list[Record]:
    """Newest trace records first, filtered by team, outcome and time (for the CLI)."""
    clauses, args = [], []
    for column, value in (("team", team), ("outcome", outcome)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if since is not None:
        args.append(_parse_time(since) if isinstance(since, str) else _aware(since))
        clauses.append(f"time >= ${len(args)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(max(int(limit), 0))
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT record FROM {_identifier(table)} {where} ORDER BY time DESC LIMIT ${len(args)}", *args)
    finally:
        await conn.close()
    return [orjson.loads(row["record"]) for row in rows]


def _ddl(table: str, feedback: str) -> str:
    bare, fbare = table.rsplit(".", 1)[-1], feedback.rsplit(".", 1)[-1]
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        request_id text PRIMARY KEY, time timestamptz NOT NULL, team text, key_id text, "user" text,
        session_id text, model text, route text, status integer, outcome text, schema text,
        record jsonb NOT NULL);
    CREATE INDEX IF NOT EXISTS {bare}_team_time_idx ON {table} (team, time);
    CREATE INDEX IF NOT EXISTS {bare}_outcome_time_idx ON {table} (outcome, time);
    CREATE INDEX IF NOT EXISTS {bare}_time_idx ON {table} (time);
    CREATE TABLE IF NOT EXISTS {feedback} (
        id text PRIMARY KEY, request_id text, time timestamptz NOT NULL, team text,
        score double precision, source text, record jsonb NOT NULL);
    CREATE INDEX IF NOT EXISTS {fbare}_request_idx ON {feedback} (request_id);
    CREATE INDEX IF NOT EXISTS {fbare}_team_time_idx ON {feedback} (team, time);
    """


def _trace_row(record: Record) -> tuple[Any, ...]:
    text = _json(record)
    request_id = _text(record.get("request_id")) or "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    status = record.get("status")
    return (request_id, _time_of(record), _text(record.get("team")), _text(record.get("key_id")),
            _text(record.get("user")), _text(record.get("session_id")), _text(record.get("model")),
            _text(record.get("route")), status if type(status) is int else None,
            _text(record.get("outcome")), _text(record.get("schema")), text)


def _feedback_row(record: Record) -> tuple[Any, ...]:
    text = _json(record, sort=True)
    score = record.get("score")
    return (hashlib.sha256(text.encode()).hexdigest(), _text(record.get("request_id")), _time_of(record),
            _text(record.get("team")), float(score) if isinstance(score, int | float) else None,
            _text(record.get("source")), text)


def _json(record: Record, *, sort: bool = False) -> str:
    text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS if sort else 0)
    if b"\\u0000" in text:
        # PostgreSQL text and jsonb cannot hold U+0000; one NUL must not poison the batch forever.
        text = orjson.dumps(_strip_nul(record), option=orjson.OPT_SORT_KEYS if sort else 0)
    return text.decode()


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value).replace("\x00", "")


def _time_of(record: Record) -> datetime:
    value = record.get("time")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _parse_time(value)
    return datetime.now(UTC)


def _parse_time(value: str) -> datetime:
    return _aware(datetime.fromisoformat(value))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _identifier(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name
