"""The NAB scorer and harness are the ``bench.nab`` package at the repository root; their tests import it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


# Where the workplace keeps the shared NAB data; a checkout elsewhere names it with SENTINAI_NAB.
CANDIDATES = (ROOT.parent / "shared" / "nab", Path("/work/shared/nab"))


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The shared NAB data: ``SENTINAI_NAB``, else ``../shared/nab`` next to the repository."""
    if "SENTINAI_NAB" in os.environ:
        return Path(os.environ["SENTINAI_NAB"]).resolve()
    for candidate in CANDIDATES:
        if (candidate / "labels" / "combined_windows.json").exists():
            return candidate.resolve()
    raise FileNotFoundError(
        f"NAB data not found in {', '.join(map(str, CANDIDATES))}: set SENTINAI_NAB to its folder"
    )
