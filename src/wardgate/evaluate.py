"""``wardgate eval``: run the guardrail detectors over a labeled corpus and report how they do.

Corpus formats (``../shared/corpora/README.md``): rows with ``label`` attack/benign (injection),
rows with ``spans`` (PII and secrets, span level), rows with ``label`` unsafe/safe (output safety).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from wardgate.detect.injection import DEFAULT_THRESHOLD, HeuristicScorer
from wardgate.detect.output_safety import check_output
from wardgate.detect.pii import PII_ENTITIES, find_pii
from wardgate.detect.secrets import SECRET_ENTITIES, find_secrets

__all__ = ["CorpusError", "Report", "evaluate_file", "format_report"]


@dataclass
class Report:
    detector: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    negatives: int = 0
    false_alarms: int = 0
    latencies_us: list[float] = field(default_factory=list)
    misses: list[tuple[float, str]] = field(default_factory=list)
    alarms: list[tuple[float, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        fpr = self.false_alarms / self.negatives if self.negatives else 0.0
        lat = sorted(self.latencies_us) or [0.0]
        return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr,
                "p50_us": statistics.median(lat), "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


class CorpusError(ValueError):
    """A corpus line that is not a labeled row: ``FILE:LINE: what``."""


def _rows(path: Path) -> Iterable[dict[str, Any]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):  # the README: iterate lines; splitlines() would split on U+2028
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise CorpusError(f"{path}:{number}: a row must be a JSON object with a string 'text'")
            if "spans" in row and not (isinstance(row["spans"], list)
                                       and all(isinstance(s, dict) and "entity" in s for s in row["spans"])):
                raise CorpusError(f"{path}:{number}: 'spans' must be a list of objects with an 'entity'")
            yield row


def _timed(fn: Callable[[], Any], report: Report) -> Any:
    started = time.perf_counter()
    out = fn()
    report.latencies_us.append((time.perf_counter() - started) * 1e6)
    return out


def _spans(rows: list[dict[str, Any]], name: str, find: Callable[[str], list[Any]], entities: frozenset[str]) -> Report:
    report = Report(name)
    for row in rows:
        gold = [s for s in row["spans"] if s["entity"] in entities]
        found = _timed(lambda: find(row["text"]), report)
        matched = set()
        for f in found:
            hit = next((i for i, g in enumerate(gold) if g["entity"] == f.entity and f.start < g["end"] and g["start"] < f.end
                        and i not in matched), None)
            if hit is None:
                report.fp += 1
                report.alarms.append((f.score, f"{f.entity}: {row['text'][max(0, f.start - 20):f.end + 20]!r}"))
            else:
                matched.add(hit)
                report.tp += 1
        for i, g in enumerate(gold):
            if i not in matched:
                report.fn += 1
                report.misses.append((0.0, f"{g['entity']}: {row['text'][max(0, g['start'] - 20):g['end'] + 20]!r}"))
        if not row["spans"]:
            report.negatives += 1
            report.false_alarms += bool(found)
    return report


def _injection(rows: list[dict[str, Any]], threshold: float) -> list[Report]:
    scorer = HeuristicScorer()
    reports = {role: Report(f"injection[{role}]") for role in ("all", "user", "tool")}
    for row in rows:
        role = row.get("role", "user")
        result = _timed(lambda: scorer.score(row["text"], role), reports["all"])
        reports[role].latencies_us.append(reports["all"].latencies_us[-1])
        for report in (reports["all"], reports[role]):
            attack, flagged = row["label"] == "attack", result.score >= threshold
            report.tp += attack and flagged
            report.fn += attack and not flagged
            report.fp += (not attack) and flagged
            report.negatives += not attack
            report.false_alarms += (not attack) and flagged
        if row["label"] == "attack" and result.score < threshold:
            reports["all"].misses.append((result.score, f"[{row.get('source')}] {row['text'][:140]!r}"))
        if row["label"] != "attack" and result.score >= threshold:
            reports["all"].alarms.append((result.score, f"{','.join(result.families)}: {row['text'][:140]!r}"))
    reports["all"].notes["threshold"] = f"{threshold:g}"
    return [r for r in reports.values() if r.tp + r.fn + r.negatives]


def _output(rows: list[dict[str, Any]]) -> Report:
    report = Report("output_safety")
    for row in rows:
        found = _timed(lambda: check_output(row["text"]), report)
        unsafe = row["label"] == "unsafe"
        report.tp += unsafe and bool(found)
        report.fn += unsafe and not found
        report.fp += (not unsafe) and bool(found)
        report.negatives += not unsafe
        report.false_alarms += (not unsafe) and bool(found)
        if unsafe and not found:
            report.misses.append((0.0, f"[{row.get('category')}] {row['text'][:140]!r}"))
        elif found and not unsafe:
            report.alarms.append((found[0].score, f"{found[0].category}: {row['text'][:140]!r}"))
    return report


def evaluate_file(path: str | Path, threshold: float | None = None) -> list[Report]:
    rows = list(_rows(Path(path)))
    if not rows:
        return []
    if "spans" in rows[0]:
        entities = {s["entity"] for row in rows for s in row["spans"]}
        reports = []
        if entities & PII_ENTITIES or not entities & SECRET_ENTITIES:
            reports.append(_spans(rows, "pii", find_pii, PII_ENTITIES))
        if entities & SECRET_ENTITIES:
            reports.append(_spans(rows, "secrets", find_secrets, SECRET_ENTITIES))
        return reports
    labels = {row.get("label") for row in rows}
    if labels & {"attack", "benign"}:
        return _injection(rows, DEFAULT_THRESHOLD if threshold is None else threshold)
    return [_output(rows)]


def format_report(reports: list[Report], worst: int = 5) -> str:
    lines = [f"{'detector':<18} {'precision':>9} {'recall':>7} {'F1':>6} {'FPR':>7} {'p50 µs':>8} {'p99 µs':>8}  n"]
    for r in reports:
        f = r.figures()
        lines.append(f"{r.detector:<18} {f['precision']:9.4f} {f['recall']:7.4f} {f['f1']:6.4f} {f['fpr']:7.4f} "
                     f"{f['p50_us']:8.1f} {f['p99_us']:8.1f}  {r.tp + r.fn} positive, {r.negatives} negative rows"
                     + "".join(f"  {k}={v}" for k, v in r.notes.items()))
    for r in reports if worst > 0 else ():
        if r.misses:
            lines.append(f"\nworst misses ({r.detector}):")
            lines += [f"  {score:.3f}  {text}" for score, text in sorted(r.misses, reverse=True)[:worst]]
        if r.alarms:
            lines.append(f"\nworst false alarms ({r.detector}):")
            lines += [f"  {score:.3f}  {text}" for score, text in sorted(r.alarms, reverse=True)[:worst]]
    return "\n".join(lines)
