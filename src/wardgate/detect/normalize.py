"""Text normalization for the injection detector: one folded view plus the evidence of obfuscation.

Attackers hide instructions from keyword filters with invisible characters, look-alike letters,
stacked combining marks and digit-for-letter swaps. Folding them away lets one set of rules see
the instruction; the fact that they were there is kept as a signal, because benign prompts rarely
use them (ASCII smuggling with Unicode tags: https://embracethered.com/blog/posts/2024/hiding-and-finding-text-with-unicode-tags/).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["NormalizedText", "fold_case", "fold_leetspeak", "normalize"]


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """The views of one text that the rules scan.

    ``text`` is NFKC, case-folded, accent-stripped, with invisible characters removed and
    look-alike letters folded. ``clean`` keeps the original case (decoders need it: base64 is
    case-sensitive). ``hidden`` is text recovered from invisible carriers (Unicode tag characters,
    variant selectors, invisible-operator binary), already folded. ``signals`` names what was found.
    """

    text: str
    clean: str
    hidden: str
    signals: tuple[str, ...]


# Invisible characters that carry no meaning in prose. ZWJ/ZWNJ are legitimate inside emoji
# sequences and Indic/Persian words, so their *presence* only counts between Latin letters.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_ZW_INSIDE_WORD = re.compile("[A-Za-z][\u200b-\u200d\u2060-\u2064\ufeff]+[A-Za-z]")
# Flag emoji (England, Scotland, Wales) are legitimate users of tag characters: drop them first.
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]{1,10}\U000e007f")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_VARIATION_RUN = re.compile("[\U000e0100-\U000e01ef]+")
_SUPPLEMENTARY_SPECIAL = re.compile("[\U000e0000-\U0010ffff]")  # tags, selectors and beyond
# garak's "sneaky bits": each character's binary digits as U+2062 (0) / U+2064 (1), U+200B between words.
_INVISIBLE_BITS = re.compile("[\u2062\u2064][\u2062\u2064\u200b]{13,}")
_MARKS = "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
# Accents come off Latin letters only (é -> e); Cyrillic й or ё keep theirs, since they are
# different letters there. Stacks of three or more marks (Zalgo) come off everything.
_COMBINING = re.compile(f"(?<=[a-z])[{_MARKS}]+|[{_MARKS}]{{3,}}")
_ANY_MARK = re.compile(f"[{_MARKS}]")
_ZALGO = re.compile("[\u0300-\u036f\u0483-\u0489\u1dc0-\u1dff\u20d0-\u20ff]{3,}")

# Cyrillic and Greek letters that render like Latin ones (after case folding).
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g", "ɑ": "a",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w",
})
_LOOKALIKE_CHARS = "".join(chr(c) for c in _HOMOGLYPHS)
_MIXED_WORD = re.compile(
    rf"\b(?=[^\W\d_]*[a-z])(?=[^\W\d_]*[{_LOOKALIKE_CHARS}])[^\W\d_]+\b"
)
_NON_LATIN_LETTER = re.compile("[\u0250-\u02af\u0370-\u03ff\u0400-\u052f]")
# Dotless ı and the dot left by İ's case folding (i + U+0307) both fold to a plain i (str.replace:
# str.translate with a table is ten times slower).

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"})
_LEET_TOKEN = re.compile(r"[a-z0-9@$!|]*(?:[a-z][013457@$!|]|[013457@$!|][a-z])[a-z0-9@$!|]*")
# A leet character *inside* a word ("1gn0r3", "pr3v10us"); "mp3", "h264" or "$100" do not count.
_LEET_INSIDE = re.compile(r"[a-z][013457$@|]+[a-z]")
# Each byte as its class for _LEET_INSIDE: "a" an ASCII lower-case letter, "1" a leet character.
_LEET_SHAPE = bytes(0x61 if 0x61 <= c <= 0x7A else 0x31 if chr(c) in "013457$@|" else 0x20 for c in range(256))
_LEET_INSIDE_SHAPE = re.compile(rb"a1+a")  # _LEET_INSIDE over the class map: opens on a literal


def fold_case(text: str) -> str:
    """Case-fold and strip accents: the cheap path for ASCII, the full one otherwise."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text.casefold())
    text = _COMBINING.sub("", text)
    return unicodedata.normalize("NFC", text).replace("ı", "i")


def normalize(text: str) -> NormalizedText:
    """Fold ``text`` into the view the rules scan and list the obfuscation signals found."""
    if text.isascii():
        # Fast path: nothing to unhide, no look-alikes, no combining marks.
        return NormalizedText(text.lower(), text, "", ())
    mild = _fold_mild(text)
    if mild is not None:
        return mild
    signals: list[str] = []
    hidden_parts: list[str] = []

    # Each costly pass runs only when a cheap test (one regex search) says it can matter.
    if _SUPPLEMENTARY_SPECIAL.search(text):  # max(text) would build a str per character
        text = _TAG_FLAG.sub("", text)
        tags = _TAGS.findall(text)
        if tags:
            signals.append("unicode_tags")
            hidden_parts.extend("".join(chr(ord(c) - 0xE0000) for c in run) for run in tags)
            text = _TAGS.sub("", text)
        variations = _VARIATION_RUN.findall(text)
        if variations:
            signals.append("variant_selectors")
            hidden_parts.extend(_decode_variation_run(run) for run in variations)
            text = _VARIATION_RUN.sub("", text)
    if _INVISIBLE.search(text):
        bits = _INVISIBLE_BITS.findall(text)
        if bits:
            signals.append("invisible_binary")
            hidden_parts.extend(_decode_invisible_bits(run) for run in bits)
            text = _INVISIBLE_BITS.sub("", text)
        if _ZW_INSIDE_WORD.search(text):
            signals.append("zero_width")
        text = _INVISIBLE.sub("", text)

    clean = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFKD", clean.casefold())
    if _ANY_MARK.search(decomposed):
        if len(_ZALGO.findall(decomposed)) >= 2:
            signals.append("zalgo")
        decomposed = _COMBINING.sub("", decomposed)
    folded = unicodedata.normalize("NFC", decomposed).replace("ı", "i")

    mixed = _MIXED_WORD.findall(folded) if _NON_LATIN_LETTER.search(folded) else []
    if mixed:
        # Only texts that mix scripts inside words are folded, so Russian or Greek prose keeps
        # its letters and its own-language rules still match.
        folded = folded.translate(_HOMOGLYPHS)
        if len(mixed) >= 2:
            signals.append("homoglyphs")

    hidden = fold_case(" ".join(p for p in hidden_parts if p.strip()))
    return NormalizedText(folded, clean, hidden, tuple(signals))


_ASCII_BYTES = bytes(range(0x80))
_MILD_MAX = 32
_HANGUL_JAMO = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff]")


def _fold_mild(text: str) -> NormalizedText | None:
    """The same result as the full path for text whose non-ASCII characters fold one by one.

    Most non-ASCII prompts only add “quotes”, dashes, emoji, accented letters or CJK: each such
    character folds on its own (no combining mark, invisible, tag or look-alike letter to look at
    across characters), so a replace per distinct character does what NFKC / NFKD / NFC over the
    whole text would, for a fraction of the cost. None when some character needs the full path.
    A long text is folded piece by piece, so its cost stays linear in the number of characters.
    """
    changes = _mild_changes(text)
    if changes is None:
        return None
    if len(changes) <= _MILD_MAX:
        clean, folded = _apply(text, changes)
        return NormalizedText(folded.lower(), clean, "", ())
    if len(text) <= _MILD_PIECE:
        return None
    cleans, foldeds = [], []
    for start in range(0, len(text), _MILD_PIECE):
        piece = text[start : start + _MILD_PIECE]
        changes = _mild_changes(piece)
        if changes is None or len(changes) > _MILD_MAX:
            return None
        clean, folded = _apply(piece, changes)
        cleans.append(clean)
        foldeds.append(folded)
    return NormalizedText("".join(foldeds).lower(), "".join(cleans), "", ())


_MILD_PIECE = 4096


def _mild_changes(text: str) -> list[tuple[str, tuple[str, str]]] | None:
    """Each distinct non-ASCII character of ``text`` that folds to something else, with its
    (NFKC, folded) forms; None if one needs the full path."""
    odd = set(text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))
    changes = []
    for char in odd:
        fold = _MILD.get(char)
        if fold is None:
            fold = _mild_fold_char(char)
            if len(_MILD) < 65_536:
                _MILD[char] = fold
        if fold is False:
            return None
        if fold != (char, char):
            changes.append((char, fold))
    return changes


def _apply(text: str, changes: list[tuple[str, tuple[str, str]]]) -> tuple[str, str]:
    clean, folded = text, text
    for char, (kept, lowered) in changes:
        if kept != char:
            clean = clean.replace(char, kept)
        if lowered != char:
            folded = folded.replace(char, lowered)
    return clean, folded


_MILD: dict[str, tuple[str, str] | bool] = {}


def _mild_fold_char(char: str) -> tuple[str, str] | bool:
    """(NFKC form, folded form) of one character, or False when it needs the whole text."""
    if (_SUPPLEMENTARY_SPECIAL.match(char) or _INVISIBLE.match(char) or _HANGUL_JAMO.match(char)
            or unicodedata.combining(char) or unicodedata.category(char).startswith("M")):
        return False
    kept = unicodedata.normalize("NFKC", char)
    decomposed = unicodedata.normalize("NFKD", kept.casefold())
    if _ZALGO.search(decomposed) or _MIXED_EDGE.match(decomposed):
        return False
    lowered = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed)).replace("ı", "i")
    if (not lowered or lowered.lower() != lowered or _NON_LATIN_LETTER.search(lowered)
            or any(unicodedata.combining(c) or unicodedata.category(c).startswith("M") for c in (kept[:1], lowered[:1]))):
        return False
    return kept, lowered


# A decomposition that opens on a mark would attach to the character before it.
_MIXED_EDGE = re.compile(f"[{_MARKS}]")


def fold_leetspeak(text: str) -> str | None:
    """Return ``text`` with digit-for-letter swaps undone, or None when it has none.

    Only tokens that mix letters with leet characters are rewritten, so numbers stay numbers.
    """
    # A match of _LEET_INSIDE holds a letter then a leet character and the reverse: two byte
    # searches over a class map of the text rule out most texts before the regex scan.
    shape = text[:20_000].encode("utf-8", "replace").translate(_LEET_SHAPE)
    if b"a1" not in shape or b"1a" not in shape or len(_LEET_INSIDE_SHAPE.findall(shape)) < 2:
        return None
    tokens = _leet_tokens(text)
    if tokens is None:
        return _LEET_TOKEN.sub(_unleet_token, text)  # callback only on tokens mixing letters and leet
    # The same result as the substitution: longest first, a token inside a longer one is already
    # rewritten with it (and the rewrite is character by character, so it agrees).
    for token in sorted(tokens, key=len, reverse=True):
        text = text.replace(token, token.translate(_LEET))
    return text


# Each byte as its class for _LEET_TOKEN: " " outside a token, "1" a leet character, "a" a
# letter, "0" another token character.
_TOKEN_SHAPE = bytes(
    0x61 if 0x61 <= c <= 0x7A else 0x31 if chr(c) in "013457@$!|" else 0x30 if chr(c) in "2689" else 0x20 for c in range(256)
)
_MAX_LEET_TOKENS = 64


def _leet_tokens(text: str) -> set[str] | None:
    """The distinct tokens _LEET_TOKEN rewrites, found with C-level byte searches (None: many)."""
    raw = text.encode("utf-8", "surrogatepass")
    shape = raw.translate(_TOKEN_SHAPE)
    tokens: set[str] = set()
    for pair in (b"a1", b"1a"):
        at = shape.find(pair)
        while at >= 0:
            start = shape.rfind(b" ", 0, at) + 1
            end = shape.find(b" ", at)
            end = len(shape) if end < 0 else end
            tokens.add(raw[start:end].decode("ascii"))
            if len(tokens) > _MAX_LEET_TOKENS:
                return None
            at = shape.find(pair, end)
    return tokens


def _unleet_token(match: re.Match[str]) -> str:
    return match.group().translate(_LEET)


def _decode_variation_run(run: str) -> str:
    # garak maps a byte b to U+E0100 + b; the published scheme (Paul Butler) uses b - 16 for the
    # supplementary block. Keep whichever reading is printable text.
    direct = "".join(chr(ord(c) - 0xE0100) for c in run)
    if _printable_ratio(direct) >= 0.8:
        return direct
    return "".join(chr(ord(c) - 0xE0100 + 16) for c in run)


def _decode_invisible_bits(run: str) -> str:
    words = []
    for chunk in run.split("\u200b"):
        bits = chunk.replace("\u2062", "0").replace("\u2064", "1")
        width = 7 if len(bits) % 7 == 0 else 8
        words.append("".join(chr(int(bits[i : i + width], 2)) for i in range(0, len(bits) - width + 1, width)))
    return " ".join(words)


def _printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    return sum(1 for c in text if c.isprintable() or c in "\n\t") / len(text)
