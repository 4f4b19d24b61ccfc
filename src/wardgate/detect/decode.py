"""Find and decode encoded blobs so the injection rules can scan what they say.

Encoding is a standard way to carry an instruction past a keyword filter (garak's ``encoding``
probes: base64, base32, base16, ascii85, uuencode, quoted-printable, MIME, ROT13, Atbash, Morse,
Braille, NATO alphabet ...). Scanning every text for every encoding would be slow and noisy, so
:func:`decode_blobs` only tries runs whose *shape* fits an encoding and keeps results that read as
text; :func:`decode_payload` tries everything on a payload the text explicitly asks to decode.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import quopri
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.header import decode_header, make_header
from urllib.parse import unquote

__all__ = ["DecodedBlob", "decode_blobs", "decode_payload", "has_opaque_blob"]


@dataclass(frozen=True, slots=True)
class DecodedBlob:
    """One decoded run: the encoding's name, the decoded text, and the encoded run's length."""

    encoding: str
    text: str
    length: int


_B64 = re.compile(r"(?<![\w+/=-])(?:[A-Za-z0-9+/_-]{16,}={0,2}|[A-Za-z0-9+/]{4,}={1,2})(?![\w+/=-])")
_B32 = re.compile(r"(?<![\w=])(?:[A-Z2-7]{16,}={0,6}|[A-Z2-7]{2,}={1,6})(?![\w=])")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}){6,}(?![0-9A-Za-z])")
_URL_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2}[^\s%]{0,3}){3,}")
# Consecutive escapes, or the escapes of "=", space and newline that quoted-printable emits alone.
_QP = re.compile(r"(?:=[0-9A-F]{2}){2,}|=3D|=20|=0A")
_HTML_ENTITY = re.compile(r"&(?:lt|gt|quot|amp|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
_MIME_WORD = re.compile(r"=\?[\w-]+\?[bBqQ]\?[^?\s]+\?=")
_MORSE = re.compile(r"(?<![\w.-])(?:[.\-]{1,7}(?:\s*/\s*|\s+)){3,}[.\-]{1,7}(?![\w.-])")
_BRAILLE = re.compile("[\u2800-\u28ff]{2,}(?:\\s+[\u2800-\u28ff]+)*")
_NATO_WORDS = ["alfa", "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "whisky", "xray", "x-ray", "yankee", "zulu"]
_NATO_WORD = "|".join(_NATO_WORDS)
_NATO_SET = frozenset(_NATO_WORDS)
_NATO = re.compile(rf"\b(?:{_NATO_WORD})(?:\s+(?:{_NATO_WORD})){{3,}}\b", re.IGNORECASE)
_WHOLE_LINE = frozenset(("quoted_printable", "html_entities"))
_TOKEN_ENCODINGS = frozenset(("base64", "base32", "hex"))
_TOKEN_CHARS = {
    "base64": re.compile(r"[A-Za-z0-9+/_-]+={0,2}"),
    "base32": re.compile(r"[A-Z2-7]+={0,6}"),
    "hex": re.compile(r"(?:[0-9A-Fa-f]{2})+"),
}
_EMOJI_RUN = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]{8,}")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]{10,}")

_MORSE_TABLE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h",
    "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p",
    "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x",
    "-.--": "y", "--..": "z", "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4",
    ".....": "5", "-....": "6", "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",",
    "..--..": "?", "-.-.--": "!", "-..-.": "/", "-.--.": "(", "-.--.-": ")", "---...": ":", ".-...": "&",
}
# Grade-1 English Braille, dot patterns as Unicode offsets from U+2800.
_BRAILLE_LETTERS = dict(zip(
    (0x01, 0x03, 0x09, 0x19, 0x11, 0x0B, 0x1B, 0x13, 0x0A, 0x1A, 0x05, 0x07, 0x0D, 0x1D, 0x15, 0x0F,
     0x1F, 0x17, 0x0E, 0x1E, 0x25, 0x27, 0x3A, 0x2D, 0x3D, 0x35),
    "abcdefghijklmnopqrstuvwxyz",
))
_BRAILLE_DIGITS = dict(zip("abcdefghij", "1234567890"))
_BRAILLE_PUNCT = {0x02: ",", 0x06: ";", 0x12: ":", 0x32: ".", 0x16: "!", 0x26: "?", 0x36: '"', 0x04: "'", 0x24: "-"}


def decode_blobs(text: str, words: set[str] | frozenset[str] | None = None,
                 symbols: frozenset[int] | None = None) -> tuple[DecodedBlob, ...]:
    """Decode every run of ``text`` whose shape fits an encoding and whose decoding reads as text.

    ``words``, the lower-case letter runs of ``text`` if the caller has them, saves finding them
    again (they only tell whether NATO words occur). ``symbols``, the distinct digits and ASCII
    punctuation of an ASCII ``text`` (as bytes) if the caller has them, saves searches for them.
    """
    if not text or text.isspace():
        return ()
    raw = text.encode("utf-8", "surrogatepass")
    if symbols is not None and words is not None and symbols.isdisjoint(_BLOB_NON_LETTERS) and max(map(len, words), default=0) < 20:
        # No digit nor "+/_=-": a run of the blob alphabet is one of letters, a word, and none is
        # long enough to count (see _long_tokens). Spares two passes over the text.
        long: list[str] = []
    else:
        long = _long_tokens(text, raw, symbols)
    wanted = _wanted_encodings(text, raw, words, bool(long), symbols)
    if not wanted:
        return ()
    found: list[DecodedBlob] = []
    for token in _blob_tokens(long) if wanted & _TOKEN_ENCODINGS else ():
        for encoding, decoder in ((e, d) for e, _p, d in _SHAPED[:3]):
            if _TOKEN_CHARS[encoding].fullmatch(token):
                decoded = decoder(token)
                if decoded and _reads_as_text(decoded) and decoded != token:
                    found.append(DecodedBlob(encoding, decoded, len(token)))
                    break
    if "url" in wanted:
        for token in _tokens_around(text, "%"):
            if token.count("%") >= 2:
                decoded = unquote(token)
                if decoded != token and _reads_as_text(decoded):
                    found.append(DecodedBlob("url", decoded, len(token)))
    for encoding, pattern, decoder in _SHAPED[3:]:
        if encoding not in wanted or encoding == "url":
            continue
        matches = (_morse_matches(text, raw) if encoding == "morse" else _nato_matches(text)
                   if encoding == "nato" else pattern.finditer(text))
        for match in matches:
            blob = _line_of(text, match) if encoding in _WHOLE_LINE else match.group()
            decoded = decoder(blob)
            if decoded and _reads_as_text(decoded) and decoded != blob:
                found.append(DecodedBlob(encoding, decoded, len(blob)))
    return tuple(dict.fromkeys(found))


# Byte maps of the text. Whitespace (what str.split splits on, in ASCII) against the rest; the
# characters of a base64 / base32 / hex token against the rest; among those, the non-letters.
_SPLIT_BYTES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_BLOB_CHARS = b"0123456789+/_=-"
_BLOB_NON_LETTERS = frozenset(_BLOB_CHARS)
_WHITESPACE_SHAPE = bytes(0x20 if c in _SPLIT_BYTES else 0x78 for c in range(256))
_BLOB_SHAPE = bytes(0x78 if c in _BLOB_CHARS or chr(c).isalpha() and c < 0x80 else 0x20 for c in range(256))
_DIGIT_SHAPE = bytes(0x30 if c in _BLOB_CHARS else 0x61 for c in range(256))
_RUN = b"x" * 12
_PADDED_END = re.compile(r"=(?=\s|\Z)(?<=\S{4})")  # a token of four or more ending in "=" (opens on "=")
# Morse after mapping: "-" and "." to ".", "/" and spaces to " ", anything else to "x": four
# code groups in a row.
_MORSE_SHAPE = bytes(0x2E if c in b".-" else 0x20 if c in b"/" + _SPLIT_BYTES else 0x78 for c in range(256))
_MORSE_HINT = re.compile(rb"\. +\.+ +\.+ +\.")
_QP_HINT = re.compile(r"=(?:[0-9A-F]{2}=[0-9A-F]{2}|3D|20|0A)")  # _QP's matches, opening on a literal
_BRAILLE_LEADS = (b"\xe2\xa0", b"\xe2\xa1", b"\xe2\xa2", b"\xe2\xa3")  # U+2800-U+28FF in UTF-8


def _long_tokens(text: str, raw: bytes, symbols: frozenset[int] | None = None) -> list[str]:
    """The whitespace-separated tokens that can hold a blob: twelve characters or more of the
    blob alphabet (with a non-letter among them, or twenty letters), or a token ending in "=".

    Found with C-level searches over byte maps of the text: a Python loop over every word would
    cost more than all the decoders together on ordinary prose.
    """
    blob = raw.translate(_BLOB_SHAPE)
    out: list[str] = []
    at = blob.find(_RUN)
    if at >= 0:
        spaces = raw.translate(_WHITESPACE_SHAPE)
        digits = raw.translate(_DIGIT_SHAPE)
    while at >= 0:
        run_end = blob.find(b" ", at)
        run_end = len(blob) if run_end < 0 else run_end
        if run_end - at >= 20 or digits.find(b"0", at, run_end) >= 0:  # not a plain long word
            start = spaces.rfind(b" ", 0, at) + 1
            end = spaces.find(b" ", at)
            end = len(spaces) if end < 0 else end
            # Other Unicode spaces (no-break, ideographic) split it further, as str.split would.
            out += [t for t in raw[start:end].decode("utf-8", "surrogatepass").split() if len(t) >= 12]
            run_end = max(run_end, end)
        at = blob.find(_RUN, run_end)
    if ("=" in text) if symbols is None else (0x3D in symbols):
        seen = set(out)
        for token in _tokens_around(text, "=", _PADDED_END):
            if token not in seen and token[-1] == "=":
                out.append(token)
                seen.add(token)
    return out


def _morse_matches(text: str, raw: bytes) -> list[re.Match[str]]:
    """``_MORSE.finditer(text)``, scanning only the runs of dots, dashes, spaces and slashes that
    hold four code groups (a match never leaves such a run). Offsets are the byte map's, so a
    non-ASCII text (and its Unicode spaces) goes the slow way."""
    if not text.isascii():
        return list(_MORSE.finditer(text))
    shape = raw.translate(_MORSE_SHAPE)
    out: list[re.Match[str]] = []
    end = 0
    for hint in _MORSE_HINT.finditer(shape):
        if hint.start() < end:
            continue
        start = shape.rfind(b"x", 0, hint.start()) + 1
        end = shape.find(b"x", hint.end())
        end = len(shape) if end < 0 else end
        # One character past the run, so the closing (?![\w.-]) sees what follows it.
        out += [m for m in _MORSE.finditer(text, start, min(len(text), end + 1)) if m.end() <= end]
    return out


_CASE_TWINS = "\u0130\u0131\u017f\u212a"  # İ ı ſ K: (?i) matches them to i, s and k


def _nato_matches(text: str) -> list[re.Match[str]]:
    """``_NATO.finditer(text)``, scanning only the stretches where NATO words follow each other
    with nothing but whitespace between. The words are found in the lower-cased text, where
    offsets are the text's when no character lower-cases to two; the few non-ASCII letters that
    ignore-case matching equates with ASCII ones send the text the slow way."""
    low = text.lower()
    if len(low) != len(text) or (not text.isascii() and any(c in text for c in _CASE_TWINS)):
        return list(_NATO.finditer(text))
    found: list[tuple[int, int]] = []
    for word in _NATO_WORDS:
        at = low.find(word)
        while at >= 0:
            found.append((at, at + len(word)))
            at = low.find(word, at + 1)
    found.sort()
    stretches: list[tuple[int, int]] = []
    start = end = count = 0
    for at, stop in found:
        if count and (at <= end or text[end:at].isspace()):
            end, count = max(end, stop), count + 1
            continue
        if count >= 4:
            stretches.append((start, end))
        start, end, count = at, stop, 1
    if count >= 4:
        stretches.append((start, end))
    # One character past each stretch, so the closing \b sees what follows it.
    return [m for lo, hi in stretches for m in _NATO.finditer(text, lo, min(len(text), hi + 1))]


def _tokens_around(text: str, char: str, pattern: re.Pattern[str] | None = None) -> list[str]:
    """The whitespace-separated tokens holding ``char`` (at a match of ``pattern`` if given)."""
    out: list[str] = []
    end = 0
    positions = (m.start() for m in pattern.finditer(text)) if pattern is not None else _positions(text, char)
    for at in positions:
        if at < end:
            continue  # inside the token just taken
        start = max(text.rfind(c, 0, at) for c in (" ", "\n", "\t", "\r")) + 1
        ends = [e for e in (text.find(c, at) for c in (" ", "\n", "\t", "\r")) if e >= 0]
        end = min(ends) if ends else len(text)
        out += [t for t in text[start:end].split() if char in t]
    return out


def _positions(text: str, char: str):
    at = text.find(char)
    while at >= 0:
        yield at
        at = text.find(char, at + 1)


def _wanted_encodings(text: str, raw: bytes, words: set[str] | frozenset[str] | None, long: bool,
                      symbols: frozenset[int] | None = None) -> set[str]:
    """Cheap checks (substring tests, a byte map) that pick the decoders worth running.

    Most text has no blob at all, and one regex pass per encoding would cost more than all the
    injection rules together. ``symbols`` (see decode_blobs) answer for a character without a search.
    """
    wanted: set[str] = set()
    has = text.__contains__ if symbols is None else lambda char: ord(char) in symbols
    equals = has("=")
    if equals or long:
        wanted.update(_TOKEN_ENCODINGS)
    if equals:
        if "=?" in text:
            wanted.add("mime")
        if _QP_HINT.search(text):
            wanted.add("quoted_printable")
    if has("%"):
        wanted.add("url")
    if has("&") and _HTML_ENTITY.search(text):
        wanted.add("html_entities")
    # Morse needs code groups separated by spaces or "/": ". ." in a byte map ("... ..." is rare
    # in prose). Other Unicode spaces are multi-byte: a non-ASCII text keeps the looser test.
    if has(".") and (".-" in text or "-." in text or "... " in text):
        if not text.isascii() or _MORSE_HINT.search(raw.translate(_MORSE_SHAPE)):
            wanted.add("morse")
    if len(raw) != len(text) and any(lead in raw for lead in _BRAILLE_LEADS) and _BRAILLE.search(text):
        wanted.add("braille")
    # Four NATO words in a row: at least two distinct ones must occur at all.
    if words is None:
        words = set(raw.lower().translate(_LETTER_BYTES).decode("utf-8", "surrogatepass").split())
    if len(_NATO_SET.intersection(words)) >= 2:
        wanted.add("nato")
    return wanted


_LETTER_BYTES = bytes(c if c >= 0x80 or chr(c).isalpha() or c == 0x2D else 0x20 for c in range(256))


def _blob_tokens(long: list[str]) -> list[str]:
    """Long or padded tokens that could be a base64 / base32 / hex blob, stripped of quotes and brackets."""
    out = []
    for token in long:
        token = token.strip("\"'`()[]{}<>,;:.!?")
        long_enough = len(token) >= 12 or (token.endswith("=") and len(token) >= 4)
        # A plain word is not a blob unless it is implausibly long for a word.
        if long_enough and (not token.isalpha() or len(token) >= 20):
            out.append(token)
    return out


def _line_of(text: str, match: re.Match[str]) -> str:
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start : end if end >= 0 else len(text)]


def decode_payload(payload: str) -> tuple[DecodedBlob, ...]:
    """Try every decoder on a payload the text asks to have decoded, whatever its length."""
    payload = payload.strip()
    if not payload:
        return ()
    found = list(decode_blobs(payload))
    seen = {blob.encoding for blob in found}
    # Short one-token lines fall under the shape minimums; the request vouches for them.
    lines = [line.strip() for line in payload.split("\n") if line.strip()]
    tokens = [line for line in lines if " " not in line]
    for token in tokens:
        for encoding, _pattern, decoder in _SHAPED[:3]:
            if encoding not in seen and _TOKEN_CHARS[encoding].fullmatch(token):
                decoded = decoder(token)
                if decoded and decoded != token and _reads_as_text(decoded):
                    found.append(DecodedBlob(encoding, decoded, len(token)))
                    break
    for encoding, decoder in _EXPLICIT_ONLY:
        target = payload if encoding in _SUBSTITUTIONS or not lines else lines[-1]
        decoded = decoder(target)
        if encoding in _SUBSTITUTIONS and not (_english_ratio(decoded or "") >= 0.3 > _english_ratio(payload)):
            continue
        if decoded and decoded != payload and _reads_as_text(decoded):
            found.append(DecodedBlob(encoding, decoded, len(target)))
    return tuple(found)


def has_opaque_blob(text: str) -> bool:
    """True when ``text`` holds a run that looks encoded but that no decoder here reads.

    Base2048 spreads bytes over many scripts in one unbroken run; Ecoji over many distinct emoji.
    Prose in any one language uses one or two scripts per word.
    """
    for match in _EMOJI_RUN.finditer(text):
        if len(set(match.group())) >= 6:
            return True
    for match in _NON_ASCII_RUN.finditer(text):
        scripts = {unicodedata.name(c, "?").split(" ")[0] for c in match.group()}
        if len(scripts) >= 6:
            return True
    return False


_SUBSTITUTIONS = frozenset(("rot13", "atbash"))
_COMMON_ENGLISH = frozenset(
    ["the", "a", "an", "is", "are", "was", "be", "to", "of", "and", "in", "on", "at", "it", "for", "with", "that", "this", "you", "your", "i", "we", "they", "not", "what", "where", "how", "why", "all", "any", "can", "do", "does", "from", "have", "has", "if", "or", "but", "by", "as", "so", "me", "my", "our", "ignore", "instructions", "previous", "say", "print", "tell"]
)


def _english_ratio(text: str) -> float:
    """Share of common English words: tells a ROT13 / Atbash decoding that means something."""
    words = re.findall(r"[a-z']+", text.lower())
    if len(words) < 3:
        return 0.0
    return sum(1 for word in words if word in _COMMON_ENGLISH) / len(words)


def _reads_as_text(decoded: str) -> bool:
    if len(decoded) < 2:
        return False
    printable = sum(1 for c in decoded if c.isprintable() or c in "\n\r\t")
    alnum = sum(1 for c in decoded if c.isalnum() or c == " ")
    return printable / len(decoded) >= 0.95 and alnum / len(decoded) >= 0.5


def _bytes_to_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _base64(blob: str) -> str | None:
    core = blob.rstrip("=")
    if len(core) % 4 == 1:
        return None
    padded = core + "=" * (-len(core) % 4)
    try:
        if "-" in core or "_" in core:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _bytes_to_text(raw)


def _base32(blob: str) -> str | None:
    core = blob.rstrip("=")
    try:
        raw = base64.b32decode(core + "=" * (-len(core) % 8))
    except (binascii.Error, ValueError):
        return None
    return _bytes_to_text(raw)


def _hex(blob: str) -> str | None:
    return _bytes_to_text(bytes.fromhex(blob))


def _url(blob: str) -> str | None:
    return unquote(blob)


def _quoted_printable(blob: str) -> str | None:
    return _bytes_to_text(quopri.decodestring(blob.encode("utf-8", "replace")))


def _html_entities(blob: str) -> str | None:
    return html.unescape(blob)


def _mime_word(blob: str) -> str | None:
    try:
        return str(make_header(decode_header(blob)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return None


def _morse(blob: str) -> str | None:
    words = re.split(r"\s*/\s*|\s{3,}", blob.strip())
    out = []
    for word in words:
        letters = [_MORSE_TABLE.get(code) for code in word.split()]
        if None in letters:
            return None
        out.append("".join(letters))  # type: ignore[arg-type]
    return " ".join(out)


def _braille(blob: str) -> str | None:
    out: list[str] = []
    capital = number = False
    for char in blob:
        if char.isspace():
            out.append(" ")
            number = False
            continue
        dots = ord(char) - 0x2800
        if dots == 0x20:
            capital = True
            continue
        if dots == 0x3C:
            number = True
            continue
        if dots == 0:
            out.append(" ")
            continue
        letter = _BRAILLE_LETTERS.get(dots)
        if letter is None:
            out.append(_BRAILLE_PUNCT.get(dots, "?"))
            continue
        if number and letter in _BRAILLE_DIGITS:
            out.append(_BRAILLE_DIGITS[letter])
            continue
        out.append(letter.upper() if capital else letter)
        capital = False
    return "".join(out)


def _nato(blob: str) -> str | None:
    return "".join(word[0] for word in blob.lower().split())


def _rot13(blob: str) -> str | None:
    return codecs.encode(blob, "rot13")


_ATBASH = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA",
)


def _atbash(blob: str) -> str | None:
    return blob.translate(_ATBASH)


def _ascii85(blob: str) -> str | None:
    for decode in (base64.a85decode, base64.b85decode):
        try:
            text = _bytes_to_text(decode(blob.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            continue
        if text:
            return text
    return None


def _uuencode(blob: str) -> str | None:
    parts = []
    for line in blob.splitlines():
        if not line.strip():
            continue
        try:
            parts.append(binascii.a2b_uu(line))
        except (binascii.Error, ValueError):
            return None
    return _bytes_to_text(b"".join(parts))


_SHAPED: tuple[tuple[str, re.Pattern[str], Callable[[str], str | None]], ...] = (
    ("hex", _HEX, _hex),
    ("base32", _B32, _base32),
    ("base64", _B64, _base64),
    ("url", _URL_ESCAPES, _url),
    ("quoted_printable", _QP, _quoted_printable),
    ("mime", _MIME_WORD, _mime_word),
    ("html_entities", _HTML_ENTITY, _html_entities),
    ("morse", _MORSE, _morse),
    ("braille", _BRAILLE, _braille),
    ("nato", _NATO, _nato),
)
_EXPLICIT_ONLY: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("rot13", _rot13),
    ("atbash", _atbash),
    ("ascii85", _ascii85),
    ("uuencode", _uuencode),
)
