"""The whole stack as a new user runs it: `sentinai up`, watch the twin, inject an incident, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from sentinai.common import subjects
from sentinai.common.net import free_port

pytestmark = pytest.mark.integration

SENTINAI = str(Path(sys.executable).parent / "sentinai")


class Stack:
    def __init__(self, tmp_path: Path, **extra_env: str) -> None:
        self.state_dir = tmp_path / "state"
        self.api = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "SENTINAI_STATE_DIR": str(self.state_dir),
            "SENTINAI_API_PORT": self.api.rsplit(":", 1)[1],
        }
        self.env.pop("SENTINAI_NATS_URL", None)
        self.env.update(extra_env)
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [SENTINAI, "up"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def child_pids(self) -> dict[str, int]:
        found = {}
        for line in list(self.output):
            if m := re.search(r"started (\S+) \(pid (\d+)\)", line):
                found[m.group(1)] = int(m.group(2))
        return found

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SENTINAI, "--state-dir", str(self.state_dir), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.api + path, params=params, timeout=5)

    def tail(self) -> str:
        return "".join(self.output[-80:])


def eventually(check: Callable[[], Any], *, timeout_s: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what} not seen within {timeout_s}s (last: {last!r})\n{stack.tail()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _anomalies_on_the_bus(stack: Stack) -> list[dict[str, Any]]:
    """Read anomaly.detected.twin straight from JetStream, as any other consumer would."""
    nats_url = json.loads((stack.state_dir / "up.json").read_text())["natsUrl"]

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().subscribe(subjects.anomaly_detected("twin"), ordered_consumer=True)
            found = []
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = await sub.next_msg(timeout=1.0)
                    found.append(json.loads(msg.data))
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(timeout=10)
        for pid in running.child_pids().values():
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_up_watch_inject_sequencer_stall_and_stop_cleanly(stack: Stack) -> None:
    started = time.monotonic()

    def health_ok() -> bool:
        response = stack.get("/api/health")
        body = response.json()
        return body["status"] == "ok" and any(c["chainId"] == "twin" and c["fresh"] for c in body["chains"])

    eventually(health_ok, timeout_s=60, what="/api/health ok with a fresh twin chain", stack=stack)
    assert time.monotonic() - started < 60

    def height() -> float | None:
        chains = stack.get("/api/metrics", chain="twin").json()["chains"]
        return chains[0]["metrics"].get("blockHeight") if chains else None

    first = eventually(height, timeout_s=20, what="a block height", stack=stack)
    eventually(
        lambda: (h := height()) is not None and h > first, timeout_s=20, what="the height moving", stack=stack
    )
    assert stack.get("/api/metrics", chain="twin").json()["chains"][0]["metrics"].get("cpuUsage") is not None

    injected = stack.cli("twin", "inject", "sequencer_stall")
    assert injected.returncode == 0, injected.stderr
    injected_at = time.monotonic()

    def stall_anomaly() -> list[dict[str, Any]]:
        items = stack.get("/api/anomalies", chain="twin").json()["anomalies"]
        return [
            a for a in items if "stall" in a["description"].lower() or a["metric"] == "log:sequencer_stall"
        ]

    found = eventually(stall_anomaly, timeout_s=15, what="a sequencer-stall anomaly", stack=stack)
    assert time.monotonic() - injected_at <= 15
    assert found[0]["chain"] == "twin" and found[0]["severity"] in {"high", "critical"}

    assert any(e["chainId"] == "twin" for e in _anomalies_on_the_bus(stack))

    status = stack.cli("status")
    assert "twin" in status.stdout

    pids = stack.child_pids()
    assert {"nats", "twin", "collector", "detector", "api"} <= set(pids)
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=30) == 0
    leftovers = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert leftovers == {}, f"processes left behind: {leftovers}"
    assert not (stack.state_dir / "up.json").exists()
