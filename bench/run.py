"""The benchmark: one command starts everything on loopback, measures, prints a table, stops it all.

    .venv/bin/python bench/run.py [--quick] [--scenario NAME ...] [--target NAME ...] [--duration S]
                                  [--litellm PATH]

A fake upstream (and a private Redis when a config needs one) run for the whole session; each proxy
under test is started in turn (the passthrough baseline first), takes every scenario, and is stopped.
On a machine with 2+ cores the proxy under test is pinned to core 0 and everything else (upstream,
Redis, load generator, this script) to the other cores, so the proxy's figures are its own.

When a LiteLLM proxy is installed (in a venv of its own: `--litellm`, `WARDGATE_BENCH_LITELLM`, or
/work/litellm-venv/bin/litellm), the `litellm` target runs it the same way with `litellm/config.yaml`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import (NONCE, Load, Result, agent_conversation, chat_1kb, have_wrk, prompt_mix, run_aiohttp,  # noqa: I001
                     run_wrk)

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    config: str | None  # under configs/ (wardgate) or bench/ (litellm); None: the passthrough
    workers: int = 1
    pinned: bool = True
    kind: str = "wardgate"  # wardgate | passthrough | litellm
    scenarios: tuple[str, ...] | None = None
    """The scenarios this target takes (None: all of them)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    what: str
    model: str
    concurrency: int
    stream: bool = False
    bodies: str = "chat"  # chat | agent | mix


# LiteLLM serves ~40 req/s on one core here (~7 streams/s), so each of 64+ clients gets only one to
# three answers per 10 s cell: stream64 and slow256 (p50 4 s and 2.5 s) would time the cell's edges,
# and agent would never get past the conversation's first small rounds. It takes the two that measure it.
LITELLM_SCENARIOS = ("chat64", "mix")
TARGETS = (
    Target("passthrough", None, kind="passthrough"),
    Target("routing", "routing.yaml"),
    Target("guards", "guards.yaml"),
    Target("guards+mem+jsonl", "guards-memory.yaml"),
    Target("guards+redis+jsonl", "guards-redis.yaml"),
    Target("litellm", "litellm/config.yaml", kind="litellm", scenarios=LITELLM_SCENARIOS),
)
_LITELLM_DEFAULT = Path("/work/litellm-venv/bin/litellm")
SCENARIOS = (
    Scenario("chat64", "64 concurrent non-streaming 1 KB chats", "gpt-4o-mini", 64),
    Scenario("stream64", "64 concurrent streaming 1 KB chats, 20 events 2 ms apart", "bench-paced", 64, stream=True),
    Scenario("slow256", "256 concurrent, upstream answers after 200 ms", "bench-slow", 256),
    Scenario("agent", "64 concurrent agent conversations growing 2 KB to 100 KB", "gpt-4o-mini", 64, bodies="agent"),
    Scenario("mix", "64 concurrent, real chat prompt lengths (ShareGPT rows)", "gpt-4o-mini", 64, bodies="mix"),
)
# --workers 2 against 1, both unpinned (two workers need both cores); the rest stays where it was.
WORKER_TARGETS = (Target("guards+redis ×1 (unpinned)", "guards-redis.yaml", 1, False),
                  Target("guards+redis ×2 (unpinned)", "guards-redis.yaml", 2, False))
WORKER_SCENARIO = replace(SCENARIOS[0], name="workers")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """pid and its descendants (wardgate --workers forks its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, ()))
    return found


def proc_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak RSS bytes (VmHWM), summed over the process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu, peak = 0.0, 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of stat(5)
        hwm = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), "VmHWM: 0 kB")
        peak += int(hwm.split()[1]) * 1024
    return cpu, peak


def cores_busy_s(cores: set[int]) -> float:
    """Seconds the given cores spent on anything but idle and iowait, from /proc/stat (all processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            numbers = [int(v) for v in values[:8]]
            busy += sum(numbers) - numbers[3] - numbers[4]
    return busy / tick


def reset_peak(pid: int) -> None:
    """Restart VmHWM so each cell reports its own peak (proc(5): clear_refs value 5)."""
    for p in _tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            pass


def _die_with_parent() -> None:
    # If this script is killed outright, the kernel still stops its children (prctl PR_SET_PDEATHSIG).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Procs:
    """The processes this run started, by name; all stopped on exit, error or Ctrl-C."""

    def __init__(self, logdir: Path) -> None:
        self._logdir = logdir
        self._running: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        for name in reversed(list(self._running)):
            self.stop(name)

    def start(self, name: str, cmd: list[str], port: int, env: dict[str, str], cores: str | None,
              probe: str = "/healthz", timeout_s: float = 30.0, cwd: str | None = None) -> int:
        if cores is not None:
            cmd = ["taskset", "-c", cores, *cmd]  # taskset execs: the pid is the program's own
        log = (self._logdir / f"{name.replace(' ', '_').replace('/', '_')}.log").open("wb")
        # preexec_fn is safe here: this script starts no threads.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=cwd, preexec_fn=_die_with_parent)  # noqa: PLW1509
        self._running[name] = proc
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{Path(log.name).read_text()[-2000:]}")
            if _ready(port, probe):
                return proc.pid
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not become ready on port {port}")

    def start_redis(self, cores: str | None) -> str:
        """A private Redis, so the run neither reads nor pollutes anyone else's."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: skip the redis targets with --target/--scenario")
        port = free_port()
        self.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], port, os.environ.copy(), cores, probe="redis")
        return f"redis://127.0.0.1:{port}/0"

    def pids(self) -> list[int]:
        return [p.pid for p in self._running.values() if p.poll() is None]

    def stop(self, name: str) -> None:
        proc = self._running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is the program and its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ready(port: int, probe: str) -> bool:
    try:
        if probe == "redis":
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    target: str
    result: Result
    cpu_ms_per_req: float
    peak_rss_mb: float
    other_load_pct: float
    """Share of the machine's CPU used by processes this run did not start: contention, not the proxy."""


def _bodies(scenario: Scenario, corpus: Path) -> list[bytes]:
    if scenario.bodies == "agent":
        return agent_conversation(scenario.model, corpus)
    if scenario.bodies == "mix":
        return prompt_mix(scenario.model, corpus)
    return [chat_1kb(scenario.model, scenario.stream)]


def _measure(load: Load, driver: str, cores: str | None) -> Result:
    if driver == "wrk" and not load.stream:
        return run_wrk(load, cores)
    return asyncio.run(run_aiohttp(load, start_at=int.from_bytes(os.urandom(3), "big") * 1000))


def _ours_cpu_s(procs: Procs) -> float:
    """CPU seconds of everything this run started, itself and its waited children (wrk) included."""
    t = os.times()
    return sum(proc_usage(pid)[0] for pid in procs.pids()) + t.user + t.system + t.children_user + t.children_system


def _run_cell(url: str, pid: int, scenario: Scenario, bodies: list[bytes], args: argparse.Namespace,
              procs: Procs) -> tuple[Result, float, float, float]:
    load = Load(url, bodies, scenario.concurrency, args.duration, 0.0, scenario.stream)
    if args.warmup > 0:
        _measure(replace(load, duration_s=args.warmup), args.driver, args.load_cores)
    reset_peak(pid)
    cores = os.sched_getaffinity(pid) | os.sched_getaffinity(0)
    cpu_before, _ = proc_usage(pid)
    busy_before, ours_before, wall_before = cores_busy_s(cores), _ours_cpu_s(procs), time.monotonic()
    result = _measure(load, args.driver, args.load_cores)
    cpu_after, peak = proc_usage(pid)
    busy, ours = cores_busy_s(cores) - busy_before, _ours_cpu_s(procs) - ours_before
    wall = time.monotonic() - wall_before
    other = max(0.0, busy - ours) * 100.0 / (wall * len(cores)) if wall else 0.0
    per_req = (cpu_after - cpu_before) * 1000.0 / result.requests if result.requests else float("nan")
    return result, per_req, peak / (1024 * 1024), other


def _litellm_env(env: dict[str, str]) -> dict[str, str]:
    """LiteLLM's environment: the fake upstream as api_base, and nothing that reaches for the internet."""
    return {**env, "BENCH_LITELLM_API_BASE": env["BENCH_UPSTREAM"] + "/v1",
            "LITELLM_TELEMETRY_DISABLED": "true",  # litellm/proxy/telemetry/settings.py (LITELLM_TELEMETRY_*)
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # the bundled cost map, no fetch from GitHub at start


def _start_target(procs: Procs, target: Target, env: dict[str, str], args: argparse.Namespace) -> tuple[int, str]:
    port = free_port()
    # Unpinned means every core: this script (and so its children) runs on the load's cores only.
    cores = ("0" if target.pinned else args.all_cores) if args.pin else None
    if target.kind == "litellm":
        # cwd: the temporary directory, so LiteLLM's python-dotenv finds no stray .env; one uvicorn worker.
        cmd = [str(args.litellm), "--config", str(_HERE / target.config), "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", str(target.workers)]
        pid = procs.start(target.name, cmd, port, env=_litellm_env(env), cores=cores, probe="/health/liveliness",
                          timeout_s=180, cwd=env["BENCH_TMP"])
        return pid, f"http://127.0.0.1:{port}/v1/chat/completions"
    if target.kind == "passthrough":
        cmd = [sys.executable, str(_HERE / "passthrough.py"), "--port", str(port), "--upstream", env["BENCH_UPSTREAM"]]
    else:
        cmd = [sys.executable, "-m", "wardgate", "serve", "--config", str(_HERE / "configs" / target.config),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(target.workers), "--log-level", "warning"]
    pid = procs.start(target.name, cmd, port, env=env, cores=cores)
    return pid, f"http://127.0.0.1:{port}/v1/chat/completions"


def _check(url: str, body: bytes) -> str | None:
    """One request before the load: a proxy that refuses our traffic must not be timed."""
    request = urllib.request.Request(url, data=body.replace(NONCE.encode(), b"0"), method="POST", headers={
        "authorization": "Bearer bench-key-123456", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:300]!r}"


def _refusals(traces: Path, offsets: dict[int, int]) -> str:
    """Why requests were refused since the last call, from the gateway's trace records (jsonl sink).

    Offsets are kept per inode: the sink rotates its file (100 MB by default) while we read.
    """
    counts: Counter[str] = Counter()
    for path in traces.parent.glob(traces.name + "*"):
        try:
            with path.open("rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                f.seek(offsets.get(inode, 0))
                data = f.read()
        except OSError:
            continue
        end = data.rfind(b"\n") + 1  # a record still being written waits for the next call
        offsets[inode] = offsets.get(inode, 0) + end
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (record.get("status") or 0) >= 400 and record["status"] != 499:  # 499: wrk stopping mid-request
                codes = ",".join(v["code"] for v in record.get("verdicts") or () if v.get("action") == "block")
                counts[f"{record['status']} {codes or (record.get('error') or {}).get('code')}"] += 1
    return ", ".join(f"{k} ×{n}" for k, n in counts.most_common(6))


def _run_target(procs: Procs, target: Target, scenarios: list[Scenario], bodies: dict[str, list[bytes]],
                env: dict[str, str], args: argparse.Namespace, rows: list[Row]) -> None:
    traces = Path(env["BENCH_TMP"]) / "traces.jsonl"
    offsets: dict[int, int] = {}
    for old in traces.parent.glob(traces.name + "*"):
        old.unlink()  # the previous target's records
    scenarios = [s for s in scenarios if target.scenarios is None or s.name in target.scenarios]
    if not scenarios:
        print(f"  {target.name}: takes only {', '.join(target.scenarios or ())} (bench/README.md): skipped", flush=True)
        return
    pid, url = _start_target(procs, target, env, args)
    try:
        for scenario in scenarios:
            problem = _check(url, bodies[scenario.name][0])
            if problem:
                print(f"  {target.name} / {scenario.name}: sanity request refused, not timed: {problem}", flush=True)
            result, cpu, rss, other = _run_cell(url, pid, scenario, bodies[scenario.name], args, procs)
            refused = _refusals(traces, offsets)
            rows.append(Row(scenario.name, target.name, result, cpu, rss, other))
            print(f"  {scenario.name:9} {target.name:28} {result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                  f"p99 {result.p99_ms:7.2f} ms  CPU {cpu:.3f} ms/req  other load {other:.0f}%  "
                  f"errors {result.errors}" + "".join(f" ({x})" for x in (result.error_detail, refused) if x),
                  flush=True)
    finally:
        procs.stop(target.name)


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or math.isnan(value) else format(value, spec)


def table(rows: list[Row]) -> str:
    """A Markdown table; ratios and added latency against the first row of each scenario.

    "req/s/core" is 1000 / (CPU ms per request): what one fully busy core would serve, a figure that
    other processes on the machine disturb far less than the measured req/s.
    """
    head = ("| scenario | target | load | req/s | × base | p50 ms | p99 ms | +p50 ms | +p99 ms | TTFB p50 | +TTFB p50 "
            "| CPU ms/req | req/s/core | × base | peak RSS MB | other load % | errors |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base: dict[str, Row] = {}
    for row in rows:
        r = row.result
        base_row = base.setdefault(row.scenario, row)
        b = base_row.result
        first = b is r
        ratio = r.rps / b.rps if b.rps else None
        capacity = 1000.0 / row.cpu_ms_per_req if row.cpu_ms_per_req > 0 else None
        cap_ratio = base_row.cpu_ms_per_req / row.cpu_ms_per_req if row.cpu_ms_per_req > 0 else None
        add50 = None if first else r.p50_ms - b.p50_ms
        add99 = None if first else r.p99_ms - b.p99_ms
        addttfb = None if first or r.ttfb_p50_ms is None or b.ttfb_p50_ms is None else r.ttfb_p50_ms - b.ttfb_p50_ms
        lines.append(f"| {row.scenario} | {row.target} | {r.driver} | {r.rps:.0f} | {_fmt(ratio, '.2f')} | "
                     f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {_fmt(add50, '+.2f')} | {_fmt(add99, '+.2f')} | "
                     f"{_fmt(r.ttfb_p50_ms, '.2f')} | {_fmt(addttfb, '+.2f')} | {row.cpu_ms_per_req:.3f} | "
                     f"{_fmt(capacity, '.0f')} | {_fmt(cap_ratio, '.2f')} | {row.peak_rss_mb:.0f} | "
                     f"{row.other_load_pct:.0f} | {r.errors} |")
    return "\n".join(lines)


def versus_litellm(rows: list[Row]) -> str:
    """wardgate with every guardrail on against LiteLLM, per scenario both took in this run."""
    by = {(row.scenario, row.target): row for row in rows}
    lines = []
    for scenario in dict.fromkeys(row.scenario for row in rows):
        guards, litellm = by.get((scenario, "guards")), by.get((scenario, "litellm"))
        if guards is None or litellm is None or not litellm.result.rps:
            continue
        line = (f"{scenario}: wardgate guards {guards.result.rps:.0f} req/s ÷ litellm {litellm.result.rps:.0f} req/s "
                f"= {guards.result.rps / litellm.result.rps:.1f}×")
        if guards.cpu_ms_per_req > 0 and litellm.cpu_ms_per_req > 0:  # less disturbed by other load
            line += (f" (CPU ms/req {litellm.cpu_ms_per_req:.2f} ÷ {guards.cpu_ms_per_req:.2f} "
                     f"= {litellm.cpu_ms_per_req / guards.cpu_ms_per_req:.1f}×)")
        lines.append(line)
    return "\n".join(lines)


def bars(rows: list[Row]) -> str:
    """Issue 7's bars, each from this run's rows (a bar whose rows were not run is left out)."""
    by = {(row.scenario, row.target): row for row in rows}

    def pair(scenario: str, target: str, base: str = "passthrough") -> tuple[Result, Result] | None:
        a, b = by.get((scenario, target)), by.get((scenario, base))
        return (a.result, b.result) if a and b and b.result.rps else None

    lines = []
    if p := pair("chat64", "guards+mem+jsonl"):
        ratio = p[0].rps / p[1].rps
        lines.append(f"all guardrails + memory budgets + jsonl, chat64: {ratio:.2f}× the passthrough's req/s "
                     f"(bar ≥ 0.60×: {'met' if ratio >= 0.60 else 'not met'})")
    for target in ("guards", "guards+mem+jsonl"):
        if p := pair("slow256", target):
            add50, add99 = p[0].p50_ms - p[1].p50_ms, p[0].p99_ms - p[1].p99_ms
            met = add50 <= 1.0 and add99 <= 5.0
            lines.append(f"slow256 {target}: {add50:+.2f} ms p50, {add99:+.2f} ms p99 added "
                         f"(bar ≤ 1 ms / ≤ 5 ms: {'met' if met else 'not met'})")
    for target in ("guards", "guards+mem+jsonl"):
        if (p := pair("stream64", target)) and p[0].ttfb_p50_ms is not None and p[1].ttfb_p50_ms is not None:
            added = p[0].ttfb_p50_ms - p[1].ttfb_p50_ms
            lines.append(f"stream64 {target}: {added:+.2f} ms added time to first byte p50 "
                         f"(bar ≤ 1 ms: {'met' if added <= 1.0 else 'not met'})")
    for scenario in ("chat64", "mix"):
        if p := pair(scenario, "guards", base="litellm"):
            ratio = p[0].rps / p[1].rps
            lines.append(f"{scenario}: every guardrail {ratio:.1f}× LiteLLM's req/s (bar ≥ 20×: "
                         f"{'met' if ratio >= 20 else 'not met'})")
    one, two = (by.get(("workers", t.name)) for t in WORKER_TARGETS)
    if one and two and one.result.rps:
        ratio = two.result.rps / one.result.rps
        lines.append(f"--workers 2 with Redis budgets: {ratio:.2f}× one worker (bar ≥ 1.6×: "
                     f"{'met' if ratio >= 1.6 else 'not met'})")
    return "\n".join(lines)


def _litellm_path(option: str | None) -> Path | None:
    """The LiteLLM executable to bench: --litellm, else $WARDGATE_BENCH_LITELLM, else the default venv's."""
    value = option or os.environ.get("WARDGATE_BENCH_LITELLM")
    path = Path(value) if value else _LITELLM_DEFAULT
    if path.is_file() and os.access(path, os.X_OK):
        return path
    found = shutil.which(value) if value else None  # a bare command name on PATH
    return Path(found) if found else None


def _litellm_version(path: Path) -> str:
    """The installed litellm package's version, from the python next to the executable (no litellm import)."""
    python = path.parent / "python"
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown version"
    return out.stdout.strip()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="wardgate benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="1 s per cell after 1 s warm-up: a smoke run, < 2 min")
    parser.add_argument("--scenario", nargs="*", choices=[s.name for s in SCENARIOS] + ["workers"])
    parser.add_argument("--target", nargs="*", choices=[t.name for t in TARGETS])
    parser.add_argument("--duration", type=float, help="measured seconds per cell (default 10, quick 1)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell (default 3, quick 1)")
    parser.add_argument("--driver", choices=["auto", "wrk", "aiohttp"], default="auto")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to cores")
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/corpora/injection-dev.jsonl"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--litellm", metavar="PATH", help="the LiteLLM proxy executable for the litellm target "
                        f"(default: $WARDGATE_BENCH_LITELLM, else {_LITELLM_DEFAULT} when it exists)")
    args = parser.parse_args(argv)
    args.litellm = _litellm_path(args.litellm)
    args.duration = args.duration or (1.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    if args.driver == "auto":
        args.driver = "wrk" if have_wrk() else "aiohttp"
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    cores = sorted(os.sched_getaffinity(0))
    args.pin = args.pin and len(cores) >= 2 and shutil.which("taskset") is not None
    others = ",".join(str(c) for c in cores if c != 0)
    args.load_cores = others if args.pin else None
    args.all_cores = ",".join(str(c) for c in cores)
    if args.pin:  # this process runs the aiohttp load generator: keep it off the proxy's core
        os.sched_setaffinity(0, {c for c in cores if c != 0})
    names = args.scenario or [s.name for s in SCENARIOS] + ["workers"]
    scenarios = [s for s in SCENARIOS if s.name in names]
    targets = [t for t in TARGETS if args.target is None or t.name in args.target or t.kind == "passthrough"]
    if args.litellm is None and any(t.kind == "litellm" for t in targets):
        print(f"note: no LiteLLM executable (--litellm, WARDGATE_BENCH_LITELLM, {_LITELLM_DEFAULT}): "
              "the litellm target is skipped", flush=True)
        targets = [t for t in targets if t.kind != "litellm"]
    elif any(t.kind == "litellm" for t in targets):
        print(f"litellm: {args.litellm} ({_litellm_version(args.litellm)}), one worker, bench/litellm/config.yaml",
              flush=True)
    with_workers = [*scenarios, WORKER_SCENARIO] if "workers" in names else scenarios
    bodies = {s.name: _bodies(s, args.corpus) for s in with_workers}
    print(f"driver: {args.driver}; pinning: {'proxy on core 0, the rest on ' + others if args.pin else 'none'}; "
          f"{args.duration:g} s per cell after {args.warmup:g} s warm-up", flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wardgate-bench-") as tmp, Procs(Path(tmp)) as procs:
        env = {**os.environ, "BENCH_TMP": tmp}
        up_port = free_port()
        procs.start("upstream", [sys.executable, str(_HERE / "fake_upstream.py"), "--port", str(up_port),
                                 "--chunks", "20", "--model", "bench-slow:200:0", "--model", "bench-paced:0:2"],
                    up_port, env=env, cores=args.load_cores)
        env["BENCH_UPSTREAM"] = f"http://127.0.0.1:{up_port}"
        needs_redis = any(t.config == "guards-redis.yaml" for t in targets) or "workers" in names
        if needs_redis:
            env["BENCH_REDIS_URL"] = procs.start_redis(args.load_cores)
        for target in targets if scenarios else ():
            _run_target(procs, target, scenarios, bodies, env, args, rows)
        if "workers" in names:
            if not have_wrk() and args.driver != "wrk":
                print("  note: without wrk the Python load generator may cap the 2-worker figure", flush=True)
            for target in WORKER_TARGETS:
                _run_target(procs, target, [WORKER_SCENARIO], bodies, env, args, rows)
    print(f"\n{table(rows)}\n\nwall time {time.monotonic() - started:.0f} s", flush=True)
    if against := versus_litellm(rows):
        print(f"\n{against}", flush=True)
    if summary := bars(rows):
        print(f"\nBars (issue 7), this run:\n{summary}", flush=True)
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "rps": r.result.rps} for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
