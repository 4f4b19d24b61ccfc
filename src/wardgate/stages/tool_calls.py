"""Tool-call validation: the name is one of the request's tools, the arguments are JSON that
validates against that tool's JSON Schema, and the team's allow/deny lists hold (issue 3)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from referencing.exceptions import Unresolvable

from wardgate.config.schema import ToolCallsPolicy
from wardgate.exchange import ALLOW, Action, Exchange, ToolCall, Verdict

__all__ = ["ToolCalls", "tool_call_problems"]


@lru_cache(maxsize=1024)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _declared_tools(body: dict[str, Any] | None) -> dict[str, Any]:
    """name -> parameters schema, for chat (``{"type": "function", "function": {...}}``) and Responses tools."""
    tools: dict[str, Any] = {}
    for tool in (body or {}).get("tools") or ():  # a list: the parse stage refuses anything else
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if isinstance(fn.get("name"), str):
            tools[fn["name"]] = fn.get("parameters") or {}
    return tools


def tool_call_problems(call: ToolCall, tools: dict[str, Any], allow: tuple[str, ...] | None,
                       deny: tuple[str, ...]) -> list[tuple[str, str]]:
    """(code, message) for each thing wrong with one call; empty when it is valid."""
    if call.name in deny or (allow is not None and call.name not in allow):
        return [("tool_calls.not_allowed", f"tool '{call.name}' is not allowed for this team")]
    if call.name not in tools:
        return [("tool_calls.unknown_tool", f"the model called '{call.name}', which is not one of the request's tools")]
    try:
        args = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return [("tool_calls.invalid_json", f"the arguments of '{call.name}' are not valid JSON")]
    schema = tools[call.name]
    if not schema:
        return []
    try:
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except (jsonschema.SchemaError, TypeError):
        return [("tool_calls.bad_schema", f"the schema of tool '{call.name}' is not a valid JSON Schema")]
    try:
        errors = sorted(validator.iter_errors(args), key=lambda e: list(e.path))
    except (Unresolvable, RecursionError):  # a $ref to elsewhere (never fetched) or one that never ends
        return [("tool_calls.bad_schema", f"the schema of tool '{call.name}' has a $ref that cannot be resolved")]
    if not errors:
        return []
    first = errors[0]
    where = ".".join(str(p) for p in first.path) or "(root)"
    return [("tool_calls.schema_violation", f"arguments of '{call.name}' break its schema at {where}: {first.message[:200]}")]


class ToolCalls:
    name = "tool_calls"
    checks_request = False  # it looks at the answer only

    def __init__(self, policy: ToolCallsPolicy) -> None:
        self._block = policy.action == "block"

    def on_request(self, ex: Exchange) -> Verdict:
        return ALLOW

    def on_response(self, ex: Exchange) -> Verdict:
        calls = ex.response.tool_calls
        if not ex.final or not calls or ex.response.status != 200:
            return ALLOW
        tools = _declared_tools(ex.body)
        team = ex.team
        allow, deny = (team.tools_allow, team.tools_deny) if team else (None, ())
        problems = [p for call in calls for p in tool_call_problems(call, tools, allow, deny)]
        if not problems:
            return ALLOW
        code, message = problems[0]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        action = Action.BLOCK if self._block else Action.FLAG
        return Verdict(action, code=code, message=message, status=400, error_code="invalid_tool_call", score=1.0)
