"""Config loading: FILE:LINE: path: message for every problem, merged folders, env interpolation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wardgate.config import ConfigError, load_config

BASE = """\
version: 1
upstreams:
  echo: {kind: echo}
models:
  m1: {upstream: echo}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return str(info.value).splitlines()


def test_the_shipped_example_and_demo_configs_are_valid():
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "policies", env={})
    assert {"search", "agents"} <= set(config.teams)
    assert config.policies["strict"].injection.threshold == 0.4
    assert config.policies["strict"].pii.restore is True  # inherited through extends


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    write(tmp_path / "conf" / "a.yaml", BASE + textwrap.dedent("""\
        server:
          prot: 8400
        teams:
          t:
            keys: [{id: k, value: "${MISSING_KEY}"}]
            models: [m1, nope]
        """))
    write(tmp_path / "conf" / "b.yaml", """\
        models:
          m1: {upstream: echo}
        """)
    lines = problems(tmp_path / "conf")
    a, b = str(tmp_path / "conf" / "a.yaml"), str(tmp_path / "conf" / "b.yaml")
    assert f"{a}:7: server.prot: unknown key" in lines
    assert any(line.startswith(f"{a}:10: teams.t.keys.0.value: environment variable MISSING_KEY") for line in lines)
    assert f"{a}:11: teams.t.models.1: unknown model 'nope'" in lines
    assert f"{b}:2: models.m1: defined twice: in {a} and in {b}" in lines


def test_env_defaults_and_types(tmp_path):
    path = write(tmp_path / "c.yaml", BASE + textwrap.dedent("""\
        server: {port: "${PORT:-9123}", host: "${HOST:-0.0.0.0}"}
        """))
    config = load_config(path, env={"HOST": "127.0.0.2"})
    assert config.server.port == 9123 and config.server.host == "127.0.0.2"


def test_wrong_types_and_bad_values(tmp_path):
    path = write(tmp_path / "c.yaml", BASE + textwrap.dedent("""\
        teams:
          t:
            keys: [{id: k, sha256: "nothex"}]
            budgets: [{window: fortnight, tokens: 5}]
        policies:
          p: {injection: {threshold: 2}, extends: ghost}
        """))
    lines = problems(path)
    assert any(":8: teams.t.keys.0.sha256:" in line for line in lines)
    assert any(":9: teams.t.budgets.0.window:" in line for line in lines)
    assert any(":11: policies.p.extends: unknown policy 'ghost'" in line for line in lines)
    assert any(":11: policies.p.injection.threshold:" in line for line in lines)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path / "c.yaml", "version: 1\nmodels: [\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:") and "invalid YAML" in line


def test_aliases_work_and_an_alias_cycle_or_blow_up_is_a_problem_not_a_crash(tmp_path):
    shared = write(tmp_path / "ok.yaml", "version: 1\nupstreams:\n  a: &up {base_url: 'http://127.0.0.1:1/v1'}\n  b: *up\n")
    assert load_config(shared).upstreams["b"].base_url == "http://127.0.0.1:1/v1"
    cycle = write(tmp_path / "cycle.yaml", "version: 1\nupstreams: &u {a: *u}\n")
    assert any("an alias refers to itself" in line for line in problems(cycle))
    lines = ["version: 1", "metadata_0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"metadata_{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8)]
    bomb = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")  # 10^8 values once expanded
    assert any("an alias expands too far" in line for line in problems(bomb))


def test_wardgate_check_exits_2_with_one_line_per_problem(tmp_path):
    path = write(tmp_path / "c.yaml", BASE + "teams:\n  t: {modles: [m1]}\n")
    result = subprocess.run([sys.executable, "-m", "wardgate", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout.strip() == f"{path}:7: teams.t.modles: unknown key"
    ok = subprocess.run([sys.executable, "-m", "wardgate", "check", str(Path(__file__).resolve().parents[2] / "policies")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout


def test_serve_refuses_a_bad_config_without_traceback(tmp_path):
    path = write(tmp_path / "c.yaml", BASE + "bogus: 1\n")
    result = subprocess.run([sys.executable, "-m", "wardgate", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and f"{path}:6: bogus: unknown key" in result.stderr


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://example.com/v1", "http:///v1", "api.openai.com"])
def test_an_upstream_url_must_be_http_or_https_with_a_host(tmp_path, url):
    path = write(tmp_path / "c.yaml", textwrap.dedent(f"""\
        version: 1
        upstreams:
          u: {{base_url: "{url}"}}
        models:
          m: {{upstream: u}}
        """))
    assert any(":3: upstreams.u: base_url must be an http:// or https:// URL" in line for line in problems(path))
