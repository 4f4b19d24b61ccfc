"""Unsafe model output and system-prompt leaks, on whole answers and at stream checkpoints (issue 3)."""

from __future__ import annotations

from wardgate.config.schema import OutputPolicy
from wardgate.detect.output_safety import OUTPUT_CATEGORIES, OutputFinding, StreamingOutputChecker, check_output
from wardgate.exchange import ALLOW, Exchange, Verdict
from wardgate.stages.guard import decide, texts_of

__all__ = ["Output"]

_CHECKER = "_output_checker"


def _system_prompt(ex: Exchange) -> str | None:
    parts = None
    for ref in texts_of(ex):
        if ref.role == "system":
            if parts is None:
                parts = ref.text  # one system text, the usual case: no list, no join
            else:
                parts += "\n" + ref.text
    return parts


class Output:
    name = "output"
    checks_request = False  # it looks at the answer only

    def __init__(self, policy: OutputPolicy) -> None:
        self._action = policy.action
        categories = set(policy.categories) if policy.categories is not None else set(OUTPUT_CATEGORIES)
        if not policy.system_prompt_leak:
            categories.discard("system_prompt_leak")
        self._categories = frozenset(categories)
        self._leak = "system_prompt_leak" in self._categories

    def _verdict(self, ex: Exchange, findings: list[OutputFinding]) -> Verdict:
        ex.extra[self.name] = {"checked_chars": len(ex.response.text), "stream": ex.stream}
        if not findings:
            return ALLOW
        top = max(findings, key=lambda f: f.score)
        return decide(self._action, f"output.{top.category}", top.message, "unsafe_output", top.score)

    def on_request(self, ex: Exchange) -> Verdict:
        return ALLOW

    def on_response(self, ex: Exchange) -> Verdict:
        if ex.response.status != 200 or not ex.response.text:
            return ALLOW
        if not ex.stream:
            if not ex.final:
                return ALLOW
            prompt = _system_prompt(ex) if self._leak else None
            return self._verdict(ex, check_output(ex.response.text, self._categories, prompt))
        checker = ex.extra.get(_CHECKER)
        if checker is None:
            checker = ex.extra[_CHECKER] = StreamingOutputChecker(self._categories, _system_prompt(ex) if self._leak else None)
            checker_seen = 0
        else:
            checker_seen = ex.extra["_output_seen"]
        text = ex.response.text
        ex.extra["_output_seen"] = len(text)
        findings = checker.feed(text[checker_seen:])
        if ex.final:
            findings += checker.finish()
        return self._verdict(ex, findings)
