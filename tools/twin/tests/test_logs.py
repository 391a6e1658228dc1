"""Log lines byte-for-byte in the formats op-geth and the op-service binaries print."""

from __future__ import annotations

from sentinai.twin import logs
from sentinai.twin.model import DEFAULT_EPOCH_S

AT = DEFAULT_EPOCH_S + 23 * 3600 + 14 * 60 + 15.123  # 2026-11-26T23:14:15.123Z


def test_geth_terminal_format() -> None:
    line = logs.geth(
        "info", AT, "Imported new potential chain segment", number=1_234_567, hash="4e3a19..c2b1f0"
    )
    assert line == (
        "INFO [11-26|23:14:15.123] Imported new potential chain segment     "
        "number=1,234,567 hash=4e3a19..c2b1f0"
    )
    assert logs.geth("warn", AT, "Looking for peers", peercount=0).startswith(
        "WARN [11-26|23:14:15.123] Looking"
    )


def test_op_service_logfmt() -> None:
    line = logs.logfmt("warn", AT, "L1 temporary error", err="503 Service Unavailable", n=3)
    assert (
        line
        == 't=2026-11-26T23:14:15+0000 lvl=warn msg="L1 temporary error" err="503 Service Unavailable" n=3'
    )


def test_hash_helpers() -> None:
    full = "0x4e3a19" + "00" * 26 + "c2b1f0"
    assert logs.short_hash(full) == "4e3a19..c2b1f0"
    assert logs.block_id(full, 7) == f"{full}:7"
