"""One config generation: the config and everything built from it. Swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass

from wardgate.config.schema import Config
from wardgate.pipeline import Pipeline
from wardgate.state import MemoryStateStore, StateStore
from wardgate.upstream import Upstreams

__all__ = ["Generation", "Services"]


@dataclass(frozen=True, slots=True)
class Services:
    """Process-lifetime resources the stages use; they outlive config generations."""

    store: StateStore
    """Budgets, rate limits and loop counters (memory, or Redis shared by replicas)."""
    fallback: MemoryStateStore
    """Counts requests in this process while the shared store is unreachable (``on_error: open``)."""


@dataclass(frozen=True, slots=True)
class Generation:
    """In-flight requests keep the generation they started with; new requests take the newest."""

    number: int
    config: Config
    pipeline: Pipeline
    upstreams: Upstreams
    services: Services
