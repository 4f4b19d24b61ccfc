"""One trace record as a pipeline a person can read (``wardgate show``), with a one-line diagnosis.

The diagnosis answers the incident question of issue 5: where did it lose the plot — the request
(prompt), a guardrail, the upstream (model or provider), the model's answer, or nothing the gateway
could see while the user was still unhappy (then: retrieval or the prompt version).
"""

from __future__ import annotations

from typing import Any

from wardgate.tracestore import feedback_kind

__all__ = ["diagnose", "render_trace"]

_INPUT_STAGES = frozenset({"secrets", "pii", "injection"})
_OUTPUT_STAGES = frozenset({"output", "tool_calls"})


def _ms(value: Any) -> str:
    return f"{value:.2f} ms" if isinstance(value, int | float) else "-"


def _phase(record: dict[str, Any], verdict: dict[str, Any]) -> str:
    for span in record.get("spans") or ():
        if span.get("stage") == verdict.get("stage") and span.get("action") == verdict.get("action"):
            return str(span.get("phase"))
    return "request"


def diagnose(record: dict[str, Any], feedback: list[dict[str, Any]]) -> str:
    """One line: where this exchange went wrong, as far as the gateway can tell."""
    verdicts = record.get("verdicts") or []
    error = record.get("error") or {}
    outcome = record.get("outcome")
    blocks = [v for v in verdicts if v.get("action") == "block"]
    if outcome == "blocked" and blocks:
        v = blocks[0]
        where = "the model's answer" if _phase(record, v) == "response" else "the request"
        return f"{where}: {v.get('stage')} blocked it ({v.get('code')}): {v.get('message') or ''}".rstrip(": ")
    if outcome == "error":
        code = error.get("code")
        if code == "client_closed":
            return "the client: it disconnected before the answer ended"
        if code in ("upstream_error", "upstream_timeout") or (record.get("response") or {}).get("content") is None \
                and (record.get("status") or 0) >= 500:
            return f"the upstream: {code or 'error'}: {error.get('message') or ''}".rstrip(": ")
        return f"the request: {code or 'error'}: {error.get('message') or ''}".rstrip(": ")
    flags = [v for v in verdicts if v.get("action") == "flag" and v.get("code") not in ("pii.redacted", "secrets.redacted")]
    for stages, where in ((_OUTPUT_STAGES, "the model's answer"), (_INPUT_STAGES, "the prompt"), ({"anomaly"}, "usage")):
        hit = [v for v in flags if v.get("stage") in stages]
        if hit:
            v = hit[0]
            return f"{where}: {v.get('stage')} flagged {v.get('code')}: {v.get('message') or ''}".rstrip(": ")
    unhappy = [f for f in feedback if feedback_kind(f) == "negative"]
    if unhappy:
        prompt = f" (prompt {record['prompt']})" if record.get("prompt") else ""
        sources = ", ".join(sorted({str(f.get("source")) for f in unhappy}))
        return (f"no guardrail or upstream fault, yet the user was unhappy ({sources}): "
                f"look at the retrieved context and the prompt{prompt}")
    return "nothing went wrong that the gateway could see"


def _pipeline(record: dict[str, Any]) -> list[str]:
    totals: dict[tuple[str, str], list[Any]] = {}
    for span in record.get("spans") or ():
        key = (str(span.get("phase")), str(span.get("stage")))
        entry = totals.setdefault(key, [0.0, 0, "allow"])
        entry[0] += span.get("ms") or 0.0
        entry[1] += 1
        if span.get("action") in ("flag", "block") and entry[2] != "block":
            entry[2] = span.get("action")
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for v in record.get("verdicts") or ():
        by_stage.setdefault(str(v.get("stage")), []).append(v)
    lines = []
    for (phase, stage), (ms, count, action) in totals.items():
        runs = f" x{count}" if count > 1 else ""
        lines.append(f"  {phase:<8} {stage:<13} {_ms(ms):>10}{runs}  {action.upper() if action != 'allow' else 'allow'}")
        if action != "allow":
            for v in by_stage.get(stage, []):
                if v.get("action") == action:
                    score = f" score {v['score']}" if v.get("score") is not None else ""
                    lines.append(f"           {v.get('code')}{score}: {v.get('message') or ''}")
    for v in by_stage.get("anomaly", []):
        lines.append(f"  after    anomaly                   FLAG  {v.get('code')}: {v.get('message') or ''}")
    return lines


def render_trace(record: dict[str, Any], feedback: list[dict[str, Any]]) -> str:
    t = record.get("timings_ms") or {}
    usage = record.get("usage") or {}
    out = [(f"{record.get('request_id')}  {record.get('time')}  team {record.get('team') or '-'}  "
            f"key {record.get('key_id') or '-'}  user {record.get('user') or '-'}  session {record.get('session_id') or '-'}"),
           (f"{record.get('route')}  model {record.get('model') or '-'} -> {record.get('upstream') or '-'}"
            f"/{record.get('upstream_model') or '-'}  stream {'yes' if record.get('stream') else 'no'}"),
           (f"outcome {record.get('outcome')}  status {record.get('status')}  total {_ms(t.get('total'))}  "
            f"overhead {_ms(t.get('overhead'))}  upstream {_ms(t.get('upstream'))}  ttft {_ms(t.get('ttft'))}"),
           "pipeline:", *_pipeline(record)]
    redactions = record.get("redactions") or []
    if redactions:
        out.append("redactions: " + ", ".join(f"{r.get('entity')} x{r.get('count')} ({r.get('where')})" for r in redactions))
    for n, attempt in enumerate(record.get("attempts") or (), 1):
        result = attempt.get("status", attempt.get("error", "-"))
        out.append(f"upstream call {n}: {attempt.get('upstream')}/{attempt.get('upstream_model')} -> {result} "
                   f"in {_ms(attempt.get('ms'))}")
    if usage:
        cost = record.get("cost_usd")
        out.append(f"usage: prompt {usage.get('prompt_tokens')}, completion {usage.get('completion_tokens')}, "
                   f"total {usage.get('total_tokens')}" + (f"; cost ${cost:.6f}" if isinstance(cost, int | float) else ""))
    meta = [f"{k} {v}" for k, v in (("prompt", record.get("prompt")), ("trace", record.get("trace_id"))) if v]
    tags = record.get("tags") or {}
    if tags:
        meta.append("tags " + ",".join(f"{k}={v}" for k, v in tags.items()))
    if meta:
        out.append("  ".join(meta))
    if record.get("error"):
        out.append(f"error: {record['error'].get('code')}: {record['error'].get('message')}")
    for f in feedback:
        comment = f" {f['comment']!r}" if f.get("comment") else ""
        out.append(f"feedback: {f.get('score')} ({f.get('source')}){comment} {' '.join(f.get('labels') or [])}".rstrip())
    out.append(f"where it went wrong: {diagnose(record, feedback)}")
    return "\n".join(out)
