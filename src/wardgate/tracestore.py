"""Reading traces back: from a jsonl sink's files (live and rotated) or from the PostgreSQL sink.

Used by the CLI (``wardgate traces``/``show``/``cases add``), the admin API and the feedback route's
ownership check. Feedback records (``wardgate.feedback/1``) live beside the traces and are joined by
``request_id``; implicit signals (``rephrase``, ``abandon``) count as negative feedback.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from wardgate.config.schema import Config
from wardgate.sinks.postgres import FEEDBACK_SCHEMA
from wardgate.sinks.protocol import Record

__all__ = ["JsonlTraceStore", "PostgresTraceStore", "TraceQuery", "TraceStore", "feedback_kind", "parse_since",
           "store_for"]

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` back from now, or an ISO 8601 time (UTC if no zone)."""
    match = _SPAN.match(text.strip().lower())
    if match:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since: expected a span like 30m, 1h, 2d or an ISO time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def feedback_kind(record: Record) -> str:
    """``negative`` (a score below 0, or an implicit signal), ``positive`` (above 0) or ``neutral``."""
    if record.get("source") not in (None, "api"):
        return "negative"
    score = record.get("score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        return "negative" if score < 0 else "positive" if score > 0 else "neutral"
    return "neutral"


def _time(record: Record) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_SHAPES: tuple[tuple[str, type], ...] = (("verdicts", list), ("spans", list), ("redactions", list),
                                         ("attempts", list), ("timings_ms", dict), ("tags", dict))


def well_formed(record: Any) -> bool:
    """A record the trace tools can read: an object with a string ``request_id``, and lists of objects
    and objects where the schema has them. Anything else in a sink's file (a hand edit, another
    program's line) is skipped rather than breaking ``wardgate traces`` or the admin API."""
    if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
        return False
    for name, kind in _SHAPES:
        value = record.get(name)
        if value is not None and not (isinstance(value, kind)
                                      and (kind is dict or all(isinstance(v, dict) for v in value))):
            return False
    return True


@dataclass(frozen=True, slots=True)
class TraceQuery:
    team: str | None = None
    outcome: str | None = None
    stage: str | None = None
    """Traces in which this stage flagged or blocked (its verdict is in the record)."""
    tags: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    anomaly: bool = False
    feedback: str | None = None
    """``negative``, ``positive`` or ``any``: traces with such feedback."""
    limit: int = 50

    def matches(self, record: Record, feedback: list[Record]) -> bool:
        verdicts = record.get("verdicts") or []
        tags = record.get("tags") or {}
        if self.team is not None and record.get("team") != self.team:
            return False
        if self.outcome is not None and record.get("outcome") != self.outcome:
            return False
        if self.stage is not None and not any(v.get("stage") == self.stage for v in verdicts):
            return False
        if any(tags.get(k) != v for k, v in self.tags):
            return False
        if self.anomaly and not any(v.get("stage") == "anomaly" for v in verdicts):
            return False
        if self.since is not None and ((t := _time(record)) is None or t < self.since):
            return False
        if self.feedback is not None:
            kinds = {feedback_kind(f) for f in feedback}
            return bool(kinds) if self.feedback == "any" else self.feedback in kinds
        return True


class TraceStore(Protocol):
    async def find(self, query: TraceQuery) -> list[Record]:
        """Matching trace records, newest first, at most ``query.limit``."""
        ...

    async def get(self, request_id: str) -> Record | None: ...

    async def feedback(self, request_id: str) -> list[Record]: ...


class JsonlTraceStore:
    """The live file and its rotated siblings (``<stem>-YYYYMMDD-HHMMSS[-N]<suffix>``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rotated = re.compile(
            re.escape(self.path.stem) + r"-\d{8}-\d{6}(?:-\d+)?" + re.escape(self.path.suffix) + r"\Z")

    def files(self, since: datetime | None = None) -> list[Path]:
        """Newest first; rotated files last written before ``since`` hold nothing newer and are skipped."""
        if not self.path.parent.is_dir():
            return []
        found = [p for p in self.path.parent.iterdir() if self._rotated.match(p.name)]
        if self.path.exists():
            found.append(self.path)
        stamped = []
        for p in found:
            try:
                stamped.append((p.stat().st_mtime, p))
            except FileNotFoundError:  # retention removed it meanwhile
                continue
        cutoff = since.timestamp() if since else None
        return [p for mtime, p in sorted(stamped, reverse=True) if cutoff is None or mtime >= cutoff]

    def _records(self, since: datetime | None = None) -> tuple[list[Record], dict[str, list[Record]]]:
        traces: list[Record] = []
        feedback: dict[str, list[Record]] = {}
        for path in self.files(since):
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            for line in reversed(lines):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line while the sink writes
                if not well_formed(record):
                    continue
                if record.get("schema") == FEEDBACK_SCHEMA:
                    feedback.setdefault(str(record.get("request_id")), []).insert(0, record)
                else:
                    traces.append(record)
        return traces, feedback

    def _find(self, query: TraceQuery) -> list[Record]:
        traces, feedback = self._records(query.since)
        out = []
        for record in traces:
            if query.matches(record, feedback.get(str(record.get("request_id")), [])):
                out.append(record)
                if len(out) >= query.limit:
                    break
        return out

    async def find(self, query: TraceQuery) -> list[Record]:
        return await asyncio.to_thread(self._find, query)

    async def get(self, request_id: str) -> Record | None:
        traces, _ = await asyncio.to_thread(self._records)
        return next((r for r in traces if r.get("request_id") == request_id), None)

    async def feedback(self, request_id: str) -> list[Record]:
        _, feedback = await asyncio.to_thread(self._records)
        return feedback.get(request_id, [])


_NEGATIVE_SQL = "(f.score < 0 OR f.source IN ('rephrase', 'abandon'))"
_POSITIVE_SQL = "(f.score > 0 AND f.source = 'api')"


class PostgresTraceStore:
    """The PostgreSQL sink's ``<table>`` and ``<table>_feedback`` (see ``sinks/postgres.py``)."""

    def __init__(self, dsn: str, table: str = "wardgate_traces") -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", table):
            raise ValueError(f"not a plain SQL identifier: {table!r}")
        self._dsn = dsn
        self._table = table
        self._feedback = f"{table}_feedback"

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def find(self, query: TraceQuery) -> list[Record]:
        clauses, args = [], []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.team is not None:
            clauses.append(f"t.team = {arg(query.team)}")
        if query.outcome is not None:
            clauses.append(f"t.outcome = {arg(query.outcome)}")
        if query.since is not None:
            clauses.append(f"t.time >= {arg(query.since)}")
        if query.stage is not None:
            clauses.append(f"t.record->'verdicts' @> {arg(orjson.dumps([{'stage': query.stage}]).decode())}::jsonb")
        if query.tags:
            clauses.append(f"t.record->'tags' @> {arg(orjson.dumps(dict(query.tags)).decode())}::jsonb")
        if query.anomaly:
            clauses.append("""t.record->'verdicts' @> '[{"stage": "anomaly"}]'::jsonb""")
        if query.feedback is not None:
            kind = {"negative": f" AND {_NEGATIVE_SQL}", "positive": f" AND {_POSITIVE_SQL}"}.get(query.feedback, "")
            clauses.append(f"EXISTS (SELECT 1 FROM {self._feedback} f WHERE f.request_id = t.request_id{kind})")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._fetch(f"SELECT t.record FROM {self._table} t {where} ORDER BY t.time DESC "
                                 f"LIMIT {arg(max(int(query.limit), 0))}", *args)
        return [orjson.loads(row["record"]) for row in rows]

    async def get(self, request_id: str) -> Record | None:
        rows = await self._fetch(f"SELECT record FROM {self._table} WHERE request_id = $1", request_id)
        return orjson.loads(rows[0]["record"]) if rows else None

    async def feedback(self, request_id: str) -> list[Record]:
        rows = await self._fetch(f"SELECT record FROM {self._feedback} WHERE request_id = $1 ORDER BY time",
                                 request_id)
        return [orjson.loads(row["record"]) for row in rows]


def store_for(config: Config, path: str | Path | None = None) -> TraceStore:
    """``path`` if given, else the configured PostgreSQL sink (queryable), else the first jsonl sink."""
    if path is not None:
        return JsonlTraceStore(path)
    for sink in config.sinks:
        if sink.type == "postgres":
            return PostgresTraceStore(sink.dsn, sink.table)
    for sink in config.sinks:
        if sink.type == "jsonl":
            return JsonlTraceStore(sink.path)
    raise ValueError("no jsonl or postgres sink is configured to read traces from (give --path FILE.jsonl)")
