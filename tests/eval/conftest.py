"""The eval harness is a set of plain modules under ``bench/``; its tests import them from there."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
# The rca's test scenes (``services.rca.tests.scenes``) are shared with the checks here.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
