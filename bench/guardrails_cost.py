"""What the guardrails add to one request, in process: every stage of the default policy, no network.

    python bench/guardrails_cost.py

Prints p50/p99 of the request + response phases for chat requests of 1-64 KB of real chat prompts
(../shared/corpora/injection-dev.jsonl benign rows, so the text is realistic), and for an agent
conversation growing to ~100 KB: turn 1 versus turn 50 (the per-text cache makes turn N cost about
its new text; medians over 15 conversations), with a 0.5 KB and a 2 KB first turn (later turns add ~2 KB each). Twice: issue 3's
guardrails alone, then the whole default policy (+ loops and budgets, whose token count is exact BPE).
Issue 3's bars: ≤ 1 ms p50 at 4 KB, linear in size, turn 50 ≤ 2x turn 1.
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import sys
import time
from pathlib import Path

import orjson

from wardgate.config import load_config_text
from wardgate.exchange import Exchange, Response
from wardgate.pipeline import Pipeline
from wardgate.runtime import Services
from wardgate.stages import default_stages
from wardgate.state import MemoryStateStore

CONFIG = """
version: 1
upstreams: {echo: {kind: echo}}
models: {m: {upstream: echo}}
teams: {t: {keys: [{id: k, value: "bench-key-123456"}], policy: all, budgets: [{window: day, tokens: 1000000000}]}}
policies: {all: {pii: {action: redact, restore: true}}}
"""


def _prompts() -> list[str]:
    path = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "injection-dev.jsonl"
    if not path.exists():
        path = Path("/work/shared/corpora/injection-dev.jsonl")
    rows = [orjson.loads(line) for line in path.open("rb") if line.strip()]
    return [r["text"] for r in rows if r["label"] == "benign"]


def _text(prompts: list[str], size: int, offset: int) -> str:
    out, i = [], offset
    while sum(len(p) + 1 for p in out) < size:
        out.append(prompts[i % len(prompts)])
        i += 1
    return "\n".join(out)[:size]


async def _call(phase, ex: Exchange) -> None:
    """A stage phase is a coroutine function or a plain one (wardgate.pipeline.Stage)."""
    result = phase(ex)
    if inspect.isawaitable(result):
        await result


async def _one(pipeline: Pipeline, config, messages: list[dict], answer: str, n: int) -> float:
    team = config.teams["t"]
    ex = Exchange(request_id=f"r{n}", route="/v1/chat/completions", config=config)
    ex.body = {"model": "m", "messages": messages}
    ex.team_name, ex.team, ex.key, ex.policy = "t", team, team.keys[0], config.policies["all"]
    ex.model_alias, ex.model, ex.upstream_model, ex.session_id = "m", config.models["m"], "m", f"s{n}"
    started = time.perf_counter()
    for stage in pipeline.by_policy["all"]:
        ex.stages_ran.append(stage)
        await _call(stage.on_request, ex)
    ex.response = Response(status=200, text=answer, complete=True, body={"choices": [{"message": {"content": answer}}]},
                           usage={"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150})
    ex.final = True
    for stage in reversed(ex.stages_ran):
        await _call(stage.on_response, ex)
    return (time.perf_counter() - started) * 1e6


_CONVERSATIONS = 15
"""Per-turn medians over this many conversations: turn 1 is each conversation's first request only."""

_GUARDRAILS = frozenset({"secrets", "pii", "injection", "output", "tool_calls"})
"""Issue 3's guardrails. The other stages of the policy (loops, budgets: issue 4) are timed too, apart."""


async def _sizes(pipeline: Pipeline, config, prompts: list[str], answer: str, n: int) -> int:
    print(f"{'size':>8} {'p50 µs':>9} {'p99 µs':>9} {'µs/KB':>7}")
    for size in (1024, 4096, 16384, 65536):
        times = []
        for _ in range(60 if size <= 4096 else 20):
            n += 1
            times.append(await _one(pipeline, config, [{"role": "system", "content": "You are helpful."},
                                                       {"role": "user", "content": _text(prompts, size, n * 13)}],
                                    answer, n))
        times.sort()
        p50 = statistics.median(times)
        print(f"{size // 1024:>6}KB {p50:9.0f} {times[int(len(times) * 0.99) - 1]:9.0f} {p50 / (size / 1024):7.0f}")
    return n


async def _agent(pipeline: Pipeline, config, prompts: list[str], answer: str, n: int, first_kb: float) -> int:
    """An agent resending a growing history to ~100 KB: each turn adds ~2 KB (a reply and a tool result).
    Turn 1 holds ``first_kb`` of new text (system prompt and task). ``_CONVERSATIONS`` conversations with different
    texts (nothing one has sent is in another), so each turn pays for its new text once; per-turn medians."""
    turns: dict[int, list[float]] = {}
    start = n
    for run in range(_CONVERSATIONS):
        base = 1009 * run + 7 * start  # each conversation reads other prompts of the corpus than any before
        history: list[dict] = [
            {"role": "system", "content": "You are an agent. " + _text(prompts, int(first_kb * 512), base + 3)},
            {"role": "user", "content": _text(prompts, int(first_kb * 512), base + 1)}]
        for turn in range(1, 51):
            n += 1
            # A new request parses to new string objects: no hash is reused from the previous turn.
            turns.setdefault(turn, []).append(await _one(pipeline, config, orjson.loads(orjson.dumps(history)),
                                                         answer, n))
            history += [{"role": "assistant", "content": _text(prompts, 1000, base + turn * 31)},
                        {"role": "tool", "tool_call_id": f"c{turn}", "content": _text(prompts, 1000, base + turn * 37)}]
    t1, t2, t50 = (statistics.median(turns[t]) for t in (1, 2, 50))
    size = len(orjson.dumps(history)) // 1024
    print(f"agent, turn 1 with {first_kb:g} KB: turn 1 {t1:.0f} µs, turn 2 {t2:.0f} µs, turn 50 {t50:.0f} µs "
          f"({size} KB history, ~2 KB new): turn 50 / turn 1 {t50 / t1:.2f}, turn 50 / turn 2 {t50 / t2:.2f}")
    return n


async def main() -> None:
    config = load_config_text(CONFIG, env={})
    services = Services(MemoryStateStore(), MemoryStateStore())
    stages = default_stages(config.policies["all"], config, services)
    prompts = _prompts()
    answer = _text(prompts, 1000, 7)
    n = 0
    for title, chosen in (("guardrails (secrets, PII redact+restore, injection, output, tool calls)",
                           [s for s in stages if s.name in _GUARDRAILS]),
                          ("the whole default policy: guardrails + loops + memory budgets (token counting)", stages)):
        pipeline = Pipeline([], {"all": chosen})
        print(f"\n## {title}")
        n = await _sizes(pipeline, config, prompts, answer, n)
        for first_kb in (0.5, 2):
            n = await _agent(pipeline, config, prompts, answer, n, first_kb)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
