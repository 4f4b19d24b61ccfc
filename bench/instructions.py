"""Instructions per request under valgrind's callgrind: a figure that does not move with the VM.

Requests per second on these VMs spread by ±5 % between runs minutes apart, more than most single
changes are worth. callgrind counts the proxy's user-space instructions instead: the same build
gives the same count within ~0.5 %, whatever else the machine does. It does not count the kernel
(socket calls cost the passthrough and wardgate alike), nor cache misses, and it counts instructions
a CPU extension would have skipped (under valgrind OpenSSL's sha256 runs without SHA-NI): a guide
for comparing builds, never a substitute for ``bench/run.py``.

    .venv/bin/python bench/instructions.py [--config routing.yaml] [--requests 2000] [--bodies chat] \\
        [label=SRC_DIR ...]

Each ``label=SRC_DIR`` runs the wardgate found in ``SRC_DIR/src`` (a checkout or worktree; default:
this one); ``--config passthrough`` runs the thin aiohttp passthrough. The proxy warms up on 300
requests, then instructions are counted over ``--requests`` requests (16 concurrent, aiohttp client).
Needs ``valgrind`` and ``callgrind_control`` (Debian package valgrind); ~20 s per label.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import NONCE, agent_conversation, chat_1kb, prompt_mix

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent
_CORPUS = _HERE.parent.parent / "shared" / "corpora" / "injection-dev.jsonl"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _drive(url: str, bodies: list[bytes], n: int, first: int, concurrency: int = 16) -> None:
    numbers = iter(range(first, first + n))
    headers = {"Authorization": "Bearer bench-key-123456", "content-type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def worker() -> None:
            for i in numbers:
                body = bodies[i % len(bodies)].replace(NONCE.encode(), str(i).encode())
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}: the proxy refused a benchmark request")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _count(out: Path) -> int:
    """The instruction total of a callgrind output (its ``summary:`` line stays 0 when collection
    starts off; ``totals:`` holds the count)."""
    counts = [int(line.split()[1]) for line in out.read_text(encoding="utf-8", errors="replace").splitlines()
              if line.startswith(("summary:", "totals:"))]
    if not counts:
        raise RuntimeError(f"no totals in {out}")
    return max(counts)


def _measure(label: str, src: Path, config: str, bodies: list[bytes], n: int, upstream: str, tmp: Path) -> float:
    port = _free_port()
    out = tmp / f"callgrind.{label}.out"
    env = {**os.environ, "BENCH_TMP": str(tmp), "BENCH_UPSTREAM": upstream, "PYTHONPATH": str(src / "src")}
    if config == "passthrough":
        cmd = [sys.executable, str(_HERE / "passthrough.py"), "--port", str(port), "--upstream", upstream]
    else:
        cmd = [sys.executable, "-m", "wardgate", "serve", "--config", str(_HERE / "configs" / config),
               "--port", str(port)]
    log = (tmp / f"{label}.log").open("w")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *cmd],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        url = base + "/v1/chat/completions"
        asyncio.run(_drive(url, bodies, 300, 0))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        asyncio.run(_drive(url, bodies, n, 1_000_000))
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
    return _count(out) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="routing.yaml", help="a file of bench/configs/, or passthrough")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--bodies", choices=("chat", "stream", "mix", "agent"), default="chat",
                        help="stream: the chat body with stream: true (the fake upstream's SSE answer)")
    parser.add_argument("builds", nargs="*", metavar="label=SRC_DIR")
    args = parser.parse_args(argv)
    builds = [b.split("=", 1) for b in args.builds] or [["this", str(_HERE.parent)]]
    bodies = {"chat": lambda: [chat_1kb("gpt-4o-mini")], "stream": lambda: [chat_1kb("gpt-4o-mini", stream=True)],
              "mix": lambda: prompt_mix("gpt-4o-mini", _CORPUS),
              "agent": lambda: agent_conversation("gpt-4o-mini", _CORPUS)}[args.bodies]()
    with tempfile.TemporaryDirectory(prefix="wardgate-callgrind-") as tmpdir:
        tmp = Path(tmpdir)
        up_port = _free_port()
        upstream = subprocess.Popen([sys.executable, str(_HERE / "fake_upstream.py"), "--port", str(up_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.7)
            for label, src in builds:
                per = _measure(label, Path(src).resolve(), args.config, bodies, args.requests,
                               f"http://127.0.0.1:{up_port}", tmp)
                print(f"{label:16s} {args.config:22s} {per / 1000:9.1f} k instructions a request", flush=True)
        finally:
            upstream.kill()


if __name__ == "__main__":
    main()
