"""One config generation: the config and everything built from it. Swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass

from wardgate.config.schema import Config
from wardgate.pipeline import Pipeline
from wardgate.upstream import Upstreams

__all__ = ["Generation"]


@dataclass(frozen=True, slots=True)
class Generation:
    """In-flight requests keep the generation they started with; new requests take the newest."""

    number: int
    config: Config
    pipeline: Pipeline
    upstreams: Upstreams
