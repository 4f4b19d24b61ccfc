"""Team authentication by bearer key. Keys are held only as sha256 digests."""

from __future__ import annotations

import hashlib
import hmac

from wardgate.config.schema import Config, KeyConfig, PolicyConfig, TeamConfig
from wardgate.exchange import ALLOW, Action, Exchange, Verdict

__all__ = ["Authenticate", "key_digest"]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _refuse(message: str) -> Verdict:
    return Verdict(Action.BLOCK, code="auth.invalid_key", message=message, status=401, error_code="invalid_api_key")


class Authenticate:
    name = "authenticate"
    responds = False

    def __init__(self, config: Config) -> None:
        self._by_digest: dict[str, tuple[str, TeamConfig, KeyConfig]] = {}
        self._policies = config.policies
        self._default_policy = PolicyConfig()
        for team_name, team in config.teams.items():
            for key in team.keys:
                digest = (key.sha256 or key_digest(key.value or "")).lower()
                self._by_digest[digest] = (team_name, team, key)
        self._accepted: dict[str, tuple[str, TeamConfig, KeyConfig]] = {}
        """Keys already seen to be valid, as presented: a sha256 per request costs more than the rest of
        this stage. Only valid keys enter, at most one per configured key (equal digests mean equal keys),
        so a flood of wrong keys cannot grow it; it lives as long as this config generation."""

    def on_request(self, ex: Exchange) -> Verdict:
        header = ex.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _refuse("missing API key: send 'Authorization: Bearer <team key>'")
        found = self._accepted.get(token)
        if found is None:
            digest = key_digest(token)
            found = self._by_digest.get(digest)
            # The lookup is on the digest, so timing reveals nothing about the key; compare anyway.
            expected = digest if found else "0" * 64
            if found is None or not hmac.compare_digest(digest, expected):
                return _refuse("invalid API key")
            self._accepted[token] = found
        ex.team_name, ex.team, ex.key = found
        ex.api_key = token
        team = ex.team
        ex.policy = self._policies[team.policy] if team.policy else self._default_policy
        return ALLOW

    def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
