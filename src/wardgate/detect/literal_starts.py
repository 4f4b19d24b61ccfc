"""Where a regex match can begin: the literal prefixes every match of a pattern starts with.

Python's ``re`` tries a pattern that does not open with a literal at every position (~20 µs per KB
per pattern). Every match of such a rule starts with one of its literal prefixes, so the detectors
find those with ``str.find`` (a C scan) and call ``.match()`` only there: the same first match as
``search``, at a fraction of the cost. Shared by the injection and output-safety detectors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from re import _parser as _sre  # the stdlib's own regex parser (Python >= 3.11)

__all__ = ["MAX_PREFIXES", "STARTS_PER_KB", "Starts", "find_offsets", "first_match", "literal_starts", "widen"]


# Past this many prefix occurrences per KB one regex scan (~20 µs/KB) is cheaper than a
# .match() call (~0.3 µs) at each.
STARTS_PER_KB = 48
MAX_PREFIXES = 64


@dataclass(frozen=True, slots=True)
class Starts:
    """The literal prefixes a rule's matches begin with; ``stemmed`` follow a ``\\b`` and begin
    with five ASCII letters, so in an ASCII view they can only occur if their stem is a word's.

    ``behind`` lists prefixes that a match may start up to so many characters before (a narrow
    opening like ``[1-9][- ]`` before ``year``); those are neither stemmed nor after a ``\\b``.
    """

    prefixes: tuple[str, ...]
    stemmed: frozenset[str]
    behind: dict[str, int] = field(default_factory=dict)


def first_match(pattern: re.Pattern[str], view: str, starts: Starts | None,
                 offsets: dict[str, list[int] | None], stems: set[str] | None,
                 start: int = 0, stop: int | None = None, end: int | None = None) -> re.Match[str] | None:
    """The same match as ``pattern.search(view)``, tried only where a match can start.

    ``start``/``end`` bound the text searched (as ``search(view, start, end)``); with ``stop``,
    only a match starting before it counts (the caller has the rest covered). ``offsets`` caches
    prefix offsets for one such range.
    """
    end = len(view) if end is None else end
    if starts is None:
        return _before(pattern.search(view, start, end), stop)
    limit = 16 + (end - start) * STARTS_PER_KB // 1024
    found: list[int] = []
    for prefix in starts.prefixes:
        if stems is not None and prefix in starts.stemmed and prefix[:5] not in stems:
            continue
        at = offsets.get(prefix, ())
        if at == ():
            at = offsets[prefix] = find_offsets(view, prefix, limit, start, end if stop is None else stop)
        if at is None or len(found) + len(at) > limit:
            return _before(pattern.search(view, start, end), stop)
        found += at
    if starts.behind:
        found = widen(found, starts, offsets, start)
    match = pattern.match
    for at in sorted(found):  # leftmost first: the match search would return
        hit = match(view, at, end)
        if hit is not None:
            return hit
    return None


def widen(found: list[int], starts: Starts, offsets: dict[str, list[int] | None], start: int = 0) -> list[int]:
    """Add the positions a match may start at before the prefixes found ``behind`` it."""
    out = set(found)
    for prefix, back in starts.behind.items():
        for at in offsets.get(prefix) or ():
            out.update(range(max(start, at - back), at))
    return list(out)


def _before(hit: re.Match[str] | None, stop: int | None) -> re.Match[str] | None:
    return hit if hit is None or stop is None or hit.start() < stop else None


def find_offsets(view: str, prefix: str, limit: int, start: int = 0, stop: int | None = None) -> list[int] | None:
    """Every offset of ``prefix`` in ``view`` from ``start`` and before ``stop`` (overlaps
    included), or None past ``limit``."""
    found: list[int] = []
    find = view.find
    end = len(view) if stop is None else stop + len(prefix) - 1
    at = find(prefix, start, end)
    while at >= 0:
        if len(found) == limit:
            return None
        found.append(at)
        at = find(prefix, at + 1, end)
    return found


def literal_starts(pattern: re.Pattern[str]) -> Starts | None:
    """Literal strings one of which every match of ``pattern`` begins with; None if unknown.

    Read from the stdlib's parse tree, so it is exact for any pattern; a construct it does not
    follow only ends a prefix early, and a pattern with an empty prefix keeps plain search.
    """
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        parsed = _sre.parse(pattern.pattern, pattern.flags)
        heads = _heads(parsed, parsed.state)
        bounded = len(parsed) > 0 and parsed[0] == (_sre.AT, _sre.AT_BOUNDARY)
    except (TypeError, ValueError, AttributeError, IndexError, RecursionError):  # a future parser
        return None
    if not heads or any(not head for head, _open, _back in heads):
        return None
    behind: dict[str, int] = {}
    for head, _open, back in heads:
        behind[head] = max(behind.get(head, 0), back)
    prefixes = sorted(behind)
    # "do" covers "don": keep the shortest, each offset is found once.
    kept = tuple(p for p in prefixes
                 if not any(p != q and p.startswith(q) and behind[q] >= behind[p] for q in prefixes))
    stemmed = {p for p in kept if bounded and not behind[p] and len(p) >= 5 and p[:5].isascii() and p[:5].isalpha()}
    return Starts(kept, frozenset(stemmed), {p: behind[p] for p in kept if behind[p]})


_NARROW = 4  # an opening this wide that holds no literal is stepped over (see Starts.behind)


def _heads(items: list, state) -> set[tuple[str, bool, int]]:  # items: a private sre parse tree (re._parser)
    """The literal prefixes of a parsed sequence, each flagged True while still open (all literal),
    with how many characters before it a match may start (a narrow opening stepped over)."""
    heads = {("", True, 0)}
    for op, av in items:
        if not any(is_open for _head, is_open, _back in heads):
            break
        if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue  # zero width: the prefix carries on past it
        if op is _sre.LITERAL:
            step = {(chr(av), True, 0)}
        elif op is _sre.IN and len(av) <= 8 and all(kind is _sre.LITERAL for kind, _code in av):
            step = {(chr(code), True, 0) for _kind, code in av}
        elif op is _sre.SUBPATTERN:
            step = _heads(av[-1], state)
        elif op is _sre.BRANCH:
            step = set().union(*(_heads(branch, state) for branch in av[1]))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:
            step = {(head, False, back) for head, _open, back in _heads(av[2], state)}  # one repetition, then stop
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[:2] == (0, 1):
            step = _heads(av[2], state) | {("", True, 0)}  # "x?": with or without it
        else:
            step = {("", False, 0)}
        narrow = None
        if any(not more for more, _o, _b in step):
            low, high = _sre.SubPattern(state, [(op, av)]).getwidth()
            narrow = high if low >= 1 and high <= _NARROW else None
        grown: set[tuple[str, bool, int]] = set()
        for head, is_open, back in heads:
            if not is_open:
                grown.add((head, False, back))
            elif not head and narrow is not None:
                grown.add(("", True, back + narrow))  # step over it: the match starts up to this far before
            else:
                for more, more_open, more_back in step:
                    grown.add((head, False, back) if more_back and head else (head + more, more_open, back + more_back))
        if len(grown) > MAX_PREFIXES:
            return {(head, False, back) for head, _open, back in heads}  # shorter prefixes are still exact
        heads = grown
    return heads
