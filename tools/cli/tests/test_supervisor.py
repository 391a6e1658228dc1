"""`sentinai up`'s supervisor: readable prefixed logs, restarts, and no process left behind."""

from __future__ import annotations

import asyncio
import io
import os
import sys

import pytest

from sentinai.cli.supervisor import Child, ChildFailedError, Supervisor, render
from sentinai.devkit.waits import eventually


def test_json_log_lines_are_rendered_for_humans() -> None:
    line = (
        '{"ts":"2026-11-26T23:14:15.123+00:00","level":"warn","service":"collector",'
        '"msg":"target down","chain":"twin"}'
    )
    assert render("collector", line) == "collector  | 23:14:15 warn  target down chain=twin"


def test_plain_lines_keep_their_text() -> None:
    assert render("nats", "[1] Server is ready\n") == "nats       | [1] Server is ready"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stop_ends_children_and_their_own_children() -> None:
    out = io.StringIO()
    sup = Supervisor(out=out, grace_s=1.0)
    # A child that starts a grandchild and ignores SIGTERM: the supervisor must still leave nothing behind.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', g.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = Child("stubborn", [sys.executable, "-c", script])
    await sup.start(child)
    await eventually(lambda: "grandchild" in out.getvalue(), timeout_s=5, what="the grandchild's pid printed")
    grandchild = int(out.getvalue().split("grandchild ")[1].split()[0])
    assert child.process is not None
    await asyncio.wait_for(sup.stop(), timeout=30)
    assert not _alive(child.process.pid)
    await eventually(lambda: not _alive(grandchild), timeout_s=2.5, what="the grandchild gone")
    assert not _alive(grandchild)
    assert "stubborn   | grandchild" in out.getvalue()


async def test_a_crashed_child_is_restarted() -> None:
    out = io.StringIO()
    sup = Supervisor(out=out)
    await sup.start(Child("flaky", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"]))
    await eventually(
        lambda: "restarting flaky" in out.getvalue(), timeout_s=5, what="flaky's restart announced"
    )
    await asyncio.wait_for(sup.stop(), timeout=30)
    assert "flaky exited with code 3" in out.getvalue()
    assert "restarting flaky in 2s (restart 1)" in out.getvalue()


async def test_a_one_shot_step_finishes_before_start_returns_and_is_not_restarted() -> None:
    out = io.StringIO()
    sup = Supervisor(out=out)
    step = Child("setup", [sys.executable, "-c", "print('streams ready')"], restart=False, oneshot=True)
    await asyncio.wait_for(sup.start(step), timeout=30)
    assert step.process is not None and step.process.returncode == 0
    assert "setup      | streams ready" in out.getvalue()
    assert "setup done" in out.getvalue()
    # A step that did its work stops nothing: the stack goes on starting.
    await sup.start(Child("service", [sys.executable, "-c", "import time; time.sleep(60)"]))
    await asyncio.wait_for(sup.stop(), timeout=30)
    assert "stopping everything" not in out.getvalue()


async def test_a_failed_one_shot_step_stops_the_start_with_its_name() -> None:
    out = io.StringIO()
    sup = Supervisor(out=out)
    step = Child("setup", [sys.executable, "-c", "raise SystemExit(4)"], restart=False, oneshot=True)
    with pytest.raises(ChildFailedError, match=r"setup failed \(exit code 4\)"):
        await asyncio.wait_for(sup.start(step), timeout=30)
    await asyncio.wait_for(sup.stop(), timeout=30)
    assert "setup failed with code 4" in out.getvalue()
    assert "restarting setup" not in out.getvalue()
