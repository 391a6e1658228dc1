"""The operator's routes: RCA, predictions, actions, decisions, audit; writes as the key's principal."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.actions import RestartComponent, ScaleCpu
from sentinai.common.decisions import (
    ActionApproved,
    ActionExecuted,
    ActionProposed,
    AuditRecorded,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import AnomalyDetected, MetricSample

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
KEY = "s3cret-key"


def proposal(action_id: str, *, status: str = "pending_approval", at: datetime = NOW) -> ActionProposed:
    return ActionProposed(
        chain_id="twin",
        occurred_at=at,
        action_id=action_id,
        action=RestartComponent(component="op-node"),
        tier="high",
        approvals_required=1,
        cooldown_s=600,
        status=status,  # type: ignore[arg-type]
        reason="sequencer stall",
        proposed_by="planner",
        incident="sequencer_stall",
        episode_id="ep-1",
        expires_at=at + timedelta(minutes=30),
    )


def audit(
    n: int, *, chain: str = "twin", action_id: str | None = None, kind: str = "proposed"
) -> AuditRecorded:
    return AuditRecorded(
        event_id=f"audit-{chain}-{n}",
        chain_id=chain,
        occurred_at=NOW + timedelta(seconds=n),
        kind=kind,  # type: ignore[arg-type]
        actor="planner",
        action_id=action_id,
        summary=f"record {n}",
    )


@pytest.fixture
def model() -> ReadModel:
    m = ReadModel(keep_anomalies=50)
    m.apply_sample(
        MetricSample(
            chain_id="twin", component="op-geth", source="rpc", occurred_at=NOW, metrics={"blockHeight": 7}
        )
    )
    m.apply_anomaly(
        AnomalyDetected(
            chain_id="twin",
            event_id="an-1",
            episode_id="ep-0",
            occurred_at=NOW,
            component="op-node",
            metric="unsafeL2Age",
            value=9,
            z_score=4.5,
            direction="up",
            severity="high",
            description="Sequencer stall",
            rule="liveness",
        )
    )
    m.apply_rca(
        RcaCompleted(
            event_id="rca-1",
            chain_id="twin",
            occurred_at=NOW + timedelta(seconds=1),
            episode_id="ep-1",
            anomaly_event_id="an-1",
            root_cause="op-node stopped sequencing",
            root_cause_class="sequencer_stall",
            affected_components=("op-node",),
            risk_level="high",
            action_plan="restart op-node",
            evidence=("unsafe_l2 flat for 9s",),
            confidence=0.8,
            engine="rules",
            latency_ms=2.0,
        )
    )
    for i, cores in enumerate((1.0, 1.5)):
        m.apply_prediction(
            PredictionMade(
                event_id=f"pred-{i}",
                chain_id="twin",
                occurred_at=NOW + timedelta(minutes=i),
                predicted_vcpu=2,
                current_vcpu=1,
                confidence=70,
                trend="rising",
                reasoning="ramp",
                horizon_s=300,
                forecast_cores=cores,
                upper_bound_cores=cores + 0.3,
                model="theil-sen",
            )
        )
    m.apply_proposed(proposal("act-pending"))
    m.apply_proposed(proposal("act-done", at=NOW - timedelta(minutes=5)))
    return m


def settings(keys: Any, **overrides: Any) -> ApiSettings:
    return ApiSettings(api_keys_file=keys.path, api_key=KEY, **overrides)


@pytest.fixture
async def client(model: ReadModel, sent: Any, keys: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(model, sent, settings(keys)) as c:
        yield c


def _client(model: ReadModel, sent: Any, cfg: ApiSettings) -> httpx.AsyncClient:
    async def probe() -> bool:
        return True

    app = create_app(model, settings=cfg, nats_connected=probe, commands=sent, clock=lambda: NOW)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


APPROVE = {"reason": "stall confirmed on the node"}
REQUEST = {
    "chainId": "twin",
    "action": {"kind": "notify", "severity": "low", "text": "hi"},
    "reason": "test",
}


# ------------------------------------------------------------------------------------------ writes


@pytest.mark.parametrize(
    ("who", "status", "message"),
    [
        (None, 401, "missing x-api-key header"),
        ("nope", 401, "wrong x-api-key"),
        ("alice", 200, None),
    ],
    ids=["no-key", "wrong-key", "alices-key"],
)
async def test_approving_needs_a_key_and_is_recorded_as_its_owner(
    client: httpx.AsyncClient, sent: Any, keys: Any, *, who: str | None, status: int, message: str | None
) -> None:
    headers = {} if who is None else keys.of(who) if who in keys.tokens else {"x-api-key": who}
    resp = await client.post("/api/actions/act-pending/approve", json=APPROVE, headers=headers)
    assert resp.status_code == status
    if message:
        assert message in resp.json()["detail"]
        assert sent.commands == []
    else:
        [cmd] = sent.commands
        assert (cmd.action_id, cmd.command, cmd.by, cmd.chain_id) == (
            "act-pending",
            "approve",
            "alice",
            "twin",
        )
        body = resp.json()
        assert (body["eventId"], body["by"], body["accepted"], body["status"]) == (
            cmd.event_id,
            "alice",
            True,
            "approved",
        )


async def test_the_env_key_writes_as_operator(client: httpx.AsyncClient, sent: Any) -> None:
    resp = await client.post("/api/actions/act-pending/reject", json=APPROVE, headers={"x-api-key": KEY})
    assert resp.status_code == 200 and resp.json()["by"] == "operator"
    assert [c.by for c in sent.commands] == ["operator"]


async def test_with_no_key_configured_writes_are_refused_and_the_answer_says_how_to_add_one(
    model: ReadModel, sent: Any, tmp_path: Path
) -> None:
    cfg = ApiSettings(api_keys_file=tmp_path / "none-yet.json")
    async with _client(model, sent, cfg) as c:
        resp = await c.post("/api/actions/act-pending/approve", json=APPROVE, headers={"x-api-key": "x"})
        health = (await c.get("/api/health")).json()
    assert resp.status_code == 401
    assert "no API key is configured" in resp.json()["detail"]
    assert "sentinai keys add NAME --role operator" in resp.json()["detail"]
    assert "SENTINAI_API_KEY" in resp.json()["detail"]
    assert health["writesEnabled"] is False
    assert sent.commands == []


async def test_read_only_mode_refuses_every_write_and_says_why(
    model: ReadModel, sent: Any, keys: Any
) -> None:
    async with _client(model, sent, settings(keys, read_only_mode=True)) as c:
        for path, body in [
            ("/api/actions/act-pending/approve", APPROVE),
            ("/api/actions/act-pending/reject", APPROVE),
            ("/api/actions", REQUEST),
        ]:
            resp = await c.post(path, json=body, headers=keys.of("bob"))
            assert resp.status_code == 403, path
            assert "read-only mode" in resp.json()["detail"]
        health = (await c.get("/api/health")).json()
    assert (health["readOnly"], health["writesEnabled"]) == (True, False)
    assert sent.commands == [] and sent.requests == []


async def test_writes_are_rate_limited_per_principal(model: ReadModel, sent: Any, keys: Any) -> None:
    async with _client(model, sent, settings(keys, write_burst=2, write_rate_per_min=1)) as c:

        async def reject(who: str) -> httpx.Response:
            return await c.post("/api/actions/act-pending/reject", json=APPROVE, headers=keys.of(who))

        codes = [(await reject("alice")).status_code for _ in range(3)]
        last = await reject("alice")
        bob = await reject("bob")
    assert codes == [200, 200, 429]
    assert "too many writes by alice" in last.json()["detail"]
    assert int(last.headers["retry-after"]) >= 1
    assert bob.status_code == 200  # another person's budget is their own


async def test_deciding_an_unknown_or_settled_action_is_a_clear_4xx(
    client: httpx.AsyncClient, model: ReadModel, sent: Any, keys: Any
) -> None:
    model.apply_audit(audit(1, action_id="act-done", kind="rejected"))
    alice = keys.of("alice")
    unknown = await client.post("/api/actions/act-nope/approve", json=APPROVE, headers=alice)
    settled = await client.post("/api/actions/act-done/approve", json=APPROVE, headers=alice)
    empty_by = await client.post("/api/actions/act-pending/approve", json={"by": ""}, headers=alice)
    assert (unknown.status_code, settled.status_code, empty_by.status_code) == (404, 409, 422)
    assert "act-done is rejected" in settled.json()["detail"]
    assert sent.commands == []


async def test_a_withdrawn_proposal_leaves_the_queue_with_its_reason_and_cannot_be_approved(
    client: httpx.AsyncClient, model: ReadModel, sent: Any, keys: Any
) -> None:
    why = "incident resolved: blocks flow again for 60 s"
    withdrawn = audit(1, action_id="act-pending", kind="withdrawn").model_copy(
        update={"reasoning": why, "outcome": "withdrawn"}
    )
    model.apply_audit(withdrawn)
    pending = (await client.get("/api/actions", params={"status": "pending"})).json()["actions"]
    assert "act-pending" not in [a["actionId"] for a in pending]
    history = (await client.get("/api/actions", params={"status": "history"})).json()["actions"]
    [item] = [a for a in history if a["actionId"] == "act-pending"]
    assert (item["status"], item["decidedBy"], item["decisionReason"]) == ("withdrawn", "planner", why)
    late = await client.post("/api/actions/act-pending/approve", json=APPROVE, headers=keys.of("alice"))
    assert late.status_code == 409
    assert late.json()["detail"] == f"act-pending is withdrawn, not pending approval: {why}"
    assert sent.commands == []


async def test_a_waiting_proposal_upgraded_to_automatic_shows_its_new_status_and_reason(
    client: httpx.AsyncClient, model: ReadModel
) -> None:
    upgraded = proposal("act-pending", status="auto_approved", at=NOW + timedelta(minutes=1)).model_copy(
        update={"event_id": "proposed-upgraded", "reason": "corroborated: 3 of 3 polls"}
    )
    model.apply_proposed(upgraded)
    model.apply_proposed(proposal("act-pending"))  # an older repeat changes nothing
    [item] = [
        a
        for a in (await client.get("/api/actions", params={"status": "all"})).json()["actions"]
        if a["actionId"] == "act-pending"
    ]
    assert (item["status"], item["reason"]) == ("auto_approved", "corroborated: 3 of 3 polls")


async def test_a_requested_action_goes_to_the_planner_as_the_keys_owner_with_a_known_id(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    body = {
        "chainId": "twin",
        "action": {"kind": "scale_cpu", "component": "op-geth", "vcpu": 2},
        "reason": "traffic launch at noon",
    }
    resp = await client.post("/api/actions", json=body, headers=keys.of("bob"))
    assert resp.status_code == 200
    [req] = sent.requests
    assert req.action == ScaleCpu(component="op-geth", vcpu=2)
    assert (req.requested_by, req.via, req.agent) == ("bob", "rest", False)
    answer = resp.json()
    assert answer["actionId"].startswith("act-") and answer["eventId"] == req.event_id
    assert (answer["kind"], answer["status"], answer["by"]) == ("request", "pending_approval", "bob")


async def test_the_audit_label_of_a_request_comes_from_its_door_and_mcp_marks_an_agent(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    body = {
        "chainId": "twin",
        "action": {"kind": "restart_component", "component": "op-node"},
        "reason": "which door did this come through?",
    }
    bob = keys.of("bob")
    codes = [
        (await client.post("/api/actions", json=body, headers=bob | via)).status_code
        for via in ({}, {"x-sentinai-via": "mcp"}, {"x-sentinai-via": "cli"}, {"x-sentinai-via": "pigeon"})
    ]
    assert codes == [200, 200, 200, 422]
    assert [(req.via, req.agent) for req in sent.requests] == [("rest", False), ("mcp", True), ("cli", False)]


@pytest.mark.parametrize(
    ("action", "chain", "status"),
    [
        ({"kind": "rm_rf", "component": "op-geth"}, "twin", 422),
        ({"kind": "scale_cpu", "component": "op-geth", "vcpu": 1000}, "twin", 422),
        ({"kind": "restart_component", "component": "op-node", "extra": 1}, "twin", 422),
        ({"kind": "restart_component", "component": "op-node"}, "ghost", 404),
    ],
    ids=["not-in-catalogue", "vcpu-out-of-range", "unknown-field", "unknown-chain"],
)
async def test_only_catalogue_actions_on_known_chains_can_be_requested(
    client: httpx.AsyncClient, sent: Any, keys: Any, *, action: dict[str, Any], chain: str, status: int
) -> None:
    body = {"chainId": chain, "action": action, "reason": "why not"}
    resp = await client.post("/api/actions", json=body, headers=keys.of("bob"))
    assert resp.status_code == status
    assert resp.json()["detail"]
    assert sent.requests == []


# ------------------------------------------------------------------------------------------- reads


async def test_rca_latest_by_event_id_and_by_episode(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/rca", params={"chain": "twin"})).json()
    assert body["latest"]["rootCauseClass"] == "sequencer_stall"
    assert body["latest"]["evidence"] == ["unsafe_l2 flat for 9s"]
    assert (await client.get("/api/rca/rca-1")).json()["eventId"] == "rca-1"
    assert (await client.get("/api/rca/ep-1")).json()["eventId"] == "rca-1"
    missing = await client.get("/api/rca/nothing")
    assert missing.status_code == 404 and "no RCA" in missing.json()["detail"]


async def test_prediction_latest_and_history_oldest_first(client: httpx.AsyncClient) -> None:
    [chain] = (await client.get("/api/prediction", params={"chain": "twin"})).json()["chains"]
    assert [p["forecastCores"] for p in chain["history"]] == [1.0, 1.5]
    assert chain["latest"]["predictedVCpu"] == 2


async def test_actions_pending_and_history_follow_the_loop(
    client: httpx.AsyncClient, model: ReadModel
) -> None:
    done = proposal("act-done", at=NOW - timedelta(minutes=5))
    approved = ActionApproved(
        chain_id="twin",
        action_id="act-done",
        action=done.action,
        tier="high",
        approvers=("alice",),
        cooldown_s=600,
        reason="ok",
        occurred_at=NOW,
    )
    executed = ActionExecuted(
        chain_id="twin",
        action_id="act-done",
        action=done.action,
        outcome="succeeded",
        detail="verified",
        dry_run=False,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=20),
    )
    model.apply_action(executed)
    model.apply_action(approved)  # late: must not take the status back
    pending = (await client.get("/api/actions", params={"status": "pending"})).json()
    history = (await client.get("/api/actions", params={"status": "history"})).json()
    assert [a["actionId"] for a in pending["actions"]] == ["act-pending"]
    assert pending["pending"] == 1
    [item] = history["actions"]
    assert (item["status"], item["outcome"]["outcome"], item["approvals"][0]["by"]) == (
        "succeeded",
        "succeeded",
        "alice",
    )


async def test_agent_decisions_join_anomaly_rca_and_proposals(client: httpx.AsyncClient) -> None:
    [decision] = (await client.get("/api/agent-decisions", params={"chain": "twin"})).json()["decisions"]
    assert decision["episodeId"] == "ep-1"
    assert decision["anomaly"]["eventId"] == "an-1"
    assert decision["rca"]["rootCauseClass"] == "sequencer_stall"
    assert {a["actionId"] for a in decision["actions"]} == {"act-pending", "act-done"}


async def test_audit_is_paged_newest_first_and_exports_csv(
    client: httpx.AsyncClient, model: ReadModel
) -> None:
    for n in range(5):
        model.apply_audit(audit(n))
    model.apply_audit(audit(9, chain="other"))
    model.apply_audit(audit(3))  # a redelivery is not a new record
    page = (await client.get("/api/audit", params={"chain": "twin", "limit": 2, "offset": 1})).json()
    assert [i["summary"] for i in page["items"]] == ["record 3", "record 2"]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    text = (await client.get("/api/audit", params={"format": "csv"})).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 and rows[0]["summary"] == "record 9" and rows[0]["chainId"] == "other"


async def test_chains_summarise_anomalies_approvals_and_forecast(client: httpx.AsyncClient) -> None:
    [chain] = (await client.get("/api/chains")).json()["chains"]
    assert (chain["chainId"], chain["activeAnomalies"], chain["pendingApprovals"]) == ("twin", 1, 2)
    assert chain["latestPrediction"]["trend"] == "rising"


async def test_every_read_is_side_effect_free(client: httpx.AsyncClient, sent: Any) -> None:
    paths = [
        "/api/chains",
        "/api/metrics",
        "/api/anomalies",
        "/api/rca",
        "/api/prediction",
        "/api/actions",
        "/api/agent-decisions",
        "/api/audit",
        "/api/metrics/history?chain=twin",
    ]
    first = [(await client.get(p)).json() for p in paths]
    second = [(await client.get(p)).json() for p in paths]
    assert first == [
        {k: v for k, v in body.items() if k != "exportedAt"}
        | ({"exportedAt": body["exportedAt"]} if "exportedAt" in body else {})
        for body in second
    ]
    assert sent.commands == [] and sent.requests == []
