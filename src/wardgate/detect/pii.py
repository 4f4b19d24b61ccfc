"""Personal data in free text: e-mail, phone, payment card, IBAN, US SSN, IP address.

Each entity has a cheap candidate regex and a validator (shape, checksum, number plan): a
look-alike is rejected because it fails a rule, never because its string is known. Weak shapes
(a bare 9- or 10-digit run, a 12-digit Maestro) carry a low score that only a context word near
the span ("SSN", "call", "card" ...) lifts over the reporting bar.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator

from wardgate.detect.findings import Finding

__all__ = ["PII_ENTITIES", "find_pii", "resolve_overlaps"]

PII_ENTITIES: frozenset[str] = frozenset(
    {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}
)

# Candidates travel as (score, start, end, entity) tuples: a Finding is built only for what is
# kept, which matters in PII-dense text.
_Span = tuple[float, int, int, str]
_Windows = list[tuple[int, int]]  # (start, end) of digit clusters, see _clusters

_MIN_SCORE = 0.5  # a candidate below this is not reported
_CONTEXT_BOOST = 0.3
_CONFIDENT = 0.7  # at or above this base score, context is not looked for
_CONTEXT_BEFORE, _CONTEXT_AFTER = 48, 24

_DIGIT = re.compile(r"\d")
# Words near a weak candidate that make it personal data (English first, a few common others).
_CONTEXT = {
    "PHONE_NUMBER": re.compile(
        r"phone|\btel\b|\btel[.:]|mobile|\bcell|\bcall|\bfax|contact|reach|whatsapp|\bsms\b"
        r"|text me|\bdial|hotline|landline|telefon|téléphone|portable|handy|móvil|\bring\b"
    ),
    "US_SSN": re.compile(r"\bssn|social[ -]security|\bss ?#|\bss no|taxpayer|\bitin\b|\btin\b"),
    "CREDIT_CARD": re.compile(
        r"card|credit|debit|\bvisa|master ?card|\bamex|american express|discover|\bjcb"
        r"|diners|maestro|union ?pay|\bcc\b|\bpan\b|payment|\bcharge"
    ),
}  # IBANs (checksum) and IP addresses (range-checked) never score below _CONFIDENT


def _has_context(text: str, start: int, end: int, entity: str) -> bool:
    window = text[max(0, start - _CONTEXT_BEFORE) : start] + " " + text[end : end + _CONTEXT_AFTER]
    return _CONTEXT[entity].search(window.lower()) is not None


def _scored(text: str, entity: str, start: int, end: int, base: float) -> _Span | None:
    score = base
    # A strong shape needs no support; looking for context costs ~5 us a span.
    if base < _CONFIDENT and _has_context(text, start, end, entity):
        score = min(1.0, base + _CONTEXT_BOOST)
    return (round(score, 2), start, end, entity) if score >= _MIN_SCORE else None


# --- e-mail -------------------------------------------------------------------------------
# Unicode word characters are allowed (RFC 6531 addresses); a TLD is letters or punycode, so
# "user@example" (no TLD) and "a@b.c1" are not addresses.
_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w%+\-](?:[\w.%+\-]{0,62}[\w%+\-])?"
    r"@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9\-]{1,59})"
    r"(?![\w\-]|\.[^\W_])"
)


def _emails(text: str) -> Iterator[_Span]:
    # Search only around each "@": scanning every word start of a long text costs ~0.2 ms.
    at, floor = text.find("@"), 0
    while at != -1:
        m = _EMAIL.search(text, max(floor, at - 64), at + 256)
        if m is not None and m.start() <= at < m.end():
            yield (0.95, m.start(), m.end(), "EMAIL_ADDRESS")
            floor = m.end()
            at = text.find("@", floor)
        else:
            at = text.find("@", at + 1)


# --- IP addresses -------------------------------------------------------------------------
_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}(?!\w|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){1,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)"
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")  # a literal first character: a fast scan
_HEX_OR_COLON = frozenset("0123456789abcdefABCDEF:")
# A dotted quad right after these words is a release number ("version 10.2.3.4"), not a host.
_VERSION_BEFORE = re.compile(r"(?:version|\bver\.?|release|\bbuild|firmware|\bfw|\bv)\s*[:#]?\s*$")


def _ipv4s(text: str, windows: _Windows) -> Iterator[_Span]:
    for m in _windowed(_IPV4, text, windows, 0, 4):
        octets = m.group().split(".")
        if any(len(o) > 1 and o[0] == "0" or int(o) > 255 for o in octets):
            continue
        if _VERSION_BEFORE.search(text[max(0, m.start() - 24) : m.start()].lower()):
            continue
        yield (0.85, m.start(), m.end(), "IP_ADDRESS")


def _ipv6s(text: str) -> Iterator[_Span]:
    pos = 0
    while (hint := _IPV6_HINT.search(text, pos)) is not None:
        start = hint.start()
        while start > 0 and start > hint.start() - 5 and text[start - 1] in _HEX_OR_COLON:
            start -= 1
        m = _IPV6.match(text, start)
        pos = m.end() if m is not None else hint.end() - 1
        if m is None:
            continue
        value = m.group()
        # A digit keeps C++/Rust paths ("Abc::def") out; ipaddress applies the full grammar,
        # which rejects clock times ("12:30:45") and MAC addresses.
        if not _DIGIT.search(value) or value.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield (0.85, m.start(), m.end(), "IP_ADDRESS")


# --- US social security numbers -----------------------------------------------------------
_SSN = re.compile(r"[0-9](?<![\w\-.][0-9])[0-9]{2}([- ]?)[0-9]{2}\1[0-9]{4}(?![\w]|[-.][0-9])")
# Numbers made void by publication: Woolworth's wallet insert 078-05-1120, the 1938 Social
# Security Board pamphlet's 219-09-9999, the ubiquitous example 123-45-6789, and 457-55-5462
# printed in a 2006 identity-theft advertisement.
_SSN_PUBLISHED = frozenset({"078051120", "219099999", "123456789", "457555462"})
_DIGIT_AFTER_SPACE, _DIGIT_SPACE = re.compile(r" [0-9]"), re.compile(r"[0-9] ")


def _ssns(text: str, windows: _Windows) -> Iterator[_Span]:
    for m in _windowed(_SSN, text, windows, 0, 4):
        sep = m.group(1)
        digits = m.group().replace(sep, "") if sep else m.group()
        area, group, serial = digits[:3], digits[3:5], digits[5:]
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        if digits in _SSN_PUBLISHED or len(set(digits)) == 1:
            continue
        if sep == " " and (
            _DIGIT_AFTER_SPACE.match(text, m.end()) or _DIGIT_SPACE.match(text, max(0, m.start() - 2))
        ):
            continue  # part of a longer space-grouped number
        base = {"-": 0.6, " ": 0.45, "": 0.3}[sep]
        if (f := _scored(text, "US_SSN", m.start(), m.end(), base)) is not None:
            yield f


# --- payment cards ------------------------------------------------------------------------
_CARD = re.compile(r"[0-9](?<![\w\-.,][0-9])(?:[ \-]?[0-9]){11,18}(?!\w|[\-.,][0-9])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_base(d: str) -> float:
    """Score of a Luhn-valid digit string by issuer range (ISO/IEC 7812 IINs), 0 if none fits."""
    n, p2, p4, p6 = len(d), int(d[:2]), int(d[:4]), int(d[:6])
    if d[0] == "4" and n in (13, 16, 19):
        return 0.9 if n != 13 else 0.7  # Visa
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return 0.9  # Mastercard, 2-series included
    if p2 in (34, 37) and n == 15:
        return 0.9  # Amex
    discover = p4 == 6011 or 644 <= p4 // 10 <= 649 or p2 == 65 or 622126 <= p6 <= 622925
    if discover and 16 <= n <= 19:
        return 0.9
    if (p2 == 35 and 16 <= n <= 19) or (p4 in (2131, 1800) and n == 15):
        return 0.85  # JCB: 3528-3589 assigned, the common "35" pattern costs nothing with Luhn
    if (300 <= p4 // 10 <= 305 or p4 == 3095 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return 0.85  # Diners Club
    if p2 == 62 and 16 <= n <= 19:
        return 0.85  # UnionPay
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return 0.85  # Mir
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return 0.8 if n >= 16 else 0.45  # Maestro: short ones are common order/ticket numbers
    return 0.0


def _cards(text: str, windows: _Windows) -> Iterator[_Span]:
    for m in _windowed(_CARD, text, windows, 0, 4):
        raw = m.group()
        if raw.isdigit():
            groups = [raw]
        elif " " in raw and "-" in raw:
            continue  # "4111 1111-1111" mixes separators: not how a card is printed
        else:
            groups = raw.split(" " if " " in raw else "-")
        # A grouped card may run into a following number ("... 1111 12/26"): shorter prefixes.
        for k in range(len(groups), 0, -1):
            sizes = [len(g) for g in groups[:k]]
            fours = all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4
            if k > 1 and not (fours or sizes in ([4, 6, 5], [4, 6, 4])):  # 4-6-x: Amex, Diners
                continue
            digits = "".join(groups[:k])
            if len(digits) < 12 or not _luhn(digits) or not (base := _card_base(digits)):
                continue
            end = m.start() + len(" ".join(groups[:k]))
            if (f := _scored(text, "CREDIT_CARD", m.start(), end, base)) is not None:
                yield f
            break


# --- IBAN ---------------------------------------------------------------------------------
# ISO 13616 registry lengths per country.
_IBAN_LENGTHS = dict(
    (c[:2], int(c[2:]))
    for c in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
        "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 "
        "IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 "
        "MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 QA29 RO24 RS22 RU33 SA24 SC31 SD18 "
        "SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
    ).split()
)
# The body is a lookahead so that a greedy run into the next words ("... 00 and FR14 ...")
# does not hide an IBAN that follows.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?=((?:[ \-]?[A-Za-z0-9]){11,30}))")
# The country code and check digits alone, led by a character class (not the look-behind): the
# check digits lie in a digit cluster, so the head is looked for there only.
_IBAN_HEAD = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}")


def _ibans(text: str, windows: _Windows) -> Iterator[_Span]:
    for head in _windowed(_IBAN_HEAD, text, windows, 2, 4):
        m = _IBAN.match(text, head.start())
        if m is None:
            continue
        raw = m.group() + m.group(1)
        length = _IBAN_LENGTHS.get(raw[:2])
        if length is None:
            continue
        kept, end = 0, m.start()
        for i, ch in enumerate(raw):  # cut at the country's length, counting alphanumerics only
            if ch.isalnum():
                kept += 1
                if kept == length:
                    end = m.start() + i + 1
                    break
        if kept < length or (end < len(text) and text[end].isalnum()):
            continue
        compact = re.sub(r"[ \-]", "", text[m.start() : end]).upper()
        rearranged = compact[4:] + compact[:4]
        if int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1:
            yield (0.95, m.start(), end, "IBAN_CODE")


# --- phone numbers ------------------------------------------------------------------------
_SEP = r"(?:[ \u00a0]?[\-./][ \u00a0]?|[ \u00a0])"
_PHONE = re.compile(
    # A leading character class (not a lookbehind) lets re skip to candidates in C.
    r"[+(0-9](?<![\w+\-./][+(0-9])"
    # Cheap in-C rejections of the commonest digit runs: too short, ISO dates, dotted quads.
    r"(?=[\d+()\-. /x\u00a0]{6})"  # seven characters at least
    r"(?!(?<=[0-9])\d{3}-[01]\d-[0-3]\d\b)"  # not an ISO date
    r"(?!(?<=[0-9])\d{0,2}(?:\.\d{1,3}){3}(?![.\d]))"  # not a dotted quad
    r"(?:(?<=\+)[ ]?(?:\(\d{1,5}\)[ ]?)?\d{1,12}"  # +44 20 ..., +1 (415) 555 ...
    r"|(?<=\()\+?\d{1,5}\)[ ]?\d{1,12}"  # (415) 555 ..., (+44) 20 ...
    r"|(?<=[0-9])\d{0,11})"  # 020 ..., 555 ...
    rf"(?:{_SEP}?\(\d{{1,5}}\)[ ]?\d{{1,12}}|{_SEP}\d{{1,12}}){{0,7}}"
    r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?(?!\w|[\-./]\d)"
)
_PHONE_TOKEN = re.compile(r"\(\+?\d+\)|\+?\d+|(?:x|ext\.?|extension)[ ]?\d+")
_NANP = re.compile(r"[2-9]\d\d[2-9]\d{6}")  # area code and exchange never start with 0 or 1
_DATE = re.compile(
    r"(?:\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})|\d{4}[./\-]\d{1,2}[./\-]\d{1,2})\b"
)


def _phone_base(text: str, tokens: list[re.Match[str]], groups: list[str], plus: bool) -> float:
    """Score of the digit ``groups`` (from ``tokens``) as one phone number; 0 if not one."""
    digits = "".join(groups)
    if plus or (digits.startswith("00") and len(groups[0]) >= 3) or groups[0] == "011":
        # International: E.164 allows at most 15 digits after the exit code; "(0)" is the
        # national trunk prefix some countries print after the country code.
        e164 = "".join(g for t, g in zip(tokens, groups) if t.group() != "(0)")
        e164 = e164 if plus else e164[3:] if groups[0] == "011" else e164[2:]
        if not 8 <= len(e164) <= 15 or e164[0] == "0":
            return 0.0
        if e164[0] == "1":  # NANP keeps its own numbering plan behind +1
            return 0.85 if len(e164) == 11 and _NANP.fullmatch(e164, 1) else 0.0
        return 0.85 if plus else 0.6
    if 1 < len(groups) <= 4 and _DATE.match(text, tokens[0].start()):  # a date, maybe an hour
        return 0.0
    sizes = [len(g) for g in groups]
    nanp = digits[1:] if len(groups) > 1 and groups[0] == "1" else digits
    if len(nanp) == 10 and _NANP.fullmatch(nanp):
        shape = sizes[1:] if groups[0] == "1" and len(groups) > 1 else sizes
        if shape in ([3, 3, 4], [10]):
            return 0.75 if len(shape) == 3 else 0.35
    if len(groups) == 1:
        return 0.35 if digits[0] == "0" and 10 <= len(digits) <= 12 else 0.0
    if min(sizes) < 2 or sizes == [3, 2, 4]:  # 3-2-4 is the SSN layout
        return 0.0
    if digits[0] == "0" and 9 <= len(digits) <= 12:
        return 0.6  # trunk-prefixed national number: "020 7946 0958", "06 12 34 56 78"
    return 0.45 if 10 <= len(digits) <= 11 else 0.0


def _phones(text: str, windows: _Windows) -> Iterator[_Span]:
    for m in _windowed(_PHONE, text, windows, 3, 24):
        if m.end() - m.start() < 8:
            continue  # the shortest number accepted below, "+4930123", has eight characters
        tokens = list(_PHONE_TOKEN.finditer(text, m.start(), m.end()))
        ext = tokens.pop() if tokens[-1].group()[0] in "xe" else None
        # A greedy candidate may swallow a following number ("call 555-123-4567 2 times"):
        # try the whole run first, then shorter ones. Never drop leading groups: a tail of a
        # longer number (a bad IBAN's last groups) would pass for a phone.
        plus = text[m.start()] == "+" or tokens[0].group().startswith("(+")
        groups = [t.group().strip("()+") for t in tokens]
        ndigits = sum(map(len, groups))
        for j in range(len(tokens), 0, -1):
            if tokens[j - 1].end() - m.start() < 8:
                break
            if j < len(tokens):
                ndigits -= len(groups[j])
            if ndigits > 18:  # an exit code and the 15 digits E.164 allows, at most
                continue
            if ndigits < _MIN_PHONE:  # no number plan below takes fewer, nor will a shorter run
                break
            base = _phone_base(text, tokens[:j], groups[:j], plus)
            if not base:
                continue
            end = ext.end() if ext is not None and j == len(tokens) else tokens[j - 1].end()
            if (f := _scored(text, "PHONE_NUMBER", m.start(), end, base)) is not None:
                yield f
            break


# --- assembly -----------------------------------------------------------------------------
_DIGITS = "0123456789"
# The most non-digit characters between two digits of one entity: " - (" in a phone number
# ("555 - (12) 3456"); a phone extension (" ext. 12") is read past a cluster's end, never joined.
_GAP = 4
_SHORT = 128  # below this, each finder scans the whole text: cheaper than finding clusters
_DENSE = 14  # one digit in this many characters or more: the whole text is one window
# Fewest digits a cluster needs for each finder to accept something in it.
_MIN_CARD, _MIN_SSN, _MIN_PHONE, _MIN_IPV4, _MIN_IBAN = 12, 9, 8, 4, 2


def _clusters(text: str) -> list[tuple[int, int, int]]:
    """``(start, end, digits)`` of each run of ASCII digits at most ``_GAP`` apart.

    Every numeric entity lies in one cluster, so each finder looks only there: a regex scanning a
    whole text stops at every character (~8 ns each, ~40 us for 4 KB), where ``str.find`` skips
    to the next digit at memchr speed (``str.count`` does not: it compares every character).
    In dense text (one digit in ``_DENSE`` characters or more) clusters save little: the whole
    text is one window.
    """
    size = len(text)
    raw = _latin1_bytes(text)
    if raw is not None:
        return _clusters_latin1(raw, size)
    find = text.find
    if size >= 1024:  # a sample first: finding each digit of dense text costs more than it saves
        sample = text[::16]
        if sum(map(sample.count, _DIGITS)) * _DENSE > len(sample):
            return [(0, size, size)]
    most = size // _DENSE
    positions: list[int] = []
    for d in _DIGITS:
        i = find(d)
        while i != -1:
            positions.append(i)
            i = find(d, i + 1)
        if len(positions) > most:
            return [(0, size, size)]
    if not positions:
        return []
    positions.sort()
    out = []
    start = last = positions[0]
    digits = 0
    for p in positions:
        if p - last > _GAP + 1:
            out.append((start, last + 1, digits))
            start, digits = p, 0
        last = p
        digits += 1
    out.append((start, last + 1, digits))
    return out


# Latin-1 text as bytes, each digit mapped to "0" and every other byte to " ": the clusters are then
# the matches of one pattern whose literal first byte the regex engine skips to in a tight C loop.
_DIGIT_MAP = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_CLUSTER = re.compile(rb"0(?: {0,%d}0)*" % _GAP)


def _latin1_bytes(text: str) -> bytes | None:
    """``text`` encoded as Latin-1 (one byte per character, offsets kept), None if it cannot be."""
    if text.isascii():  # O(1): a flag of the str object; the copy is a memcpy
        return text.encode("ascii")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _clusters_latin1(raw: bytes, size: int) -> list[tuple[int, int, int]]:
    """``_clusters`` for Latin-1 text (``raw``, its bytes): same windows, same density rules.

    A translate, a count and one scan of the mapped bytes cost ~6k instructions for 1 KB of prose
    where ten ``str.find`` loops (one per digit, each a method call and a memchr) cost ~34k.
    """
    mapped = raw.translate(_DIGIT_MAP)
    first = mapped.find(48)  # memchr: text without a digit costs no scan past this
    if first == -1:
        return []
    if size >= 1024:
        if mapped[::16].count(48) * _DENSE > (size + 15) // 16:  # the sample test, as above
            return [(0, size, size)]
        if mapped.count(48, first) > size // _DENSE:
            return [(0, size, size)]
    out = [(m.start(), m.end(), m.group().count(48)) for m in _CLUSTER.finditer(mapped, first)]
    if size < 1024 and sum(digits for _, _, digits in out) > size // _DENSE:
        return [(0, size, size)]
    return out


def _digit_count(text: str) -> int:
    """How many ASCII digits ``text`` holds."""
    raw = _latin1_bytes(text)
    if raw is not None:
        return len(raw.translate(None, _NOT_DIGITS))
    return sum(map(text.count, _DIGITS))


_NOT_DIGITS = bytes(c for c in range(256) if not 0x30 <= c <= 0x39)


def _windowed(pattern: re.Pattern[str], text: str, windows: _Windows, lead: int, tail: int) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, restricted to the matches that start in a window.

    A match starts at most ``lead`` characters before its window's first digit, and no attempt
    starting in a window reads more than ``tail`` characters past its last digit (look-aheads
    included), so cutting the text there (``endpos``) changes no match; look-behinds see the
    whole text.
    """
    if len(windows) == 1 and windows[0] == (0, len(text)):  # one window, the whole text
        return pattern.finditer(text)
    return _in_windows(pattern, text, windows, lead, tail)


def _in_windows(pattern: re.Pattern[str], text: str, windows: _Windows, lead: int, tail: int) -> Iterator[re.Match[str]]:
    floor, size = 0, len(text)
    for start, end in windows:
        pos, stop = max(floor, start - lead), min(size, end + tail)
        while (m := pattern.search(text, pos, stop)) is not None and m.start() < end:
            yield m
            pos = floor = m.end()


def _numeric(text: str, wanted: frozenset[str], clusters: list[tuple[int, int, int]], found: list[_Span]) -> None:
    """Add the numeric entities to ``found``, each finder looking in the clusters it can use."""
    if len(clusters) == 1:  # one window (often the whole text): no list to build per finder
        start, end, most = clusters[0]
        one: _Windows | None = [(start, end)]
    else:
        most, one = max(digits for _, _, digits in clusters), None
    # A finder runs only when some cluster has the digits it needs (``most``), and only over the
    # clusters a cheap exact test keeps: the generators and a regex search cost ~10k instructions a
    # finder even for the bench prompt's one cluster, "(ticket 1000123)", where they find nothing.
    if "CREDIT_CARD" in wanted and most >= _MIN_CARD:
        found.extend(_cards(text, _select(clusters, one, _MIN_CARD)))
    if "IBAN_CODE" in wanted and most >= _MIN_IBAN:
        if w := _upper_near(text, _select(clusters, one, _MIN_IBAN)):
            found.extend(_ibans(text, w))
    if "US_SSN" in wanted and most >= _MIN_SSN:
        found.extend(_ssns(text, _select(clusters, one, _MIN_SSN)))
    if "IP_ADDRESS" in wanted:
        if most >= _MIN_IPV4 and "." in text:
            if w := _dotted(text, _select(clusters, one, _MIN_IPV4)):
                found.extend(_ipv4s(text, w))
        if ":" in text:
            found.extend(_ipv6s(text))
    if "PHONE_NUMBER" in wanted:
        if _latin1(text) or not _other_digits_near(text, clusters):
            if most >= _MIN_PHONE:
                found.extend(_phones(text, _select(clusters, one, _MIN_PHONE)))
        else:
            found.extend(_phones(text, [(0, len(text))]))


def _select(clusters: list[tuple[int, int, int]], one: _Windows | None, least: int) -> _Windows:
    """The windows of the clusters holding ``least`` digits or more (``one``: the only cluster's)."""
    if one is not None:
        return one
    return [(start, end) for start, end, digits in clusters if digits >= least]


def _upper_near(text: str, windows: _Windows) -> _Windows:
    """The windows an IBAN head can start in: its two letters lie at most 2 characters before its
    digits, so a window whose surroundings hold no uppercase letter (``islower``: every cased
    character is lowercase) has none."""
    kept = []
    for start, end in windows:
        if not text[max(0, start - 2) : end + 2].islower():
            kept.append((start, end))
    return kept


def _dotted(text: str, windows: _Windows) -> _Windows:
    """The windows holding a ".": a dotted quad's digits are one dot apart, so it lies in one."""
    find = text.find
    kept = []
    for start, end in windows:
        if find(".", start, end) != -1:
            kept.append((start, end))
    return kept


# Past its first character the phone pattern's \d takes any script's digits ("+８１ ３ ...",
# "+٤٤ ٢٠ ..."), which clusters of ASCII digits neither count nor bound. Such a number's first
# other-script digit follows a "+" or "(" by at most 3 characters, or one of the number's ASCII
# digits by at most _GAP + 1: looking there tells whether the clusters may be trusted.
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_OTHER_DIGIT_LEADS = (re.compile(r"\+ ?\(?(?![0-9])\d"), re.compile(r"\(\+?(?![0-9])\d"))


def _latin1(text: str) -> bool:
    """Whether ``text`` is all Latin-1: then its only decimal digits are 0-9 (the next is U+0660)."""
    if text.isascii():  # O(1): a flag of the str object
        return True
    try:
        text.encode("latin-1")  # a copy for Latin-1 text, an early stop for any other
    except UnicodeEncodeError:
        return False
    return True


def _other_digits_near(text: str, clusters: list[tuple[int, int, int]]) -> bool:
    """Whether a digit of another script than ASCII may belong to a phone number's digits."""
    search = _OTHER_DIGIT.search
    for start, end, _ in clusters:  # an ASCII slice (a flag, O(1)) holds no other digit
        if not text[start : end + _GAP + 1].isascii() and search(text, start, end + _GAP + 1):
            return True
    return any(lead.search(text) for char, lead in zip("+(", _OTHER_DIGIT_LEADS) if char in text)


def find_pii(text: str, entities: frozenset[str] | None = None) -> list[Finding]:
    """Personal-data spans in ``text``, sorted by start and non-overlapping."""
    wanted = PII_ENTITIES if entities is None else entities
    found: list[_Span] = []
    if "@" in text and "EMAIL_ADDRESS" in wanted:
        found.extend(_emails(text))
    if len(text) < _SHORT:  # one window, the whole text: cheaper than finding clusters
        if digits := _digit_count(text):
            _numeric(text, wanted, [(0, len(text), digits)], found)
    elif clusters := _clusters(text):
        _numeric(text, wanted, clusters, found)
    if not found:  # the usual case: no comprehension to run
        return []
    return [Finding(entity, start, end, score) for score, start, end, entity in _resolve(found)]


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings (higher score, then longer), sorted by start."""
    spans = _resolve([(f.score, f.start, f.end, f.entity) for f in findings])
    return [Finding(entity, start, end, score) for score, start, end, entity in spans]


def _resolve(spans: list[_Span]) -> list[_Span]:
    if len(spans) < 2:
        return spans
    kept: list[_Span] = []  # sorted by start and disjoint, so only neighbours can overlap
    starts: list[int] = []
    for span in sorted(spans, key=lambda s: (-s[0], s[1] - s[2], s[1])):
        i = bisect_right(starts, span[1])
        if (i and kept[i - 1][2] > span[1]) or (i < len(kept) and kept[i][1] < span[2]):
            continue
        kept.insert(i, span)
        starts.insert(i, span[1])
    return kept
