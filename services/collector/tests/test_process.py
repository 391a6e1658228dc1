"""``python -m sentinai.collector`` as a real process: publishes, serves metrics, logs JSON, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nats
import pytest

from sentinai.common import subjects
from sentinai.common.net import free_port

if TYPE_CHECKING:
    from conftest import Anvil
    from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def collector(
    anvil: Anvil, nats_server: EmbeddedNats, tmp_path: Path, http_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    chains = tmp_path / "chains.yaml"
    chains.write_text(f"chains:\n  - id: anvil\n    l2Rpc: {anvil.url}\n")
    env = os.environ | {
        "SENTINAI_NATS_URL": nats_server.url,
        "SENTINAI_COLLECTOR_CHAINS_FILE": str(chains),
        "SENTINAI_COLLECTOR_POLL_INTERVAL_S": "0.5",
        "SENTINAI_COLLECTOR_HTTP_PORT": str(http_port),
    }
    with open(tmp_path / "collector.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sentinai.collector"], env=env, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def test_process_publishes_then_exits_cleanly_on_sigterm(
    collector: subprocess.Popen[bytes], nats_server: EmbeddedNats, tmp_path: Path, http_port: int
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        sub = await nc.subscribe(subjects.metrics_raw("anvil", "op-geth"))
        await sub.next_msg(timeout=15.0)
    finally:
        await nc.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=2.0) as client:
        assert (await client.get("/healthz")).status_code == 200
        page = (await client.get("/metrics")).text
    published = 'sentinai_messages_published_total{kind="metric_sample",service="collector"}'
    assert published in page
    assert 'sentinai_publish_seconds_count{kind="metric_sample",service="collector"}' in page
    collector.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(collector.wait, 10) == 0
    lines = [json.loads(line) for line in (tmp_path / "collector.log").read_text().splitlines()]
    assert {line["service"] for line in lines} == {"collector"}
    assert [line["msg"] for line in lines][-1] == "collector stopped"


def test_bad_chains_file_stops_the_process_with_the_field_named(tmp_path: Path) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text("chains:\n  - id: anvil\n    l2Rpc: nope\n")
    env = os.environ | {"SENTINAI_COLLECTOR_CHAINS_FILE": str(chains)}
    done = subprocess.run(
        [sys.executable, "-m", "sentinai.collector"], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert b"chains.0.l2Rpc" in done.stderr
