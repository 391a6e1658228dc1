"""A write answers with the planner's verdict: 200 accepted, 409 refused with the reason, 404 unknown,
202 when the planner is silent. First the mapping (a planner answering as told), then the real
planner and the real api on a real nats-server, people and an agent going through them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import nats
import pytest
from busready import running_planner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from sentinai.api.app import create_app
from sentinai.api.keys import KeyStore
from sentinai.api.main import build_app as build_api
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import subjects
from sentinai.common.actions import RestartComponent
from sentinai.common.decisions import ActionProposed
from sentinai.common.events import MetricSample
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ENV_KEY = "env-operator-key-0123"


# ------------------------------------------------------------------------ the mapping, one answer each


@pytest.fixture
async def client(sent: Any, keys: Any) -> AsyncIterator[httpx.AsyncClient]:
    model = ReadModel(keep_anomalies=10)
    model.apply_proposed(
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

    async def probe() -> bool:
        return True

    cfg = ApiSettings(api_keys_file=keys.path, verdict_timeout_s=4)
    app = create_app(model, settings=cfg, nats_connected=probe, commands=sent, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def test_an_accepted_approval_is_200_with_the_whole_verdict(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    resp = await client.post("/api/actions/act-1/approve", json={"reason": "ok"}, headers=keys.of("alice"))
    assert resp.status_code == 200
    [cmd] = sent.commands
    assert resp.json() == {
        "actionId": "act-1",
        "kind": "approve",
        "accepted": True,
        "code": "ok",
        "status": "approved",
        "reason": "approve accepted",
        "approvals": ["alice"],
        "approvalsRequired": 1,
        "eventId": cmd.event_id,
        "by": "alice",
    }


async def test_a_refusal_is_409_with_the_reason_as_detail_and_the_verdict_beside_it(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    why = "alice already approved act-1; a second approval by the same person does not count"
    sent.refuse("same_principal", why)
    resp = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("alice"))
    assert resp.status_code == 409
    body = resp.json()
    assert body["detail"] == why  # every 4xx's detail is a sentence
    assert (body["verdict"]["code"], body["verdict"]["accepted"], body["verdict"]["by"]) == (
        "same_principal",
        False,
        "alice",
    )


async def test_an_action_the_planner_does_not_know_is_404(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    sent.refuse("unknown_action", "no proposal with id act-1", status="refused")
    resp = await client.post("/api/actions/act-1/reject", json={}, headers=keys.of("alice"))
    assert resp.status_code == 404
    assert resp.json()["detail"] == "no proposal with id act-1"
    assert resp.json()["verdict"]["code"] == "unknown_action"


async def test_a_silent_planner_is_202_saying_how_long_it_waited_and_where_to_watch(
    client: httpx.AsyncClient, sent: Any, keys: Any
) -> None:
    sent.stay_silent()
    resp = await client.post("/api/actions/act-1/approve", json={}, headers=keys.of("alice"))
    assert resp.status_code == 202
    body = resp.json()
    assert (body["actionId"], body["kind"], body["by"]) == ("act-1", "approve", "alice")
    assert "has not answered within 4 s" in body["note"] and "/api/actions/act-1" in body["note"]


async def test_the_openapi_document_tells_every_answer(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    approve = spec["paths"]["/api/actions/{action_id}/approve"]["post"]["responses"]
    assert {"200", "202", "401", "403", "404", "409", "429"} <= set(approve)
    assert "same_principal" in approve["409"]["description"]
    assert "revoked" in approve["401"]["description"]


# ----------------------------------------------------------------- the real planner on a real bus

CHAIN = "itest"


@dataclass
class Stack:
    api: str
    keys: dict[str, str]

    def of(self, name: str) -> dict[str, str]:
        return {"x-api-key": self.keys[name]}


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "api-keys.json"
    store = KeyStore(path)
    tokens = {"operator": ENV_KEY}
    for name, role in [("alice", "approver"), ("bob", "operator")]:
        _, tokens[name] = store.add(name, role)  # type: ignore[arg-type]
    return path, tokens


def api_settings(url: str, keys: Path, **more: Any) -> ApiSettings:
    return ApiSettings(nats_url=url, api_keys_file=keys, api_key=ENV_KEY, port=free_port(), **more)


# How long the api and the planner may take to show a write's effect.
SEEN_WITHIN_S = 15.0


async def seed_chain(url: str, api: str) -> None:
    """One sample of the chain on the bus, so the api knows it (requests name a known chain)."""
    nc = await nats.connect(url)
    try:
        sample = MetricSample(chain_id=CHAIN, component="op-geth", source="rpc", metrics={"blockHeight": 1})
        await nc.jetstream().publish(subjects.metrics_raw(CHAIN, "op-geth"), sample.to_json())
    finally:
        await nc.close()

    async def known() -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            chains = (await http.get(f"{api}/api/chains")).json()["chains"]
        return any(c["chainId"] == CHAIN for c in chains)

    await eventually(known, timeout_s=SEEN_WITHIN_S, what=f"chain {CHAIN} in /api/chains")


@pytest.fixture
def stack(
    nats_server: EmbeddedNats,
    keys_file: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    serve: Callable[[Any], AbstractContextManager[str]],
) -> Callable[[], AbstractAsyncContextManager[Stack]]:
    """The api (uvicorn, a thread of its own) and the planner, both on the test's nats-server.

    Entered in the test itself: the planner's lifespan must end in the task that started it.
    """
    path, tokens = keys_file

    @asynccontextmanager
    async def running() -> AsyncIterator[Stack]:
        with serve(build_api(api_settings(nats_server.url, path))) as api:
            async with running_planner(nats_server.url, monkeypatch):
                await seed_chain(nats_server.url, api)
                yield Stack(api, tokens)

    return running


Running = Callable[[], AbstractAsyncContextManager[Stack]]


async def post(stack: Stack, path: str, body: dict[str, Any], *, who: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.post(stack.api + path, json=body, headers=stack.of(who))


async def view(stack: Stack, action_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.get(f"{stack.api}/api/actions/{action_id}")
    return resp.json() if resp.status_code == 200 else None


async def test_two_different_people_approve_a_critical_action_and_nobody_counts_twice(
    stack: Running,
) -> None:
    async with stack() as running:
        await _two_people_approve(running)


async def _two_people_approve(stack: Stack) -> None:
    asked = await post(
        stack,
        "/api/actions",
        {
            "chainId": CHAIN,
            "action": {"kind": "exec_debug", "component": "op-geth", "command": "geth attach"},
            "reason": "look at the txpool by hand",
        },
        who="bob",
    )
    assert asked.status_code == 200, asked.text
    request = asked.json()
    assert (request["status"], request["approvalsRequired"], request["by"]) == ("pending_approval", 2, "bob")
    action_id = request["actionId"]
    await eventually(
        lambda: view(stack, action_id), timeout_s=SEEN_WITHIN_S, what=f"{action_id} in the read model"
    )
    approve = f"/api/actions/{action_id}/approve"

    own = await post(stack, approve, {"reason": "mine"}, who="bob")
    assert own.status_code == 409 and own.json()["verdict"]["code"] == "proposer"
    assert "bob" in own.json()["detail"]

    first = await post(stack, approve, {"reason": "looks needed"}, who="alice")
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["approvals"]) == ("waiting", ["alice"])

    # The same key under another spelling is the same person: it does not count again.
    again = await post(stack, approve, {"by": "ALICE", "reason": "me again"}, who="alice")
    assert again.status_code == 409, again.text
    assert again.json()["verdict"]["code"] == "same_principal"
    reason = again.json()["detail"]
    assert reason and "alice" in reason.lower()

    async def refusal_shown() -> bool:
        found = await view(stack, action_id)
        return found is not None and found["refusal"] == reason

    await eventually(refusal_shown, timeout_s=SEEN_WITHIN_S, what="the refusal's reason on the action")

    second = await post(stack, approve, {"reason": "agreed"}, who="operator")
    assert second.status_code == 200, second.text
    assert (second.json()["status"], second.json()["approvals"]) == ("approved", ["alice", "operator"])

    async def approved() -> dict[str, Any] | None:
        found = await view(stack, action_id)
        return found if found is not None and found["status"] == "approved" else None

    done = await eventually(approved, timeout_s=SEEN_WITHIN_S, what=f"{action_id} approved in the read model")
    assert {a["by"] for a in done["approvals"]} == {"alice", "operator"}


async def test_a_forbidden_request_is_409_with_the_policys_reason(stack: Running) -> None:
    async with stack() as running:
        resp = await post(
            running,
            "/api/actions",
            {"chainId": CHAIN, "action": {"kind": "delete_namespace", "namespace": "op-main"}, "reason": "x"},
            who="bob",
        )
    assert resp.status_code == 409, resp.text
    assert resp.json()["verdict"]["code"] == "policy"
    assert "forbidden" in resp.json()["detail"]


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def call_tool(url: str, key: str, name: str, args: dict[str, Any]) -> CallToolResult:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": key}, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await client.call_tool(name, args)


RESTART_BATCHER = {
    "chainId": CHAIN,
    "action": {"kind": "restart_component", "component": "op-batcher"},
    "reason": "batches stopped landing",
    "requestedBy": "claude",
}


async def test_an_agents_medium_tier_request_waits_for_a_human_who_is_not_its_key(stack: Running) -> None:
    async with stack() as running:
        await _agent_waits_for_a_human(running)


async def _agent_waits_for_a_human(stack: Stack) -> None:
    result = await call_tool(stack.api, stack.keys["bob"], "sentinai.executeAction", RESTART_BATCHER)
    assert not result.is_error, text(result)
    answer = result.structured_content
    assert answer is not None
    # Medium would run by itself; through MCP it waits for a person, and says so.
    assert (answer["status"], answer["requestedBy"], answer["agent"]) == ("pending_approval", "bob", "claude")
    assert answer["approvalsRequired"] >= 1 and "cannot approve" in answer["next"]
    action_id = answer["actionId"]
    shown = await eventually(
        lambda: view(stack, action_id), timeout_s=SEEN_WITHIN_S, what=f"{action_id} in the read model"
    )
    assert (shown["tier"], shown["proposedBy"], shown["status"]) == ("medium", "bob", "pending_approval")
    assert "[agent: claude]" in shown["reason"]

    # The key's owner cannot approve its agent's request; another person can.
    approve = f"/api/actions/{action_id}/approve"
    own = await post(stack, approve, {}, who="bob")
    assert own.status_code == 409 and own.json()["verdict"]["code"] == "proposer"
    human = await post(stack, approve, {"reason": "checked the batcher"}, who="alice")
    assert human.status_code == 200, human.text
    assert human.json()["status"] == "approved"


async def test_read_only_refuses_every_write_and_an_agent_gets_a_tool_error_saying_so(
    nats_server: EmbeddedNats,
    keys_file: tuple[Path, dict[str, str]],
    serve: Callable[[Any], AbstractContextManager[str]],
) -> None:
    path, tokens = keys_file
    with serve(build_api(api_settings(nats_server.url, path, read_only_mode=True))) as api:
        await seed_chain(nats_server.url, api)
        async with httpx.AsyncClient(timeout=10) as http:
            codes = {
                route: (
                    await http.post(api + route, json=body, headers={"x-api-key": tokens["bob"]})
                ).status_code
                for route, body in [
                    ("/api/actions/act-x/approve", {}),
                    ("/api/actions/act-x/reject", {}),
                    ("/api/actions", {k: v for k, v in RESTART_BATCHER.items() if k != "requestedBy"}),
                ]
            }
        result = await call_tool(api, tokens["bob"], "sentinai.executeAction", RESTART_BATCHER)
        metrics = await call_tool(api, tokens["bob"], "sentinai.getMetrics", {"chain": CHAIN})
    assert set(codes.values()) == {403}, codes
    assert result.is_error and "read-only mode" in text(result)
    assert not metrics.is_error  # reading stays open
