"""Runs SentinAI's processes side by side: prefixed logs, restarts with backoff, clean shutdown.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in reverse start order (SIGTERM, then SIGKILL after a grace period)
and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

GRACE_S = 8.0
MAX_RESTARTS = 5


class ChildFailedError(RuntimeError):
    """A one-shot step (``Child.oneshot``) ended with a non-zero exit code: the start cannot go on."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = True
    # A step that must finish before the next child starts (provisioning): ``Supervisor.start``
    # waits for it and raises ``ChildFailedError`` if it fails; it is never restarted.
    oneshot: bool = False
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0


def render(name: str, raw: str, *, width: int = 10) -> str:
    """One child's log line for a human: JSON lines become `time service level msg k=v`."""
    line = raw.rstrip("\n")
    try:
        record = json.loads(line)
    except ValueError:
        return f"{name:<{width}} | {line}"
    if not isinstance(record, dict) or "msg" not in record:
        return f"{name:<{width}} | {line}"
    ts = str(record.pop("ts", ""))[11:19]
    level = str(record.pop("level", "info"))
    msg = record.pop("msg")
    for noise in ("service", "logger"):
        record.pop(noise, None)
    extras = " ".join(f"{k}={v}" for k, v in record.items() if v is not None)
    return f"{name:<{width}} | {ts} {level:<5} {msg} {extras}".rstrip()


class Supervisor:
    def __init__(
        self,
        *,
        out: TextIO = sys.stdout,
        on_exit: Callable[[Child, int], None] | None = None,
        grace_s: float = GRACE_S,
    ) -> None:
        self.grace_s = grace_s
        self.children: list[Child] = []
        self._out = out
        self._stopping = asyncio.Event()
        self._on_exit = on_exit
        self._tasks: list[asyncio.Task[None]] = []

    def say(self, name: str, text: str) -> None:
        print(render(name, text), file=self._out, flush=True)

    async def start(self, child: Child) -> None:
        """Start ``child``; a one-shot child is also waited for, and its failure raised."""
        self.children.append(child)
        await self._spawn(child)
        watch = asyncio.create_task(self._watch(child), name=f"watch-{child.name}")
        self._tasks.append(watch)
        if child.oneshot:
            await asyncio.shield(watch)
            assert child.process is not None
            if child.process.returncode != 0:
                raise ChildFailedError(f"{child.name} failed (exit code {child.process.returncode})")

    async def _spawn(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env={**os.environ, **child.env, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            limit=1 << 20,
        )
        self.say("sentinai", f"started {child.name} (pid {child.process.pid})")

    async def _watch(self, child: Child) -> None:
        while True:
            process = child.process
            assert process is not None and process.stdout is not None
            async for raw in process.stdout:
                self.say(child.name, raw.decode(errors="replace"))
            code = await process.wait()
            if self._stopping.is_set():
                return
            if child.oneshot:
                self.say("sentinai", f"{child.name} {'done' if code == 0 else f'failed with code {code}'}")
                return
            self.say("sentinai", f"{child.name} exited with code {code}")
            if self._on_exit is not None:
                self._on_exit(child, code)
            if not child.restart or child.restarts >= MAX_RESTARTS:
                self.say("sentinai", f"{child.name} will not be restarted; stopping everything")
                self._stopping.set()
                return
            child.restarts += 1
            delay = min(30.0, 2.0**child.restarts)
            self.say("sentinai", f"restarting {child.name} in {delay:.0f}s (restart {child.restarts})")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return
            except TimeoutError:
                await self._spawn(child)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stop every child, newest first, and wait until each is gone."""
        self._stopping.set()
        for child in reversed(self.children):
            await _terminate(child, say=self.say, grace_s=self.grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _terminate(child: Child, *, say: Callable[[str, str], None], grace_s: float) -> None:
    process = child.process
    if process is None or process.returncode is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    try:
        await asyncio.wait_for(process.wait(), timeout=grace_s)
    except TimeoutError:
        say("sentinai", f"{child.name} did not stop in {grace_s:.0f}s; killing it")
        _signal_group(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), timeout=max(1.0, deadline - time.monotonic() + 5))
    # Anything the child itself started in its group goes with it.
    _signal_group(process.pid, signal.SIGKILL)
    say("sentinai", f"stopped {child.name}")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
