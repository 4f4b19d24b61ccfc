"""``wardgate eval`` on the shipped corpora and on a small corpus written here."""

from __future__ import annotations


import orjson
import pytest

from tests.corpora import corpus
from wardgate.cli import main
from wardgate.evaluate import evaluate_file

CORPORA = corpus("pii-dev.jsonl").parent


def test_eval_counts_spans_and_false_alarms(tmp_path, capsys):
    corpus = tmp_path / "pii.jsonl"
    rows = [{"id": "1", "text": "mail me at a.b@example.org", "spans": [{"entity": "EMAIL_ADDRESS", "start": 11, "end": 26}]},
            {"id": "2", "text": "call +1 415 555 0199 now", "spans": []},  # labeled negative: the detector will fire
            {"id": "3", "text": "nothing here", "spans": [{"entity": "US_SSN", "start": 0, "end": 7}]}]
    corpus.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    (report,) = evaluate_file(corpus)
    assert (report.tp, report.fp, report.fn, report.negatives, report.false_alarms) == (1, 1, 1, 1, 1)
    assert main(["eval", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "pii" in out and "worst misses" in out and "worst false alarms" in out


@pytest.mark.parametrize(("lines", "words"), [
    (b'{"text": "fine", "label": "benign"}\nnot json\n', ":2: not JSON"),
    (b'[1, 2]\n', ":1: a row must be a JSON object"),
    (b'{"text": 5}\n', ":1: a row must be a JSON object with a string 'text'"),
    (b'{"text": "x", "spans": 5}\n', ":1: 'spans' must be a list"),
])
def test_eval_names_the_line_of_a_bad_corpus_and_exits_2(tmp_path, capsys, lines, words):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_bytes(lines)
    assert main(["eval", str(corpus)]) == 2
    err = capsys.readouterr().err
    assert f"{corpus}{words}" in err and "Traceback" not in err


@pytest.mark.skipif(not (CORPORA / "pii-dev.jsonl").exists(), reason="shared corpora not present")
def test_eval_on_the_shared_corpora_meets_the_bars():
    (pii,) = evaluate_file(CORPORA / "pii-dev.jsonl")
    assert pii.figures()["recall"] >= 0.98 and pii.figures()["precision"] >= 0.98
    (secrets,) = [r for r in evaluate_file(CORPORA / "secrets-dev.jsonl") if r.detector == "secrets"]
    assert secrets.figures()["recall"] >= 0.98 and secrets.false_alarms == 0
    reports = {r.detector: r.figures() for r in evaluate_file(CORPORA / "injection-dev.jsonl")}
    assert reports["injection[all]"]["fpr"] <= 0.01
    assert reports["injection[tool]"]["recall"] >= 0.90
