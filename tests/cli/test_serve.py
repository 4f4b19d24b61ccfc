"""The README's first command: `wardgate serve --demo` prints a key and answers the openai SDK."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

from openai import OpenAI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_mode_prints_a_key_that_works(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "WARDGATE_CONFIG", "WARDGATE_DEMO_KEY")}
    proc = subprocess.Popen([sys.executable, "-m", "wardgate", "serve", "--demo", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = "".join(proc.stdout.readline() for _ in range(3))
        key = re.search(r"key: (\S+)", banner).group(1)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert answer.choices[0].message.content == "echo: hi"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert (tmp_path / "wardgate-logs" / "traces.jsonl").read_text().count('"wardgate.trace/1"') >= 1
