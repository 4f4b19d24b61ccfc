"""Secrets in requests: provider keys and credentials never reach an upstream (issue 3)."""

from __future__ import annotations

from collections import Counter

from wardgate.config.schema import SecretsPolicy
from wardgate.detect.findings import Finding
from wardgate.detect.secrets import find_secrets
from wardgate.exchange import ALLOW, Exchange, Redaction, Verdict
from wardgate.scan_cache import ScanCache
from wardgate.stages.guard import decide, note_scan, texts_of

__all__ = ["Secrets"]


def _mask(text: str, findings: list[Finding]) -> str:
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[: f.start] + f"<SECRET_{f.entity}>" + text[f.end :]
    return text


class Secrets:
    name = "secrets"
    responds = False

    def __init__(self, policy: SecretsPolicy) -> None:
        self._action = policy.action
        self._cache: ScanCache[list[Finding]] = ScanCache()

    def on_request(self, ex: Exchange) -> Verdict:
        texts = texts_of(ex)
        kinds: Counter[str] = Counter()
        for ref in texts:
            found = self._cache.get(ref.text, find_secrets)
            if not found:
                continue
            kinds.update(f.entity for f in found)
            if self._action == "redact":
                ref.replace(_mask(ref.text, found))
                ex.mark_body_changed()
        note_scan(ex, self.name, texts)
        if not kinds:
            return ALLOW
        listed = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        if self._action == "redact":
            ex.redactions.extend(Redaction(k, n, "input") for k, n in sorted(kinds.items()))
            return decide("flag", "secrets.redacted", f"secrets redacted: {listed}", "secret_detected", 1.0)
        return decide(self._action, "secrets.detected", f"the request contains a credential ({listed}); "
                      "remove it and send again", "secret_detected", 1.0)

    def on_response(self, ex: Exchange) -> Verdict:
        return ALLOW
