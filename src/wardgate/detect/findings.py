"""The value every span detector returns."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span in a text.

    ``entity`` is the kind (``EMAIL_ADDRESS``, ``OPENAI_KEY`` ...), ``start``/``end`` are
    character offsets into the text that was scanned (``text[start:end]`` is the value),
    ``score`` is the detector's confidence in [0, 1].
    """

    entity: str
    start: int
    end: int
    score: float = 1.0
