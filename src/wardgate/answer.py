"""Read the upstream's answer into ``Response``: whole bodies and stream chunks, for every route (pure)."""

from __future__ import annotations

from typing import Any

from wardgate.config.schema import PriceConfig
from wardgate.exchange import Response, ToolCall

__all__ = ["absorb_body", "absorb_chunk", "as_list", "cost_of", "normalize_usage"]


def normalize_usage(usage: Any) -> dict[str, int] | None:
    """OpenAI chat/completions usage, or the Responses API's input/output names, as prompt/completion/total."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = usage.get("total_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": total if isinstance(total, int) else prompt + completion}


def cost_of(usage: dict[str, int] | None, price: PriceConfig) -> float | None:
    if usage is None:
        return None
    cost = (usage["prompt_tokens"] * price.input_per_mtok + usage["completion_tokens"] * price.output_per_mtok) / 1e6
    return round(cost, 10)


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a list; anything else an upstream put there counts as nothing."""
    return value if isinstance(value, list) else []


def _tool_call(resp: Response, index: int) -> ToolCall:
    for call in resp.tool_calls:
        if call.index == index:
            return call
    call = ToolCall(index=index)
    resp.tool_calls.append(call)
    return call


def _responses_output(resp: Response, output: Any) -> None:
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in as_list(item.get("content")):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    resp.append_text(part["text"])
        elif item.get("type") == "function_call":
            call = _tool_call(resp, len(resp.tool_calls))
            call.id, call.name = item.get("call_id"), str(item.get("name", ""))
            call.arguments = str(item.get("arguments", ""))


def absorb_body(resp: Response, body: dict[str, Any]) -> None:
    """Fill text, tool calls, usage and finish reason from a non-streaming body (first choice)."""
    resp.body = body
    resp.usage = normalize_usage(body.get("usage"))
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        resp.finish_reason = first.get("finish_reason")
        message = first.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            resp.text = content if isinstance(content, str) else ""
            for n, call in enumerate(as_list(message.get("tool_calls"))):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    resp.tool_calls.append(ToolCall(n, call.get("id"), str(fn.get("name", "")), str(fn.get("arguments", ""))))
        elif isinstance(first.get("text"), str):
            resp.text = first["text"]
    elif "output" in body:
        _responses_output(resp, body.get("output"))
        resp.finish_reason = body.get("status")


def absorb_chunk(resp: Response, chunk: dict[str, Any]) -> str:
    """Add one stream chunk to the answer; return the new answer text it carried (first choice)."""
    usage = chunk.get("usage")
    if usage:
        resp.usage = normalize_usage(usage) or resp.usage
    kind = chunk.get("type")
    if isinstance(kind, str):  # Responses API events
        if kind == "response.output_text.delta" and isinstance(chunk.get("delta"), str):
            resp.append_text(chunk["delta"])
            return chunk["delta"]
        if kind == "response.completed" and isinstance(chunk.get("response"), dict):
            resp.usage = normalize_usage(chunk["response"].get("usage")) or resp.usage
            resp.finish_reason = "completed"
        return ""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return ""
    new = ""
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        if choice.get("finish_reason"):
            resp.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str):
                new += content
            for call_delta in as_list(delta.get("tool_calls")):
                if not isinstance(call_delta, dict):
                    continue
                index = call_delta.get("index", 0)
                call = _tool_call(resp, index if type(index) is int else 0)  # an upstream's bad index: the first call
                call.id = call_delta.get("id") or call.id
                fn = call_delta.get("function")
                if isinstance(fn, dict):
                    call.name += str(fn.get("name") or "")
                    call.arguments += str(fn.get("arguments") or "")
        elif isinstance(choice.get("text"), str):  # legacy completions
            new += choice["text"]
    resp.append_text(new)
    return new
