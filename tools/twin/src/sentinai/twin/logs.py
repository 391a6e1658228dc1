"""Log lines in the components' own formats: geth terminal format and op-service logfmt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

Level = Literal["debug", "info", "warn", "error"]
Value = str | int | float

_GETH_LEVEL: Final[dict[Level, str]] = {"debug": "DEBUG", "info": "INFO ", "warn": "WARN ", "error": "ERROR"}
_GETH_MSG_WIDTH: Final = 40  # geth pads the message so the key=value columns line up


def _needs_quotes(text: str) -> bool:
    return text == "" or any(c in text for c in ' ="\t\n')


def _quote(text: str) -> str:
    if not _needs_quotes(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _geth_value(value: Value) -> str:
    # geth prints large integers with thousands separators in terminal format.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return _quote(str(value))


def _logfmt_value(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _quote(str(value))


def geth(level: Level, at: float, msg: str, **fields: Value) -> str:
    """``INFO [11-26|23:14:15.123] Imported new potential chain segment     number=1 hash=…``."""
    stamp = datetime.fromtimestamp(at, UTC)
    head = f"{_GETH_LEVEL[level]}[{stamp:%m-%d|%H:%M:%S}.{stamp.microsecond // 1000:03d}] "
    if not fields:
        return head + msg
    ctx = " ".join(f"{key}={_geth_value(value)}" for key, value in fields.items())
    return f"{head}{msg:<{_GETH_MSG_WIDTH}} {ctx}"


def logfmt(level: Level, at: float, msg: str, **fields: Value) -> str:
    """``t=2026-11-26T23:14:15+0000 lvl=info msg="Sequencer inserted block" …`` (op-service)."""
    stamp = datetime.fromtimestamp(at, UTC)
    parts = [f"t={stamp:%Y-%m-%dT%H:%M:%S}+0000", f"lvl={level}", f"msg={_quote(msg)}"]
    parts.extend(f"{key}={_logfmt_value(value)}" for key, value in fields.items())
    return " ".join(parts)


def short_hash(full: str) -> str:
    """geth's TerminalString of a hash: first and last three bytes."""
    raw = full.removeprefix("0x")
    return f"{raw[:6]}..{raw[-6:]}"


def block_id(hash_: str, number: int) -> str:
    """op-service's BlockID string: ``0xhash:number``."""
    return f"{hash_}:{number}"
