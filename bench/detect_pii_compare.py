"""Compare wardgate's find_pii with presidio-analyzer's pattern recognizers on pii-dev.jsonl.

    python bench/detect_pii_compare.py [--corpus PATH] [--repeat N]

Prints span-level recall and precision (a prediction counts when its entity matches and it
overlaps a gold span; exact-match figures beside) and the time per KB, for both detectors.
presidio-analyzer (>= 2.2.366) runs with its ``no_op`` NLP engine: no spaCy model, nothing
downloaded. It is a benchmark-only dependency, not a runtime one; without it only wardgate's
rows are printed.

Then, on chat text (the benign prompts of injection-dev.jsonl, as ``bench/guardrails_cost.py``),
the p50 per call at 1, 4 and 16 KB of PII detection, PII detection + redaction, secret detection
and token counting: the per-detector share of the guardrails' cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# tldextract (used by presidio's e-mail recognizer) fetches the public suffix list at first use
# unless told not to; with no URL it uses the snapshot it ships.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from wardgate.detect.pii import PII_ENTITIES, find_pii  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_CORPUS = _ROOT.parent / "shared" / "corpora" / "pii-dev.jsonl"

Spans = list[tuple[str, int, int]]
Detector = Callable[[str], Spans]


def _chat_texts(size: int, count: int, step: int = 13, offset: int = 0) -> list[str]:
    """Texts of benign prompts, as guardrails_cost.py builds its requests (``step`` 13: texts
    ``n`` and ``n + 1`` share prompts; a larger step gives texts with no prompt in common)."""
    path = _ROOT.parent / "shared" / "corpora" / "injection-dev.jsonl"
    with path.open(encoding="utf-8") as lines:
        prompts = [row["text"] for row in map(json.loads, lines) if row["label"] == "benign"]
    out = []
    for n in range(count):
        parts, i = [], offset + n * step
        while sum(len(p) + 1 for p in parts) < size:
            parts.append(prompts[i % len(prompts)])
            i += 1
        out.append("\n".join(parts)[:size])
    return out


def _p50_us(texts: list[str], work: Callable[[str], object], repeat: int) -> float:
    """Median over texts of each text's fastest of ``repeat`` runs (a shared machine is noisy)."""
    best = []
    for text in texts:
        runs = []
        for _ in range(repeat):
            fresh = "".join([text[:1], text[1:]])  # a new str: no hash or UTF-8 cache carried over
            started = time.perf_counter()
            work(fresh)
            runs.append(time.perf_counter() - started)
        best.append(min(runs))
    return statistics.median(best) * 1e6


def _per_detector(repeat: int) -> None:
    from wardgate.detect.redact import Redactor
    from wardgate.detect.secrets import find_secrets
    from wardgate.tokens import count_tokens

    work: list[tuple[str, Callable[[str], object]]] = [
        ("PII detection", find_pii),
        ("PII detection + redaction", lambda t: Redactor().redact(t, find_pii(t))),
        ("secret detection", find_secrets),
    ]
    sizes = (1024, 4096, 16384)
    texts = {size: _chat_texts(size, 40) for size in sizes}
    print("\nchat text, p50 per call (µs)")
    print("{:28}".format("") + "".join(f"{size // 1024:>7} KB" for size in sizes))
    for name, fn in work:
        print(f"{name:28}" + "".join(f"{_p50_us(texts[size], fn, repeat):10.0f}" for size in sizes))
    # quicktok keeps the tokens of pieces it has seen: a text's second count costs a fraction of
    # its first. Each text here is counted once, unseen (no prompt shared with another text), in
    # a process that has counted other chat text before, as a running gateway has.
    count = lambda t: count_tokens(t, "gpt-4o")  # noqa: E731
    for text in _chat_texts(16384, 10, step=40, offset=1600):
        count(text)
    unseen = {size: _chat_texts(size, 30, step=40) for size in sizes}
    print(f"{'token count (o200k), unseen':28}" + "".join(f"{_p50_us(unseen[size], count, 1):10.0f}" for size in sizes))


def _ours(text: str) -> Spans:
    return [(f.entity, f.start, f.end) for f in find_pii(text)]


def _presidio(threshold: float) -> Detector:
    # raises ImportError when presidio-analyzer is not installed (main() then skips it)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": "en", "model_name": "no_op"}],
        }
    ).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    entities = sorted(PII_ENTITIES)

    def detect(text: str) -> Spans:
        results = engine.analyze(text, language="en", entities=entities, score_threshold=threshold)
        return [(r.entity_type, r.start, r.end) for r in results]

    return detect


def _score(rows: list[dict], detect: Detector) -> dict[str, float]:
    gold_n = pred_n = tp = exact = found = 0
    for row in rows:
        gold = [(s["entity"], s["start"], s["end"]) for s in row["spans"]]
        pred = detect(row["text"])
        gold_n += len(gold)
        pred_n += len(pred)

        def overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
            return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]

        tp += sum(any(overlaps(p, g) for g in gold) for p in pred)
        found += sum(any(overlaps(g, p) for p in pred) for g in gold)
        exact += sum(p in gold for p in pred)
    return {
        "recall": found / gold_n,
        "precision": tp / pred_n if pred_n else 1.0,
        "exact_recall": exact / gold_n,
        "exact_precision": exact / pred_n if pred_n else 1.0,
    }


def _ms_per_kb(texts: list[str], detect: Detector, repeat: int) -> float:
    kb = sum(len(t.encode()) for t in texts) / 1024
    for t in texts[:20]:
        detect(t)  # warm caches and lazy imports
    start = time.perf_counter()
    for _ in range(repeat):
        for t in texts:
            detect(t)
    return (time.perf_counter() - start) * 1000 / (kb * repeat)


def _chunks(rows: list[dict], size: int = 4096) -> list[str]:
    """The corpus texts joined into ~4 KB documents: per-KB cost without per-call overhead."""
    out, current = [], ""
    for row in rows:
        current = f"{current} {row['text']}" if current else row["text"]
        if len(current) >= size:
            out.append(current[:size])
            current = ""
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=_DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with args.corpus.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    docs = _chunks(rows)
    detectors: list[tuple[str, Detector, int]] = [("wardgate find_pii", _ours, args.repeat)]
    try:
        detectors += [
            ("presidio no_op (all scores)", _presidio(0.0), 1),
            ("presidio no_op (score>=0.5)", _presidio(0.5), 1),
        ]
    except ImportError:
        print("presidio-analyzer is not installed: wardgate only")
    gold = sum(len(r["spans"]) for r in rows)
    print(f"{len(rows)} rows, {gold} gold spans; {len(docs)} documents of 4 KB")
    header = ("detector", "recall", "prec", "ex.rec", "ex.prec", "ms/KB rows", "ms/KB 4KB")
    print("{:30} {:>7} {:>7} {:>7} {:>7} {:>11} {:>10}".format(*header))
    for name, detect, repeat in detectors:
        s = _score(rows, detect)
        per_row = _ms_per_kb([r["text"] for r in rows], detect, repeat)
        per_doc = _ms_per_kb(docs, detect, repeat)
        print(
            f"{name:30} {s['recall']:7.4f} {s['precision']:7.4f} {s['exact_recall']:7.4f} "
            f"{s['exact_precision']:7.4f} {per_row:11.3f} {per_doc:10.3f}"
        )
    _per_detector(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
