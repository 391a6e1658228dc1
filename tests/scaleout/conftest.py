"""Services run as real processes (``python -m sentinai.<service>``) against one real nats-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from serviceproc import Service

from sentinai.devkit.waits import eventually


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start ``python -m sentinai.<name>`` with ``env`` (which names ``SENTINAI_NATS_URL``)."""
    started: list[Service] = []

    def start(name: str, *, tag: str = "", **env: str) -> Service:
        nats_url = env.pop("SENTINAI_NATS_URL")
        service = Service.start(name, nats_url=nats_url, workdir=tmp_path, env=env, tag=tag)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


async def healthy(*procs: Service, timeout_s: float = 30.0) -> None:
    for service in procs:
        await eventually(
            lambda s=service: s.alive() and s.healthy(),  # type: ignore[misc]
            timeout_s=timeout_s,
            what=f"{service.name} healthy ({service.output()[-2000:]})",
            every_s=0.2,
            tolerate=(httpx.HTTPError,),
        )
