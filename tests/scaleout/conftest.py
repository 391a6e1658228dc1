"""Services run as real processes (``python -m sentinai.<service>``) against one real nats-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from serviceproc import Service


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


async def eventually(check: Callable[[], bool | Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = check()
            if answer if isinstance(answer, bool) else await answer:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        await asyncio.sleep(0.2)


async def healthy(*procs: Service, timeout_s: float = 30.0) -> None:
    for service in procs:
        await eventually(
            lambda s=service: s.alive() and s.healthy(),  # type: ignore[misc]
            timeout_s=timeout_s,
            what=f"{service.name} healthy ({service.output()[-2000:]})",
        )
