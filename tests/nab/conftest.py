"""The NAB scorer and harness are plain modules under ``bench/``; their tests import them from there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The shared NAB data: ``SENTINAI_NAB`` or ``../shared/nab`` next to the repository."""
    return Path(os.environ.get("SENTINAI_NAB", ROOT.parent / "shared" / "nab")).resolve()
