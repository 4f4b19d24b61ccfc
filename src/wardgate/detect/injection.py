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
_DECODE_WORDS = ("decod", "decip", "decryp", "deobf", "unscram", "translat", "convert", "interpret", "encoded")
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
        gated = []
        substrings: set[str] = set()
        for rule in rules:
            keys: set[str] = set()
            subs: set[str] = set()
            for needle in rule.needles:
                key = _word_key(needle)
                if key is None:
                    subs.add(needle)
                else:
                    keys.add(key)
            substrings |= subs
            gated.append((rule, frozenset(keys), frozenset(subs)))
        self._rules = tuple(gated)
        # Inverted index: word key or substring -> positions of the rules it gates.
        index: dict[str, list[int]] = {}
        for position, (_rule, keys, subs) in enumerate(gated):
            for key in keys | subs:
                index.setdefault(key, []).append(position)
        self._index = {key: tuple(positions) for key, positions in index.items()}
        self._index_keys = frozenset(index)
        # Substring needles grouped by their first punctuation character: one cheap character
        # test skips a whole group (most text has no "<|", "[system" or "{{").
        groups: dict[str, list[str]] = {}
        for needle in sorted(substrings):
            trigger = next((c for c in needle if not c.isalnum() and c != " "), needle[0])
            groups.setdefault(trigger, []).append(needle)
        self._substrings = tuple((trigger, tuple(needles)) for trigger, needles in groups.items())

    def score(self, text: str, role: str = "user") -> InjectionResult:
        tool = role == "tool"
        norm = normalize(text)
        signals = list(norm.signals)
        fired: dict[Rule, None] = {}  # insertion-ordered set

        self._scan(norm.text, fired, tool)
        if norm.hidden:
            self._scan(norm.hidden, fired, tool)
        leet = fold_leetspeak(norm.text)
        if leet is not None and leet != norm.text and self._scan(leet, fired, tool):
            signals.append("leetspeak")

        encoded_weight, decoded = self._decode(norm.text, norm.clean, norm.hidden, signals)
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

    def _scan(self, view: str, fired: dict[Rule, None], tool: bool) -> bool:
        """Add the rules that match ``view`` to ``fired``; True if any rule was new."""
        if view.isascii():
            # bytes.translate is a C table lookup; str.translate with a dict is ten times slower.
            tokens = view.encode("ascii").translate(_NON_LETTER_BYTES).decode("ascii").split()
        else:
            tokens = view.translate(_NON_LETTERS).split()
        words = set(tokens)
        words.update(["*" + token[:5] for token in tokens if len(token) >= 5])
        found = {
            needle
            for trigger, needles in self._substrings if trigger in view
            for needle in needles if needle in view
        }
        candidates: set[int] = set()
        for key in self._index_keys.intersection(words | found):
            candidates.update(self._index[key])
        new = False
        for position in sorted(candidates):
            rule = self._rules[position][0]
            if rule in fired or (rule.tool if tool else rule.user) < _NEGLIGIBLE:
                continue
            if rule.pattern.search(view):
                fired[rule] = None
                new = True
        return new

    def _decode(self, folded: str, clean: str, hidden: str, signals: list[str]) -> tuple[float, list[DecodedBlob]]:
        """Decode embedded blobs; return the weight of the ``encoded`` family and the decodings."""
        decoded = list(decode_blobs(clean))
        request = _DECODE_REQUEST.search(folded) if any(w in folded for w in _DECODE_WORDS) else None
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


_NON_LETTERS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalpha()})
_NON_LETTER_BYTES = bytes(c if chr(c).isalpha() else 0x20 for c in range(256))
_COMMON_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "end", "following", "for", "if", "in", "is", "it", "not", "of", "on", "only", "just", "that", "the", "this", "to", "when", "with", "you", "your"]
)
_WORD_NEEDLE = re.compile(r"=?[a-z\u0430-\u044f\u0451 ]+")


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


_SHARED = HeuristicScorer()


def score_injection(text: str, role: str = "user") -> InjectionResult:
    """Score ``text`` with a shared :class:`HeuristicScorer`."""
    return _SHARED.score(text, role)
