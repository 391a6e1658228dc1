"""Reading OP Stack log lines: the level of a line in geth terminal format, logfmt or JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_LEVELS: Final[Mapping[str, int]] = {
    "trace": 0,
    "trce": 0,
    "debug": 1,
    "dbug": 1,
    "info": 2,
    "warn": 3,
    "warning": 3,
    "error": 4,
    "eror": 4,
    "crit": 5,
    "fatal": 5,
}
INFO: Final = 2
WARN: Final = 3
ERROR: Final = 4
# geth terminal format ``WARN [11-26|23:14:15.123] msg``; logfmt ``lvl=warn``; JSON ``"level":"warn"``.
_GETH_LEVEL = re.compile(r"^(TRACE|DEBUG|INFO|WARN|ERROR|CRIT)\s*\[")
_KEYED_LEVEL = re.compile(r"""(?:^|[\s{,])"?(?:lvl|level)"?\s*[=:]\s*"?([A-Za-z]+)""")


def line_level(line: str) -> int:
    """The line's level; an unrecognised one counts as warn so an odd format never hides an error."""
    match = _GETH_LEVEL.match(line) or _KEYED_LEVEL.search(line)
    if match is None:
        return WARN
    return _LEVELS.get(match.group(1).lower(), WARN)
