"""The running twin's plumbing: its listening socket and the answers it reuses within a tick."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from sentinai.twin import rpc
from sentinai.twin.__main__ import listening_socket
from sentinai.twin.model import ChainConfig
from sentinai.twin.runtime import ChainRuntime


async def test_connections_the_twin_accepts_send_without_nagle_delay() -> None:
    # With Nagle on, every keep-alive answer's body waited ~40 ms for the client's delayed ACK.
    sock = listening_socket("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(
            writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    try:
        _reader, writer = await asyncio.open_connection(*sock.getsockname())
        assert await asyncio.wait_for(accepted, timeout=5.0) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_reads_are_answered_from_the_current_state_only() -> None:
    runtime = ChainRuntime(ChainConfig(chain="memo"))
    runtime.step(2)
    head = runtime.call("op-geth", "eth_getBlockByNumber", ["latest", False])
    assert runtime.call("op-geth", "eth_getBlockByNumber", ["latest", False]) == head
    pod = runtime.render_pod("op-geth")
    runtime.step(1)
    assert int(runtime.call("op-geth", "eth_getBlockByNumber", ["latest", False])["number"], 16) > int(
        head["number"], 16
    )
    assert runtime.render_pod("op-geth")["metadata"]["resourceVersion"] != pod["metadata"]["resourceVersion"]


def test_admin_calls_change_the_state_every_time() -> None:
    runtime = ChainRuntime(ChainConfig(chain="memo"))
    assert runtime.call("op-node", "admin_sequencerActive", []) is True
    runtime.call("op-node", "admin_stopSequencer", [])
    assert runtime.call("op-node", "admin_sequencerActive", []) is False
    with pytest.raises(rpc.RpcError, match="not running"):
        runtime.call("op-node", "admin_stopSequencer", [])
    runtime.call("op-node", "admin_startSequencer", [])
    assert runtime.call("op-node", "admin_sequencerActive", []) is True


def test_a_workload_patch_shows_in_the_next_pod_list() -> None:
    runtime = ChainRuntime(ChainConfig(chain="memo"))
    before = runtime.render_pod("op-geth")
    container = {"name": "op-geth", "resources": {"requests": {"cpu": "3"}}}
    patch = json.dumps({"spec": {"template": {"spec": {"containers": [container]}}}}).encode()
    runtime.patch_workload("statefulsets", "op-geth", patch, "application/strategic-merge-patch+json")
    after = runtime.render_pod("op-geth")
    assert after["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "3"
    assert before["spec"]["containers"][0]["resources"]["requests"]["cpu"] != "3"
