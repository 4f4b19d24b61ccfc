"""Benchmark the heuristic injection scorer on the labeled development corpus.

Prints precision / recall / F1 / false-positive rate per role and per source at the default
threshold (and a small threshold sweep), recall on a held-out split of the sources, and the
latency per text (p50 / p99 microseconds) and per kilobyte.

    .venv/bin/python bench/detect_injection.py [--corpus PATH] [--misses SOURCE_PREFIX]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib
from collections import defaultdict
from pathlib import Path

from wardgate.detect.injection import DEFAULT_THRESHOLD, HeuristicScorer

_CORPUS = Path("/work/shared/corpora/injection-dev.jsonl")


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _held_out(row: dict) -> bool:
    # Attack rows split by source (garak probe class / spikee dataset), a third held out, so a
    # held-out figure measures techniques rather than rows; benign rows split by id.
    key = row["id"] if row["label"] == "benign" else row["source"]
    return zlib.crc32(key.encode()) % 3 == 0


def _metrics(rows: list[tuple[dict, float]], threshold: float) -> tuple[int, int, float, float, float, float]:
    tp = sum(1 for r, s in rows if r["label"] == "attack" and s >= threshold)
    fn = sum(1 for r, s in rows if r["label"] == "attack" and s < threshold)
    fp = sum(1 for r, s in rows if r["label"] == "benign" and s >= threshold)
    tn = sum(1 for r, s in rows if r["label"] == "benign" and s < threshold)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return tp + fn, fp + tn, precision, recall, f1, fpr


def _line(name: str, rows: list[tuple[dict, float]], threshold: float) -> str:
    attacks, benign, p, r, f1, fpr = _metrics(rows, threshold)
    return f"{name:<62} att={attacks:>5} ben={benign:>5}  P={p:.3f} R={r:.3f} F1={f1:.3f} FPR={fpr:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=_CORPUS)
    parser.add_argument("--misses", default=None, help="print missed attacks / false positives whose source starts with this")
    args = parser.parse_args()

    rows = _load(args.corpus)
    scorer = HeuristicScorer()
    for row in rows[:200]:  # warm up caches and the regex engine
        scorer.score(row["text"], row["role"])

    scored: list[tuple[dict, float]] = []
    timings: list[float] = []
    per_kb: list[float] = []
    results = {}
    for row in rows:
        # Best of three runs: the machine is shared, and the minimum is the detector's own cost.
        elapsed = float("inf")
        for _ in range(3):
            start = time.perf_counter_ns()
            result = scorer.score(row["text"], row["role"])
            elapsed = min(elapsed, (time.perf_counter_ns() - start) / 1000)
        timings.append(elapsed)
        size_kb = max(len(row["text"].encode("utf-8")), 1) / 1024
        per_kb.append(elapsed / size_kb)
        scored.append((row, result.score))
        results[row["id"]] = result

    t = DEFAULT_THRESHOLD
    print(f"threshold {t}")
    print(_line("ALL", scored, t))
    for role in ("user", "tool"):
        print(_line(f"role={role} (attacks) + all benign", [x for x in scored if x[0]["role"] == role or x[0]["label"] == "benign"], t))
    print(_line("development split", [x for x in scored if not _held_out(x[0])], t))
    print(_line("held-out split", [x for x in scored if _held_out(x[0])], t))
    print("\nper source:")
    by_source: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for item in scored:
        by_source[item[0]["source"]].append(item)
    for source in sorted(by_source):
        mark = "H" if _held_out(by_source[source][0][0]) else " "
        print(mark, _line(source, by_source[source], t))
    print("\nthreshold sweep:")
    for sweep in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(_line(f"t={sweep}", scored, sweep))

    benign_1kb = [ms for (row, _), ms in zip(scored, timings) if row["label"] == "benign" and 700 <= len(row["text"]) <= 1400]
    print(f"\nlatency, best of 3 runs (µs per text): p50={statistics.median(timings):.1f} p99={statistics.quantiles(timings, n=100)[98]:.1f} max={max(timings):.1f}")
    print(f"benign texts of 0.7-1.4 KB: n={len(benign_1kb)} p50={statistics.median(benign_1kb):.1f} µs p99={statistics.quantiles(benign_1kb, n=100)[98]:.1f} µs")
    print(f"µs per KB: p50={statistics.median(per_kb):.1f} p99={statistics.quantiles(per_kb, n=100)[98]:.1f}")
    for low, high in ((700, 1400), (3000, 6000)):  # the gateway's budget is set on 1 KB and 4 KB prompts
        sized = [kb for (row, _), kb in zip(scored, per_kb) if row["label"] == "benign" and low <= len(row["text"]) <= high]
        print(f"benign texts of {low / 1000:.1f}-{high / 1000:.1f} KB: µs per KB p50={statistics.median(sized):.1f} "
              f"p90={statistics.quantiles(sized, n=10)[8]:.1f}")

    if args.misses is not None:
        print()
        for row, score in scored:
            if not row["source"].startswith(args.misses):
                continue
            wrong = (row["label"] == "attack") != (score >= t)
            if wrong:
                res = results[row["id"]]
                print(f"--- {row['label']} {row['source']} {row['role']} score={score} {res.families} {res.signals}")
                print(repr(row["text"][:300]))


if __name__ == "__main__":
    main()
