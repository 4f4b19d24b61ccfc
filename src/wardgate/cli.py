"""The command line: argparse sub-commands; one-line errors; exit 2 on a bad config."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
from importlib import resources
from pathlib import Path

from wardgate.cli_traces import register as register_trace_commands
from wardgate.config import ConfigError, load_config, load_config_text
from wardgate.config.schema import Config

__all__ = ["main"]


def _config_path(given: str | None) -> str | None:
    """SPEC §1: --config, else $WARDGATE_CONFIG, else ./policies if it exists, else the demo."""
    if given:
        return given
    if os.environ.get("WARDGATE_CONFIG"):
        return os.environ["WARDGATE_CONFIG"]
    return "policies" if Path("policies").is_dir() else None


def _demo_config() -> tuple[Config, str]:
    key = os.environ.get("WARDGATE_DEMO_KEY") or "wg-demo-" + secrets.token_urlsafe(24)
    name = "demo-openai.yaml" if os.environ.get("OPENAI_API_KEY") else "demo.yaml"
    text = resources.files("wardgate.demo").joinpath(name).read_text(encoding="utf-8")
    env = {**os.environ, "WARDGATE_DEMO_KEY": key}
    return load_config_text(text, name=f"<built-in {name}>", env=env), key


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from wardgate.logs import configure_logging
    from wardgate.serve import run

    configure_logging(args.log_level)
    path = None if args.demo else _config_path(args.config)
    if path is None:
        config, key = _demo_config()
        upstream = "OpenAI" if os.environ.get("OPENAI_API_KEY") else "the built-in echo upstream"
        host, port = args.host or config.server.host, args.port or config.server.port
        print(f"wardgate demo mode: built-in config, routing to {upstream}.\n"
              f"  team 'demo' key: {key}\n"
              f"  export OPENAI_BASE_URL=http://{host}:{port}/v1 OPENAI_API_KEY={key}", flush=True)
    else:
        config = _load(path)
        print(f"wardgate: config {path} ({len(config.teams)} teams, {len(config.models)} models)", flush=True)
    host, port = args.host or config.server.host, args.port if args.port is not None else config.server.port
    if args.workers > 1 and config.state.backend == "memory":
        print("wardgate: --workers > 1 needs a shared state store: budgets kept in each process's memory would "
              "multiply by the number of workers. Set `state: {backend: redis, redis_url: ...}`.", file=sys.stderr)
        return 2
    return run(config, host, port, args.workers, config_path=path)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        print(str(exc))
        return 2
    print(f"{args.path}: ok ({len(config.teams)} teams, {len(config.models)} models, "
          f"{len(config.upstreams)} upstreams, {len(config.policies)} policies)")
    return 0


def _cmd_keys_new(args: argparse.Namespace) -> int:
    key = "wg-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    print(f"key for team {args.team} (shown once; store it in your secret manager):\n  {key}\n")
    print(f"paste under teams.{args.team}.keys:\n  - {{id: {args.id or args.team + '-' + secrets.token_hex(3)}, sha256: \"{digest}\"}}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from wardgate.evaluate import CorpusError, evaluate_file, format_report

    threshold = None
    if args.config or args.policy:
        config = _load(_config_path(args.config) or "policies")
        policy = config.policies.get(args.policy) if args.policy else None
        if args.policy and policy is None:
            print(f"wardgate eval: no policy {args.policy!r} in the config", file=sys.stderr)
            return 2
        threshold = policy.injection.threshold if policy else None
    if not Path(args.corpus).is_file():
        print(f"wardgate eval: no such file {args.corpus}", file=sys.stderr)
        return 2
    try:
        reports = evaluate_file(args.corpus, threshold)
    except CorpusError as exc:
        print(f"wardgate eval: {exc}", file=sys.stderr)
        return 2
    print(format_report(reports, worst=args.worst))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wardgate", description="LLM gateway with guardrails.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="a YAML file or a folder of them (default: $WARDGATE_CONFIG, ./policies, demo)")
    serve.add_argument("--demo", action="store_true",
                       help="the built-in demo config (echo upstream, a generated key) even if ./policies exists")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default=os.environ.get("WARDGATE_LOG_LEVEL", "info"))
    serve.set_defaults(func=_cmd_serve)
    check = sub.add_parser("check", help="validate a config and exit (0 valid, 2 invalid)")
    check.add_argument("path")
    check.set_defaults(func=_cmd_check)
    ev = sub.add_parser("eval", help="run the guardrail detectors over a labeled corpus")
    ev.add_argument("corpus")
    ev.add_argument("--config")
    ev.add_argument("--policy")
    ev.add_argument("--worst", type=int, default=5, help="how many worst misses and false alarms to show")
    ev.set_defaults(func=_cmd_eval)
    keys = sub.add_parser("keys", help="team keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="print a new random team key and its sha256 line")
    new.add_argument("--team", required=True)
    new.add_argument("--id")
    new.set_defaults(func=_cmd_keys_new)
    register_trace_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args) or 0)
