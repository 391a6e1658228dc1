"""The twin as a child process (for `sentinai up`, tests and benchmarks): start, wait, stop."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from sentinai.devkit.procs import stop_group


@dataclass
class TwinProcess:
    """``TwinProcess(dir, chains=("twin",)).start()``, then ``base_url``, ``kubeconfig``, ``chains_file``."""

    state_dir: Path
    chains: Sequence[str] = ("twin",)
    seed: int = 42
    block_time_s: int = 2
    manual: bool = False
    speed: float = 1.0
    port: int = 0
    host: str = "127.0.0.1"
    base_url: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig.yaml"

    @property
    def chains_file(self) -> Path:
        return self.state_dir / "chains.yaml"

    def command(self) -> list[str]:
        args = [
            sys.executable, "-m", "sentinai.twin",
            "--host", self.host, "--port", str(self.port),
            "--chains", ",".join(self.chains), "--seed", str(self.seed),
            "--block-time", str(self.block_time_s), "--speed", str(self.speed),
            "--kubeconfig-out", str(self.kubeconfig), "--chains-out", str(self.chains_file),
        ]  # fmt: skip
        return [*args, "--manual"] if self.manual else args

    def start(self, *, timeout_s: float = 20.0) -> TwinProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.chains_file.unlink(missing_ok=True)
        with (self.state_dir / "twin.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        try:
            while not self.chains_file.exists():
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"twin exited with {self.process.returncode}; see {self.state_dir}/twin.log"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"twin did not start within {timeout_s:.0f}s")
                time.sleep(0.05)
            first = yaml.safe_load(self.chains_file.read_text())["chains"][0]
            self.base_url = first["l2Rpc"].split("/chains/")[0]
            # The socket was bound before the file was written: this waits for the app, not a port.
            remaining = max(1.0, deadline - time.monotonic())
            httpx.get(f"{self.base_url}/control/health", timeout=remaining).raise_for_status()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        stop_group(self.process, timeout_s=timeout_s)
