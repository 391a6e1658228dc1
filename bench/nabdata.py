"""Where the Numenta Anomaly Benchmark's data is: never in this repository, named by the user."""

from __future__ import annotations

import os
import sys
from pathlib import Path

WHERE = (
    "NAB data not found{detail}: clone https://github.com/numenta/NAB (its data/, labels/ and results/ "
    "folders are used) and pass its folder: make bench-nab NAB=/path/to/NAB "
    "(or --nab /path/to/NAB, or SENTINAI_NAB=/path/to/NAB)"
)


def nab_folder(named: Path | None) -> Path:
    """``named`` (``--nab``), else ``SENTINAI_NAB``; exits with one line saying how when neither holds NAB."""
    folder = (
        named
        if named is not None
        else Path(os.environ["SENTINAI_NAB"])
        if "SENTINAI_NAB" in os.environ
        else None
    )
    if folder is None:
        sys.exit(WHERE.format(detail=""))
    if not (folder / "labels" / "combined_windows.json").is_file():
        sys.exit(WHERE.format(detail=f" in {folder}"))
    return folder.resolve()
