"""The detectors' shortcuts find exactly what the plain scans they replace find."""

from __future__ import annotations

import random
import re

from wardgate.detect import pii, secrets

_COMBINED = re.compile("|".join(f"(?:{t.pattern})" for _, t in secrets._TRIGGERS), re.VERBOSE)
_SECRET_PIECES = ["sk-", "xoxb-", "glpat-", "-----BEGIN", "sk_", "hf_", "ghp_", "whsec_", "github_", "://u:p@h",
                  "://", ":", "@", "hooks.slack.com/", "eyJ", "AKIA", "tAccessK", "ASIA", "AIza", "-", "_", "/",
                  "J", "K", "S", "z", " ", "a", "x"]


def test_short_text_triggers_are_the_combined_patterns_leftmost_matches() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        text = "".join(rnd.choice(_SECRET_PIECES) for _ in range(rnd.randint(0, 30)))
        next_hit, pos = secrets._short_hits(text), 0
        while True:
            m = _COMBINED.search(text, pos)
            want = -1 if m is None else m.start()
            assert next_hit(pos) == want, (text, pos)
            if want == -1:
                break
            pos = want + rnd.randint(1, 3)


def _reference_clusters(text: str) -> list[tuple[int, int, int]]:
    """Runs of ASCII digits at most _GAP apart, the whole text when dense: the definition."""
    size = len(text)
    if size >= 1024:
        sample = text[::16]
        if sum(c in "0123456789" for c in sample) * pii._DENSE > len(sample):
            return [(0, size, size)]
    positions = [i for i, c in enumerate(text) if c in "0123456789"]
    if len(positions) > size // pii._DENSE:
        return [(0, size, size)]
    out: list[tuple[int, int, int]] = []
    for p in positions:
        if out and p - (out[-1][1] - 1) <= pii._GAP + 1:
            out[-1] = (out[-1][0], p + 1, out[-1][2] + 1)
        else:
            out.append((p, p + 1, 1))
    return out


def test_digit_clusters_match_the_definition_in_any_script() -> None:
    rnd = random.Random(11)
    pieces = ["0", "7", " ", "a", "-", ".", "é", "  ", "12345", "555 123 4567", "AB12", "٣", "８", "lorem ipsum "]
    for _ in range(2000):
        size = rnd.choice([5, 60, 300, 1100, 3000])
        text = "".join(rnd.choice(pieces) for _ in range(size // 4))
        if rnd.random() < 0.5:
            text = text.replace("٣", "3").replace("８", "8")  # Latin-1 text: the translate path
        assert pii._clusters(text) == _reference_clusters(text), text
        assert pii._digit_count(text) == sum(c in "0123456789" for c in text)
