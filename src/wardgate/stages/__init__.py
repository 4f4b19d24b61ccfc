"""The stages of the chain, and the functions that list them in order (DESIGN.md rule 4)."""

from __future__ import annotations

from wardgate.config.schema import Config, PolicyConfig
from wardgate.pipeline import Stage
from wardgate.stages.authenticate import Authenticate
from wardgate.stages.parse import Parse
from wardgate.stages.route import Route

__all__ = ["front_stages", "default_stages"]


def front_stages(config: Config) -> list[Stage]:
    """Run for every request: who is calling, what they sent, where it goes."""
    return [Authenticate(config), Parse(config), Route(config)]


def default_stages(policy: PolicyConfig, config: Config) -> list[Stage]:
    """The guardrails of one policy, in request order (the response phase runs them in reverse)."""
    return []
