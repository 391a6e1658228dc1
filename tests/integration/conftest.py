"""The running stack as the cross-service tests drive it: `sentinai up` in a process group of its own."""

from __future__ import annotations

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
import pytest

from sentinai.common.net import free_port

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

    def eventually(self, check: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
        """The first truthy result of ``check``, polled until ``timeout_s``; fails with the stack's log."""
        return _eventually(check, timeout_s=timeout_s, what=what, stack=self)

    def stop(self) -> int:
        """Ctrl-C, as a user would; the exit code of `sentinai up`."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def tail(self) -> str:
        return "".join(self.output[-80:])


def _eventually(check: Callable[[], Any], *, timeout_s: float, what: str, stack: Stack) -> Any:
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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start `sentinai up` with extra environment; whatever is left running is killed at the end."""
    started: list[Stack] = []

    def start(**extra_env: str) -> Stack:
        stack = Stack(tmp_path / f"stack{len(started)}", **extra_env)
        started.append(stack)
        return stack

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGINT)
            try:
                running.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(running.proc.pid, signal.SIGKILL)
        for pid in running.child_pids().values():
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
