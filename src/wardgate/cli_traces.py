"""The failure loop on the command line: ``traces``, ``show``, ``cases add``, ``replay`` (SPEC §1, issue 5).

``traces``, ``show`` and ``cases add`` read the configured sinks (``--config``, same default as
``serve``: the PostgreSQL sink if there is one, else the jsonl file) or ``--path FILE.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from wardgate.cases import add_case, case_from_trace, load_cases, parse_expect
from wardgate.config import ConfigError, load_config
from wardgate.trace_view import render_trace
from wardgate.tracestore import (
    JsonlTraceStore,
    TraceQuery,
    TraceStore,
    parse_since,
    store_for,
)

__all__ = ["register"]


class _Fail(Exception):
    """A one-line error for the user; exit 2."""


def _store(args: argparse.Namespace) -> TraceStore:
    path = getattr(args, "path", None)
    config_path = args.config or os.environ.get("WARDGATE_CONFIG") or ("policies" if Path("policies").is_dir() else None)
    if path:
        return JsonlTraceStore(path)
    if config_path is None:
        raise _Fail("no config found: give --config PATH or --path FILE.jsonl")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _Fail(str(exc)) from None
    try:
        return store_for(config)
    except ValueError as exc:
        raise _Fail(str(exc)) from None


def _query(args: argparse.Namespace) -> TraceQuery:
    tags = []
    for tag in args.tag or ():
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise _Fail(f"--tag {tag!r}: expected key=value")
        tags.append((key, value))
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise _Fail(str(exc)) from None
    return TraceQuery(team=args.team, outcome=args.outcome, stage=args.stage, tags=tuple(tags), since=since,
                      anomaly=args.anomaly, feedback=args.feedback, limit=args.limit)


def _summary(record: dict[str, Any]) -> str:
    flags = ",".join(f"{v.get('code')}:{v.get('action')}" for v in record.get("verdicts") or ()
                     if v.get("code") not in ("pii.redacted",)) or "-"
    total = (record.get("timings_ms") or {}).get("total")
    ms = f"{total:.0f}ms" if isinstance(total, int | float) else "-"
    return (f"{record.get('time', '-')}  {record.get('request_id')}  {record.get('team') or '-'}  "
            f"{record.get('model') or '-'}  {record.get('status')}  {record.get('outcome')}  {ms}  {flags}")


async def _traces(args: argparse.Namespace) -> int:
    records = await _store(args).find(_query(args))
    for record in records:
        print(orjson.dumps(record).decode() if args.json else _summary(record))
    if not args.json:
        print(f"{len(records)} trace(s)", file=sys.stderr)
    return 0


async def _show(args: argparse.Namespace) -> int:
    store = _store(args)
    record = await store.get(args.id)
    if record is None:
        raise _Fail(f"no trace {args.id!r}")
    feedback = await store.feedback(args.id)
    if args.json:
        print(orjson.dumps({"trace": record, "feedback": feedback}, option=orjson.OPT_INDENT_2).decode())
        return 0
    try:
        text = render_trace(record, feedback)
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type: not a record we wrote
        raise _Fail(f"trace {args.id!r} has a malformed field ({exc}); `wardgate show --json {args.id}` prints it "
                    "as stored") from None
    print(text)
    return 0


async def _cases_add(args: argparse.Namespace) -> int:
    try:
        expect = [parse_expect(e) for e in args.expect or ()]
    except Exception as exc:  # noqa: BLE001 - a bad --expect or regex is a usage error
        raise _Fail(str(exc)) from None
    record = await _store(args).get(args.id)
    if record is None:
        raise _Fail(f"no trace {args.id!r}")
    try:
        case = case_from_trace(record, args.label, expect)
        path = add_case(case, args.dir)
    except ValueError as exc:
        raise _Fail(str(exc)) from None
    print(f"{case.id} added to {path}: expects {', '.join(e.describe() for e in case.expect)}")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    from wardgate.replay import replay_cases

    try:
        cases = load_cases(args.cases)
    except ValueError as exc:
        raise _Fail(str(exc)) from None
    if not cases:
        raise _Fail(f"no cases in {args.cases}")
    admin_key = args.admin_key or os.environ.get("WARDGATE_ADMIN_KEY") or None
    results = await replay_cases(cases, args.gateway, args.key, model=args.model, admin_key=admin_key,
                                 concurrency=args.concurrency, timeout_s=args.timeout)
    failed = skipped = unreachable = 0
    for got in results:
        if got.transport_error:
            unreachable += 1
        mark = "FAIL" if got.failures else "ok  "
        print(f"{mark} {got.case.id} [{got.case.label}] -> {got.request_id or '-'} {got.outcome or '-'}")
        for line in got.failures:
            print(f"       {line}")
        for line in got.skipped:
            print(f"       skipped {line}")
        failed += bool(got.failures)
        skipped += len(got.skipped)
    print(f"{len(results)} case(s): {len(results) - failed} passed, {failed} failed, {skipped} check(s) skipped")
    if failed > unreachable:
        return 1
    return 2 if unreachable else 0


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except _Fail as exc:
            print(f"wardgate: {exc}", file=sys.stderr)
            return 2
    return run


def _source(parser: argparse.ArgumentParser, path: bool = True) -> None:
    parser.add_argument("--config", help="read the sinks of this config (default: $WARDGATE_CONFIG, ./policies)")
    if path:
        parser.add_argument("--path", help="read this jsonl file (and its rotated siblings)")


def register(sub: Any) -> None:
    """Add ``traces``, ``show``, ``cases`` and ``replay`` to the CLI's sub-parsers."""
    traces = sub.add_parser("traces", help="list traces, newest first")
    _source(traces)
    traces.add_argument("--team")
    traces.add_argument("--outcome", choices=("served", "blocked", "error"))
    traces.add_argument("--stage", help="only traces where this stage flagged or blocked")
    traces.add_argument("--tag", action="append", help="k=v (repeatable)")
    traces.add_argument("--since", help="30m, 1h, 2d or an ISO time")
    traces.add_argument("--anomaly", action="store_true", help="only traces with an anomaly flag")
    traces.add_argument("--feedback", choices=("negative", "positive", "any"))
    traces.add_argument("--limit", type=int, default=50)
    traces.add_argument("--json", action="store_true", help="one JSON record per line")
    traces.set_defaults(func=_run(_traces))

    show = sub.add_parser("show", help="one exchange as a pipeline, and where it went wrong")
    show.add_argument("id")
    _source(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_run(_show))

    cases = sub.add_parser("cases", help="the failure library")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    add = cases_sub.add_parser("add", help="turn a trace into a case")
    add.add_argument("id")
    add.add_argument("--label", required=True)
    add.add_argument("--expect", action="append", help="valid-tool-calls, no-verdict[:STAGE], verdict:STAGE[:CODE], "
                     "same-verdicts, outcome:X, contains:TEXT, not-contains:TEXT, matches:REGEX (repeatable)")
    add.add_argument("--dir", default="cases", help="the library folder (default ./cases)")
    _source(add)
    add.set_defaults(func=_run(_cases_add))

    replay = sub.add_parser("replay", help="send the cases again and compare; exit 1 on a regression")
    replay.add_argument("cases", help="a cases folder or file")
    replay.add_argument("--gateway", required=True, help="the gateway URL, e.g. http://127.0.0.1:8400")
    replay.add_argument("--key", required=True, help="a team key")
    replay.add_argument("--model", help="send every case to this model instead")
    replay.add_argument("--admin-key", help="read each replay's trace to compare flags too (default $WARDGATE_ADMIN_KEY)")
    replay.add_argument("--concurrency", type=int, default=4)
    replay.add_argument("--timeout", type=float, default=120.0)
    replay.set_defaults(func=_run(_replay))
