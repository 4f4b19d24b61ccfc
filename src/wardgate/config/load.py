"""Load YAML config files into a validated ``Config``, reporting problems as FILE:LINE: path: message.

One file or a folder of ``*.yaml`` files (merged by top-level section); ``${VAR}`` and
``${VAR:-default}`` interpolation; policy ``extends`` resolved before validation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wardgate.config.crossref import check_references
from wardgate.config.schema import Config

__all__ = ["ConfigError", "Problem", "load_config", "load_config_text"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAMED_SECTIONS = ("upstreams", "models", "teams", "policies")
_LIST_SECTIONS = ("sinks",)

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 ``off``, ``no`` and ``on`` are booleans,
    which would turn SPEC's ``action: off`` into ``False``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """One or more problems; ``str()`` is one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class _Positions:
    """Where each dotted path was written: (file, line)."""

    def __init__(self) -> None:
        self.at: dict[Path_, tuple[str, int]] = {}
        self.by_file: dict[tuple[str, Path_], int] = {}

    def find(self, path: Path_) -> tuple[str, int]:
        for cut in range(len(path), -1, -1):
            hit = self.at.get(tuple(path[:cut]))
            if hit:
                return hit
        return ("<config>", 1)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _interpolate(text: str, env: Mapping[str, str], missing: list[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        if name in env:
            return ""
        missing.append(name)
        return ""

    return _ENV.sub(sub, text)


_MAX_NODES = 1_000_000
"""Values built from one file at most: YAML aliases can make a few lines expand without end."""


def _build(node: yaml.Node, path: Path_, file: str, pos: _Positions, env: Mapping[str, str],
           problems: list[Problem], seen: tuple[set[int], list[int]] | None = None) -> Any:
    """``seen``: the collection nodes open on the way here (an alias back to one is a cycle), and a count."""
    open_nodes, count = seen if seen is not None else (set(), [0])
    count[0] += 1
    if count[0] > _MAX_NODES:
        if count[0] == _MAX_NODES + 1:
            problems.append(Problem(file, node.start_mark.line + 1, _dotted(path),
                                    f"more than {_MAX_NODES} values: an alias expands too far"))
        return None
    if id(node) in open_nodes:
        problems.append(Problem(file, node.start_mark.line + 1, _dotted(path), "an alias refers to itself"))
        return None
    pos.at[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.CollectionNode):
        open_nodes.add(id(node))
        try:
            return _build_collection(node, path, file, pos, env, problems, (open_nodes, count))
        finally:
            open_nodes.discard(id(node))
    value = _scalar(node)
    if isinstance(value, str) and "${" in value:
        missing: list[str] = []
        value = _interpolate(value, env, missing)
        for name in missing:
            problems.append(Problem(file, node.start_mark.line + 1, _dotted(path),
                                    f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"))
    return value


def _build_collection(node: yaml.CollectionNode, path: Path_, file: str, pos: _Positions, env: Mapping[str, str],
                      problems: list[Problem], seen: tuple[set[int], list[int]]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                problems.append(Problem(file, key_node.start_mark.line + 1, _dotted(path + (key,)),
                                        "duplicate key in the same mapping"))
            out[key] = _build(value_node, path + (key,), file, pos, env, problems, seen)
            pos.at[path + (key,)] = (file, key_node.start_mark.line + 1)
        return out
    return [_build(v, path + (i,), file, pos, env, problems, seen) for i, v in enumerate(node.value)]


def _scalar(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar's YAML type (int, float, bool, null) with the safe constructor.
    loader = _Loader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _parse_file(file: Path, env: Mapping[str, str], pos: _Positions, problems: list[Problem]) -> dict[str, Any]:
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, 1, "", f"cannot read: {exc}"))
        return {}
    return _parse_text(text, name, env, pos, problems)


def _parse_text(text: str, name: str, env: Mapping[str, str], pos: _Positions,
                problems: list[Problem]) -> dict[str, Any]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(Problem(name, line, "", f"invalid YAML: {getattr(exc, 'problem', exc)}"))
        return {}
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(name, node.start_mark.line + 1, "", "a config file must be a mapping"))
        return {}
    local = _Positions()
    data = _build(node, (), name, local, env, problems)
    for path, where in local.at.items():
        if path:  # the root of each file is not a shared position
            pos.at.setdefault(path, where)
            pos.by_file[(name, path)] = where[1]
    return data


def _merge(parts: list[tuple[str, dict[str, Any]]], pos: _Positions, problems: list[Problem]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    origin: dict[Path_, str] = {}
    for file, data in parts:
        for section, value in data.items():
            if section in _NAMED_SECTIONS and isinstance(value, dict):
                target = merged.setdefault(section, {})
                if not isinstance(target, dict):
                    continue
                for name, item in value.items():
                    if name in target:
                        first = origin[(section, name)]
                        problems.append(Problem(file, _line_in(pos, file, (section, name)), f"{section}.{name}",
                                                f"defined twice: in {first} and in {file}"))
                        continue
                    target[name] = item
                    origin[(section, name)] = file
            elif section in _LIST_SECTIONS and isinstance(value, list):
                target = merged.setdefault(section, [])
                offset = len(target)
                for i, item in enumerate(value):
                    target.append(item)
                    _shift_positions(pos, file, (section, i), (section, offset + i))
            elif section in merged:
                problems.append(Problem(file, _line_in(pos, file, (section,)), section,
                                        f"defined twice: in {origin[(section,)]} and in {file}"))
            else:
                merged[section] = value
                origin[(section,)] = file
    return merged


def _line_in(pos: _Positions, file: str, path: Path_) -> int:
    return pos.by_file.get((file, path), 1)


def _shift_positions(pos: _Positions, file: str, old: Path_, new: Path_) -> None:
    if old == new:
        return
    for (name, path), line in list(pos.by_file.items()):
        if name == file and path[: len(old)] == old:
            pos.at[new + path[len(old):]] = (file, line)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_extends(raw: dict[str, Any], pos: _Positions, problems: list[Problem]) -> None:
    policies = raw.get("policies")
    if not isinstance(policies, dict):
        return
    resolved: dict[str, Any] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in resolved:
            return resolved[name]
        body = policies[name] if isinstance(policies[name], dict) else {}
        parent = body.get("extends")
        result = {k: v for k, v in body.items() if k != "extends"}
        if parent is not None:
            where = pos.find(("policies", name, "extends"))
            if parent in chain:
                problems.append(Problem(*where, f"policies.{name}.extends", f"circular extends: {' -> '.join(chain + (parent,))}"))
            elif parent not in policies:
                problems.append(Problem(*where, f"policies.{name}.extends", f"unknown policy {parent!r}"))
            else:
                result = _deep_merge(resolve(parent, chain + (parent,)), result)
        resolved[name] = result
        return result

    for name in list(policies):
        if policies[name] is None:
            policies[name] = {}
        resolve(name, (name,))
    for name, body in resolved.items():
        if isinstance(policies[name], dict):
            policies[name] = body


def _validation_problems(exc: ValidationError, pos: _Positions) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("jsonl", "redis_stream", "postgres", "http")))
        loc = tuple(p for p in loc if p != "function-after[_needs_url(), UpstreamConfig]")
        file, line = pos.find(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        out.append(Problem(file, line, _dotted(loc), message))
    return out


def _config_files(path: Path) -> list[Path]:
    if path.is_dir():
        # Skip hidden entries: a Kubernetes ConfigMap mount links each file to a ``..<timestamp>/`` copy.
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


def _finish(parts: list[tuple[str, dict[str, Any]]], pos: _Positions, problems: list[Problem]) -> Config:
    raw = _merge(parts, pos, problems)
    _resolve_extends(raw, pos, problems)
    problems.extend(Problem(*pos.find(path), _dotted(path), message) for path, message in check_references(raw))
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, pos))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a YAML file or a folder of them; raise ``ConfigError`` listing every problem."""
    env = os.environ if env is None else env
    root = Path(path)
    problems: list[Problem] = []
    if not root.exists():
        raise ConfigError([Problem(str(root), 1, "", "no such file or folder")])
    files = _config_files(root)
    if not files:
        raise ConfigError([Problem(str(root), 1, "", "no *.yaml files in this folder")])
    pos = _Positions()
    parts = [(str(f), _parse_file(f, env, pos, problems)) for f in files]
    return _finish(parts, pos, problems)


def load_config_text(text: str, name: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate config given as YAML text (the built-in demo config, tests)."""
    env = os.environ if env is None else env
    problems: list[Problem] = []
    pos = _Positions()
    data = _parse_text(text, name, env, pos, problems)
    return _finish([(name, data)], pos, problems)
