"""Workloads (a StatefulSet or a Deployment per component): as applied, validated after a patch, and
rendered with the status the simulation gives them."""

from __future__ import annotations

import copy
from typing import Final

from sentinai.common import quantity
from sentinai.twin.kube.errors import KubeError, Obj
from sentinai.twin.kube.meta import INSTANCE_LABEL, NAME_LABEL, kind_of, timestamp, uid
from sentinai.twin.model import ChainState, Component, Resources

IMAGES: Final[dict[Component, str]] = {
    "op-geth": "us-docker.pkg.dev/oplabs-tools-artifacts/images/op-geth:v1.101503.2",
    "op-node": "us-docker.pkg.dev/oplabs-tools-artifacts/images/op-node:v1.13.2",
    "op-batcher": "us-docker.pkg.dev/oplabs-tools-artifacts/images/op-batcher:v1.13.2",
    "op-proposer": "us-docker.pkg.dev/oplabs-tools-artifacts/images/op-proposer:v1.13.2",
}
PORTS: Final[dict[Component, list[Obj]]] = {
    "op-geth": [
        {"name": "rpc", "containerPort": 8545, "protocol": "TCP"},
        {"name": "authrpc", "containerPort": 8551, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 6060, "protocol": "TCP"},
    ],
    "op-node": [
        {"name": "rpc", "containerPort": 9545, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 7300, "protocol": "TCP"},
    ],
    "op-batcher": [{"name": "rpc", "containerPort": 8548, "protocol": "TCP"}],
    "op-proposer": [{"name": "rpc", "containerPort": 8560, "protocol": "TCP"}],
}


def resources_json(res: Resources) -> Obj:
    requests = {
        "cpu": quantity.format_cpu(res.cpu_request_m),
        "memory": quantity.format_memory(res.memory_request),
    }
    limits: Obj = {}
    if res.cpu_limit_m is not None:
        limits["cpu"] = quantity.format_cpu(res.cpu_limit_m)
    if res.memory_limit is not None:
        limits["memory"] = quantity.format_memory(res.memory_limit)
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def initial_workload(state: ChainState, component: Component) -> Obj:
    """The workload as it was applied by the chain's operator (status is rendered on read)."""
    chain = state.config.chain
    labels = {NAME_LABEL: component, INSTANCE_LABEL: chain}
    kind = kind_of(component)
    spec: Obj = {
        "replicas": 1,
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "containers": [
                    {
                        "name": component,
                        "image": IMAGES[component],
                        "ports": copy.deepcopy(PORTS[component]),
                        "resources": resources_json(state.pods[component].resources),
                    }
                ],
                "terminationGracePeriodSeconds": 30,
            },
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = component
        spec["podManagementPolicy"] = "OrderedReady"
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    else:
        spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": component,
            "namespace": chain,
            "uid": uid(chain, kind, component),
            "generation": 1,
            "creationTimestamp": timestamp(state.config.epoch_s - 86_400),
            "labels": dict(labels),
        },
        "spec": spec,
    }


def container_of(workload: Obj, component: Component) -> Obj | None:
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return next((c for c in containers if isinstance(c, dict) and c.get("name") == component), None)


def validate(before: Obj, after: Obj, component: Component) -> tuple[Resources, int]:
    """The resources and replicas of a patched workload, or the API server's 422 for it."""
    kind = before["kind"]
    name = before["metadata"]["name"]

    def invalid(field: str, message: str) -> KubeError:
        return KubeError(
            422,
            "Invalid",
            f'{kind}.apps "{name}" is invalid: {field}: {message}',
            details={
                "name": name,
                "group": "apps",
                "kind": kind.lower() + "s",
                "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
            },
        )

    if after.get("spec", {}).get("selector") != before["spec"]["selector"]:
        raise invalid("spec.selector", "Invalid value: field is immutable")
    replicas = after["spec"].get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= 1:
        raise invalid("spec.replicas", f"Invalid value: {replicas!r}: the twin runs 0 or 1 replica")
    container = container_of(after, component)
    if container is None:
        raise invalid("spec.template.spec.containers", f"Required value: container {component!r}")
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    field = "spec.template.spec.containers[0].resources"
    try:
        cpu_limit = quantity.millicores(limits["cpu"]) if "cpu" in limits else None
        memory_limit = quantity.byte_count(limits["memory"]) if "memory" in limits else None
        # As in Kubernetes, a request left out defaults to the limit.
        cpu_request = quantity.millicores(requests["cpu"]) if "cpu" in requests else cpu_limit
        memory_request = quantity.byte_count(requests["memory"]) if "memory" in requests else memory_limit
    except quantity.InvalidQuantityError as exc:
        raise invalid(field, f"Invalid value: {exc}") from exc
    if cpu_request is None or cpu_request <= 0:
        raise invalid(field + ".requests.cpu", "Required value: the twin needs a positive CPU request")
    if cpu_limit is not None and cpu_request > cpu_limit:
        raise invalid(
            field + ".requests",
            f"Invalid value: {requests['cpu']!r}: must be less than or equal to cpu limit",
        )
    if memory_limit is not None and memory_request is not None and memory_request > memory_limit:
        raise invalid(field + ".requests", "Invalid value: must be less than or equal to memory limit")
    resources = Resources(
        cpu_request_m=cpu_request,
        memory_request=memory_request or 0,
        cpu_limit_m=cpu_limit,
        memory_limit=memory_limit,
    )
    return resources, replicas


def render_workload(state: ChainState, workload: Obj, component: Component) -> Obj:
    pod = state.pods[component]
    out = copy.deepcopy(workload)
    generation = out["metadata"]["generation"]
    replicas = pod.replicas
    ready = 1 if pod.ready else 0
    out["metadata"]["resourceVersion"] = str(generation * 1_000_000 + state.tick)
    status: Obj = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    if out["kind"] == "StatefulSet":
        revision = f"{component}-{pod.template_hash(state.config.chain)}"
        status |= {
            "currentReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
    else:
        now = timestamp(state.now)
        if replicas - ready:
            status["unavailableReplicas"] = replicas - ready
        status["conditions"] = [
            {
                "type": "Available",
                "status": "True" if ready == replicas else "False",
                "reason": "MinimumReplicasAvailable" if ready == replicas else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if ready == replicas
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if ready == replicas else "ReplicaSetUpdated",
                "message": f'ReplicaSet "{component}-{pod.template_hash(state.config.chain)}" '
                + ("has successfully progressed." if ready == replicas else "is progressing."),
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
        ]
    out["status"] = status
    return out
