"""The stages of the chain, and the functions that list them in order (DESIGN.md rule 4).

Request phases run top to bottom; response phases run bottom to top, so budgets settle first
and PII restore is the last rewrite before the client.
"""

from __future__ import annotations

from wardgate.config.schema import Config, PolicyConfig
from wardgate.pipeline import Stage
from wardgate.runtime import Services
from wardgate.stages.authenticate import Authenticate
from wardgate.stages.budget import Budget
from wardgate.stages.injection import Injection
from wardgate.stages.loops import Loops
from wardgate.stages.output import Output
from wardgate.stages.parse import Parse
from wardgate.stages.pii import Pii
from wardgate.stages.route import Route
from wardgate.stages.secrets import Secrets
from wardgate.stages.tool_calls import ToolCalls

__all__ = ["front_stages", "default_stages"]


def front_stages(config: Config) -> list[Stage]:
    """Run for every request: who is calling, what they sent, where it goes."""
    return [Authenticate(config), Parse(config), Route(config)]


def default_stages(policy: PolicyConfig, config: Config, services: Services) -> list[Stage]:
    """The guardrails of one policy, in request order; ``action: off`` leaves a stage out."""
    stages: list[Stage] = []
    if policy.secrets.action != "off":
        stages.append(Secrets(policy.secrets))
    if policy.pii.action != "off":
        stages.append(Pii(policy.pii))
    if policy.injection.action != "off":
        stages.append(Injection(policy.injection))
    if policy.output.action != "off":
        stages.append(Output(policy.output))
    if policy.tool_calls.action != "off":
        stages.append(ToolCalls(policy.tool_calls))
    if policy.loops.action != "off":
        stages.append(Loops(policy.loops, services.store, config.state.on_error == "open"))
    budget = Budget(policy, config, services.store, services.fallback)
    if budget.active:  # no budget anywhere in the config: no stage to run twice per request for nothing
        stages.append(budget)
    return stages
