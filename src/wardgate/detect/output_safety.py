"""Unsafe model output: harmful instructions by category, and system-prompt leaks.

Each category is a family of weighted rules over lowercased text (words may be separated by any
run of whitespace or punctuation, and most rules allow a few words in between):

- ``strong`` rules fire alone (weight ≥ 1);
- ``topic`` rules say *what* (a detonator, ransomware, a minor) and ``how`` rules say it is being
  *done* (steps, imperative verbs on the topic's objects, working code); a finding needs both;
- ``mitigation`` rules (refusals, crisis lines, reporting, defence, history) subtract.

Rules only count when they sit within ``_PROXIMITY`` characters of each other, which keeps a long
answer about cooking from adding up stray words, and is what lets the streaming checker scan only
the new text plus a fixed overlap. A pre-filter (a set lookup of each category's trigger words)
decides which categories are worth scoring at all; how and mitigation rules then run only within
reach of a topic hit.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from wardgate.detect.literal_starts import Starts as _Starts
from wardgate.detect.literal_starts import find_offsets as _offsets
from wardgate.detect.literal_starts import literal_starts as _starts
from wardgate.detect.literal_starts import widen as _widen
from wardgate.detect.output_rules import MESSAGES, MITIGATIONS, RULES, TRIGGER_WORDS

__all__ = [
    "CHECKPOINT_CHARS",
    "OUTPUT_CATEGORIES",
    "OutputFinding",
    "StreamingOutputChecker",
    "check_output",
]

CHECKPOINT_CHARS = 400
OUTPUT_CATEGORIES: frozenset[str] = frozenset(
    {"self_harm", "weapons", "malware", "hate", "sexual_minors", "system_prompt_leak"}
)

_PROXIMITY = 500  # characters within which topic, how and mitigation rules must co-occur
_MAX_RULE_SPAN = 160  # longest text one rule match can cover (word gaps are bounded)
_LEAK_MIN_CHARS = 60
_LEAK_MIN_SHARE = 0.6
_LEAK_NGRAM = 5


@dataclass(frozen=True, slots=True)
class OutputFinding:
    """One unsafe span in a model answer; ``message`` is safe to show the client."""

    category: str
    score: float
    start: int
    end: int
    message: str


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    kind: str  # strong | topic | how | mitigation
    weight: float
    pattern: re.Pattern[str]
    starts: _Starts | None  # literal prefixes every match begins with (see _finditer)
    bounded: bool  # the pattern opens with \b: a prefix starting with [a-z0-9] starts a _TOKEN


# The pre-filter: a category is scored only if the answer holds one of its words. Every strong and
# topic rule contains one of them, so the gate loses nothing; a set lookup per word keeps benign
# text at tens of µs per KB where running every rule's alternation costs ~20x more.
_TOKEN = re.compile(r"[a-z0-9]+")


def _compile() -> list[_Rule]:
    entries = [(cat, kind, weight, pattern) for cat, kinds in RULES.items()
               for kind, entries in kinds.items() for pattern, weight in entries]
    entries += [("*", "mitigation", -weight, pattern) for pattern, weight in MITIGATIONS]
    return [_Rule(cat, kind, weight, re.compile(pattern), _starts(re.compile(pattern)), pattern.startswith(r"\b"))
            for cat, kind, weight, pattern in entries]


_RULES_BY_KIND: dict[tuple[str, str], list[tuple[int, _Rule]]] = {
    (cat, kind): [] for cat in [*RULES, "*"] for kind in ("strong", "topic", "how", "mitigation")
}
for _idx, _rule in enumerate(_compile()):
    _RULES_BY_KIND[_rule.category, _rule.kind].append((_idx, _rule))


def check_output(
    text: str, categories: frozenset[str] | None = None, system_prompt: str | None = None
) -> list[OutputFinding]:
    """Return the unsafe spans of a model answer, one per category at most, sorted by start."""
    return _scan(text, 0, categories, system_prompt)


def _scan(
    window: str, base: int, categories: frozenset[str] | None, system_prompt: str | None
) -> list[OutputFinding]:
    """Scan ``window``, a piece of the answer that starts at offset ``base`` of the whole."""
    wanted = OUTPUT_CATEGORIES if categories is None else categories & OUTPUT_CATEGORIES
    low = _lower(window)
    findings: list[OutputFinding] = []
    words = _token_list(low)
    # One lookup per word in the union of all trigger words first: a benign answer (the usual case)
    # then builds no set and asks no category (~12k instructions saved on a 20-word answer).
    if not _ANY_TRIGGER.isdisjoint(words):
        tokens = set(words)
        active = {cat for cat, trigger in TRIGGER_WORDS.items() if cat in wanted and not trigger.isdisjoint(tokens)}
        if active:
            findings += _score(low, active, _Vocabulary(tokens))
    if system_prompt and "system_prompt_leak" in wanted:
        leak = _leak(low, system_prompt, words)
        if leak is not None:
            findings.append(leak)
    if not findings:
        return findings
    return sorted(
        (OutputFinding(f.category, f.score, f.start + base, f.end + base, f.message) for f in findings),
        key=lambda f: (f.start, f.category),
    )


# _TOKEN over a byte map: [a-z0-9] kept, every other byte (non-ASCII ones too) a space.
_TOKEN_BYTES = bytes(c if (0x61 <= c <= 0x7A or 0x30 <= c <= 0x39) else 0x20 for c in range(256))


def _tokens(low: str) -> set[str]:
    """``set(_TOKEN.findall(low))`` with a C-level translate and split instead of a regex."""
    return set(_token_list(low))


def _token_list(low: str) -> list[str]:
    """``_TOKEN.findall(low)``, as ``_tokens`` finds them."""
    return low.encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES).decode("ascii").split()


_ANY_TRIGGER: frozenset[str] = frozenset().union(*TRIGGER_WORDS.values())


def _lower(text: str) -> str:
    """Lowercase without moving offsets (a few characters, like 'İ', lowercase to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class _Vocabulary:
    """The answer's tokens, their five-letter stems, and prefix offsets shared by all rules."""

    __slots__ = ("offsets", "stems", "tokens")

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens
        self.stems = {token[:5] for token in tokens if len(token) >= 5}
        self.offsets: dict[str, list[int] | None] = {}

    def may_start(self, prefix: str) -> bool:
        """False when no match can begin with ``prefix`` (only asked for prefixes after \\b)."""
        run = _LEADING_TOKEN.match(prefix)
        if run is None:
            return True
        word = run.group()
        if len(word) < len(prefix):  # the token ends inside the prefix: it is exactly ``word``
            return word in self.tokens
        return len(word) < 5 or word[:5] in self.stems  # the token starts with ``word``


_LEADING_TOKEN = re.compile(r"[a-z0-9]+")
# Past this many prefix offsets per KB one finditer (~20 µs/KB) is cheaper than a .match() at each.
_STARTS_PER_KB = 24


def _score(low: str, active: set[str], vocabulary: _Vocabulary) -> list[OutputFinding]:
    findings = []
    for cat in sorted(active):
        # topic and strong rules first: most texts that pass the word gate stop here
        hits = _matches(low, _RULES_BY_KIND[cat, "strong"] + _RULES_BY_KIND[cat, "topic"], [(0, len(low))], vocabulary)
        if not hits:
            continue
        # everything else only matters within reach of a topic hit
        windows = _windows(hits, len(low))
        hits = sorted(hits + _matches(low, _RULES_BY_KIND[cat, "how"], windows, vocabulary))
        mitigations = [(s, e, r) for s, e, _, r in _matches(low, _RULES_BY_KIND["*", "mitigation"], windows, vocabulary)]
        found = _first_cluster(cat, hits, mitigations)
        if found is not None:
            findings.append(found)
    return findings


def _windows(hits: list[tuple[int, int, int, _Rule]], length: int) -> list[tuple[int, int]]:
    reach = _PROXIMITY + _MAX_RULE_SPAN
    merged: list[tuple[int, int]] = []
    for start, end, _, _ in sorted(hits):
        lo, hi = max(0, start - reach), min(length, end + reach)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _matches(
    low: str, rules: list[tuple[int, _Rule]], windows: list[tuple[int, int]], vocabulary: _Vocabulary
) -> list[tuple[int, int, int, _Rule]]:
    return [
        (m.start(), m.end(), idx, rule)
        for idx, rule in rules
        for m in _finditer(rule, low, windows, vocabulary)
    ]


def _finditer(rule: _Rule, low: str, windows: list[tuple[int, int]], vocabulary: _Vocabulary) -> list[re.Match[str]]:
    """The matches ``rule.pattern.finditer(low, lo, hi)`` yields over ``windows``, found cheaply.

    A pattern that does not open with a literal is tried at every position (~20 µs per KB per
    rule, for every rule once a long answer wakes every category). Each match begins with one of
    the rule's literal prefixes, so .match() runs only where str.find sees one whose word occurs.
    """
    starts = rule.starts
    limit = 16 + len(low) * _STARTS_PER_KB // 1024
    found: list[int] = []
    for prefix in starts.prefixes if starts is not None else ():
        if rule.bounded and prefix not in starts.behind and not vocabulary.may_start(prefix):
            continue
        at = vocabulary.offsets.get(prefix, ())
        if at == ():
            at = vocabulary.offsets[prefix] = _offsets(low, prefix, limit)
        if at is None or len(found) + len(at) > limit:
            starts = None
            break
        found += at
    if starts is None:
        return [m for lo, hi in windows for m in rule.pattern.finditer(low, lo, hi)]
    if starts.behind:  # a match may open a few characters before these prefixes
        found = _widen(found, starts, vocabulary.offsets)
    found.sort()
    out = []
    match = rule.pattern.match
    for lo, hi in windows:
        pos = lo  # no match is empty (every one starts with a non-empty prefix): pos = end
        for at in found[bisect_left(found, lo):]:
            if at >= hi:
                break
            if at >= pos:
                hit = match(low, at, hi)
                if hit is not None:
                    out.append(hit)
                    pos = hit.end()
    return out


def _first_cluster(cat: str, hits: list, mitigations: list) -> OutputFinding | None:
    """The first window of ``_PROXIMITY`` chars whose distinct rules add up to a finding."""
    starts = [hit[0] for hit in hits]
    for i, anchor in enumerate(starts):
        window = hits[i : bisect_left(starts, anchor + _PROXIMITY, i)]  # hits are sorted by start
        seen: dict[int, _Rule] = {idx: rule for _, _, idx, rule in window}
        by_kind = {"strong": 0.0, "topic": 0.0, "how": 0.0}
        for rule in seen.values():
            by_kind[rule.kind] += rule.weight
        if not by_kind["strong"] and not (by_kind["topic"] and by_kind["how"]):
            continue
        start, end = anchor, max(h[1] for h in window)
        relief = {id(r): r.weight for s, e, r in mitigations
                  if s < end + _PROXIMITY and e > start - _PROXIMITY}
        raw = sum(by_kind.values()) + sum(relief.values())
        if raw >= 1.0:
            return OutputFinding(cat, round(min(1.0, raw / 1.5), 3), start, end, MESSAGES[cat])
    return None


_ALNUM = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=64)
def _prompt_shingles(system_prompt: str) -> tuple[frozenset[tuple[str, ...]], int, int, frozenset[str] | None]:
    """Word n-grams of the system prompt, the n used, the leak threshold in characters, and words
    one of which any answer holding a gram holds among its tokens (None when some gram has none)."""
    words = re.findall(r"\w+", system_prompt.lower())
    n = min(_LEAK_NGRAM, len(words))
    if n == 0:
        return frozenset(), 0, 0, None
    grams = frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    normalized = len(" ".join(words))
    # A gram's ASCII letters-and-digits word, whole in the answer, is one of its _tokens (the bytes
    # around it are not word characters, so the tokenizer splits there too): its longest such word.
    keys = [max((w for w in gram if _ALNUM.fullmatch(w)), key=len, default=None) for gram in grams]
    usable = None if None in keys else frozenset(k for k in keys if k is not None)
    return grams, n, int(min(_LEAK_MIN_CHARS, max(20, _LEAK_MIN_SHARE * normalized))), usable


_WORD = re.compile(r"\w+")


def _leak(low: str, system_prompt: str, tokens: Iterable[str]) -> OutputFinding | None:
    """The first run of consecutive shared n-grams covering at least the threshold."""
    grams, n, threshold, keys = _prompt_shingles(system_prompt)
    if not grams or (keys is not None and keys.isdisjoint(tokens)):  # no gram can be whole in the answer
        return None
    words = _WORD.findall(low)
    if grams.isdisjoint(zip(*(words[k:] for k in range(n)))):  # the usual case, at C speed
        return None
    spans = [m.span() for m in _WORD.finditer(low)]
    run_start = -1
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in grams:
            if run_start < 0:
                run_start = i
            end = spans[i + n - 1][1]
            if end - spans[run_start][0] >= threshold:
                # extend to the end of the run so the finding covers the whole copied passage
                j = i
                while j + 1 <= len(words) - n and tuple(words[j + 1 : j + 1 + n]) in grams:
                    j += 1
                start, end = spans[run_start][0], spans[j + n - 1][1]
                score = min(1.0, (end - start) / (2 * threshold))
                return OutputFinding("system_prompt_leak", round(max(score, 0.5), 3), start, end,
                                     MESSAGES["system_prompt_leak"])
        else:
            run_start = -1
    return None


class StreamingOutputChecker:
    """Checks a streamed answer at checkpoints, scanning only text that can hold a new match.

    ``feed`` returns findings not reported before; ``finish`` checks whatever arrived since the
    last checkpoint. The overlap covers one proximity window plus the longest rule, and is at
    least the leak threshold, so a match that straddles a checkpoint is still seen whole.
    """

    _OVERLAP = _PROXIMITY + _MAX_RULE_SPAN

    def __init__(self, categories: frozenset[str] | None = None, system_prompt: str | None = None):
        self._categories = categories
        self._system_prompt = system_prompt
        self._tail = ""  # the last _OVERLAP checked characters: all a new match can reach back to
        self._pending: list[str] = []
        self._pending_len = 0
        self._checked = 0  # characters checked so far
        self._reported: set[str] = set()

    def feed(self, delta: str) -> list[OutputFinding]:
        self._pending.append(delta)
        self._pending_len += len(delta)
        if self._pending_len < CHECKPOINT_CHARS:
            return []
        return self._check()

    def finish(self) -> list[OutputFinding]:
        if not self._pending_len and self._checked:
            return []
        return self._check()

    def _check(self) -> list[OutputFinding]:
        window = self._tail + "".join(self._pending)
        base = self._checked - len(self._tail)
        self._checked += self._pending_len
        self._pending, self._pending_len = [], 0
        self._tail = window[-self._OVERLAP :]
        new = [f for f in _scan(window, base, self._categories, self._system_prompt)
               if f.category not in self._reported]
        self._reported.update(f.category for f in new)
        return new
