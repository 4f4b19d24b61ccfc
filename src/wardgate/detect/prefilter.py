"""Which words a match of a regex must contain: a gate that skips most rules without running them.

Read from the stdlib's parse tree (the technique of RE2's prefilter and of Google Code Search):
every match of ``\\bignor\\w*\\W+(?:all\\s+)?(?:previous|prior)\\s+instructions`` holds a word
starting with ``ignor``, the word ``previous`` or ``prior``, and a word starting with ``instr``.
Such a requirement is an AND of clauses, each an OR of *atoms* over the text's words:

- ``("W", "previous")`` the exact word is in the text;
- ``("S", "ignor")`` a word starts with these five letters (its stem);
- ``("T", "ignore all")`` the letters-and-single-spaces form of the text holds the string;
- ``("R", "<|")`` the text itself holds the string (declared needles that are not words);
- ``("B", "ignore all")`` the two words are in the text, one right after the other.

A word here is a maximal run of letters; every other character is a separator. So one split of a
text into words (a C-speed ``bytes.translate`` and ``split``) and a set intersection with the
rules' key words find the few rules worth a look, and a rule runs only when all of its clauses hold. The gate is exact in one
direction: a text that the regex matches always passes it (tests check this on the corpus).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Collection, Container
from dataclasses import dataclass, field
from itertools import chain
from re import _parser as _sre  # the stdlib's own regex parser (Python >= 3.11)

__all__ = ["Atom", "Clause", "Gate", "Region", "Vocabulary", "literal_atom", "required_clauses", "vocabulary"]

Atom = tuple[str, str]
Clause = frozenset[Atom]

_EXACT_MAX = 64  # past this many alternative strings an exact set becomes one OR clause
_COMMON = frozenset(
    "a an and any are as at be by do for from i if in is it its me my no not of on or our so that the their "
    "them then there these they this to was we were what when which will with you your".split()
)


@dataclass(frozen=True, slots=True)
class _Info:
    """What a piece of a pattern matches: exactly one of ``exact`` (letters, " " for any
    separator run) or, when ``exact`` is None, an AND of clauses (empty: anything)."""

    exact: frozenset[str] | None
    clauses: tuple[frozenset[str], ...] = ()


_ANY = _Info(None)
_SEP = _Info(frozenset({" "}))
_EMPTY = _Info(frozenset({""}))
_SEP_CATEGORIES = frozenset({_sre.CATEGORY_SPACE, _sre.CATEGORY_DIGIT, _sre.CATEGORY_NOT_WORD, _sre.CATEGORY_LINEBREAK})


def required_clauses(pattern: re.Pattern[str]) -> tuple[Clause, ...]:
    """Clauses (each an OR of atoms) that every match of ``pattern`` satisfies; () if unknown."""
    if pattern.flags & re.IGNORECASE:
        return ()
    try:
        info = _seq(list(_sre.parse(pattern.pattern, pattern.flags)), False, False)
    except (TypeError, ValueError, AttributeError, IndexError, RecursionError):  # a future parser
        return ()
    clauses = info.clauses if info.exact is None else _clause(info.exact)
    out = []
    for strings in clauses:
        # An OR of strings, each an AND of its words: any one test per string is an OR clause
        # that holds. The strongest test, the first and last words, and two adjacent words.
        for choose in (_atom, _first_word, _last_word, _word_pair):
            atoms = [choose(s) for s in strings]
            if all(atom is not None for atom in atoms):
                out.append(frozenset(atoms))
    return tuple(dict.fromkeys(out))


def literal_atom(literal: str) -> Atom | None:
    """The vocabulary test that a text holding ``literal`` passes, None if none says anything."""
    letters = "".join(c if c.isalpha() else " " for c in literal.lower())
    return _atom(_norm(letters))


def _norm(s: str) -> str:
    while "  " in s:
        s = s.replace("  ", " ")
    return s


def _clause(strings: frozenset[str] | set[str]) -> tuple[frozenset[str], ...]:
    """The exact set as one OR clause, or nothing when one of its strings holds no letter."""
    if not strings or any(not s.strip() for s in strings):
        return ()
    return (frozenset(strings),)


def _seq(items: list, lead: bool, trail: bool) -> _Info:
    """A sequence; ``lead``/``trail``: the characters just before / after it are separators."""
    clauses: list[frozenset[str]] = []
    chain: set[str] = {" "} if lead else {""}
    exact = True  # every item so far matched one of a few strings
    for i, (op, av) in enumerate(items):
        before = all(s.endswith(" ") for s in chain)
        info = _item(op, av, before, _starts_sep(items, i + 1, trail))
        if info.exact is not None:
            grown = {_norm(a + b) for a in chain for b in info.exact}
            if len(grown) <= _EXACT_MAX:
                chain = grown
            else:
                exact = False
                clauses += _clause(chain)
                chain = set(info.exact)
            continue
        exact = False
        clauses += _clause(chain)
        clauses += info.clauses
        chain = {" "} if _ends_sep(op, av, before) else {""}
    if trail:
        chain = {_norm(s + " ") for s in chain}
    if exact:
        return _Info(frozenset(chain))
    return _Info(None, tuple(clauses) + _clause(chain))


def _item(op, av, lead: bool, trail: bool) -> _Info:  # noqa: C901 - one branch per node kind
    if op is _sre.LITERAL:
        char = chr(av)
        return _Info(frozenset({char})) if char.isalpha() else _SEP
    if op is _sre.IN:
        kind = _class(av)
        return _SEP if kind == " " else _ANY if kind is None else _Info(frozenset(kind))
    if op is _sre.AT:
        return _EMPTY if av in (_sre.AT_NON_BOUNDARY,) else _SEP
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return _EMPTY
    if op is _sre.SUBPATTERN:
        _group, add_flags, _del_flags, body = av
        if add_flags & _sre.SRE_FLAG_IGNORECASE:
            return _ANY
        return _seq(list(body), lead, trail)
    if op is _sre.BRANCH:
        return _branch([_seq(list(alt), lead, trail) for alt in av[1]])
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        low, high, body = av
        body = list(body)
        if _seq(body, False, False).exact == {" "}:
            return _SEP if low >= 1 else _Info(frozenset({"", " "}))
        if low == 0:
            once = _seq(body, lead, trail) if high == 1 else _ANY
            return _Info(once.exact | {""}) if once.exact is not None else _ANY
        once = _seq(body, lead, trail if high == 1 else False)
        if high == 1 or once.exact is None:
            return once
        return _Info(None, _clause(once.exact))
    return _ANY


def _branch(infos: list[_Info]) -> _Info:
    if all(info.exact is not None for info in infos):
        union = frozenset().union(*(info.exact for info in infos))
        if len(union) <= _EXACT_MAX:
            return _Info(union)
    either: set[str] = set()
    for info in infos:
        clauses = _clause(info.exact) if info.exact is not None else info.clauses
        if not clauses:
            return _ANY
        either |= max(clauses, key=_strength)
    return _Info(None, (frozenset(either),))


def _strength(clause: frozenset[str]) -> float:
    """How rarely a clause holds: the weakest of its strings decides."""
    return min(_atom_strength(s) for s in clause)


def _class(av) -> str | set[str] | None:
    """" " for a class of separators only, a small set of letters, or None."""
    letters: set[str] = set()
    seps = False
    for kind, value in av:
        if kind is _sre.LITERAL:
            if chr(value).isalpha():
                letters.add(chr(value))
            else:
                seps = True
        elif kind is _sre.CATEGORY and value in _SEP_CATEGORIES:
            seps = True
        elif kind is _sre.RANGE and value[1] - value[0] < 0x3000:
            chars = [chr(c) for c in range(value[0], value[1] + 1)]
            if any(c.isalpha() for c in chars):
                letters.update(c for c in chars if c.isalpha())
                seps = seps or not all(c.isalpha() for c in chars)
            else:
                seps = True
        else:
            return None
    if not letters:
        return " " if seps else None
    return None if seps or len(letters) > 8 else letters


def _starts_sep(items: list, i: int, trail: bool) -> bool:
    """Whether what follows ``items[:i]`` (then ``trail``) begins with a separator."""
    if i == len(items):
        return trail
    op, av = items[i]
    rest = lambda: _starts_sep(items, i + 1, trail)  # noqa: E731
    if op in (_sre.ASSERT, _sre.ASSERT_NOT) or (op is _sre.AT and av is _sre.AT_NON_BOUNDARY):
        return rest()
    if op is _sre.AT:
        return True
    if op is _sre.LITERAL:
        return not chr(av).isalpha()
    if op is _sre.IN:
        return _class(av) == " "
    if op is _sre.SUBPATTERN:
        return _starts_sep(list(av[3]), 0, rest())
    if op is _sre.BRANCH:
        after = rest()
        return all(_starts_sep(list(alt), 0, after) for alt in av[1])
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        after = rest()
        return _starts_sep(list(av[2]), 0, after) and (av[0] >= 1 or after)
    return False


def _ends_sep(op, av, lead: bool) -> bool:
    """Whether an item's last character (the one before it, if it is empty) is a separator."""
    if op is _sre.LITERAL:
        return not chr(av).isalpha()
    if op is _sre.IN:
        return _class(av) == " "
    if op is _sre.AT:
        return lead if av is _sre.AT_NON_BOUNDARY else True
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return lead
    if op is _sre.SUBPATTERN:
        return _seq_ends(list(av[3]), lead)
    if op is _sre.BRANCH:
        return all(_seq_ends(list(alt), lead) for alt in av[1])
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        return _seq_ends(list(av[2]), False) and (av[0] >= 1 or lead)
    return False


def _seq_ends(items: list, lead: bool) -> bool:
    if not items:
        return lead
    op, av = items[-1]
    optional = op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] == 0
    before = _seq_ends(items[:-1], lead) if len(items) > 1 else lead
    return _ends_sep(op, av, before) and (not optional or before)


def _atom(s: str) -> Atom | None:
    """The cheapest sound test for a string of letters and separators, None if it says nothing."""
    best = max(_atoms(s), key=lambda scored: scored[0], default=None)
    return None if best is None else best[1]


def _words_of(s: str) -> list[tuple[str, bool, bool]]:
    """The letter runs of a string with whether a separator bounds each on the left / right."""
    parts = s.split(" ")
    return [(part, i > 0, i < len(parts) - 1) for i, part in enumerate(parts) if part]


def _word_test(part: str, left: bool, right: bool) -> Atom | None:
    if left and right:
        return ("W", part)
    return ("S", part[:5]) if left and len(part) >= 5 else None


def _first_word(s: str) -> Atom | None:
    words = _words_of(s)
    return _word_test(*words[0]) if words else None


def _last_word(s: str) -> Atom | None:
    words = _words_of(s)
    return _word_test(*words[-1]) if words else None


def _word_pair(s: str) -> Atom | None:
    """Two whole words one after the other: ("B", "ignore all")."""
    words = _words_of(s)
    for (first, left, _r), (second, _l, right) in zip(words, words[1:]):
        if left and right:
            return ("B", f"{first} {second}")
    return None


def _atom_strength(s: str) -> float:
    return max((score for score, _atom in _atoms(s)), default=0.0)


def _atoms(s: str) -> list[tuple[float, Atom]]:
    parts = s.split(" ")
    found: list[tuple[float, Atom]] = []
    for i, part in enumerate(parts):
        if not part:
            continue
        left, right = i > 0, i < len(parts) - 1
        common = part in _COMMON
        if left and right:
            found.append((1.0 if common else len(part) + 3.0, ("W", part)))
        elif left and len(part) >= 5:
            found.append((5.0, ("S", part[:5])))
    letters = len(s.replace(" ", ""))
    if (letters >= 3 or (letters == 2 and not s.isascii())) and (not found or len(s.split()) > 1):
        # A test of the whole string: a substring search, worth it only when it says more than a word.
        found.append((min(letters, 4.5) - 0.5, ("T", s)))
    return found


@dataclass(slots=True)
class Vocabulary:
    """The words of one view (letter runs, lower case as the view is), their stems, lazy tests.

    ``odd`` holds the view's distinct non-ASCII characters: an atom with one not among them
    cannot hold, which saves a substring search over the whole view.
    """

    view: str
    words: list[str]
    word_set: set[str]
    odd: frozenset[str]
    _stems: set[str] | None = None
    _spaced: str | None = None
    _marks: frozenset[int] | None = None
    _symbols: frozenset[int] | None = None
    _view_bytes: bytes | None = None
    _spaced_bytes: bytes | None = None
    cache: dict = field(default_factory=dict)  # what gates learned about this view

    @property
    def ascii(self) -> bool:
        return not self.odd

    @property
    def stems(self) -> set[str]:
        """The words' five-letter prefixes, built on first use: a gate finds the stems it knows
        without this set (see Gate.passing), so on most text it is never built.

        Sliced at C speed (a set comprehension cost ~25k instructions on 1 KB of prose). Words
        of fewer than five letters come along as they are: every lookup here is of a five-letter
        stem, which no shorter word can equal.
        """
        if self._stems is None:
            self._stems = set(map(_STEM, self.word_set))
        return self._stems

    def spaced(self) -> str:
        """The view as its words joined by single spaces, padded: what ``T`` atoms are tested on."""
        if self._spaced is None:
            self._spaced = " " + " ".join(self.words) + " "
        return self._spaced

    def view_bytes(self) -> bytes:
        """The view in UTF-8: an ASCII needle is found there as in the text, but faster."""
        if self._view_bytes is None:
            self._view_bytes = self.view.encode("utf-8", "surrogatepass")
        return self._view_bytes

    def spaced_bytes(self) -> bytes:
        if self._spaced_bytes is None:
            self._spaced_bytes = self.spaced().encode("utf-8", "surrogatepass")
        return self._spaced_bytes

    def marks(self) -> frozenset[int]:
        """The view's distinct ASCII punctuation characters (as bytes)."""
        if self._marks is None:
            symbols = self.symbols()
            self._marks = symbols if symbols.isdisjoint(_DIGITS) else symbols - _DIGITS
        return self._marks

    def symbols(self) -> frozenset[int]:
        """The view's distinct ASCII punctuation characters and digits (as bytes): the scorer
        rules out leetspeak and some encodings with them, the one pass over the view shared."""
        if self._symbols is None:
            self._symbols = frozenset(self.view_bytes().translate(None, _NOT_SYMBOLS))
        return self._symbols

    def holds(self, atom: Atom) -> bool:
        kind, key = atom
        if kind == "W":
            return key in self.word_set
        if kind == "S":
            return key in self.stems
        if kind == "T" and " " in key:
            return key in self.spaced()
        return key in self.view  # a run of letters is one in the view too



class Region:
    """Two consecutive blocks of a text, each with its vocabulary: what a gate learns about a
    block is reused by both regions that hold it, so a long text costs each block once. The
    junction (a few words either side of the cut) covers what straddles it."""

    def __init__(self, text: str, start: int, cut: int, end: int, first: Vocabulary, second: Vocabulary) -> None:
        self.view = text[start:end]
        self.first, self.second = first, second
        self._junction_text = text[max(start, cut - _JUNCTION) : min(end, cut + _JUNCTION)]
        self._junction: Vocabulary | None = None
        self._stems: set[str] | None = None

    @property
    def word_set(self) -> set[str]:
        return self.first.word_set | self.second.word_set

    @property
    def stems(self) -> set[str]:
        if self._stems is None:
            self._stems = self.first.stems | self.second.stems
        return self._stems

    def parts(self) -> tuple[Vocabulary, Vocabulary, Vocabulary]:
        if self._junction is None:
            self._junction = vocabulary(self._junction_text)
        return self.first, self.second, self._junction


_MAX_CHAR_SETS = 4096  # distinct (non-ASCII, punctuation) character sets a gate keeps what it learned of
_MAX_KEPT_ODD = 16
_JUNCTION = 96  # longer than any substring a clause tests (needles, word pairs)


_NON_LETTER_BYTES = bytes(c if chr(c).isalpha() else 0x20 for c in range(256))
_NON_LETTER_UTF8 = bytes(c if c >= 0x80 or chr(c).isalpha() else 0x20 for c in range(256))
_ASCII_BYTES = bytes(range(0x80))
_NOT_MARKS = bytes(c for c in range(256) if c >= 0x80 or chr(c).isalnum() or chr(c).isspace())
_NOT_SYMBOLS = bytes(c for c in range(256) if c >= 0x80 or chr(c).isalpha() or chr(c).isspace())
_DIGITS = frozenset(b"0123456789")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_MAX_SEPARATORS = 32


def vocabulary(view: str) -> Vocabulary:
    """Split ``view`` into words: a C-speed byte translation and split, whatever the script."""
    if view.isascii():
        words = view.encode("ascii").translate(_NON_LETTER_BYTES).decode("ascii").split()
        odd: frozenset[str] = frozenset()
    else:
        raw = view.encode("utf-8", "surrogatepass")
        odd = frozenset(raw.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))
        separators = [c for c in odd if not c.isalpha()]  # “quotes”, emoji, CJK punctuation
        if len(separators) <= _MAX_SEPARATORS:
            letters = view
            for char in separators:
                letters = letters.replace(char, " ")
            if separators:
                raw = letters.encode("utf-8", "surrogatepass")
            words = raw.translate(_NON_LETTER_UTF8).decode("utf-8", "surrogatepass").split()
        else:  # many distinct symbols: one regex pass instead of a replace per symbol
            words = _LETTER_RUN.findall(view)
    return Vocabulary(view, words, set(words), odd)


_STEM = operator.itemgetter(slice(None, 5))


@dataclass(frozen=True, slots=True)
class _Check:
    """A substring test of a clause: skipped outright when the view lacks one of its characters."""

    odd: frozenset[str]  # non-ASCII characters it needs
    marks: frozenset[int]  # ASCII punctuation it needs
    spaced: bool  # tested on the spaced form, not the view
    literal: str | bytes | None  # bytes when ASCII: searched in the UTF-8 form, a faster scan
    pattern: re.Pattern | None  # several literals opening with one character: one C scan
    words: frozenset[str] = frozenset()  # whole words every string it looks for holds: a set test first

    def holds(self, vocab: Vocabulary) -> bool:
        if not self.odd <= vocab.odd or (self.marks and not self.marks <= vocab.marks()):
            return False
        return self.search(vocab)

    def search(self, vocab: Vocabulary) -> bool:
        """``holds`` for a view known to hold the characters it needs."""
        if self.words and not self.words <= vocab.word_set:  # a substring search costs µs per KB
            return False
        if isinstance(self.literal if self.pattern is None else self.pattern.pattern, str):
            target: str | bytes = vocab.spaced() if self.spaced else vocab.view
        else:
            target = vocab.spaced_bytes() if self.spaced else vocab.view_bytes()
        return self.literal in target if self.pattern is None else self.pattern.search(target) is not None


def _checks(atoms: list[Atom]) -> tuple[_Check, ...]:
    groups: dict[tuple[bool, str], list[str]] = {}
    for kind, key in atoms:
        spaced = kind == "T" and " " in key  # a run of letters is one in the view too
        groups.setdefault((spaced, key[0]), []).append(key)
    checks = []
    for (spaced, _first), keys in sorted(groups.items()):
        odd = frozenset.intersection(*(frozenset(c for c in key if ord(c) > 0x7F) for key in keys))
        marks = frozenset.intersection(*(frozenset(key.encode("utf-8").translate(None, _NOT_MARKS)) for key in keys))
        if len(keys) >= 3:
            alternation = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
            pattern = re.compile(alternation.encode("ascii") if alternation.isascii() else alternation)
            words = frozenset.intersection(*(_whole_words(key, spaced) for key in keys))
            checks.append(_Check(odd, marks, spaced, None, pattern, words))
        else:
            checks += [_Check(frozenset(c for c in key if ord(c) > 0x7F),
                              frozenset(key.encode("utf-8").translate(None, _NOT_MARKS)), spaced,
                              key.encode("ascii") if key.isascii() else key, None, _whole_words(key, spaced))
                       for key in keys]
    return tuple(checks)


def _two_words(key: str) -> tuple[str, str]:
    first, second = key.split(" ")  # a "B" atom is two words (_word_pair)
    return first, second


def _whole_words(key: str, spaced: bool) -> frozenset[str]:
    """The words ``key`` holds whole (a space either side) when tested on the spaced form: a view
    whose spaced form holds ``key`` has each of them among its words. Nothing for the raw view."""
    if not spaced:
        return frozenset()
    parts = key.split(" ")
    return frozenset(part for part in parts[1:-1] if part)


def _key_strength(atom: Atom) -> float:
    """How rarely an atom holds, roughly: long words are rare, common ones are not."""
    kind, key = atom
    if kind == "W":
        return 0.5 if key in _COMMON else float(len(key))
    return 5.0 if kind == "S" else 0.0


class Gate:
    """Which of many requirements (each an AND of clauses) a vocabulary meets, for little more than
    one set intersection: each requirement is keyed by its rarest word clause, the view's words find
    the few requirements whose key they meet, and only those requirements' other clauses are tested
    (a word-set test each; ``T``/``R``/pair clauses by a search, and only when they decide)."""

    def __init__(self, requirements: list[tuple[Clause, ...]]) -> None:
        ids: dict[Clause, int] = {}
        slow: dict[int, tuple[tuple[frozenset[str], frozenset[int]] | None, tuple[_Check, ...]]] = {}
        pairs: dict[int, tuple[tuple[str, str, bytes], ...]] = {}  # clauses of adjacent word pairs
        self._needs: list[tuple[frozenset[int], tuple[int, ...]]] = []
        for clauses in requirements:
            needed = []
            for clause in clauses:
                if clause not in ids:
                    number = ids[clause] = len(ids)
                    if all(kind == "B" for kind, _key in clause):
                        pairs[number] = tuple(sorted((*_two_words(key), f" {key} ".encode("utf-8")) for _kind, key in clause))
                    lazy = sorted(atom for atom in clause if atom[0] in ("T", "R"))
                    if lazy:
                        checks = _checks(lazy)
                        # Characters one of which the view must hold for any check to pass (None:
                        # some check needs no rare character): one set test rejects the clause.
                        keys = [check.odd or check.marks for check in checks]
                        rare = None if not all(keys) else (
                            frozenset(c for key in keys for c in key if isinstance(c, str)),
                            frozenset(c for key in keys for c in key if isinstance(c, int)))
                        slow[number] = (rare, checks)
                needed.append(ids[clause])
            # Clauses a missing character rejects first, then other substring tests, pair clauses
            # last: the pairs are computed only for a rule whose other clauses hold.
            lazy_ids = ([n for n in needed if n in slow and slow[n][0] is not None]
                        + [n for n in needed if n in slow and slow[n][0] is None] + [n for n in needed if n in pairs])
            self._needs.append((frozenset(n for n in needed if n not in slow and n not in pairs), tuple(lazy_ids)))
        # Each clause's word and stem atoms: it is met when the view holds one of them.
        self._atoms = {number: (frozenset(key for kind, key in clause if kind == "W"),
                                frozenset(key for kind, key in clause if kind == "S")) for clause, number in ids.items()}
        self._slow = slow
        self._pairs = pairs
        # Which substring clauses a character can wake: a clause none of whose rare characters
        # (non-ASCII, punctuation) the view holds fails without a call.
        by_char: dict[str | int, list[int]] = {}
        for number, (rare, _tests) in slow.items():
            for char in (rare[0] | rare[1]) if rare is not None else ():
                by_char.setdefault(char, []).append(number)
        self._by_char = {char: tuple(numbers) for char, numbers in by_char.items()}
        self._odd_keys = frozenset(c for c in by_char if isinstance(c, str))
        self._mark_keys = frozenset(c for c in by_char if isinstance(c, int))
        self._always = frozenset(number for number, (rare, _tests) in slow.items() if rare is None) | frozenset(pairs)
        # Each requirement is looked at only when its rarest word clause is met (or it has none):
        # the loop runs over a few requirements, not all of them, on ordinary text.
        strength = {number: min((_key_strength(atom) for atom in clause), default=0.0) for clause, number in ids.items()}
        by_key: dict[int, list[int]] = {}
        by_lazy_key: dict[int, list[int]] = {}  # no word clause: keyed by the first substring one
        unkeyed: list[int] = []
        for index, (plain, lazy) in enumerate(self._needs):
            if plain:
                by_key.setdefault(max(plain, key=strength.__getitem__), []).append(index)
            elif lazy:
                by_lazy_key.setdefault(lazy[0], []).append(index)
            else:
                unkeyed.append(index)
        # A word (or stem) of a key clause points straight at the requirements it keys: the view's
        # words meet a few of these, and only those requirements' other clauses are then tested.
        key_words: dict[str, set[int]] = {}
        key_stems: dict[str, set[int]] = {}
        for number, indexes in by_key.items():
            clause_words, clause_stems = self._atoms[number]
            for key in clause_words:
                key_words.setdefault(key, set()).update(indexes)
            for key in clause_stems:
                key_stems.setdefault(key, set()).update(indexes)
        self._key_words = {key: tuple(sorted(indexes)) for key, indexes in key_words.items()}
        self._key_stems = {key: tuple(sorted(indexes)) for key, indexes in key_stems.items()}
        self._key_word_set, self._key_stem_set = frozenset(key_words), frozenset(key_stems)
        # Every stem a clause tests: the view's stems among these decide every clause, and finding
        # them is one C-level pass over its words (no set of all its stems is built).
        self._stem_keys = frozenset(key for _words, stems in self._atoms.values() for key in stems)
        self._by_lazy_key = {number: tuple(indexes) for number, indexes in by_lazy_key.items()}
        self._lazy_key_ids = frozenset(by_lazy_key)
        self._always_keyed = frozenset(index for number in self._lazy_key_ids & self._always for index in by_lazy_key[number])
        self._unkeyed = frozenset(unkeyed)
        self._possible_by_chars: dict[tuple[frozenset[str], frozenset[int]], tuple[frozenset[int], dict[int, tuple[_Check, ...]]]] = {}

    def passing(self, vocab: Vocabulary | Region, among: Collection[int], skip: Container[int] = ()) -> list[int]:
        """The requirements of ``among`` (indexes, in order) that ``vocab`` meets, less those in ``skip``.

        ``among`` is best a set: only the few candidates the view's words point at are looked up
        in it (a list rebuilt per call and intersected cost ~5k instructions on 1 KB of prose).
        """
        words = vocab.word_set
        # The view's stems that some clause tests: enough for every clause test below.
        stems = self._stem_keys.intersection(map(_STEM, words))
        atoms = self._atoms
        held: set[int] = set()  # substring and pair clauses found to hold
        failed: set[int] = set()
        possible: set[int] | None = None
        out = []
        candidates = set(self._unkeyed) if self._unkeyed else set()
        hits = self._key_word_set.intersection(words)
        if hits:
            candidates.update(chain.from_iterable(map(self._key_words.__getitem__, hits)))
        hits = self._key_stem_set.intersection(stems)
        if hits:
            candidates.update(chain.from_iterable(map(self._key_stems.__getitem__, hits)))
        if self._lazy_key_ids:
            possible, viable = self._possible(vocab)
            if self._always_keyed:
                candidates.update(self._always_keyed)
            for number in self._lazy_key_ids.intersection(possible):
                candidates.update(self._by_lazy_key[number])
        for index in sorted(candidates):
            if index not in among or index in skip:
                continue
            plain, lazy = self._needs[index]
            for number in plain:  # most rules stop here: a clause none of whose words the view holds
                clause_words, clause_stems = atoms[number]
                if clause_words.isdisjoint(words) and clause_stems.isdisjoint(stems):
                    break
            else:
                for number in lazy:
                    if number in held:
                        continue
                    clause_words, clause_stems = atoms[number]
                    if not (clause_words.isdisjoint(words) and clause_stems.isdisjoint(stems)):
                        continue
                    if possible is None:
                        possible, viable = self._possible(vocab)
                    if number in failed or (number not in viable and number not in self._always):
                        break
                    if isinstance(vocab, Region):
                        found = any(self._holds(number, part) for part in vocab.parts())
                    else:
                        found = self._holds(number, vocab, viable.get(number))
                    if found:
                        held.add(number)
                    else:
                        failed.add(number)
                        break
                else:
                    out.append(index)
        return out

    def _possible(self, vocab: Vocabulary | Region) -> tuple[frozenset[int], dict[int, tuple[_Check, ...] | None]]:
        """The lazy clauses a character of the view wakes (the rest, ``self._always``, can hold
        anyway), and among them those one of whose checks finds every character it needs in the
        view, with those checks (None: all of a clause's checks, for a region).

        Both depend on the view's non-ASCII characters and punctuation only, which few texts
        differ in (prose: a few of ``,.-()``): they are kept per such pair, in a bounded table,
        which spares two set intersections and a test per check on most texts (~10k instructions
        per KB of prose).
        """
        if isinstance(vocab, Region):
            woken: set[int] = set()
            for part in vocab.parts():
                woken.update(self._woken(part.odd, part.marks()))
            return frozenset(woken), dict.fromkeys(woken)
        key = (vocab.odd, vocab.marks())
        known = self._possible_by_chars.get(key)
        if known is None:
            odd, marks = key
            woken = self._woken(odd, marks)
            viable = {}
            for number in woken:
                checks = tuple(check for check in self._slow[number][1] if check.odd <= odd and check.marks <= marks)
                if checks:
                    viable[number] = checks
            known = (frozenset(woken), viable)
            if len(odd) <= _MAX_KEPT_ODD:  # a CJK text's characters would make a large key
                if len(self._possible_by_chars) >= _MAX_CHAR_SETS:
                    self._possible_by_chars.clear()
                self._possible_by_chars[key] = known
        return known

    def _woken(self, odd: frozenset[str], marks: frozenset[int]) -> set[int]:
        """The lazy clauses a character among ``odd`` and ``marks`` wakes."""
        woken: set[int] = set()
        for char in self._odd_keys.intersection(odd):
            woken.update(self._by_char[char])
        for char in self._mark_keys.intersection(marks):
            woken.update(self._by_char[char])
        return woken

    def _holds(self, number: int, vocab: Vocabulary, viable: tuple[_Check, ...] | None = None) -> bool:
        """Whether a clause of pairs or substrings holds in ``vocab`` (kept on the vocabulary);
        ``viable``: its checks whose characters the view holds, when known (only those can pass)."""
        key = (self, number)
        held = vocab.cache.get(key)
        if held is None:
            if number in self._pairs:
                # Both words must be among the view's (a set test); only then is adjacency searched.
                words = vocab.word_set
                held = False
                for first, second, needle in self._pairs[number]:
                    if first in words and second in words and needle in vocab.spaced_bytes():
                        held = True
                        break
            elif viable is not None:
                held = any(check.search(vocab) for check in viable)
            else:
                rare, checks = self._slow[number]
                held = (rare is None or not rare[0].isdisjoint(vocab.odd) or bool(rare[1] and not rare[1].isdisjoint(vocab.marks()))) and any(
                    check.holds(vocab) for check in checks)
            vocab.cache[key] = held
        return held
