"""Whatever the model does, the published RCA decides what the rules decided, within the deadline.

Each fake model is a real local HTTP server speaking the OpenAI chat-completions API (or, for the
hanging one, a socket that accepts and never answers), called through litellm as in production. For
every mode, several contexts (a clear incident, a supported runner-up, a runner-up below the floor,
a single high CPU sample on a healthy chain, a low-confidence L1 hiccup, batcher variants and an
inconclusive blip) are diagnosed at once; each published event must carry the rules' class,
confidence and corroboration, lead the planner to the same remedies as the rules alone, and come
back within the deadline plus a small margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest
from aiohttp import web

from sentinai.common.decisions import RcaCompleted, RcaEngine
from sentinai.common.incidents import INCIDENT_CLASSES
from sentinai.common.net import free_port
from sentinai.common.policy import load_policy
from sentinai.planner.logic import remedies
from sentinai.rca import llm, logic, prompt
from sentinai.rca.llm import LlmConfig, Outcome
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.settings import RcaSettings
from services.rca.tests import scenes
from services.rca.tests.scenes import T0, N, anomaly, context, geth, op
from services.rca.tests.test_llm_merge import one_cpu_sample, underpriced_batcher

MODEL = "openai/sentinai-fake-model"
LIMIT_S = 2.0  # from the rules' answer to the published one, whatever the model does
HUGE = 5_000_000  # characters of content: far past any max_tokens
POLICY = load_policy()

Mode = Literal["hangs", "prose", "wrong_schema", "huge_body", "slow_stream", "agrees", "runner_up"]
GARBAGE: tuple[Mode, ...] = ("prose", "wrong_schema", "huge_body", "slow_stream")


def l1_hiccup() -> RcaContext:
    """Two L1 error lines and nothing else: the rules name an L1 outage, at a low confidence."""
    return context(
        anomaly("op-node", "log:l1_rpc_outage", 1.0, rule="log"),
        logs={
            "op-node": [
                op("warn", "L1 temporary error", err="temp: i/o timeout"),
                op("warn", "failed to poll L1 block", err="i/o timeout"),
            ]
        },
    )


def two_faults() -> RcaContext:
    """op-geth's disk filling up while op-proposer fails to propose: two classes with evidence."""
    disk = geth(
        "warn",
        "Disk space is running low. Geth will shutdown if disk space runs below critical level.",
        available="1.20 GiB",
        critical_level="1.00 GiB",
        path="/data/geth",
    )
    proposal = op(
        "error", "Failed to send proposal transaction", err="failed to send tx: context deadline exceeded"
    )
    return context(
        anomaly("op-geth", "log:disk_pressure", 1.0, rule="log", evidence=[disk]),
        logs={"op-geth": [disk, disk], "op-proposer": [proposal, proposal]},
    )


def pool_blip() -> RcaContext:
    """One busy tx pool sample: inconclusive, with weak hypotheses."""
    return context(
        anomaly("op-geth", "txPoolCount", 410.0, rule="zscore"),
        metrics={"op-geth": {"txPoolCount": [120.0] * (N - 1) + [410.0]}},
    )


CONTEXTS: dict[str, Callable[[], RcaContext]] = {
    "sequencer_stall": scenes.sequencer_stall,
    "op_geth_oom": scenes.op_geth_oom,
    "txpool_spam": scenes.txpool_spam,
    "two_faults": two_faults,
    "batcher_failure": scenes.batcher_failure,
    "underpriced_batcher": underpriced_batcher,
    "one_cpu_sample": one_cpu_sample,
    "l1_hiccup": l1_hiccup,
    "pool_blip": pool_blip,
}


def test_the_contexts_cover_what_the_independent_check_found() -> None:
    """Checked here rather than assumed, since the engine's weights are tuned over time."""
    answers = [logic.diagnose(build()) for build in CONTEXTS.values()]
    asked = [a for a in answers if a.root_cause_class != "unknown"]
    assert len(asked) < len(answers)  # an inconclusive answer
    assert any(a.confidence <= 0.5 for a in asked)  # a low-confidence one
    runner_ups = [a.hypotheses[1].cause in prompt.supported(a) for a in asked if len(a.hypotheses) > 1]
    assert True in runner_ups and False in runner_ups  # runner-ups above and below the floor


# ------------------------------------------------------------------------------------- fake models


def completion(content: str, *, model: str = "sentinai-fake-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 812, "completion_tokens": 95, "total_tokens": 907},
    }


@functools.cache
def huge_completion() -> bytes:
    """Encoded once: the fake server shares the test's event loop, the one whose deadline is timed,
    and encoding megabytes per request there would charge the server's work to the client."""
    return json.dumps(completion('{"rootCause": "' + "A" * HUGE + '"}')).encode()


def opinion(user: str, mode: Mode) -> dict[str, Any]:
    """What a model sure of itself says: the rules' class, or the runner-up, at confidence 1.0."""
    found = re.search(r"^The engine's answer: (\S+) ", user, re.MULTILINE)
    rules_class = found.group(1) if found else "unknown"
    chosen = rules_class
    if mode == "runner_up":
        candidates = re.findall(r"^- (\w+) \(score ", user, re.MULTILINE)
        others = [c for c in (*candidates[1:], *INCIDENT_CLASSES) if c != rules_class]
        chosen = others[0]
    return {
        "rootCauseClass": chosen,
        "rootCause": f"The model is certain: {chosen} explains every anomaly.",
        "confidence": 1.0,
        # Outside the schema, and ignored: what an overreaching model adds.
        "affectedComponents": ["op-geth", "op-node", "op-batcher", "op-proposer"],
        "riskLevel": "low",
        "actionPlan": "scale op-geth to 16 vCPU and restart op-node now",
    }


@dataclass
class FakeModel:
    """``POST /v1/chat/completions`` in one of the modes; every request body is kept."""

    mode: Mode
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if self.mode == "prose":
            return web.json_response(
                completion("The sequencer is stalled. Restart op-node and scale op-geth.")
            )
        if self.mode == "wrong_schema":
            return web.json_response(
                completion(json.dumps({"answer": "restart op-node", "confidence": "high"}))
            )
        if self.mode == "huge_body":
            return web.Response(body=huge_completion(), content_type="application/json")
        if self.mode == "slow_stream":
            return await self.trickle(request, json.dumps(completion(json.dumps(opinion(user, "agrees")))))
        return web.json_response(completion(json.dumps(opinion(user, self.mode))))

    async def trickle(self, request: web.Request, text: str) -> web.StreamResponse:
        """Headers at once, then the body a byte every 50 ms: a minute for a short answer."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for char in text:
                await response.write(char.encode())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=0.05)
                if self.stop.is_set():
                    break
        return response


@dataclass
class Silent:
    """A socket that accepts connections, reads what comes, and never answers."""

    connections: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while not self.stop.is_set():
                try:
                    if not await asyncio.wait_for(reader.read(65536), timeout=0.1):
                        break
                except TimeoutError:
                    continue
        finally:
            writer.close()


@dataclass
class Served:
    base_url: str
    asked: Callable[[], int]

    def config(self) -> LlmConfig:
        """The production path: settings with their default deadline, made into the LLM's config."""
        settings = RcaSettings(llm_model=MODEL, llm_api_base=self.base_url, llm_api_key="sk-test")
        config = llm.config_from(settings)
        assert config is not None and config.deadline_s == 1.5
        return config


@contextlib.asynccontextmanager
async def serving(mode: Mode) -> AsyncIterator[Served]:
    port = free_port()
    if mode == "hangs":
        silent = Silent()
        server = await asyncio.start_server(silent.handle, "127.0.0.1", port)
        try:
            yield Served(f"http://127.0.0.1:{port}/v1", lambda: silent.connections)
        finally:
            silent.stop.set()
            server.close()
            await server.wait_closed()
        return
    fake = FakeModel(mode)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(f"http://127.0.0.1:{port}/v1", lambda: len(fake.requests))
    finally:
        fake.stop.set()
        await runner.cleanup()


@pytest.fixture(scope="module", autouse=True)
def warm_client() -> Iterator[None]:
    """litellm imported and its first call made before anything is timed (a cold start: test_llm_import)."""

    class Agrees(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            data = json.dumps(completion(json.dumps(opinion(user, "agrees")))).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    llm.preload().result(timeout=120)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Agrees)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        config = LlmConfig(model=MODEL, api_base=base, api_key="sk-test", deadline_s=60)
        ctx = scenes.sequencer_stall()
        outcome = asyncio.run(llm.consult(ctx, logic.diagnose(ctx), config=config))
        assert outcome.engine == "both", outcome.failure
        yield
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ checks


def event(diagnosis: Diagnosis, ctx: RcaContext, *, engine: RcaEngine, model: str | None) -> RcaCompleted:
    return logic.to_event(
        diagnosis,
        ctx,
        episode_id="ep-1",
        engine=engine,
        model=model,
        latency_ms=1.0,
        cost_usd=0.0,
        now=T0 + timedelta(seconds=30),
    )


@dataclass(frozen=True)
class Case:
    name: str
    ctx: RcaContext
    rules: Diagnosis
    outcome: Outcome
    elapsed_s: float


async def consult_all(config: LlmConfig) -> list[Case]:
    """Every context at once, each timed from the rules' answer to consult's return."""

    async def one(name: str) -> Case:
        ctx = CONTEXTS[name]()
        rules = logic.diagnose(ctx)
        started = time.monotonic()
        outcome = await llm.consult(ctx, rules, config=config)
        return Case(name, ctx, rules, outcome, time.monotonic() - started)

    return list(await asyncio.gather(*(one(name) for name in CONTEXTS)))


def assert_decided_by_the_rules(case: Case) -> None:
    published = event(case.outcome.diagnosis, case.ctx, engine=case.outcome.engine, model=case.outcome.model)
    alone = event(case.rules, case.ctx, engine="rules", model=None)
    for name in (
        "root_cause_class",
        "confidence",
        "corroboration",
        "risk_level",
        "affected_components",
        "action_plan",
        "evidence",
    ):
        assert getattr(published, name) == getattr(alone, name), (case.name, name)
    assert remedies(published, policy=POLICY) == remedies(alone, policy=POLICY), case.name
    assert case.elapsed_s < LIMIT_S, (case.name, case.elapsed_s)


def asked(case: Case) -> bool:
    return case.rules.root_cause_class != "unknown"


async def test_a_model_that_never_answers_delays_nothing() -> None:
    async with serving("hangs") as served:
        cases = await consult_all(served.config())
        assert served.asked() >= sum(asked(c) for c in cases)
    for case in cases:
        assert_decided_by_the_rules(case)
        assert (case.outcome.diagnosis, case.outcome.engine) == (case.rules, "rules")
        assert case.outcome.failure is not None
        if asked(case):
            assert "within the 1.5 s deadline" in case.outcome.failure, case.outcome.failure


@pytest.mark.parametrize("mode", GARBAGE)
async def test_a_model_answering_garbage_changes_nothing(mode: Mode) -> None:
    async with serving(mode) as served:
        cases = await consult_all(served.config())
        assert served.asked() == sum(asked(c) for c in cases)
    for case in cases:
        assert_decided_by_the_rules(case)
        assert (case.outcome.diagnosis, case.outcome.engine, case.outcome.model) == (
            case.rules,
            "rules",
            None,
        )
        assert case.outcome.failure is not None


async def test_a_model_agreeing_at_full_confidence_only_words_the_root_cause() -> None:
    async with serving("agrees") as served:
        cases = await consult_all(served.config())
    for case in cases:
        assert_decided_by_the_rules(case)
        if not asked(case):
            assert (case.outcome.diagnosis, case.outcome.engine) == (case.rules, "rules")
            continue
        assert (case.outcome.engine, case.outcome.model, case.outcome.failure) == ("both", MODEL, None)
        assert case.outcome.diagnosis.root_cause.startswith("The model is certain:")
        assert case.outcome.diagnosis.hypotheses == case.rules.hypotheses
        assert "scale op-geth to 16 vCPU" not in case.outcome.diagnosis.action_plan


async def test_a_model_preferring_the_runner_up_is_shown_never_followed() -> None:
    async with serving("runner_up") as served:
        cases = await consult_all(served.config())
    for case in cases:
        assert_decided_by_the_rules(case)
        assert case.outcome.engine == "rules"
        if not asked(case):
            assert case.outcome.diagnosis == case.rules
            continue
        assert case.outcome.failure is not None  # the audit records what the model preferred
        preferred = case.outcome.failure.split("prefers ", 1)[-1].split(" ", 1)[0]
        if preferred in prompt.supported(case.rules):
            assert f"; the model prefers {preferred}: " in case.outcome.diagnosis.root_cause
            assert case.outcome.diagnosis.hypotheses[0].cause == preferred
        else:
            assert case.outcome.diagnosis == case.rules
    preferences = [c for c in cases if "the model prefers" in c.outcome.diagnosis.root_cause]
    refusals = [c for c in cases if "does not support" in str(c.outcome.failure)]
    assert preferences and refusals  # both paths taken, and neither changed a remedy
