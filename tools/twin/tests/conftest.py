"""Fixtures: a real twin process on a free loopback port, driven by hand (``--manual``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentinai.devkit.twinproc import TwinProcess

CHAINS = ("twin", "rollout", "incidents", "deploy", "rpc", "l1")


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinProcess]:
    twin = TwinProcess(tmp_path_factory.mktemp("twin"), chains=CHAINS, seed=7, manual=True).start()
    yield twin
    twin.stop()
