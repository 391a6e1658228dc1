"""The twin as a real process: the official Kubernetes client, JSON-RPC over HTTP and the control API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sentinai.common.chains import load_chains
from sentinai.devkit.twinproc import TwinProcess
from sentinai.devkit.waits import eventually_sync
from sentinai.twin.client import TwinControl
from sentinai.twin.model import ChainConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(twin_server: TwinProcess) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(twin_server.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def control(twin_server: TwinProcess) -> Iterator[TwinControl]:
    with TwinControl(twin_server.base_url) as ctl:
        yield ctl


def rpc(twin: TwinProcess, chain: str, component: str, method: str, *params: Any) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    return httpx.post(f"{twin.base_url}/chains/{chain}/{component}", json=body, timeout=10)


def result(twin: TwinProcess, chain: str, component: str, method: str, *params: Any) -> Any:
    response = rpc(twin, chain, component, method, *params)
    response.raise_for_status()
    return response.json()["result"]


def test_chains_file_points_at_the_twin(twin_server: TwinProcess) -> None:
    entry = yaml.safe_load(twin_server.chains_file.read_text())["chains"][0]
    base = twin_server.base_url
    twin = ChainConfig(chain="twin")
    assert entry == {
        "id": "twin",
        "l2Rpc": f"{base}/chains/twin/op-geth",
        "opNodeRpc": f"{base}/chains/twin/op-node",
        "batcherRpc": f"{base}/chains/twin/op-batcher",
        "proposerRpc": f"{base}/chains/twin/op-proposer",
        "kubeconfig": str(twin_server.kubeconfig.resolve()),
        "namespace": "twin",
        "blockTimeS": 2,
        "l1Rpc": f"{base}/chains/twin/l1",
        "batcherAddress": twin.batcher_address,
        "proposerAddress": twin.proposer_address,
        "l2OutputOracleAddress": twin.l2_output_oracle_address,
    }
    # Every chain has accounts and an oracle of its own; the collector's parser takes the file.
    chains = load_chains(twin_server.chains_file)
    assert len({c.batcher_address for c in chains}) == len(chains)
    assert all(c.l2_output_oracle_address and c.l1_rpc for c in chains)


def test_official_client_reads_pods_logs_and_metrics(api: client.ApiClient, control: TwinControl) -> None:
    control.step("twin", 5)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod("twin", label_selector="app.kubernetes.io/name=op-geth")
    assert [p.metadata.name for p in pods.items] == ["op-geth-0"]
    geth = core.read_namespaced_pod("op-geth-0", "twin")
    status = geth.status.container_statuses[0]
    assert (geth.status.phase, status.name, status.ready, status.restart_count) == (
        "Running",
        "op-geth",
        True,
        0,
    )
    assert geth.spec.containers[0].resources.requests["cpu"] == "1"
    assert geth.metadata.labels["app.kubernetes.io/instance"] == "twin"

    all_pods = core.list_namespaced_pod("twin", label_selector="app.kubernetes.io/instance=twin")
    names = {p.metadata.labels["app.kubernetes.io/name"]: p.metadata.name for p in all_pods.items}
    assert set(names) == {"op-geth", "op-node", "op-batcher", "op-proposer"}
    assert names["op-node"] == "op-node-0"
    assert re.fullmatch(r"op-batcher-[a-z0-9]{10}-[a-z0-9]{5}", names["op-batcher"])

    log = core.read_namespaced_pod_log("op-geth-0", "twin", container="op-geth", tail_lines=3)
    lines = log.splitlines()
    assert len(lines) == 3
    assert any(
        "Imported new potential chain segment" in line or "Chain head was updated" in line for line in lines
    )
    node_log = core.read_namespaced_pod_log("op-node-0", "twin", tail_lines=50)
    assert 'msg="Sequencer inserted block"' in node_log

    metrics = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "twin", "pods"
    )
    usage = {m["metadata"]["name"]: m["containers"][0]["usage"] for m in metrics["items"]}
    assert usage["op-geth-0"]["cpu"].endswith("n")
    assert usage["op-geth-0"]["memory"].endswith("Ki")


def test_missing_objects_are_kubernetes_status_errors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("op-geth-7", "twin")
    assert missing.value.status == 404
    assert '"reason":"NotFound"' in missing.value.body.replace(" ", "")
    cpu = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "op-geth", "resources": {"requests": {"cpu": "lots"}}}]}
            }
        }
    }
    with pytest.raises(ApiException) as bad:
        client.AppsV1Api(api).patch_namespaced_stateful_set("op-geth", "twin", cpu)
    assert bad.value.status == 422


def test_cpu_patch_rolls_the_pod_and_relieves_saturation(
    api: client.ApiClient, control: TwinControl, twin_server: TwinProcess
) -> None:
    apps = client.AppsV1Api(api)
    control.inject("rollout", "cpu_spike", {"factor": 4})
    saturated = control.step("rollout", 20)
    assert saturated["cpu"]["saturation"] > 1
    assert saturated["txpool"]["pending"] > 100

    before = apps.read_namespaced_stateful_set("op-geth", "rollout")
    patched = apps.patch_namespaced_stateful_set(
        "op-geth",
        "rollout",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "op-geth", "resources": {"requests": {"cpu": "2500m"}}}]}
                }
            }
        },
    )
    assert patched.metadata.generation == before.metadata.generation + 1
    assert patched.status.observed_generation == patched.metadata.generation
    assert patched.status.ready_replicas == 0  # the new pod is starting
    assert patched.spec.template.spec.containers[0].ports  # strategic merge kept the rest of the container
    assert rpc(twin_server, "rollout", "op-geth", "eth_blockNumber").status_code == 503

    pod = client.CoreV1Api(api).read_namespaced_pod("op-geth-0", "rollout")
    assert pod.spec.containers[0].resources.requests["cpu"] == "2500m"
    assert pod.status.container_statuses[0].ready is False

    relieved = control.step("rollout", 40)
    assert relieved["cpu"]["saturation"] < 1
    assert relieved["txpool"]["pending"] < saturated["txpool"]["pending"]
    rolled = apps.read_namespaced_stateful_set("op-geth", "rollout")
    assert (rolled.status.ready_replicas, rolled.status.updated_replicas) == (1, 1)
    assert int(result(twin_server, "rollout", "op-geth", "eth_blockNumber"), 16) > int(
        saturated["heights"]["unsafeL2"]
    )


def test_deployment_patch_gives_a_new_pod_name(api: client.ApiClient, control: TwinControl) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    selector = "app.kubernetes.io/name=op-batcher"
    old = core.list_namespaced_pod("deploy", label_selector=selector).items[0].metadata.name
    patched = apps.patch_namespaced_deployment(
        "op-batcher",
        "deploy",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}},
    )
    assert patched.status.ready_replicas == 0
    control.step("deploy", 5)
    new = core.list_namespaced_pod("deploy", label_selector=selector).items[0]
    assert new.metadata.name != old and new.metadata.name.startswith("op-batcher-")
    assert new.status.container_statuses[0].ready
    assert apps.read_namespaced_deployment("op-batcher", "deploy").status.available_replicas == 1


def test_merge_patch_content_type_is_accepted(twin_server: TwinProcess) -> None:
    token = yaml.safe_load(twin_server.kubeconfig.read_text())["users"][0]["user"]["token"]
    url = f"{twin_server.base_url}/apis/apps/v1/namespaces/deploy/deployments/op-proposer"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    response = httpx.patch(
        url, headers=headers, content=b'{"metadata":{"labels":{"team":"sre"}}}', timeout=10
    )
    assert response.status_code == 200
    assert response.json()["metadata"]["labels"]["team"] == "sre"
    unauthorized = httpx.get(url, timeout=10)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["kind"] == "Status"


def test_op_geth_rpc_shapes(twin_server: TwinProcess, control: TwinControl) -> None:
    control.step("rpc", 3)
    block = result(twin_server, "rpc", "op-geth", "eth_getBlockByNumber", "latest", False)
    assert block["miner"] == "0x4200000000000000000000000000000000000011"
    assert len(block["transactions"]) >= 1
    assert all(block[k].startswith("0x") for k in ("number", "hash", "parentHash", "timestamp", "gasUsed"))
    pool = result(twin_server, "rpc", "op-geth", "txpool_status")
    assert set(pool) == {"pending", "queued"} and pool["pending"].startswith("0x")
    history = result(twin_server, "rpc", "op-geth", "eth_feeHistory", "0x5", "latest", [50, 90])
    assert len(history["baseFeePerGas"]) == 6 and len(history["reward"]) == 5
    assert result(twin_server, "rpc", "op-geth", "eth_syncing") is False
    unknown = rpc(twin_server, "rpc", "op-geth", "debug_metrics").json()
    assert unknown["error"]["code"] == -32601

    batch = httpx.post(
        f"{twin_server.base_url}/chains/rpc/op-geth",
        json=[
            {"jsonrpc": "2.0", "id": i, "method": m}
            for i, m in enumerate(("eth_blockNumber", "net_peerCount"))
        ],
        timeout=10,
    ).json()
    assert [r["id"] for r in batch] == [0, 1]


def test_op_node_rpc_shapes(twin_server: TwinProcess) -> None:
    status = result(twin_server, "rpc", "op-node", "optimism_syncStatus")
    assert isinstance(status["head_l1"]["number"], int)
    assert set(status["unsafe_l2"]) == {
        "hash",
        "number",
        "parentHash",
        "timestamp",
        "l1origin",
        "sequenceNumber",
    }
    assert status["unsafe_l2"]["number"] >= status["safe_l2"]["number"] >= status["finalized_l2"]["number"]
    peers = result(twin_server, "rpc", "op-node", "opp2p_peerStats")
    assert set(peers) == {
        "connected",
        "table",
        "blocksTopic",
        "blocksTopicV2",
        "blocksTopicV3",
        "banned",
        "known",
    }
    assert result(twin_server, "rpc", "op-node", "admin_sequencerActive") is True
    assert result(twin_server, "rpc", "op-batcher", "health_status")


def test_control_api_injects_and_clears(twin_server: TwinProcess, control: TwinControl) -> None:
    assert control.health()
    assert "incidents" in control.chains()
    incident = control.inject("incidents", "sequencer_stall")
    assert incident["kind"] == "sequencer_stall"
    head = control.state("incidents")["heights"]["unsafeL2"]
    stalled = control.step("incidents", 10)
    assert stalled["heights"]["unsafeL2"] == head
    assert [i["kind"] for i in stalled["incidents"]] == ["sequencer_stall"]
    assert control.clear("incidents", "sequencer_stall") == ["sequencer_stall"]
    assert control.step("incidents", 3)["heights"]["unsafeL2"] > head

    unknown = httpx.post(
        f"{twin_server.base_url}/control/chains/incidents/incidents", json={"kind": "meteor"}
    )
    assert unknown.status_code == 422
    assert "cpu_spike" in unknown.json()["kinds"]
    assert httpx.get(f"{twin_server.base_url}/control/chains/nope").status_code == 404
    with pytest.raises(httpx.HTTPStatusError):
        control.clear("incidents", "meteor")
    assert control.traffic("incidents", 2.0)["multiplier"] == 2.0


def test_oom_kill_is_visible_through_the_api(
    api: client.ApiClient, control: TwinControl, twin_server: TwinProcess
) -> None:
    core = client.CoreV1Api(api)
    control.inject("twin", "op_geth_oom", {"leakMiBPerTick": 1024})
    control.step("twin", 5)  # 3.2 GiB + 5 GiB crosses the 8 GiB limit
    pod = core.read_namespaced_pod("op-geth-0", "twin")
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.reason == "OOMKilled"
    assert status.last_state.terminated.exit_code == 137
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert rpc(twin_server, "twin", "op-geth", "eth_blockNumber").status_code == 503
    previous = core.read_namespaced_pod_log("op-geth-0", "twin", previous=True, tail_lines=5)
    assert "Imported new potential chain segment" in previous
    control.clear("twin")
    control.step("twin", 5)
    assert core.read_namespaced_pod("op-geth-0", "twin").status.container_statuses[0].ready


def test_l1_endpoint_answers_balances_and_the_oracle_until_an_l1_outage(
    twin_server: TwinProcess, control: TwinControl
) -> None:
    chain = ChainConfig(chain="l1")
    state = control.step("l1", 3)
    batch = httpx.post(
        f"{twin_server.base_url}/chains/l1/l1",
        json=[
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getBalance",
                "params": [chain.batcher_address, "latest"],
            },
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_getBalance",
                "params": [chain.proposer_address, "latest"],
            },
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "eth_call",
                "params": [{"to": chain.l2_output_oracle_address, "data": "0x4599c788"}, "latest"],
            },
        ],
        timeout=10,
    ).json()
    batcher, proposer, proposed = (int(answer["result"], 16) for answer in batch)
    assert (batcher, proposer) == (state["batcherBalanceWei"], state["proposerBalanceWei"])
    assert proposed == state["heights"]["proposedL2"]
    assert result(twin_server, "l1", "l1", "eth_chainId") == "0x384"

    # L1 is the provider's, not a pod of the chain: a chain RPC fault leaves it answering.
    control.rpc_fault("l1", "down")
    try:
        assert rpc(twin_server, "l1", "op-geth", "eth_blockNumber").status_code == 502
        assert result(twin_server, "l1", "l1", "eth_blockNumber") == hex(state["heights"]["l1Head"])
    finally:
        control.rpc_fault("l1", None)
    control.inject("l1", "l1_rpc_outage")
    try:
        down = rpc(twin_server, "l1", "l1", "eth_getBalance", chain.batcher_address, "latest")
        assert (down.status_code, down.text) == (503, "503 Service Unavailable")
    finally:
        control.clear("l1", "l1_rpc_outage")
    assert result(twin_server, "l1", "l1", "eth_getBalance", chain.batcher_address, "latest").startswith("0x")


def test_official_client_reads_the_kubelet_stats_summary_through_the_node_proxy(
    api: client.ApiClient, control: TwinControl
) -> None:
    core = client.CoreV1Api(api)
    node = core.read_namespaced_pod("op-geth-0", "l1").spec.node_name
    assert node == "l1-node-1"

    def summary_of(node: str) -> Any:
        # Raw, as the collector reads it: typed "str", the client would answer a Python dict's repr.
        # The path goes percent-encoded (stats%2Fsummary), as it does to a real API server.
        response = core.connect_get_node_proxy_with_path(node, "stats/summary", _preload_content=False)
        return json.loads(response.data)

    summary = summary_of(node)
    geth = next(p for p in summary["pods"] if p["podRef"]["name"] == "op-geth-0")
    (data,) = [v for v in geth["volume"] if v.get("pvcRef")]
    state = control.state("l1")
    assert data["availableBytes"] == state["diskFreeBytes"]
    assert data["capacityBytes"] == state["diskCapacityBytes"]

    with pytest.raises(ApiException) as missing:
        summary_of("nowhere-node-1")
    assert missing.value.status == 404
    control.kube_fault(verb="proxy", status=403, namespace="l1")
    with pytest.raises(ApiException) as forbidden:
        summary_of(node)
    assert forbidden.value.status == 403
    assert summary_of(node)["node"]["nodeName"] == node


def test_wall_clock_advances_the_chain(tmp_path: Path) -> None:
    twin = TwinProcess(tmp_path, chains=("clock",), block_time_s=1, speed=20).start()
    try:
        first = result(twin, "clock", "op-geth", "eth_blockNumber")
        eventually_sync(
            lambda: result(twin, "clock", "op-geth", "eth_blockNumber") != first,
            timeout_s=10,
            what="a block at 20x speed",
            every_s=0.05,
        )
    finally:
        twin.stop()
