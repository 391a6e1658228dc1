"""JSON-RPC batching: one POST per node per poll, and single calls for a node that refuses batches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sentinai.collector.poller import ChainPoller
from sentinai.common import catalog
from sentinai.common.chains import ChainConfig

BLOCK = {"number": "0x10", "gasLimit": "0x1c9c380", "gasUsed": "0xe4e1c0", "baseFeePerGas": "0x3b9aca00"}
RESULTS: dict[str, Any] = {
    "eth_getBlockByNumber": BLOCK,
    "txpool_status": {"pending": "0x7", "queued": "0x1"},
    "net_peerCount": "0x5",
}
# How nodes without batch support answer an array: one error object, or an HTTP error status.
Refusal = Callable[[], web.Response]
REFUSALS: dict[str, Refusal] = {
    "error-object": lambda: web.json_response(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch requests not supported"}}
    ),
    "http-400": lambda: web.Response(status=400, text="batch requests are not allowed"),
}


# What the answers above mean, whichever way they were fetched.
EXPECTED = {
    catalog.BLOCK_HEIGHT: 16.0,
    catalog.GAS_USED_RATIO: 0.5,
    catalog.BASE_FEE_GWEI: 1.0,
    catalog.TX_POOL_COUNT: 7.0,
    catalog.TX_POOL_QUEUED: 1.0,
    catalog.PEER_COUNT: 5.0,
}
NODE_METRICS = tuple(EXPECTED)


@dataclass
class Node:
    """A real HTTP JSON-RPC endpoint on loopback that records every POST it receives."""

    refuse_batches: Refusal | None = None
    results: dict[str, Any] = field(default_factory=lambda: dict(RESULTS))
    posts: list[Any] = field(default_factory=list)
    url: str = ""

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        method = call["method"]
        if method not in self.results:
            error = {"code": -32601, "message": f"the method {method} does not exist"}
            return {"jsonrpc": "2.0", "id": call["id"], "error": error}
        return {"jsonrpc": "2.0", "id": call["id"], "result": self.results[method]}

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.posts.append(body)
        if isinstance(body, list):
            if self.refuse_batches is not None:
                return self.refuse_batches()
            # Answers to a batch may come in any order; the client matches them by id.
            return web.json_response([self.answer(call) for call in reversed(body)])
        return web.json_response(self.answer(body))


async def serve(node: Node) -> AsyncIterator[Node]:
    app = web.Application()
    app.router.add_post("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    node.url = f"http://{host}:{port}/"
    try:
        yield node
    finally:
        await runner.cleanup()


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async for running in serve(Node()):
        yield running


async def poll_geth(url: str, *, polls: int) -> list[dict[str, float]]:
    poller = ChainPoller.open(ChainConfig(id="c1", l2_rpc=url), timeout_s=2.0, log_tail_lines=50)  # type: ignore[arg-type]
    try:
        metrics = []
        for _ in range(polls):
            (sample,) = (await poller.poll()).samples
            assert sample.target_up, sample.error
            metrics.append(sample.metrics)
        return metrics
    finally:
        await poller.aclose()


async def test_a_poll_is_one_batch_post_per_node(node: Node) -> None:
    (metrics,) = await poll_geth(node.url, polls=1)
    assert [len(post) for post in node.posts] == [3]
    assert [call["method"] for call in node.posts[0]] == list(RESULTS)
    assert {k: metrics[k] for k in NODE_METRICS} == EXPECTED


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_a_node_that_refuses_batches_gets_single_calls_from_then_on(refusal: str) -> None:
    async for node in serve(Node(refuse_batches=REFUSALS[refusal])):
        first, second = await poll_geth(node.url, polls=2)
        # The refused batch, then the three calls alone; the next poll goes straight to single calls.
        assert [isinstance(post, list) for post in node.posts] == [True] + [False] * 6
        for metrics in (first, second):
            assert {k: metrics[k] for k in NODE_METRICS} == EXPECTED


async def test_a_method_the_node_lacks_costs_only_its_metric(node: Node) -> None:
    del node.results["net_peerCount"]  # anvil, for one, has no net_peerCount
    (metrics,) = await poll_geth(node.url, polls=1)
    assert catalog.PEER_COUNT not in metrics
    assert metrics[catalog.TX_POOL_COUNT] == 7.0
    assert len(node.posts) == 1
