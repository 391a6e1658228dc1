"""Kubernetes objects of a twin chain: workloads, pods, pod metrics, the kubelet stats summary of its
node, Status errors and patching.

Everything here is pure: objects are rendered from the simulation state and the stored workload
specs, and patches (strategic merge, JSON merge, JSON patch) are applied to plain dicts.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sentinai.twin import quantity
from sentinai.twin.model import DISK_CAPACITY_BYTES, STATEFUL, ChainState, Component, Pod, Resources, digest

Obj = dict[str, Any]

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
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
# Strategic merge patch merges these lists item by item on the named key (as the API server does
# for core types); every other list is replaced whole.
MERGE_KEYS: Final[dict[str, str]] = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumes": "name",
}
STRATEGIC: Final = "application/strategic-merge-patch+json"
MERGE: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"


class KubeError(Exception):
    """An API error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, *, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return status_object(self.code, self.reason, self.message, details=self.details)


def status_object(code: int, reason: str, message: str, *, details: Obj | None = None) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(resource: str, name: str, *, group: str = "") -> KubeError:
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource, **({"group": group} if group else {})}
    return KubeError(404, "NotFound", f'{qualified} "{name}" not found', details=details)


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(*parts: object) -> str:
    return str(uuid.UUID(digest(*parts)[2:34]))


def node_name(chain: str) -> str:
    """The node a chain's pods are scheduled on: one per chain."""
    return f"{chain}-node-1"


def kind_of(component: Component) -> str:
    return "StatefulSet" if component in STATEFUL else "Deployment"


# --- workloads -----------------------------------------------------------------------------------


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
            "uid": _uid(chain, kind, component),
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


# --- pods ----------------------------------------------------------------------------------------


def render_pod(state: ChainState, workload: Obj, component: Component) -> Obj:
    pod = state.pods[component]
    chain = state.config.chain
    name = pod.name(chain)
    template = workload["spec"]["template"]
    labels = dict(template.get("metadata", {}).get("labels", {}))
    kind = workload["kind"]
    if kind == "StatefulSet":
        labels["controller-revision-hash"] = f"{component}-{pod.template_hash(chain)}"
        labels["statefulset.kubernetes.io/pod-name"] = name
        owner = {"kind": "StatefulSet", "name": component, "uid": workload["metadata"]["uid"]}
    else:
        labels["pod-template-hash"] = pod.template_hash(chain)
        rs = f"{component}-{pod.template_hash(chain)}"
        owner = {"kind": "ReplicaSet", "name": rs, "uid": _uid(chain, "ReplicaSet", rs)}
    spec = copy.deepcopy(template["spec"])
    spec |= {
        "nodeName": node_name(chain),
        "restartPolicy": "Always",
        "serviceAccountName": "default",
        "schedulerName": "default-scheduler",
        "dnsPolicy": "ClusterFirst",
    }
    if kind == "StatefulSet":
        spec |= {"hostname": name, "subdomain": workload["spec"].get("serviceName", component)}
    created = timestamp(state.time_at(pod.created_tick))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": chain,
            "uid": _uid(chain, "pod", component, pod.incarnation),
            "resourceVersion": str(state.tick + 1),
            "creationTimestamp": created,
            "labels": labels,
            "annotations": dict(template.get("metadata", {}).get("annotations", {})),
            "ownerReferences": [
                {"apiVersion": "apps/v1", **owner, "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": spec,
        "status": _pod_status(state, pod, spec, created),
    }


def _pod_status(state: ChainState, pod: Pod, spec: Obj, created: str) -> Obj:
    chain = state.config.chain
    ready = pod.ready
    now = timestamp(state.now)
    started = timestamp(state.time_at(pod.started_tick))
    image = next((c.get("image", "") for c in spec["containers"] if c.get("name") == pod.component), "")
    container: Obj = {
        "name": pod.component,
        "image": image,
        "imageID": image.split(":")[0] + "@sha256:" + digest("image", image)[2:],
        "containerID": f"containerd://{digest(chain, pod.component, pod.incarnation, pod.restart_count)[2:]}",
        "ready": ready,
        "started": ready,
        "restartCount": pod.restart_count,
    }
    if ready:
        container["state"] = {"running": {"startedAt": started}}
    else:
        waiting: Obj = {"reason": pod.waiting_reason}
        if pod.waiting_reason == "CrashLoopBackOff":
            waiting["message"] = (
                f"back-off 10s restarting failed container={pod.component} pod={pod.name(chain)}"
            )
        container["state"] = {"waiting": waiting}
    if pod.last_terminated is not None:
        t = pod.last_terminated
        container["lastState"] = {
            "terminated": {
                "exitCode": t.exit_code,
                "reason": t.reason,
                "startedAt": timestamp(state.time_at(t.started_tick)),
                "finishedAt": timestamp(state.time_at(t.finished_tick)),
                "containerID": "containerd://"
                + digest(chain, pod.component, pod.incarnation, pod.restart_count - 1)[2:],
            }
        }
    else:
        container["lastState"] = {}
    fresh = pod.restart_count == 0 and not ready  # a brand-new pod still creating its container
    flag = "True" if ready else "False"
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
        {"type": "Initialized", "status": "True", "lastTransitionTime": created},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now if not ready else started},
        {"type": "Ready", "status": flag, "lastTransitionTime": now if not ready else started},
    ]
    if not ready:
        for cond in conditions[2:]:
            cond |= {
                "reason": "ContainersNotReady",
                "message": f"containers with unready status: [{pod.component}]",
            }
    return {
        "phase": "Pending" if fresh else "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.11",
        "podIP": f"10.42.0.{10 + list(state.pods).index(pod.component)}",
        "startTime": created,
        "qosClass": "Burstable",
        "containerStatuses": [container],
    }


def pod_metrics(state: ChainState, component: Component) -> Obj | None:
    """metrics-server's PodMetrics; ``None`` while the container is not running (no sample yet)."""
    pod = state.pods[component]
    if not pod.ready:
        return None
    chain = state.config.chain
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": pod.name(chain),
            "namespace": chain,
            "creationTimestamp": timestamp(state.now),
            "labels": {NAME_LABEL: component, INSTANCE_LABEL: chain},
        },
        "timestamp": timestamp(state.now),
        "window": f"{max(10, state.config.block_time_s * 5)}s",
        "containers": [
            {
                "name": component,
                "usage": {
                    "cpu": quantity.format_usage_cpu(pod.cpu_cores),
                    "memory": quantity.format_usage_memory(pod.memory_bytes),
                },
            }
        ],
    }


# --- the kubelet's stats summary (GET /api/v1/nodes/{node}/proxy/stats/summary) --------------------

_NODE_FS_BYTES: Final = 200 * quantity.GI
_TMPFS_BYTES: Final = 8 * quantity.GI  # what a secret or projected volume's tmpfs reports as capacity


def _fs(at: str, *, capacity: int, used: int, inodes: int = 33_554_432) -> Obj:
    inodes_used = max(1, used // (1 << 20))
    return {
        "time": at,
        "availableBytes": capacity - used,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": inodes - inodes_used,
        "inodes": inodes,
        "inodesUsed": inodes_used,
    }


def _volumes(state: ChainState, pod: Pod, at: str) -> list[Obj]:
    chain = state.config.chain
    token = f"kube-api-access-{digest(chain, pod.component, 'token')[2:7]}"
    volumes = [{**_fs(at, capacity=_TMPFS_BYTES, used=12_288, inodes=2_097_152), "name": token}]
    if pod.component in STATEFUL:
        volumes.append({**_fs(at, capacity=_TMPFS_BYTES, used=4_096, inodes=2_097_152), "name": "jwt-secret"})
    if pod.component == "op-geth":
        # The StatefulSet's volumeClaimTemplate "data": the chain database.
        used = DISK_CAPACITY_BYTES - min(state.disk_free_bytes, DISK_CAPACITY_BYTES)
        claim = {"name": f"data-{pod.name(chain)}", "namespace": chain}
        volumes.append({**_fs(at, capacity=DISK_CAPACITY_BYTES, used=used), "name": "data", "pvcRef": claim})
    return volumes


def _pod_stats(state: ChainState, pod: Pod, at: str) -> Obj:
    chain = state.config.chain
    cpu = {"time": at, "usageNanoCores": int(pod.cpu_cores * 1e9)}
    memory = {"time": at, "workingSetBytes": pod.memory_bytes, "usageBytes": pod.memory_bytes}
    container = {
        "name": pod.component,
        "startTime": timestamp(state.time_at(pod.started_tick)),
        "cpu": cpu,
        "memory": memory,
    }
    return {
        "podRef": {
            "name": pod.name(chain),
            "namespace": chain,
            "uid": _uid(chain, "pod", pod.component, pod.incarnation),
        },
        "startTime": timestamp(state.time_at(pod.created_tick)),
        # A container that is not running has no stats yet; the pod's volumes are there all the same.
        "containers": [container] if pod.ready else [],
        "cpu": cpu,
        "memory": memory,
        "volume": _volumes(state, pod, at),
        "ephemeral-storage": _fs(at, capacity=_NODE_FS_BYTES, used=48 * quantity.MI),
    }


def stats_summary(state: ChainState) -> Obj:
    """The kubelet's ``Summary`` of the chain's node: the node, then each of its pods with volumes.

    op-geth's ``data`` volume is the chain database: its free space is the simulation's, so a
    ``disk_pressure`` incident fills it.
    """
    at = timestamp(state.now)
    pods = [p for p in state.pods.values() if p.exists]
    used_cores = sum(p.cpu_cores for p in pods)
    used_memory = sum(p.memory_bytes for p in pods)
    return {
        "node": {
            "nodeName": node_name(state.config.chain),
            "systemContainers": [],
            "startTime": timestamp(state.config.epoch_s - 86_400),
            "cpu": {"time": at, "usageNanoCores": int((0.2 + used_cores) * 1e9)},
            "memory": {"time": at, "workingSetBytes": 900 * quantity.MI + used_memory},
            "fs": _fs(at, capacity=_NODE_FS_BYTES, used=61 * quantity.GI),
        },
        "pods": [_pod_stats(state, pod, at) for pod in pods],
    }


_SET_TERM: Final = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*")


_TERM_SPLIT: Final = re.compile(r",(?![^(]*\))")  # a comma outside ``in (a,b)`` sets


@functools.lru_cache(maxsize=256)
def _selector_terms(selector: str) -> tuple[str, ...]:
    """The comma-joined terms of a selector (parsed once: collectors send the same one every poll)."""
    return tuple(t.strip() for t in _TERM_SPLIT.split(selector) if t.strip())


def matches(labels: dict[str, str], selector: str | None) -> bool:
    """Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``."""
    if not selector:
        return True
    for term in _selector_terms(selector):
        if (found := _SET_TERM.fullmatch(term)) is not None:
            values = {v.strip() for v in found.group(3).split(",")}
            # A missing label is "not in" any set.
            if (labels.get(found.group(1)) in values) != (found.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


# --- patches -------------------------------------------------------------------------------------


def apply_patch(target: Obj, body: bytes, content_type: str) -> Obj:
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    try:
        patch = json.loads(body)
    except ValueError as exc:
        raise KubeError(400, "BadRequest", f"error decoding patch: {exc}") from exc
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise KubeError(400, "BadRequest", "json patch must be a list of operations")
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise KubeError(400, "BadRequest", "patch body must be a JSON object")
    if media == STRATEGIC:
        merged: Obj = strategic_merge(target, patch)
        return merged
    if media == MERGE:
        merged = merge_patch(target, patch)
        return merged
    raise KubeError(
        415, "UnsupportedMediaType", f"the media type {content_type!r} is not supported for PATCH"
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge(target: Any, patch: Any, *, key: str = "") -> Any:
    """Kubernetes strategic merge for the fields a workload patch touches."""
    if isinstance(patch, list):
        merge_key = MERGE_KEYS.get(key)
        if merge_key is None or not isinstance(target, list):
            return copy.deepcopy(patch)
        return _merge_list(target, patch, merge_key=merge_key)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if name.startswith("$"):  # $setElementOrder, $retainKeys: ordering hints we can ignore
            continue
        if value is None:
            out.pop(name, None)
        else:
            out[name] = strategic_merge(out.get(name), value, key=name)
    return out


def _merge_list(target: list[Any], patch: list[Any], *, merge_key: str) -> list[Any]:
    out = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KubeError(400, "BadRequest", f"map in list must contain the merge key {merge_key!r}")
        index = next((i for i, cur in enumerate(out) if cur.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(strategic_merge({}, item))
        else:
            out[index] = strategic_merge(out[index], item)
    return out


def json_patch(target: Obj, ops: list[Any]) -> Obj:
    """RFC 6902 add / replace / remove / test."""
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise KubeError(400, "BadRequest", f"invalid json patch operation {op!r}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
        if not parts:
            raise KubeError(422, "Invalid", "json patch cannot replace the whole object")
        parent = doc
        try:
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            last = parts[-1]
            match op["op"]:
                case "add" | "replace" if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if op["op"] == "add":
                        parent.insert(index, op["value"])
                    else:
                        parent[index] = op["value"]
                case "add":
                    parent[last] = op["value"]
                case "replace":
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
                case "remove":
                    del parent[int(last) if isinstance(parent, list) else last]
                case "test":
                    current = parent[int(last)] if isinstance(parent, list) else parent[last]
                    if current != op.get("value"):
                        raise KubeError(422, "Invalid", f"test operation failed at {op['path']}")
                case other:
                    raise KubeError(400, "BadRequest", f"unsupported json patch op {other!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise KubeError(422, "Invalid", f"json patch path {op['path']!r} does not exist") from exc
    result: Obj = doc
    return result
