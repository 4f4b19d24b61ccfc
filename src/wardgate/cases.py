"""The failure library: traces turned into cases (``cases/<label>.jsonl``) that ``wardgate replay`` re-runs.

A case holds the request (as the trace logged it), what happened (outcome, verdicts, tool calls) and
what should happen (expectations). Without ``--expect`` the expectations follow from the failure:
an answer a response guardrail flagged or blocked should pass it next time (and its tool calls be
valid), while a request an input guardrail caught should be caught again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from wardgate.sinks.protocol import Record

__all__ = ["CASE_SCHEMA", "GUARDRAIL_STAGES", "Case", "Expectation", "add_case", "case_from_trace",
           "default_expectations", "load_cases", "parse_expect"]

CASE_SCHEMA = "wardgate.case/1"
_CHECKS = ("valid_tool_calls", "no_verdict", "verdict", "same_verdicts", "outcome", "contains", "not_contains",
           "matches")
# Stages that judge the content; budgets, loops, auth and anomaly flags depend on the moment, not the case.
GUARDRAIL_STAGES = frozenset({"secrets", "pii", "injection", "output", "tool_calls"})
# Input verdicts a replay cannot see again: the logged request already holds the placeholders.
_SPENT_CODES = frozenset({"pii.redacted", "secrets.redacted"})


@dataclass(frozen=True, slots=True)
class Expectation:
    check: str
    stage: str | None = None
    code: str | None = None
    value: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("check", self.check), ("stage", self.stage), ("code", self.code),
                                  ("value", self.value)) if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Expectation:
        if data.get("check") not in _CHECKS:
            raise ValueError(f"unknown check {data.get('check')!r} (expected one of {', '.join(_CHECKS)})")
        return cls(data["check"], data.get("stage"), data.get("code"), data.get("value"))

    def describe(self) -> str:
        parts = [self.check.replace("_", "-")] + [p for p in (self.stage, self.code, self.value) if p is not None]
        return ":".join(parts)


def parse_expect(text: str) -> Expectation:
    """``valid-tool-calls``, ``no-verdict[:STAGE]``, ``verdict:STAGE[:CODE]``, ``same-verdicts``,
    ``outcome:served|blocked|error``, ``contains:TEXT``, ``not-contains:TEXT``, ``matches:REGEX``."""
    name, _, rest = text.partition(":")
    check = name.strip().lower().replace("-", "_")
    if check in ("valid_tool_calls", "same_verdicts") and not rest:
        return Expectation(check)
    if check == "no_verdict":
        return Expectation(check, stage=rest or None)
    if check == "verdict" and rest:
        stage, _, code = rest.partition(":")
        return Expectation(check, stage=stage, code=code or None)
    if check == "outcome" and rest in ("served", "blocked", "error"):
        return Expectation(check, value=rest)
    if check in ("contains", "not_contains", "matches") and rest:
        if check == "matches":
            re.compile(rest)
        return Expectation(check, value=rest)
    raise ValueError(f"--expect {text!r}: expected valid-tool-calls, no-verdict[:STAGE], verdict:STAGE[:CODE], "
                     "same-verdicts, outcome:served|blocked|error, contains:TEXT, not-contains:TEXT or matches:REGEX")


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    label: str
    route: str
    model: str
    request: dict[str, Any]
    observed: dict[str, Any]
    expect: tuple[Expectation, ...]
    source_request_id: str | None = None
    created: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"schema": CASE_SCHEMA, "id": self.id, "label": self.label, "created": self.created,
                "source_request_id": self.source_request_id, "route": self.route, "model": self.model,
                "request": self.request, "observed": self.observed, "expect": [e.to_json() for e in self.expect]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        if data.get("schema") != CASE_SCHEMA:
            raise ValueError(f"not a {CASE_SCHEMA} record")
        if not isinstance(data.get("route"), str) or not data["route"].startswith("/v1/"):
            raise ValueError("'route' must be a /v1/ path")
        expect = data.get("expect") or []
        if not isinstance(data.get("request"), dict) or not (isinstance(expect, list)
                                                             and all(isinstance(e, dict) for e in expect)):
            raise ValueError("'request' must be an object and 'expect' a list of objects")
        return cls(str(data["id"]), str(data["label"]), data["route"], data["model"], data["request"],
                   data.get("observed") or {}, tuple(Expectation.from_json(e) for e in expect),
                   data.get("source_request_id"), data.get("created"))


def _phase_of(record: Record, verdict: dict[str, Any]) -> str:
    for span in record.get("spans") or ():
        if span.get("stage") == verdict.get("stage") and span.get("action") == verdict.get("action"):
            return str(span.get("phase"))
    return "request"


def default_expectations(record: Record) -> list[Expectation]:
    out: list[Expectation] = []
    for v in record.get("verdicts") or ():
        stage, code = v.get("stage"), v.get("code")
        if stage not in GUARDRAIL_STAGES or code in _SPENT_CODES:
            continue
        if _phase_of(record, v) == "response":
            if stage == "tool_calls":
                out.append(Expectation("valid_tool_calls"))
            out.append(Expectation("no_verdict", stage=stage))
        else:
            out.append(Expectation("verdict", stage=stage, code=code))
    if not out:
        out.append(Expectation("outcome", value=record.get("outcome") or "served"))
    return list(dict.fromkeys(out))


def _hashed(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("sha256:")
    return isinstance(value, list) and any(_hashed(v) for v in value)


def case_from_trace(record: Record, label: str, expect: list[Expectation] | None = None) -> Case:
    """A case from one trace record; ``ValueError`` when the record holds no replayable request."""
    request = record.get("request")
    if not isinstance(request, dict) or not request or any(_hashed(v) for v in request.values()):
        raise ValueError(f"trace {record.get('request_id')} holds no request text (log.content is hashes or none): "
                         "it cannot become a case")
    if not record.get("model") or not str(record.get("route", "")).startswith("/v1/"):
        raise ValueError(f"trace {record.get('request_id')} has no model or API route to replay")
    response = record.get("response") or {}
    observed = {"outcome": record.get("outcome"), "status": record.get("status"),
                "verdicts": [{k: v.get(k) for k in ("stage", "code", "action")} for v in record.get("verdicts") or ()],
                "tool_calls": [c.get("name") for c in response.get("tool_calls") or ()],
                "error_code": (record.get("error") or {}).get("code")}
    return Case(id=f"case-{record['request_id']}", label=label, route=record["route"], model=record["model"],
                request=request, observed=observed, expect=tuple(expect or default_expectations(record)),
                source_request_id=record["request_id"],
                created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))


def _slug(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")
    return slug or "unlabeled"


def add_case(case: Case, directory: str | Path = "cases") -> Path:
    """Append ``case`` to ``<directory>/<label>.jsonl``; ``ValueError`` if that case is already there."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if any(c.id == case.id for c in load_cases(root)):
        raise ValueError(f"{case.id} is already in the library at {root}")
    path = root / f"{_slug(case.label)}.jsonl"
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(case.to_json(), option=orjson.OPT_APPEND_NEWLINE))
    return path


def load_cases(path: str | Path) -> list[Case]:
    """Every case in a file or in a folder's ``*.jsonl`` files (sorted by name), in file order."""
    root = Path(path)
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else [root] if root.exists() else []
    cases = []
    for file in files:
        for n, line in enumerate(file.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
                if not isinstance(data, dict):
                    raise TypeError("a case is a JSON object")
                cases.append(Case.from_json(data))
            except KeyError as exc:
                raise ValueError(f"{file}:{n}: not a case: the field {exc} is missing") from None
            except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{file}:{n}: not a case: {exc}") from None
    return cases
