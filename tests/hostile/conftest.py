"""Lets the hostile-input tests import their helpers (hostile_support) by name; one nats-server per module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinai.devkit.natsserver import EmbeddedNats

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A real nats-server shared by one module's services (started once, not once per case)."""
    root = tmp_path_factory.mktemp("nats")
    server = EmbeddedNats(data_dir=root / "data", log_file=root / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()
