"""Pods rendered from the simulation (spec from the workload's template, status from the process) and
metrics-server's PodMetrics of them."""

from __future__ import annotations

import copy

from sentinai.common import quantity
from sentinai.twin.kube.errors import Obj
from sentinai.twin.kube.meta import INSTANCE_LABEL, NAME_LABEL, node_name, timestamp, uid
from sentinai.twin.model import ChainState, Component, Pod, digest


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
        owner = {"kind": "ReplicaSet", "name": rs, "uid": uid(chain, "ReplicaSet", rs)}
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
            "uid": uid(chain, "pod", component, pod.incarnation),
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
