"""Real servers for the collector's integration tests: anvil (an Ethereum node) and nats-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinai.common.events import Event
from sentinai.common.net import free_port, wait_for_port
from sentinai.devkit.natsserver import EmbeddedNats

REPO = Path(__file__).resolve().parents[3]
ANVIL = REPO / "tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


@dataclass
class Anvil:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.post(
                self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
            )
        body = answer.json()
        assert "error" not in body, body
        return body["result"]

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.process.pid, sig)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    assert ANVIL.exists(), f"anvil not installed at {ANVIL}: run `make setup`"
    port = free_port()
    with open(tmp_path / "anvil.log", "wb") as log:
        process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--block-time", "1", "--optimism",
             "--gas-limit", "30000000", "--chain-id", "901"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    node = Anvil(process=process, port=port)
    try:
        wait_for_port(port, timeout_s=15.0)
        yield node
    finally:
        # A test may leave it stopped (SIGSTOP); a stopped process ignores SIGTERM until continued.
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RecordingPublisher:
    """The collector's Publisher port, keeping what was published in memory."""

    events: list[tuple[str, Event]] = field(default_factory=list)

    async def publish_all(self, items: Sequence[tuple[str, Event]]) -> list[Exception | None]:
        self.events += items
        return [None] * len(items)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    """An HTTP endpoint that accepts connections and never answers: a hung node."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
