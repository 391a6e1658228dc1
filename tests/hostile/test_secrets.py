"""No secret ever leaves where it belongs: not in logs, events, the audit trail or API answers.

`sentinai up` runs the whole stack (twin, nats-server, seven services) with a known API key, a
known LLM key (the rca's LLM is a local fake that echoes its prompt back, so anything that reaches
a prompt reaches the events too) and the twin's kubeconfig token. The test drives an incident
through detection, RCA, a proposal, a REST approval and MCP calls, then reads everything: the
output of every process, every message of every JetStream stream (KV buckets included), the audit
trail through the api, every api answer it received and every request the LLM got.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import nats
import pytest
import redteam
import yaml
from hostile_support import read_stream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from upstack import UpStack

from sentinai.common import natsauth

pytestmark = pytest.mark.integration

API_KEY = "hostile-api-key-7d1e0c5b9a2f"
LLM_KEY = "sk-hostile-llm-4c8e1f2a6b3d"


class EchoLlm(redteam.FakeLlm):
    """Agrees with the rules on a sequencer stall and quotes the end of its prompt as the root cause."""

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(body)
        prompt = "\n".join(m["content"] for m in body["messages"])
        content = {
            "rootCause": prompt[-1900:],
            "rootCauseClass": "sequencer_stall",
            "affectedComponents": ["op-node"],
            "riskLevel": "high",
            "actionPlan": "restart op-node",
            "confidence": 0.9,
        }
        return {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "echo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(content)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpStack, redteam.FakeLlm]]:
    fake = EchoLlm(plan={})
    with redteam.serving(fake) as api_base:
        stack = UpStack(
            tmp_path_factory.mktemp("secrets"),
            SENTINAI_API_KEY=API_KEY,
            SENTINAI_RCA_LLM_MODEL="openai/hostile-echo",
            SENTINAI_RCA_LLM_API_BASE=api_base,
            SENTINAI_RCA_LLM_API_KEY=LLM_KEY,
            SENTINAI_LOG_LEVEL="debug",
            # The executor really patches the twin's Kubernetes API, bearer token and all.
            SCALING_SIMULATION_MODE="false",
        )
        try:
            yield stack, fake
        finally:
            stack.close()


class Answers:
    """Every api answer the test received: status, headers and body, kept for the grep."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.texts: list[str] = []

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.keep(httpx.get(self.api + path, params=params, timeout=10))

    def post(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.keep(httpx.post(self.api + path, json=body, headers=headers, timeout=10))


async def _mcp(url: str) -> list[str]:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": API_KEY}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        results = [
            await client.call_tool("sentinai.getAuditTrail", {"chain": "twin"}),
            await client.call_tool("sentinai.getRca", {"chain": "twin"}),
            await client.call_tool(
                "sentinai.executeAction",
                {
                    "chainId": "twin",
                    "action": {"kind": "notify", "severity": "low", "text": "secrets test"},
                    "reason": "hostile-input secrets test",
                    "requestedBy": "secrets-agent",
                },
            ),
        ]
    return [tools.model_dump_json(), *(r.model_dump_json() for r in results)]


async def _every_stream(url: str, creds: str | None) -> dict[str, list[str]]:
    """Stream name → every message it holds, as text (subject, headers, body); ``creds``: the admin's."""
    nc = await nats.connect(url, **natsauth.connect_options(Path(creds) if creds else None))
    try:
        js = nc.jetstream()
        return {
            name: [
                f"{subject} {headers} {body.decode('utf-8', errors='replace')}"
                for subject, body, headers in await read_stream(js, name)
            ]
            for name in [info.config.name or "" for info in await js.streams_info()]
        }
    finally:
        await nc.close()


def test_no_secret_in_logs_events_audit_or_answers(up: tuple[UpStack, redteam.FakeLlm]) -> None:
    stack, fake = up
    answers = Answers(stack.api)

    def block_height() -> Any:
        chains = answers.get("/api/metrics").json()["chains"]
        return chains and chains[0]["metrics"].get("blockHeight")

    stack.eventually(block_height, timeout_s=60, what="twin metrics")
    kubeconfig = yaml.safe_load((stack.state_dir / "twin" / "kubeconfig").read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    secrets = {"api key": API_KEY, "llm key": LLM_KEY, "kubeconfig token": token}
    assert len(token) >= 16

    assert "injected" in stack.cli("twin", "inject", "sequencer_stall").stdout
    pending = stack.eventually(
        lambda: [
            a
            for a in answers.get("/api/actions", status="pending").json()["actions"]
            if a["action"]["kind"] == "restart_component"
        ],
        timeout_s=60,
        what="the pending op-node restart",
    )
    action_id = pending[0]["actionId"]
    body = {"reason": "stall confirmed"}
    # A wrong key and a key in the wrong header are refused without echoing anything back.
    assert (
        answers.post(f"/api/actions/{action_id}/approve", body, **{"x-api-key": API_KEY[:-1]}).status_code
        == 401
    )
    assert (
        answers.post(f"/api/actions/{action_id}/approve", body, authorization=f"Bearer {API_KEY}").status_code
        == 401
    )
    # The planner's verdict (200), or 202 when it has not answered within the api's wait; the outcome
    # below is what counts.
    assert answers.post(f"/api/actions/{action_id}/approve", body, **{"x-api-key": API_KEY}).status_code in (
        200,
        202,
    )
    done = stack.eventually(
        lambda: (view := answers.get(f"/api/actions/{action_id}").json())["outcome"] and view,
        timeout_s=60,
        what="the approved restart's outcome",
    )
    assert done["status"] in ("succeeded", "rolled_back", "failed"), done
    answers.texts += asyncio.run(asyncio.wait_for(_mcp(f"{stack.api}/mcp"), 60))
    unauthorized = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    mcp_headers = {"accept": "application/json, text/event-stream", "x-api-key": token}
    answers.keep(httpx.post(f"{stack.api}/mcp", json=unauthorized, headers=mcp_headers, timeout=10))
    for path in ("/api/audit", "/api/rca", "/api/actions", "/api/agent-decisions", "/api/health", "/metrics"):
        answers.get(path)
    answers.get("/api/audit", format="csv")
    assert fake.requests, "the rca consulted the LLM"

    messages = asyncio.run(_every_stream(stack.nats_url, stack.runtime().get("natsAdminCreds")))
    stack.stop()
    places = {
        "process output": "".join(stack.output),
        "JetStream messages": "\n".join(m for stream in messages.values() for m in stream),
        "api answers": "\n".join(answers.texts),
        "LLM request bodies": json.dumps(fake.requests),
    }
    counts = {name: len(found) for name, found in messages.items()}
    assert {"TELEMETRY", "EVENTS", "ACTIONS", "AUDIT", "KV_sentinai"} <= set(counts), counts
    assert counts["TELEMETRY"] > 10 and counts["AUDIT"] > 3, counts
    leaks = {
        (secret, place): text.count(value)
        for secret, value in secrets.items()
        for place, text in places.items()
        if value in text
    }
    assert leaks == {}, leaks
    assert "API key for approvals: host… (from SENTINAI_API_KEY)" in places["process output"]
