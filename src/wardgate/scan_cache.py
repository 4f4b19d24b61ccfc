"""A bounded LRU of detector results keyed by the scanned text.

An agent resends its whole history every turn; with this cache turn N costs about the new text,
not the whole conversation (issue 3, "Cost on long conversations").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ScanCache"]

T = TypeVar("T")
_MISSING = object()


class ScanCache(Generic[T]):
    """``get(text, compute)``: the cached result for ``text``, computing it once.

    Bounded both in entries and in total characters held, so a few huge texts cannot pin memory.
    Short texts skip the cache: scanning them costs less than keeping them.
    """

    def __init__(self, max_entries: int = 20_000, max_chars: int = 64 * 1024 * 1024, min_chars: int = 256) -> None:
        self._items: OrderedDict[str, T] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._min_chars = min_chars
        self.hits = 0
        self.misses = 0

    def get(self, text: str, compute: Callable[[str], T]) -> T:
        if len(text) < self._min_chars:
            return compute(text)
        items = self._items
        # One lookup: ``in`` then ``[]`` would hash and compare the text twice (the hash of a str
        # is cached on the object, the equality check of a hit is a memcmp of the whole text).
        found = items.get(text, _MISSING)
        if found is not _MISSING:
            items.move_to_end(text)
            self.hits += 1
            return found  # type: ignore[return-value]
        self.misses += 1
        result = compute(text)
        items[text] = result
        self._chars += len(text)
        while len(items) > self._max_entries or self._chars > self._max_chars:
            old, _ = items.popitem(last=False)
            self._chars -= len(old)
        return result

    def __len__(self) -> int:
        return len(self._items)
