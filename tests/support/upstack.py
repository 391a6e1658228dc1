"""`sentinai up` driven by a test, as a user runs it: its own process group, its output kept.

Shared by the integration, fault and hostile-input suites (the root ``conftest.py`` puts this folder
on ``sys.path``; test modules cannot import each other under ``--import-mode=importlib``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sentinai.common.net import free_port
from sentinai.devkit.waits import eventually_sync

T = TypeVar("T")
SENTINAI = str(Path(sys.executable).parent / "sentinai")

# Settings a developer's shell may carry that would point a test's services somewhere else.
_FOREIGN = ("SENTINAI_", "SCALING_SIMULATION_MODE", "OPENAI_", "ANTHROPIC_")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without SentinAI or LLM settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    return env | extra


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def eventually(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    every_s: float = 0.25,
    context: Callable[[], str] | None = None,
) -> T:
    """The first truthy result of ``check``, polled until ``timeout_s`` (``eventually_sync``).

    An HTTP error counts as "not yet" (a service still starting). On timeout it fails saying what
    was awaited, the last result, and ``context()`` (for example the stack's recent output).
    """
    try:
        return eventually_sync(
            check, timeout_s=timeout_s, what=what, every_s=every_s, tolerate=(httpx.HTTPError,)
        )
    except AssertionError as exc:
        if context is None:
            raise
        raise AssertionError(f"{exc}\n{context()}") from None


class UpStack:
    """One `sentinai up` with a state folder under ``root`` and the api on a free port.

    ``extra_env`` is added to a clean environment (see ``clean_env``). ``stop`` is the user's Ctrl-C
    and leaves any straggler for the test to find; ``close`` also kills whatever is left.
    """

    def __init__(self, root: Path, **extra_env: str) -> None:
        self.state_dir = root / "state"
        self.api = f"http://127.0.0.1:{free_port()}"
        self.env = clean_env(
            SENTINAI_STATE_DIR=str(self.state_dir), SENTINAI_API_PORT=self.api.rsplit(":", 1)[1]
        ) | dict(extra_env)
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

    # ---- what it runs ----------------------------------------------------------------------------

    def child_pids(self) -> dict[str, int]:
        """The newest pid of each child (a restart prints a new "started" line)."""
        found = {}
        for line in list(self.output):
            if m := re.search(r"started (\S+) \(pid (\d+)\)", line):
                found[m.group(1)] = int(m.group(2))
        return found

    def runtime(self) -> dict[str, str]:
        """What `sentinai up` wrote about itself (``up.json``): the NATS and twin URLs."""
        data: dict[str, str] = json.loads((self.state_dir / "up.json").read_text())
        return data

    @property
    def nats_url(self) -> str:
        return self.runtime()["natsUrl"]

    @property
    def twin_url(self) -> str:
        return self.runtime()["twinUrl"]

    @property
    def api_key(self) -> str:
        """The write key: the one given in the environment, else the one `sentinai up` made."""
        given = self.env.get("SENTINAI_API_KEY")
        return given if given else (self.state_dir / "api-key").read_text().strip()

    # ---- talking to it ---------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.api + path, params=params, timeout=5)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """A write with the key; the api waits up to 5 s for the planner's verdict before a 202."""
        return httpx.post(self.api + path, json=dict(body), headers={"x-api-key": self.api_key}, timeout=20)

    def kube(self, path: str) -> dict[str, Any]:
        """A GET on the twin's Kubernetes API with the token from its kubeconfig."""
        kubeconfig = (self.state_dir / "twin" / "kubeconfig").read_text()
        token = kubeconfig.split("token: ", 1)[1].split()[0]
        response = httpx.get(self.twin_url + path, headers={"authorization": f"Bearer {token}"}, timeout=5)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `sentinai` command against this stack's state folder."""
        return subprocess.run(
            [SENTINAI, "--state-dir", str(self.state_dir), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def eventually(self, check: Callable[[], T | None], *, timeout_s: float, what: str) -> T:
        """``eventually`` that shows the stack's recent output when it fails."""
        return eventually(check, timeout_s=timeout_s, what=what, context=self.tail)

    def tail(self, lines: int = 120) -> str:
        return "".join(self.output[-lines:])

    # ---- ending it -------------------------------------------------------------------------------

    def stop(self, *, timeout_s: float = 40.0) -> int:
        """Ctrl-C, as a user would; the exit code of `sentinai up`."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)

    def close(self) -> None:
        """Stop it however it takes, and kill any child it left behind (teardown)."""
        if self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in self.child_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
