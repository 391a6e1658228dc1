"""Service processes as a test starts them: ``python -m sentinai.<name>`` in its own process group,
its JSON log in a file, its health/metrics port free and known. Shared by the fault and hostile suites."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from upstack import clean_env

from sentinai.common.net import free_port
from sentinai.devkit.procs import stop_group
from sentinai.devkit.waits import eventually_sync


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
    def start(
        cls, name: str, *, nats_url: str, workdir: Path, env: Mapping[str, str] = {}, tag: str = ""
    ) -> Service:
        """``tag`` tells several replicas of one service apart (their log files)."""
        port = free_port()
        log = workdir / f"{name}{tag}.log"
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

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

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
    waiting = set(started)

    def all_healthy() -> bool:
        for name in sorted(waiting):
            service = started[name]
            if not service.alive():
                raise ChildProcessError(f"{name} exited at start:\n{service.output()[-3000:]}")
            if service.healthy():
                waiting.discard(name)
        return not waiting

    try:
        eventually_sync(all_healthy, timeout_s=60, what="every service healthy", every_s=0.2)
    except ChildProcessError as exited:  # no point waiting for the others
        stop_every(started)
        raise AssertionError(str(exited)) from None
    except AssertionError:
        logs = "\n".join(f"--- {n}\n{started[n].output()[-2000:]}" for n in sorted(waiting))
        stop_every(started)
        raise AssertionError(f"not healthy within 60s: {sorted(waiting)}\n{logs}") from None
    return started


def stop_every(services: Mapping[str, Service]) -> None:
    for service in services.values():
        service.stop()
