"""Who may write: the key's principal is the actor, its role bounds what it may do, a name in a body
cannot borrow someone else's identity, and a revoked key stops working without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.actions import RestartComponent
from sentinai.common.decisions import ActionProposed
from sentinai.common.events import MetricSample

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
REQUEST = {
    "chainId": "twin",
    "action": {"kind": "restart_component", "component": "op-batcher"},
    "reason": "batches stopped landing",
}


@pytest.fixture
def model() -> ReadModel:
    m = ReadModel(keep_anomalies=10)
    m.apply_sample(
        MetricSample(chain_id="twin", component="op-geth", source="rpc", occurred_at=NOW, metrics={})
    )
    m.apply_proposed(
        ActionProposed(
            chain_id="twin",
            occurred_at=NOW,
            action_id="act-1",
            action=RestartComponent(component="op-node"),
            tier="high",
            approvals_required=1,
            cooldown_s=600,
            status="pending_approval",
            reason="sequencer stall",
            proposed_by="planner",
            expires_at=NOW + timedelta(hours=1),
        )
    )
    return m


@pytest.fixture
async def client(model: ReadModel, sent: Any, keys: Any) -> AsyncIterator[httpx.AsyncClient]:
    async def probe() -> bool:
        return True

    app = create_app(
        model,
        settings=ApiSettings(api_keys_file=keys.path),
        nats_connected=probe,
        commands=sent,
        clock=lambda: NOW,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


WRITES = [
    ("/api/actions/act-1/approve", {"reason": "ok"}),
    ("/api/actions/act-1/reject", {"reason": "no"}),
    ("/api/actions", REQUEST),
]


async def test_a_viewer_reads_but_every_write_is_forbidden_with_the_reason(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    for path, body in WRITES:
        resp = await client.post(path, json=body, headers=keys.of("carol"))
        assert resp.status_code == 403, path
        assert resp.json()["detail"] == "carol is a viewer: viewers may read, not write"
    assert (await client.get("/api/actions", headers=keys.of("carol"))).status_code == 200
    assert sent.commands == [] and sent.requests == []


async def test_an_approver_approves_and_rejects_but_cannot_request(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    codes = [(await client.post(p, json=b, headers=keys.of("alice"))).status_code for p, b in WRITES]
    refused = await client.post("/api/actions", json=REQUEST, headers=keys.of("alice"))
    assert codes == [200, 200, 403]
    assert refused.json()["detail"] == (
        "alice is an approver: approvers may approve and reject, not request actions"
    )
    assert [c.by for c in sent.commands] == ["alice", "alice"] and sent.requests == []


async def test_a_revoked_key_is_401_and_says_it_was_revoked(client: httpx.AsyncClient, keys: Any) -> None:
    resp = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("dave"))
    assert resp.status_code == 401
    assert "revoked" in resp.json()["detail"] and "dave" in resp.json()["detail"]


async def test_revoking_a_key_takes_effect_without_a_restart(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    before = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("alice"))
    keys.store.revoke("alice")
    after = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("alice"))
    assert (before.status_code, after.status_code) == (200, 401)
    assert len(sent.commands) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/actions/act-1/approve", {"by": "bob", "reason": "on bob's behalf"}),
        ("/api/actions", {**REQUEST, "requestedBy": "alice"}),
    ],
    ids=["approve-as-someone-else", "request-as-someone-else"],
)
async def test_a_name_in_the_body_cannot_borrow_another_identity(
    client: httpx.AsyncClient, sent: Any, keys: Any, path: str, body: dict[str, Any]
) -> None:
    who = "alice" if "approve" in path else "bob"
    resp = await client.post(path, json=body, headers=keys.of(who))
    assert resp.status_code == 403
    assert f"this x-api-key is {who}'s" in resp.json()["detail"]
    assert sent.commands == [] and sent.requests == []


async def test_the_keys_own_name_in_any_case_or_width_is_the_same_person(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    for by in ("alice", " ALICE ", "ａｌｉｃｅ"):  # the last in full-width letters
        resp = await client.post(
            "/api/actions/act-1/approve", json={"by": by, "reason": "ok"}, headers=keys.of("alice")
        )
        assert resp.status_code == 200, by
    # Whatever the spelling, the command carries the key's own name.
    assert [c.by for c in sent.commands] == ["alice", "alice", "alice"]


async def test_an_unreadable_key_file_is_503_and_says_so(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    keys.path.write_text("{not json")
    resp = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("alice"))
    assert resp.status_code == 503
    assert "the API key file cannot be read" in resp.json()["detail"]
    assert (await client.get("/api/health")).json()["writesEnabled"] is False
    assert sent.commands == []
