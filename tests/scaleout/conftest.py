"""Services run as real processes (``python -m sentinai.<service>``) against one real nats-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sentinai.common.net import free_port
from sentinai.common.procs import stop_group


class Service:
    """One service process with its own health port and log file."""

    def __init__(self, name: str, *, env: dict[str, str], log: Path, port_var: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"sentinai.{name}"],
                env=os.environ | env | {port_var: str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def stop(self) -> None:
        stop_group(self.proc)  # type: ignore[arg-type]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(name: str, *, tag: str = "", port_var: str = "", **env: str) -> Service:
        var = port_var or f"SENTINAI_{name.upper()}_HTTP_PORT"
        service = Service(name, env=env, log=tmp_path / f"{name}{tag}.log", port_var=var)
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


async def healthy(*procs: Service, path: str = "/healthz", timeout_s: float = 30.0) -> None:
    for service in procs:
        await eventually(
            lambda s=service: s.proc.poll() is None and s.get(path).status_code == 200,  # type: ignore[misc]
            timeout_s=timeout_s,
            what=f"{service.name} healthy ({service.log.read_text(errors='replace')[-2000:]})",
        )
