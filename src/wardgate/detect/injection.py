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
from wardgate.detect.normalize import NormalizedText, fold_case, fold_leetspeak, normalize
from wardgate.detect.prefilter import Atom, Clause, Gate, Region, Vocabulary, literal_atom, required_clauses, vocabulary

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
        # Gating: each rule runs only on a text that holds the words every match of its regex
        # holds (read from the pattern, see prefilter.py) and one of its declared needles.
        # Deciding that costs one split of the text into words and a set intersection with the
        # rules' key words, whatever the number of rules; most rules never run on ordinary text.
        self._rules = rules
        # The last requirement is the decode request's (_DECODE_REQUEST): one gate pass for both.
        self._gate = Gate([*(_requirement(rule) for rule in rules), required_clauses(_DECODE_REQUEST)])
        self._decode_index = len(rules)
        # Rules this weak for the role cannot move a verdict: not worth running their regex.
        # Sets, each also with the decode request's index: the gate looks up its few candidates.
        self._by_role = {
            tool: frozenset(position for position, rule in enumerate(rules) if (rule.tool if tool else rule.user) >= _NEGLIGIBLE)
            for tool in (False, True)
        }
        self._by_role_decode = {tool: among | {self._decode_index} for tool, among in self._by_role.items()}
        # re.search tries a pattern that does not open with a literal at every position (~20 µs
        # per KB each). Every match of a rule starts with one of its literal prefixes, so the rule
        # is instead tried with .match() where str.find (a C scan) sees one of them.
        self._starts = tuple(_starts(rule.pattern) for rule in rules)

    def score(self, text: str, role: str = "user") -> InjectionResult:
        tool = role == "tool"
        norm = normalize(text)
        signals = list(norm.signals)
        fired: dict[int, Rule] = {}  # by position (a Rule's dataclass hash is costly), in order

        leeted = asks_decoding = False
        regions = _regions(norm.text)
        for vocab, bounds in regions:
            # Rules are local (bounded word gaps), so a long text is matched region by region:
            # the cost stays linear in its length. A region is two blocks; matches starting in
            # its second block are the next region's, so each block is searched once.
            _new, asks = self._scan(vocab, fired, tool, norm.text, bounds, decode=not asks_decoding)
            asks_decoding = asks_decoding or asks
            # No leet character ("013457$@|") at all: nothing to fold, and no pass over the view.
            leet = None if type(vocab) is Vocabulary and vocab.symbols().isdisjoint(_LEET_BYTES) else fold_leetspeak(vocab.view)
            if leet is not None and leet != vocab.view and self._scan(vocabulary(leet), fired, tool)[0]:
                leeted = True
        if norm.hidden:
            self._scan(vocabulary(norm.hidden), fired, tool)
        if leeted:
            signals.append("leetspeak")

        stems = regions[0][0].stems if asks_decoding and len(regions) == 1 else None  # only a decode request uses them
        words = regions[0][0].word_set if len(regions) == 1 else set().union(*(vocab.word_set for vocab, _b in regions))
        # An ASCII text's view is its lower case: its digits and punctuation are the clean text's,
        # and they rule out some decoders without a search.
        symbols = regions[0][0].symbols() if len(regions) == 1 and text.isascii() else None
        encoded_weight, decoded = self._decode(norm, signals, stems, words, asks_decoding, symbols)
        for blob in decoded:
            if self._scan(vocabulary(fold_case(blob.text)), fired, tool)[0]:
                signals.append(f"{blob.encoding}_decoded")

        if not fired and not encoded_weight and not signals:
            return _NOTHING  # what the lines below make of nothing, without the work
        families: dict[str, float] = {}
        for rule in fired.values():
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

    def _scan(self, vocab: Vocabulary | Region, fired: dict[int, Rule], tool: bool,
              text: str | None = None, bounds: tuple[int, int | None, int] | None = None,
              decode: bool = False) -> tuple[bool, bool]:
        """Add the rules that match ``vocab.view`` to ``fired``; whether any rule was new, and
        (with ``decode``) whether the view may ask for something to be decoded.

        With ``text`` and ``bounds`` (start, stop, end), ``vocab`` is that of ``text[start:end]``
        and a match must start in ``[start, stop)``: lookbehinds and ``^`` see the whole text.
        """
        new = False
        view, (start, stop, end) = (vocab.view, (0, None, len(vocab.view))) if text is None or bounds is None else (text, bounds)
        # Offsets of each literal prefix, shared by the rules that start alike (_IGNORE ...).
        offsets: dict[str, list[int] | None] = {}
        passing = self._gate.passing(vocab, (self._by_role_decode if decode else self._by_role)[tool], fired)
        asks = bool(passing) and passing[-1] == self._decode_index
        for position in passing[:-1] if asks else passing:
            rule = self._rules[position]
            if _first_match(rule.pattern, view, self._starts[position], offsets, vocab.stems, start, stop, end) is not None:
                fired[position] = rule
                new = True
        return new, asks

    def _decode(self, norm: NormalizedText, signals: list[str], stems: set[str] | None, words: set[str],
                asks_decoding: bool, symbols: frozenset[int] | None = None) -> tuple[float, list[DecodedBlob]]:
        """Decode embedded blobs; return the weight of the ``encoded`` family and the decodings."""
        folded, clean, hidden = norm.text, norm.clean, norm.hidden
        decoded = list(decode_blobs(clean, words, symbols))
        request = _first_match(_DECODE_REQUEST, folded, _DECODE_STARTS, {}, stems) if asks_decoding else None
        # "does" between two spaces is a word of the view: a set test before the substring search.
        asks_meaning = _ASK_MEANING.search(folded) if request is None and "does" in words and "what does this" in folded else None
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


_COMMON_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "end", "following", "for", "if", "in", "is", "it", "not", "of", "on", "only", "just", "that", "the", "this", "to", "when", "with", "you", "your"]
)
_WORD_NEEDLE = re.compile(r"=?[a-z\u0430-\u044f\u0451 ]+")
_BLOCK = 2048  # a region is two consecutive blocks: longer than any rule's match
_CUT_REACH = 512


def _regions(text: str) -> list[tuple[Vocabulary | Region, tuple[int, int | None, int]]]:
    """``text`` as overlapping regions: the words of two consecutive blocks, and the region's
    bounds (start, where its own matches stop starting: its second block, None for the last; end).

    Each block is split into words once; a region's vocabulary is the union of its two blocks'.
    Blocks end after a separator, so no word is cut in two and every match shorter than a block
    lies whole in the region where it starts.
    """
    if len(text) <= 2 * _BLOCK:
        return [(vocabulary(text), (0, None, len(text)))]
    cuts = [0]
    while len(text) - cuts[-1] > _BLOCK:
        cuts.append(_cut(text, cuts[-1] + _BLOCK))
    cuts.append(len(text))
    blocks = [vocabulary(text[start:end]) for start, end in zip(cuts, cuts[1:])]
    last = len(blocks) - 2
    return [(Region(text, cuts[i], cuts[i + 1], cuts[i + 2], first, second), (cuts[i], None if i == last else cuts[i + 1], cuts[i + 2]))
            for i, (first, second) in enumerate(zip(blocks, blocks[1:]))]


def _cut(text: str, at: int) -> int:
    """Where to end a block near ``at``: after a line break or a space, else after any non-letter."""
    low = at - _CUT_REACH
    for separator in ("\n", " "):
        found = text.rfind(separator, low, at)
        if found >= 0:
            return found + 1
    for i in range(at - 1, low - 1, -1):
        if not text[i].isalpha():
            return i + 1
    return at


def _requirement(rule: Rule) -> tuple[Clause, ...]:
    """What a text must hold for ``rule`` to run: its pattern's words and one of its needles."""
    needles = frozenset(_needle_atom(needle) for needle in rule.needles)
    # A needle that is not a word ("# system", "exec(") still holds one: test that first.
    letters = frozenset(atom if atom[0] != "R" else literal_atom(atom[1]) for atom in needles)
    prerequisite = (letters,) if None not in letters and letters != needles else ()
    return (*required_clauses(rule.pattern), *prerequisite, needles)


def _needle_atom(needle: str) -> Atom:
    """A needle as a vocabulary test: a word, a five-letter stem, or a plain substring (``R``)."""
    key = _word_key(needle)
    if key is None:
        return ("R", needle)
    if key.startswith("*"):
        return ("S", key[1:])
    return ("W", key)


def _word_key(needle: str) -> str | None:
    """The word-prefix key standing for ``needle``, or None when it must be a substring lookup.

    A one-word needle of five letters or more is a stem ("*ignor" for ignore/ignoring/ignorez), a
    shorter one a whole word ("=allowed": the exact word, not the stem "allow"); a multi-word
    needle is keyed by its longest uncommon word: looser than the phrase, never stricter.
    """
    if not _WORD_NEEDLE.fullmatch(needle) or not needle.strip():
        return None
    if needle.startswith("="):
        return needle[1:]
    words = needle.split()
    if len(words) == 1:
        return "*" + words[0][:5] if len(words[0]) >= 5 else words[0]
    return max((w for w in words if w not in _COMMON_WORDS), key=len, default=max(words, key=len))


_DECODE_STARTS = _starts(_DECODE_REQUEST)
_LEET_BYTES = frozenset(b"013457$@|")  # what fold_leetspeak reads as letters
_NOTHING = InjectionResult(0.0, (), ())
_SHARED = HeuristicScorer()


def score_injection(text: str, role: str = "user") -> InjectionResult:
    """Score ``text`` with a shared :class:`HeuristicScorer`."""
    return _SHARED.score(text, role)
