"""The one `sentinai up` runner of the stack benchmarks: start it, wait for it, read up.json, stop it.

A run gets its own state folder, the api on a free port, the twin's chains and the embedded
nats-server (a ``SENTINAI_NATS_URL`` in the shell is dropped); everything else in this process's
environment is passed on, so a benchmark can be tuned from the shell. What `sentinai up` prints goes
to ``<state>/up.log``: its ``started <child> (pid N)`` lines name the processes a benchmark watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sentinai.common import natsauth
from sentinai.common.net import free_port
from sentinai.devkit.waits import eventually

T = TypeVar("T")
SENTINAI = str(Path(sys.executable).parent / "sentinai")
STARTED = re.compile(r"started (\S+) \(pid (\d+)\)")


def nats_options(runtime: Mapping[str, Any]) -> dict[str, Any]:
    """``nats.connect`` arguments as the stack's NATS admin when ``up.json`` names its creds.

    A benchmark publishes and inspects what no service may; a stack without NATS users (the ingest
    stack of ``load``) is reached anonymously.
    """
    creds = runtime.get("natsAdminCreds")
    return natsauth.connect_options(Path(creds) if creds else None)


class UpStack:
    """A running `sentinai up` with its state in ``state``, in its own process group."""

    def __init__(self, state: Path, *, chains: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.state = state
        self.chains = list(chains)
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        full_env = os.environ | {
            "SENTINAI_STATE_DIR": str(state),
            "SENTINAI_API_PORT": str(api_port),
            "SENTINAI_TWIN_CHAINS": ",".join(self.chains),
            "SENTINAI_LOG_LEVEL": "warn",
            **(env or {}),
        }
        full_env.pop("SENTINAI_NATS_URL", None)
        state.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [SENTINAI, "up"], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def log(self) -> Path:
        return self.state / "up.log"

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines `sentinai up` printed (for a failure message)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "".join(text.splitlines(keepends=True)[-lines:])

    def child_pids(self) -> dict[str, int]:
        """Every process it started by name; a restarted child's new pid under ``<name>-<n>``."""
        found: dict[str, int] = {}
        for m in STARTED.finditer(self.log.read_text(errors="replace")):
            name = m.group(1)
            found[name if name not in found else f"{name}-{len(found)}"] = int(m.group(2))
        return found

    def runtime(self) -> dict[str, Any]:
        """What `sentinai up` wrote about itself (``up.json``): NATS and twin URLs, the admin creds."""
        return dict(json.loads((self.state / "up.json").read_text()))

    def nats_options(self) -> dict[str, Any]:
        return nats_options(self.runtime())

    async def wait_started(self, *, timeout_s: float) -> dict[str, Any]:
        """``up.json`` once `sentinai up` has written it."""

        async def written() -> dict[str, Any]:
            return self.runtime()

        return await self._until(
            written, timeout_s=timeout_s, what="up.json", every_s=0.2, tolerate=(OSError, ValueError)
        )

    async def wait_healthy(self, *, timeout_s: float) -> None:
        """Until ``/api/health`` says ok and lists every chain."""
        await self.wait_api(
            "/api/health",
            lambda body: body["status"] == "ok" and len(body["chains"]) == len(self.chains),
            timeout_s=timeout_s,
            what="/api/health ok with every chain",
        )

    async def wait_api(self, path: str, ready: Callable[[Any], bool], *, timeout_s: float, what: str) -> None:
        """Until ``ready`` holds for the JSON body of ``GET path`` on the api."""
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2) as api:

            async def answered() -> bool:
                return ready((await api.get(path)).json())

            await self._until(
                answered,
                timeout_s=timeout_s,
                what=what,
                every_s=0.5,
                tolerate=(httpx.HTTPError, ValueError, KeyError),
            )

    async def _until(
        self,
        check: Callable[[], Awaitable[T | None]],
        *,
        timeout_s: float,
        what: str,
        every_s: float,
        tolerate: tuple[type[BaseException], ...],
    ) -> T:
        """``check``'s first truthy answer; fails at once if `sentinai up` exits, with its output."""

        async def step() -> T | None:
            if (code := self.process.poll()) is not None:
                raise RuntimeError(f"sentinai up exited with code {code}:\n{self.tail()}")
            return await check()

        try:
            return await eventually(step, timeout_s=timeout_s, what=what, every_s=every_s, tolerate=tolerate)
        except AssertionError as exc:
            raise TimeoutError(f"{exc}; sentinai up's last output:\n{self.tail()}") from None

    def stop(self, *, timeout_s: float = 60.0) -> None:
        """Ctrl-C, as a user stops it; whatever is still there after ``timeout_s`` is killed."""
        if self.process.poll() is not None:
            return
        children = self.child_pids()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # Each child leads its own process group, so a stuck supervisor's children go one by one.
            for pid in [self.process.pid, *children.values()]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.asynccontextmanager
async def running(
    chains: Sequence[str], *, env: Mapping[str, str] | None = None, prefix: str = "sentinai-bench-"
) -> AsyncIterator[UpStack]:
    """`sentinai up` in a new temporary state folder, stopped on the way out.

    The folder is removed after a clean run and kept, with its ``up.log``, after a failure.
    """
    state = Path(tempfile.mkdtemp(prefix=prefix))
    stack = UpStack(state, chains=chains, env=env)
    ok = False
    try:
        yield stack
        ok = True
    finally:
        await asyncio.to_thread(stack.stop)
        if ok:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"stack log kept in {stack.log}", file=sys.stderr)
