"""Prompt-injection scoring: normalize, decode embedded blobs, run weighted rule families.

The score is a noisy-OR: each family's score is 1 - prod(1 - w) over its rules that fired, the
text's score is 1 - prod(1 - family score) times the same over obfuscation signals. One strong
rule ("ignore all previous instructions") is enough on its own; weak cues (a markdown image, "in
your response", "for testing purposes") only add up to a block when several co-occur.

:class:`InjectionScorer` is the seam for other scorers (a classifier model, a remote service).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from wardgate.detect.decode import (
    DecodedBlob,
    decode_blobs,
    decode_payload,
    has_opaque_blob,
)
from wardgate.detect.injection_rules import FAMILIES, RULES, Rule
from wardgate.detect.literal_starts import first_match as _first_match
from wardgate.detect.literal_starts import literal_starts as _starts
from wardgate.detect.normalize import fold_case, fold_leetspeak, normalize

__all__ = [
    "DEFAULT_THRESHOLD",
    "HeuristicScorer",
    "InjectionResult",
    "InjectionScorer",
    "score_injection",
]

DEFAULT_THRESHOLD: float = 0.5
"""Score at or above which a text counts as an injection (the policy's ``injection.threshold`` default).

At 0.5 one strong rule, or two moderate cues together, are needed; see ``bench/detect_injection.py``
for recall and false-positive rate on the development corpus at this and other thresholds.
"""


@dataclass(frozen=True, slots=True)
class InjectionResult:
    """The verdict of a scorer on one text.

    ``score`` is in [0, 1]; ``families`` are the rule families that fired, strongest first
    (``"override"``, ``"exfiltration"`` ...); ``signals`` are obfuscation evidence
    (``"zero_width"``, ``"unicode_tags"``, ``"base64_decoded"``, ``"leetspeak"`` ...).
    """

    score: float
    families: tuple[str, ...]
    signals: tuple[str, ...]


class InjectionScorer(Protocol):
    """Anything that scores a text for prompt injection; ``role`` is ``"user"`` or ``"tool"``."""

    def score(self, text: str, role: str) -> InjectionResult: ...


# Hidden carriers are themselves the attack (ASCII smuggling): enough to cross the threshold alone.
_SIGNAL_WEIGHTS = {
    "unicode_tags": 0.6,
    "variant_selectors": 0.6,
    "invisible_binary": 0.6,
    "homoglyphs": 0.55,
    "zalgo": 0.5,
    "zero_width": 0.15,
    "leetspeak": 0.1,
}
_DECODED_SIGNAL_WEIGHT = 0.1
# Rules this weak for the role cannot move a verdict: not worth running their regex.
_NEGLIGIBLE = 0.12

# A request to decode something, and where the payload starts (garak's encoding probes and the
# general "decode this and do what it says" technique).
_DECODE_REQUEST = re.compile(
    r"\b(?:decode|decipher|decrypt|deobfuscate|unscramble|translate|convert|interpret)\w*\s+(?:\w+\W+){0,4}?"
    r"(?:base\s*-?\s*(?:64|32|16|85|2048)|hex\w*|rot\s*-?\s*13|caesar|atbash|morse|braille|nato|ascii\s*-?\s*85|uu\s*encod\w*|"
    r"quoted[- ]printable|mime|binary|zalgo|leet\w*|ecoji|encod\w+|cipher\w*|unicode)\w*"
    r"|\bencoded(?:\s+string|\s+text|\s+message)?\s*:"
)
_ENCODED_TEMPLATE = re.compile(r"encoded")
_ASK_MEANING = re.compile(r"\bwhat\s+does\s+this\s+(?:mean|say)\s*\??")
_DECODED_MARKER = re.compile(r"\n[^\n]*decoded[^\n]*:?\s*$|\n\s*\$\s*$")
# Decodings that rewrite a few characters of ordinary text: they do not make a text "a blob".
_PARTIAL_ENCODINGS = frozenset({"url", "html_entities", "quoted_printable"})
_MAX_PAYLOAD = 2000


class HeuristicScorer:
    """The built-in scorer: pure, no model, no I/O; safe to share between requests."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        # Gating: a view is split once into words; a rule none of whose needles can be present
        # is skipped without running its regex. A one-word needle of five letters or more is a
        # stem (matched on the words' first five letters: "ignor" for ignore/ignoring/ignorez), a
        # shorter one a whole word; a phrase is keyed by its least common word. Needles that are
        # not plain words (punctuation, CJK) are looked up as substrings.
        words: dict[str, list[int]] = {}
        stems: dict[str, list[int]] = {}
        subs: dict[str, list[int]] = {}
        for position, rule in enumerate(rules):
            for needle in rule.needles:
                key = _word_key(needle)
                table = subs if key is None else stems if key.startswith("*") else words
                table.setdefault(needle if key is None else key.lstrip("*"), []).append(position)
        self._rules = rules
        self._words = {key: tuple(positions) for key, positions in words.items()}
        self._stems = {key: tuple(positions) for key, positions in stems.items()}
        self._subs = {key: tuple(positions) for key, positions in subs.items()}
        self._word_keys, self._stem_keys = frozenset(words), frozenset(stems)
        # Substring needles grouped by their first punctuation character: one cheap character
        # test skips a whole group (most text has no "<|", "[system" or "{{"). An ASCII view
        # (nearly all text) skips the groups of CJK, Arabic or emoji needles outright.
        groups: dict[str, list[str]] = {}
        for needle in sorted(subs):
            trigger = next((c for c in needle if not c.isalnum() and c != " "), needle[0])
            groups.setdefault(trigger, []).append(needle)
        self._groups = tuple((trigger, tuple(needles), _any_of(trigger, needles)) for trigger, needles in groups.items())
        self._ascii_groups = tuple(g for g in self._groups if all(needle.isascii() for needle in g[1]))
        # re.search tries a pattern that does not open with a literal at every position (~20 µs
        # per KB each). Every match of a rule starts with one of its literal prefixes, so the rule
        # is instead tried with .match() where str.find (a C scan) sees one of them.
        self._starts = tuple(_starts(rule.pattern) for rule in rules)
        self._weights = tuple((rule.user, rule.tool) for rule in rules)

    def score(self, text: str, role: str = "user") -> InjectionResult:
        tool = role == "tool"
        norm = normalize(text)
        signals = list(norm.signals)
        fired: dict[Rule, None] = {}  # insertion-ordered set

        vocabulary = _vocabulary(norm.text)
        leeted = False
        for window in _windows(norm.text):
            # Rules are local (bounded word gaps), so a long text is matched window by window: the
            # cost stays linear in its length, and overlapping windows keep every match whole.
            self._scan(window, fired, tool, vocabulary if window is norm.text else _vocabulary(window))
            leet = fold_leetspeak(window)
            if leet is not None and leet != window and self._scan(leet, fired, tool):
                leeted = True
        if norm.hidden:
            self._scan(norm.hidden, fired, tool)
        if leeted:
            signals.append("leetspeak")

        stems = vocabulary[1] if vocabulary[2] else None
        encoded_weight, decoded = self._decode(norm.text, norm.clean, norm.hidden, signals, stems)
        for blob in decoded:
            if self._scan(fold_case(blob.text), fired, tool):
                signals.append(f"{blob.encoding}_decoded")

        families: dict[str, float] = {}
        for rule in fired:
            weight = rule.tool if tool else rule.user
            families[rule.family] = 1.0 - (1.0 - families.get(rule.family, 0.0)) * (1.0 - weight)
        if encoded_weight:
            families["encoded"] = 1.0 - (1.0 - families.get("encoded", 0.0)) * (1.0 - encoded_weight)

        keep = 1.0
        for weight in families.values():
            keep *= 1.0 - weight
        signals = list(dict.fromkeys(signals))
        for signal in signals:
            keep *= 1.0 - _SIGNAL_WEIGHTS.get(signal, _DECODED_SIGNAL_WEIGHT)
        ordered = sorted(families, key=lambda f: (-families[f], FAMILIES.index(f)))
        return InjectionResult(round(1.0 - keep, 4), tuple(ordered), tuple(signals))

    def _scan(self, view: str, fired: dict[Rule, None], tool: bool,
              vocabulary: tuple[set[str], set[str], bool] | None = None) -> bool:
        """Add the rules that match ``view`` to ``fired``; True if any rule was new."""
        words, stems, ascii_view = vocabulary or _vocabulary(view)
        groups = self._ascii_groups if ascii_view else self._groups
        candidates: set[int] = set()
        for key in self._word_keys.intersection(words):
            candidates.update(self._words[key])
        for key in self._stem_keys.intersection(stems):
            candidates.update(self._stems[key])
        for trigger, needles, any_of in groups:
            # "(" or ":" is in most text: one regex scan tells whether any needle of the group is.
            if trigger in view and any_of.search(view):
                for needle in needles:
                    if needle in view:
                        candidates.update(self._subs[needle])
        new = False
        role = 1 if tool else 0
        # Offsets of each literal prefix, shared by the rules that start alike (_IGNORE ...).
        # Stems only vouch for word starts in an ASCII view: elsewhere "“ignore" is one token.
        offsets: dict[str, list[int] | None] = {}
        known = stems if ascii_view else None
        for position in sorted(candidates):
            rule = self._rules[position]
            if rule in fired or self._weights[position][role] < _NEGLIGIBLE:
                continue
            if _first_match(rule.pattern, view, self._starts[position], offsets, known) is not None:
                fired[rule] = None
                new = True
        return new

    def _decode(self, folded: str, clean: str, hidden: str, signals: list[str],
                stems: set[str] | None) -> tuple[float, list[DecodedBlob]]:
        """Decode embedded blobs; return the weight of the ``encoded`` family and the decodings."""
        decoded = list(decode_blobs(clean))
        request = _first_match(_DECODE_REQUEST, folded, _DECODE_STARTS, {}, stems)
        asks_meaning = _ASK_MEANING.search(folded) if request is None and "what does this" in folded else None
        trigger = request or asks_meaning
        if trigger is None:
            covered = sum(blob.length for blob in decoded if blob.encoding not in _PARTIAL_ENCODINGS)
            # A message that is nothing but an encoded blob: a payload smuggled without context.
            stripped = clean.strip()
            if (decoded and covered >= 0.6 * len(stripped)) or (len(stripped) >= 8 and " " not in stripped and has_opaque_blob(stripped)):
                return 0.55, decoded
            return 0.0, decoded

        # Offsets in the folded view match the clean one closely enough for ASCII payloads;
        # fall back to the whole clean text when they do not line up.
        payload = clean[trigger.end() : trigger.end() + _MAX_PAYLOAD] if len(clean) == len(folded) else clean
        payload = _DECODED_MARKER.split(payload, maxsplit=1)[0]
        from_payload = [
            blob for blob in decode_payload(payload)
        ]
        decoded.extend(from_payload)
        evidence = bool(from_payload or hidden or has_opaque_blob(payload)
                        or {"zalgo", "invisible_binary", "unicode_tags", "variant_selectors"} & set(signals))
        if evidence:
            return 0.6, decoded
        if request is not None and _ENCODED_TEMPLATE.match(request.group()) and payload.strip():
            # "Encoded: <x> / Decoded:" is an explicit completion-style decode request.
            return 0.5, decoded
        return 0.0, decoded


_NON_LETTER_UTF8 = bytes(c if c >= 0x80 or chr(c).isalpha() else 0x20 for c in range(256))
_NON_LETTER_BYTES = bytes(c if chr(c).isalpha() else 0x20 for c in range(256))
_COMMON_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "end", "following", "for", "if", "in", "is", "it", "not", "of", "on", "only", "just", "that", "the", "this", "to", "when", "with", "you", "your"]
)
_WORD_NEEDLE = re.compile(r"=?[a-z\u0430-\u044f\u0451 ]+")


_WINDOW = 4096
_OVERLAP = 1024  # longer than any rule's match: its word gaps are bounded well below this


def _windows(text: str) -> list[str]:
    if len(text) <= _WINDOW:
        return [text]
    step = _WINDOW - _OVERLAP
    return [text[start : start + _WINDOW] for start in range(0, len(text) - _OVERLAP, step)]


def _vocabulary(view: str) -> tuple[set[str], set[str], bool]:
    """The words of ``view`` (letter runs), their five-letter stems, and whether it is ASCII."""
    ascii_view = view.isascii()
    if ascii_view:
        # bytes.translate is a C table lookup; str.translate with a dict is ten times slower.
        words = set(view.encode("ascii").translate(_NON_LETTER_BYTES).decode("ascii").split())
    else:
        # The same map over UTF-8 bytes: it leaves every byte of a multi-byte character alone.
        raw = view.encode("utf-8", "surrogatepass").translate(_NON_LETTER_UTF8)
        words = set(raw.decode("utf-8", "surrogatepass").split())
    return words, {word[:5] for word in words if len(word) > 4}, ascii_view


def _any_of(trigger: str, needles: list[str]) -> re.Pattern[str]:
    """A pattern that finds any of ``needles`` (each holding ``trigger``) starting from the trigger.

    Opening on a literal lets re skip to each trigger in C; the rest of each needle is checked
    by a lookbehind and a lookahead around it.
    """
    around = []
    for needle in needles:
        cut = needle.index(trigger) + 1
        before, after = needle[:cut], needle[cut:]
        around.append((f"(?<={re.escape(before)})" if len(before) > 1 else "") + (f"(?={re.escape(after)})" if after else ""))
    return re.compile(f"{re.escape(trigger)}(?:{'|'.join(around)})")


def _word_key(needle: str) -> str | None:
    """The word-prefix key standing for ``needle``, or None when it must be a substring lookup.

    A multi-word needle is keyed by its longest word: looser than the phrase, never stricter.
    """
    if not _WORD_NEEDLE.fullmatch(needle) or not needle.strip():
        return None
    if needle.startswith("="):  # "=allowed": the exact word, not the stem "allow"
        return needle[1:]
    words = needle.split()
    if len(words) == 1:
        return "*" + words[0][:5] if len(words[0]) >= 5 else words[0]
    return max((w for w in words if w not in _COMMON_WORDS), key=len, default=max(words, key=len))


_DECODE_STARTS = _starts(_DECODE_REQUEST)
_SHARED = HeuristicScorer()


def score_injection(text: str, role: str = "user") -> InjectionResult:
    """Score ``text`` with a shared :class:`HeuristicScorer`."""
    return _SHARED.score(text, role)
