"""The audit CSV export opens in a spreadsheet as text: no cell becomes a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.decisions import AuditRecorded

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
# What an attacker can put in a name, a reason or an id: each starts a formula in Excel,
# LibreOffice or Google Sheets (a tab or a carriage return first is trimmed, then evaluated).
PAYLOADS = {
    "equals": "=cmd|' /C calc'!A0",
    "plus": '+HYPERLINK("http://evil.example","click")',
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "tab": "\t=1+1",
    "carriage-return": "\r=1+1",
}


async def _export(records: list[AuditRecorded]) -> list[dict[str, str]]:
    model = ReadModel(keep_anomalies=10)
    for record in records:
        model.apply_audit(record)

    async def connected() -> bool:
        return True

    app = create_app(
        model, settings=ApiSettings(), nats_connected=connected, commands=_NoCommands(), clock=lambda: NOW
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        resp = await client.get("/api/audit", params={"format": "csv", "limit": 1000})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.text, newline="")))


class _NoCommands:
    """Reads never send anything; a write reaching here would be a bug of the test itself."""

    async def command(self, cmd: object) -> None:
        raise AssertionError(f"a read sent {cmd!r}")

    async def request(self, req: object) -> None:
        raise AssertionError(f"a read sent {req!r}")


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
async def test_a_formula_in_any_column_is_exported_as_text(payload: str) -> None:
    record = AuditRecorded(
        event_id=payload,
        chain_id="twin",
        occurred_at=NOW,
        kind="refused",
        actor=payload,
        action_id=payload,
        summary=payload,
        reasoning=payload,
        outcome=payload,
    )
    [row] = await _export([record])
    neutralised = {"actor", "actionId", "summary", "reasoning", "outcome", "eventId"}
    # The exact text survives behind one apostrophe, which spreadsheets show as "this is text".
    assert {column: row[column] for column in neutralised} == {
        column: "'" + payload for column in neutralised
    }
    assert row["kind"] == "refused" and row["chainId"] == "twin"


async def test_ordinary_text_and_inner_formula_characters_are_left_alone() -> None:
    record = AuditRecorded(
        event_id="audit-1",
        chain_id="twin",
        occurred_at=NOW + timedelta(seconds=1),
        kind="approved",
        actor="alice",
        action_id="act-1",
        summary="scale op-geth to 4 vCPU (+2) = ok",
        reasoning="cpu 92% -> predicted 3.6 vCPU; user@example.org asked",
        outcome=None,
    )
    [row] = await _export([record])
    assert row["actor"] == "alice"
    assert row["summary"] == "scale op-geth to 4 vCPU (+2) = ok"
    assert row["reasoning"] == "cpu 92% -> predicted 3.6 vCPU; user@example.org asked"
    assert row["outcome"] == ""
    assert row["occurredAt"].startswith("2026-11-27T03:00:01")
