"""Where the shared labeled corpora are: ``shared/`` beside the repository (as in CI), else /work/shared."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["corpus", "needs_corpus"]

_CANDIDATES = (Path(__file__).resolve().parents[1].parent / "shared" / "corpora", Path("/work/shared/corpora"))


def corpus(name: str) -> Path:
    for folder in _CANDIDATES:
        if (folder / name).exists():
            return folder / name
    return _CANDIDATES[0] / name


def needs_corpus(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not corpus(name).exists(), reason=f"shared corpus {name} not present")
