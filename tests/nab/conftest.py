"""The NAB scorer and harness are the ``bench.nab`` package at the repository root; their tests import it.

They run on hand-made NAB-shaped files only: the corpus itself is never in the repository, and the
full-corpus check (our scorer against the published numenta and windowedGaussian scores) is part of
``make bench-nab NAB=<folder>``, which exits 1 when it fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
