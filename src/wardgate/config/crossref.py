"""Checks that span sections: names that must point at something defined elsewhere.

They run on the merged raw mapping, before validation, so a typo elsewhere in the file does not
hide a dangling reference: ``wardgate check`` reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["check_references"]

Found = Iterator[tuple[tuple[str | int, ...], str]]


def _named(raw: dict[str, Any], section: str) -> dict[str, Any]:
    value = raw.get(section)
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_references(raw: dict[str, Any]) -> Found:
    """Yield (path, message) for every dangling or inconsistent reference."""
    upstreams, models = _named(raw, "upstreams"), _named(raw, "models")
    policies, teams = _named(raw, "policies"), _named(raw, "teams")
    for name, model in models.items():
        if not isinstance(model, dict):
            continue
        upstream = model.get("upstream")
        if isinstance(upstream, str) and upstream not in upstreams:
            yield ("models", name, "upstream"), f"unknown upstream {upstream!r}"
        for i, fallback in enumerate(_items(model.get("fallbacks"))):
            if fallback == name:
                yield ("models", name, "fallbacks", i), "a model cannot fall back to itself"
            elif fallback not in models:
                yield ("models", name, "fallbacks", i), f"unknown model {fallback!r}"
    yield from _check_teams(teams, models, policies)


def _check_teams(teams: dict[str, Any], models: dict[str, Any], policies: dict[str, Any]) -> Found:
    key_owner: dict[str, str] = {}
    hash_owner: dict[str, str] = {}
    for team_name, team in teams.items():
        if not isinstance(team, dict):
            continue
        policy = team.get("policy")
        if isinstance(policy, str) and policy not in policies:
            yield ("teams", team_name, "policy"), f"unknown policy {policy!r}"
        for i, model in enumerate(_items(team.get("models"))):
            if model != "*" and model not in models:
                yield ("teams", team_name, "models", i), f"unknown model {model!r}"
        for i, key in enumerate(_items(team.get("keys"))):
            if not isinstance(key, dict):
                continue
            key_id = key.get("id")
            if isinstance(key_id, str):
                if key_id in key_owner:
                    yield ("teams", team_name, "keys", i, "id"), f"key id {key_id!r} is also used by team {key_owner[key_id]!r}"
                key_owner.setdefault(key_id, team_name)
            digest = key.get("sha256")
            if isinstance(digest, str):
                if digest.lower() in hash_owner:
                    yield ("teams", team_name, "keys", i, "sha256"), f"the same key is also given to team {hash_owner[digest.lower()]!r}"
                hash_owner.setdefault(digest.lower(), team_name)
