"""Provider keys and credentials in their documented formats.

``find_secrets(text)`` returns sorted, non-overlapping :class:`Finding` spans. Two passes:

1. ``_TRIGGERS`` — one small pattern per *rare trigger character* (``-``, ``_``, ``:``, ``/``,
   ``J``, ``K``, ``S``, ``z``), starting with it and checking the provider prefix with a
   look-behind. CPython's ``re`` skips to a literal first character with a plain C loop, and a
   trigger absent from the text is not scanned for, so text with no candidate costs ~1 µs per KB.
   (One alternation of them all scans with a first-character set, 6x slower per character; a
   plain ``sk-|AKIA|hf_|...`` alternation stops at every ``s``, ``a``, ``h`` ... and is slower
   still.)
2. ``_TOKENS`` — the full formats, matched only where a candidate's word starts, then per-kind checks
   (placeholder words, a light entropy floor for loose formats, the JWT header, the PEM body, the
   URL password).

Judgment calls: Stripe publishable keys (``pk_``) are public by design and not flagged; ``sk_test_``
keys are secrets and are. Documented examples (``AKIAIOSFODNN7EXAMPLE``), ``xxxx`` fillers and
``<YOUR_KEY>``-style placeholders are not flagged. URL passwords that are template variables or
stock placeholders (``${PW}``, ``<password>``, ``password``, the user name repeated) are not
flagged; every other ``scheme://user:pass@host`` is reported as ``DATABASE_URL``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote

from wardgate.detect.findings import Finding

__all__ = ["SECRET_ENTITIES", "find_secrets"]

SECRET_ENTITIES: frozenset[str] = frozenset(
    {
        "OPENAI_KEY",
        "ANTHROPIC_KEY",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "SLACK_TOKEN",
        "STRIPE_KEY",
        "GOOGLE_API_KEY",
        "HUGGINGFACE_TOKEN",
        "NPM_TOKEN",
        "JWT",
        "PRIVATE_KEY",
        "DATABASE_URL",
    }
)

# One pattern per trigger character, each beginning with that literal: CPython's ``re`` finds a
# literal first character with a plain C loop (~0.7 ns a character) where a first-character
# *set* costs ~6 ns a character, and a character absent from the text (``in``: memchr) skips its
# pattern altogether. A look-behind then confirms the provider prefix; fixed-width look-behinds
# are grouped by width. (The literal comes first, outside any alternation: a literal in every
# branch is not seen as a prefix.)
_TRIGGERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (pattern[0], re.compile(pattern, re.VERBOSE))
    for pattern in (
        r"""-(?:(?<=sk-)|(?<=xox[a-z]-|xapp-)
               |(?<=gl[a-z]{2}-)|(?<=gl[a-z]{3}-)|(?<=gl[a-z]{4}-)|(?<=gl[a-z]{5}-)
               |----BEGIN)""",
        r"""_(?:(?<=sk_|rk_|hf_)|(?<=gh[pousr]_|npm_|org_)|(?<=whsec_|ecret_|ECRET_)|(?<=github_))""",
        r"""://[^\s/?#@:"'<>]*:[^\s/?#@"'<>]+@""",
        r"/(?<=hooks\.slack\.com/)",
        r"J(?<=eyJ)",
        r"K(?:(?<=AK)IA|(?<=tAccessK))",
        r"S(?<=AS)IA",
        r"z(?<=AIz)a",
    )
)
_SHORT = 2048  # below this (characters), triggers are searched lazily; above, all found up front

_B = r"(?![A-Za-z0-9])"  # right edge of a fixed-length token
_TOKENS = re.compile(
    rf"""
    (?<![A-Za-z0-9])(?:
        (?P<ANTHROPIC_KEY>sk-ant-[a-z]{{2,8}}\d\d-[A-Za-z0-9_-]{{32,}})
      | (?P<OPENAI_KEY>sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{{20,}}
                      |sk-(?!ant-)[A-Za-z0-9_-]{{32,}})
      | (?P<STRIPE_KEY>[sr]k_(?:live|test)_[A-Za-z0-9]{{16,}}|whsec_[A-Za-z0-9+/=]{{24,}})
      | (?P<AWS_ACCESS_KEY>(?:AKIA|ASIA)[A-Z0-9]{{16}}){_B}
      | (?P<GITHUB_TOKEN>gh[pousr]_[A-Za-z0-9]{{36,251}}|github_pat_[A-Za-z0-9_]{{50,}})
      | (?P<GITLAB_TOKEN>gl(?:pat|dt|rt|rtr|ptt|ft|imt|cbt|oas|soat|agent|ffct|wt)-[A-Za-z0-9_.-]{{20,}})
      | (?P<SLACK_TOKEN>xox[abposre]-[A-Za-z0-9-]{{10,}}|xapp-\d-[A-Za-z0-9-]{{20,}})
      | (?P<GOOGLE_API_KEY>AIza[A-Za-z0-9_-]{{35}})(?![A-Za-z0-9_-])
      | (?P<HUGGINGFACE_TOKEN>(?:hf_|api_org_)[A-Za-z0-9]{{30,40}}){_B}
      | (?P<NPM_TOKEN>npm_[A-Za-z0-9]{{36}}){_B}
      | (?P<JWT>eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{2,}}\.[A-Za-z0-9_-]*)
      | (?P<PRIVATE_KEY>-----BEGIN[A-Z0-9 ]{{0,30}}\ PRIVATE\ KEY(?:\ BLOCK)?-----
            (?:[\s\S]{{0,16000}}?-----END[A-Z0-9 ]{{0,30}}\ PRIVATE\ KEY(?:\ BLOCK)?-----
              |[A-Za-z0-9+/=\s\\:,-]{{0,16000}}))
      | (?i:(?:aws_?)?secret_?access_?key)["']?\s*(?:=>|[:=])\s*["']?
            (?P<AWS_SECRET_KEY>[A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+])
    )
    | (?P<SLACK_WEBHOOK>hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{{20,}})
    | (?P<URL>://(?P<user>[^\s:/?#@"'<>]*):(?P<pw>[^\s/?#@"'<>]+)@(?P<host>[A-Za-z0-9._%\[\]-]+)
            (?::\d{{1,5}})?(?:[/?#][^\s"'<>`]*)?)
    """,
    re.VERBOSE,
)

_PREFIX_LEN = 32  # longest run of word characters before a hit ("AWS_SECRET_ACCESS_KEY" ...)
_WORD_BEFORE = re.compile(r"[A-Za-z0-9_.]+$")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*$")
_BODY_START = re.compile(r"^(?:[a-z]+[-_])+|^(?:AKIA|ASIA|AIza)")
_PLACEHOLDER_WORDS = ("xxxx", "example", "your", "dummy", "placeholder", "redacted", "insert", "...")
# "password", "my_secret", "a%20secret", "foo:bar", "${PW}", "<pw>", "****": documentation, not a leak
_PLACEHOLDER_PASSWORD = re.compile(
    r"(?:my|your|the|a|some)?[ _-]?(?:pass(?:word|wd)?|secret|pwd?|changeme|foo|bar|baz|test"
    r"|x+|\*+|\.+)|[<{\[$%*].*",
    re.IGNORECASE,
)
# RFC 2606 / RFC 6761 names reserved for documentation
_DOC_HOST = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid)$", re.IGNORECASE)
_PEM_BODY = re.compile(r"[A-Za-z0-9+/]{32,}")
_TRAILING_PUNCT = ".,;:!?)]}'\""


def find_secrets(text: str) -> list[Finding]:
    """Return the provider keys and credentials in ``text``, sorted and non-overlapping."""
    findings: list[Finding] = []
    next_hit = _short_hits(text) if len(text) < _SHORT else _long_hits(text)
    pos = 0
    while (h := next_hit(pos)) != -1:
        # the token starts where the word holding the hit starts (``sk`` of ``sk-``, ``A`` of
        # ``AKIA``, ``aws`` of ``aws_secret_access_key``); URLs are matched from ``://``
        word = _WORD_BEFORE.search(text, max(0, h - _PREFIX_LEN), h)
        found = None
        for start in (word.start(), h) if word is not None else (h,):
            m = _TOKENS.match(text, start)
            if m is not None:
                found = _accept(text, m)
                break
        if found is not None and (not findings or found.start >= findings[-1].end):
            findings.append(found)
            pos = max(found.end, h + 1)
        else:
            pos = h + 1
    return findings


def _short_hits(text: str) -> Callable[[int], int]:
    """The first trigger at or after a position: what ``_PREFILTER.search(text, pos)`` finds.

    The leftmost match of an alternation is the leftmost match of any of its branches, and a
    branch whose trigger character is absent from the text never matches: so only the present
    triggers are searched, each with its own literal-first pattern, and the earliest wins. Prose
    usually holds one trigger character at most ("-"): 8 ``in`` tests (memchr) and one literal
    scan, ~4k instructions for the 1 KB bench prompt where the combined pattern's first-character
    set cost ~47k.
    """
    present = []
    for char, trigger in _TRIGGERS:  # a plain loop: a comprehension costs ~2x as much here
        if char in text:
            present.append(trigger)
    if not present:
        return _no_hit
    if len(present) == 1:
        search = present[0].search

        def next_hit(pos: int) -> int:
            m = search(text, pos)
            return -1 if m is None else m.start()

        return next_hit
    # Each present trigger's next match, found again only once ``pos`` has passed it (the caller
    # asks for ever larger positions).
    ahead = [-2] * len(present)

    def next_hit(pos: int) -> int:
        best = -1
        for i, at in enumerate(ahead):
            if at != -1 and at < pos:
                m = present[i].search(text, pos)
                ahead[i] = at = -1 if m is None else m.start()
            if at != -1 and (best == -1 or at < best):
                best = at
        return best

    return next_hit


def _no_hit(pos: int) -> int:
    return -1


def _long_hits(text: str) -> Callable[[int], int]:
    """The first trigger at or after a position, from every trigger's positions found up front."""
    hits: list[int] = []
    for char, trigger in _TRIGGERS:
        if (first := text.find(char)) != -1:
            hits.extend(m.start() for m in trigger.finditer(text, first))
    hits.sort()

    def next_hit(pos: int) -> int:
        i = bisect_left(hits, pos)
        return hits[i] if i < len(hits) else -1

    return next_hit


def _accept(text: str, m: re.Match[str]) -> Finding | None:
    kind = m.lastgroup
    if kind == "URL":
        return _url(text, m)
    if kind == "SLACK_WEBHOOK":
        start = m.start()
        for scheme in ("https://", "http://"):
            if text.startswith(scheme, start - len(scheme)):
                start -= len(scheme)
                break
        return Finding("SLACK_TOKEN", start, m.end(), 0.99)
    if kind is None:
        return None
    start, end = m.span(kind)
    value = text[start:end]
    if kind == "JWT":
        return Finding(kind, start, end, 0.95) if _jwt_header_ok(value) else None
    if kind == "PRIVATE_KEY":
        return Finding(kind, start, end, 0.99) if _PEM_BODY.search(value) else None
    if kind == "AWS_SECRET_KEY":
        mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
        return Finding(kind, start, end, 0.9) if mixed and _looks_random(value) else None
    body = value[_BODY_START.match(value).end() :] if _BODY_START.match(value) else value
    if not _looks_random(body):
        return None
    if kind == "OPENAI_KEY" and not value.startswith(("sk-proj-", "sk-svcacct-", "sk-admin-")):
        # the bare ``sk-`` form is loose: ask for a digit as random base62 of this length has
        if not any(c.isdigit() for c in body):
            return None
        return Finding(kind, start, end, 0.9)
    return Finding(kind, start, end, 0.99)


def _looks_random(body: str) -> bool:
    """Reject fillers and placeholders; the floor grows with length (random 16 chars ≈ 3.6 bits)."""
    lowered = body.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return False
    n = len(body)
    if n < 8:
        return False
    counts = Counter(body)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    return entropy >= min(3.0, 0.6 * math.log2(n))


def _jwt_header_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _url(text: str, m: re.Match[str]) -> Finding | None:
    scheme = _SCHEME.search(text, max(0, m.start() - 32), m.start())
    if scheme is None:
        return None
    user, pw = m.group("user"), m.group("pw")
    if pw == user or _PLACEHOLDER_PASSWORD.fullmatch(unquote(pw)) or _DOC_HOST.search(m["host"]):
        return None
    end = m.end()
    while end > m.start("pw") and text[end - 1] in _TRAILING_PUNCT:
        end -= 1
    return Finding("DATABASE_URL", scheme.start(), end, 0.9)
