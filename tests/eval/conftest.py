"""The eval harness is the ``bench.eval`` package at the repository root; its tests import it from there."""

from __future__ import annotations

import sys
from pathlib import Path

# The root holds ``bench`` and the rca's test scenes (``services.rca.tests.scenes``), used here.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
