"""Shared by the hostile-input tests: services started as real processes, their metrics, the bus read back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families

from sentinai.common.net import free_port
from sentinai.common.procs import stop_group

T = TypeVar("T")

# Settings a developer's shell may carry that would point a test's services somewhere else.
_FOREIGN = ("SENTINAI_", "SCALING_SIMULATION_MODE", "OPENAI_", "ANTHROPIC_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    return env | extra


def _port_env(name: str) -> str:
    return "SENTINAI_API_PORT" if name == "api" else f"SENTINAI_{name.upper()}_HTTP_PORT"


@dataclass
class Service:
    """One ``python -m sentinai.<name>`` process, its JSON log in a file, its HTTP port."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, name: str, *, nats_url: str, workdir: Path, env: Mapping[str, str] = {}) -> Service:
        port = free_port()
        log = workdir / f"{name}.log"
        full = clean_env(
            SENTINAI_NATS_URL=nats_url,
            SENTINAI_STATE_DIR=str(workdir / "state"),
            SENTINAI_LOG_LEVEL="info",
            **{_port_env(name): str(port)},
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def healthy(self) -> bool:
        path = "/api/health" if self.name == "api" else "/healthz"
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def counter(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``, from the live /metrics."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def stop(self) -> None:
        stop_group(self.proc, timeout_s=10)


def start_all(
    names: Iterable[str], *, nats_url: str, workdir: Path, env: Mapping[str, Mapping[str, str]] = {}
) -> dict[str, Service]:
    """Start every service at once (they import in parallel) and wait until each answers healthy."""
    started = {
        name: Service.start(name, nats_url=nats_url, workdir=workdir, env=env.get(name, {})) for name in names
    }
    deadline = time.monotonic() + 60
    waiting = set(started)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            service = started[name]
            if not service.alive():
                stop_every(started)
                raise AssertionError(f"{name} exited at start:\n{service.output()[-3000:]}")
            if service.healthy():
                waiting.discard(name)
        time.sleep(0.2)
    if waiting:
        logs = "\n".join(f"--- {n}\n{started[n].output()[-2000:]}" for n in sorted(waiting))
        stop_every(started)
        raise AssertionError(f"not healthy within 60s: {sorted(waiting)}\n{logs}")
    return started


def stop_every(services: Mapping[str, Service]) -> None:
    for service in services.values():
        service.stop()


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout_s: float, what: str) -> T:
    """The first truthy result of ``check``, polled every 50 ms; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout_s}s (last: {last!r})")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def filters(info: ConsumerInfo) -> list[str]:
    config = info.config
    found = list(config.filter_subjects or [])
    if config.filter_subject:
        found.append(config.filter_subject)
    return found or [">"]


async def consumers_of(js: JetStreamContext, stream: str, subject: str) -> list[ConsumerInfo]:
    """Every consumer of ``stream`` that receives ``subject``."""
    infos = await js.consumers_info(stream)
    return [i for i in infos if any(subject_matches(f, subject) for f in filters(i))]


async def read_stream(js: JetStreamContext, stream: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every message the stream holds, oldest first: subject, body and headers."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    found: list[tuple[str, bytes, dict[str, str]]] = []
    if not info.state.messages:
        return found
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        found.append((msg.subject or "", msg.data or b"", dict(msg.headers or {})))
    return found
