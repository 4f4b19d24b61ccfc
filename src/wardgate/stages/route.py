"""Model aliases to upstreams, and the team's model allowlist."""

from __future__ import annotations

from wardgate.config.schema import Config
from wardgate.exchange import ALLOW, Action, Exchange, Verdict

__all__ = ["Route"]


class Route:
    name = "route"
    responds = False

    def __init__(self, config: Config) -> None:
        self._models = config.models
        self._upstreams = config.upstreams
        self._policies = config.policies

    def on_request(self, ex: Exchange) -> Verdict:
        alias = ex.model_alias
        model = self._models.get(alias or "")
        if model is None:
            return Verdict(Action.BLOCK, code="route.model_not_found", status=404, error_code="model_not_found",
                           message=f"The model '{alias}' does not exist or you do not have access to it.")
        team = ex.team
        if team is not None and "*" not in team.models and alias not in team.models:
            return Verdict(Action.BLOCK, code="route.model_not_allowed", status=403, error_code="model_not_allowed",
                           message=f"Team '{ex.team_name}' may not use the model '{alias}'.")
        ex.model = model
        ex.upstream_name = model.upstream
        ex.upstream = self._upstreams[model.upstream]
        ex.upstream_model = model.model or alias
        return ALLOW

    def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
