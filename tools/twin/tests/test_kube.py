"""Kubernetes semantics the executor relies on: patch flavours, validation, selectors, quantities."""

from __future__ import annotations

import json
from random import Random

import pytest

from sentinai.twin import incidents, kube, sim
from sentinai.twin.model import DISK_CAPACITY_BYTES, ChainConfig, ChainState


@pytest.fixture
def state() -> ChainState:
    return sim.initial_state(ChainConfig(chain="twin"), Random(1))


def containers(body: list[dict[str, object]]) -> bytes:
    return json.dumps({"spec": {"template": {"spec": {"containers": body}}}}).encode()


def test_strategic_merge_merges_containers_by_name(state: ChainState) -> None:
    before = kube.initial_workload(state, "op-geth")
    patch = containers([{"name": "op-geth", "resources": {"requests": {"cpu": "2"}}}])
    after = kube.apply_patch(before, patch, kube.STRATEGIC)
    container = kube.container_of(after, "op-geth")
    assert container is not None
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert container["image"] == before["spec"]["template"]["spec"]["containers"][0]["image"]
    assert kube.validate(before, after, "op-geth")[0].cpu_request_m == 2000


def test_merge_patch_replaces_lists_and_null_deletes(state: ChainState) -> None:
    before = kube.initial_workload(state, "op-batcher")
    patch = containers([{"name": "op-batcher", "resources": {"requests": {"cpu": "250m"}}}])
    after = kube.apply_patch(before, patch, kube.MERGE)
    assert after["spec"]["template"]["spec"]["containers"] == [
        {"name": "op-batcher", "resources": {"requests": {"cpu": "250m"}}}
    ]
    removed = kube.apply_patch(before, b'{"spec": {"strategy": null}}', kube.MERGE)
    assert "strategy" not in removed["spec"]


def test_json_patch_replaces_a_path(state: ChainState) -> None:
    before = kube.initial_workload(state, "op-geth")
    ops = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/resources/requests/cpu", "value": "1500m"}
    ]
    after = kube.apply_patch(before, json.dumps(ops).encode(), kube.JSON_PATCH)
    assert kube.validate(before, after, "op-geth")[0].cpu_request_m == 1500
    with pytest.raises(kube.KubeError) as missing:
        kube.apply_patch(before, b'[{"op": "replace", "path": "/spec/nope/x", "value": 1}]', kube.JSON_PATCH)
    assert missing.value.code == 422


@pytest.mark.parametrize(
    ("requests", "limits", "field"),
    [
        ({"cpu": "lots"}, {}, "resources"),
        ({"cpu": "3"}, {"cpu": "2"}, "requests"),
        ({"memory": "9Gi"}, {"memory": "8Gi"}, "requests"),
    ],
    ids=["bad-quantity", "cpu-over-limit", "memory-over-limit"],
)
def test_invalid_resources_are_422(
    state: ChainState, requests: dict[str, str], limits: dict[str, str], field: str
) -> None:
    before = kube.initial_workload(state, "op-geth")
    resources = {"requests": requests, "limits": limits}
    after = kube.apply_patch(
        before, containers([{"name": "op-geth", "resources": resources}]), kube.STRATEGIC
    )
    with pytest.raises(kube.KubeError) as invalid:
        kube.validate(before, after, "op-geth")
    assert invalid.value.code == 422
    assert field in invalid.value.message
    assert invalid.value.status()["reason"] == "Invalid"


def test_selector_is_immutable(state: ChainState) -> None:
    before = kube.initial_workload(state, "op-node")
    after = kube.apply_patch(before, b'{"spec": {"selector": {"matchLabels": {"a": "b"}}}}', kube.STRATEGIC)
    with pytest.raises(kube.KubeError, match="immutable"):
        kube.validate(before, after, "op-node")


def test_unsupported_patch_type_is_415(state: ChainState) -> None:
    with pytest.raises(kube.KubeError) as unsupported:
        kube.apply_patch(kube.initial_workload(state, "op-node"), b"{}", "application/apply-patch+yaml")
    assert unsupported.value.code == 415


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ("app.kubernetes.io/name=op-geth", True),
        ("app.kubernetes.io/name==op-geth,app.kubernetes.io/instance=twin", True),
        ("app.kubernetes.io/name=op-node", False),
        ("app.kubernetes.io/name!=op-geth", False),
        ("app.kubernetes.io/name", True),
        ("!app.kubernetes.io/name", False),
        ("app.kubernetes.io/name in (op-node,op-geth)", True),
        ("app.kubernetes.io/name in (op-node, op-batcher)", False),
        ("app.kubernetes.io/name in (op-node,op-geth),app.kubernetes.io/instance=other", False),
        ("app.kubernetes.io/name notin (op-node,op-geth)", False),
        ("app.kubernetes.io/name notin (op-node)", True),
        ("app.kubernetes.io/part-of notin (sentinai)", True),
        ("app.kubernetes.io/part-of in (sentinai)", False),
    ],
)
def test_label_selectors(selector: str | None, expected: bool) -> None:
    labels = {"app.kubernetes.io/name": "op-geth", "app.kubernetes.io/instance": "twin"}
    assert kube.matches(labels, selector) is expected


@pytest.mark.parametrize(
    ("text", "millis"), [("2", 2000), ("2000m", 2000), ("1500m", 1500), ("0.5", 500), ("250000000n", 250)]
)
def test_a_patched_cpu_request_is_read_in_millicores(state: ChainState, text: str, millis: int) -> None:
    before = kube.initial_workload(state, "op-geth")
    patch = containers([{"name": "op-geth", "resources": {"requests": {"cpu": text}}}])
    after = kube.apply_patch(before, patch, kube.STRATEGIC)
    assert kube.validate(before, after, "op-geth")[0].cpu_request_m == millis


def test_quantities_are_rendered_in_the_api_servers_forms(state: ChainState) -> None:
    """Requests and limits as the API server echoes them, usage as metrics-server reports it."""
    before = kube.initial_workload(state, "op-geth")
    patch = containers([{"name": "op-geth", "resources": {"requests": {"memory": "512Mi"}, "limits": {}}}])
    resources, _ = kube.validate(before, kube.apply_patch(before, patch, kube.STRATEGIC), "op-geth")
    assert resources.memory_request == 512 * 2**20
    assert kube.resources_json(resources)["requests"] == {"cpu": "1", "memory": "512Mi"}
    metrics = kube.pod_metrics(state, "op-geth")
    assert metrics is not None
    usage = metrics["containers"][0]["usage"]
    assert usage["cpu"].endswith("n") and usage["memory"].endswith("Ki")
    with pytest.raises(kube.KubeError) as invalid:
        bad = containers([{"name": "op-geth", "resources": {"requests": {"cpu": "12 cores"}}}])
        kube.validate(before, kube.apply_patch(before, bad, kube.STRATEGIC), "op-geth")
    assert invalid.value.code == 422


def test_stats_summary_reports_op_geths_data_volume_from_the_disk_it_has(state: ChainState) -> None:
    summary = kube.stats_summary(state)
    assert summary["node"]["nodeName"] == kube.node_name("twin")
    pods = {p["podRef"]["name"]: p for p in summary["pods"]}
    assert set(pods) == {state.pods[c].name("twin") for c in state.pods}
    pod = kube.render_pod(state, kube.initial_workload(state, "op-geth"), "op-geth")
    geth = pods["op-geth-0"]
    assert geth["podRef"] == {"name": "op-geth-0", "namespace": "twin", "uid": pod["metadata"]["uid"]}
    assert pod["spec"]["nodeName"] == kube.node_name("twin")
    (data,) = [v for v in geth["volume"] if "pvcRef" in v]
    assert data["pvcRef"] == {"name": "data-op-geth-0", "namespace": "twin"}
    assert data["capacityBytes"] == DISK_CAPACITY_BYTES
    assert data["availableBytes"] == state.disk_free_bytes
    assert data["usedBytes"] + data["availableBytes"] == data["capacityBytes"]
    # The other pods have only their secret and token volumes: no data volume of their own.
    assert not any("pvcRef" in v for p in summary["pods"] if p is not geth for v in p["volume"])


def test_disk_pressure_fills_op_geths_data_volume() -> None:
    rng = Random(2)
    state = sim.initial_state(ChainConfig(chain="twin"), rng)
    state = sim.inject(state, incidents.make("disk_pressure", {"freeGiB": 1.5}, tick=0))
    state, _lines = sim.step(state, rng)
    geth = next(p for p in kube.stats_summary(state)["pods"] if p["podRef"]["name"] == "op-geth-0")
    (data,) = [v for v in geth["volume"] if v["name"] == "data"]
    assert data["availableBytes"] == int(1.5 * 2**30)
    assert data["usedBytes"] / data["capacityBytes"] > 0.99
