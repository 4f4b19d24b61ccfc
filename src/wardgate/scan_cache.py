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
        if text in items:
            items.move_to_end(text)
            self.hits += 1
            return items[text]
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
