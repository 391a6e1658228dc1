"""Kubernetes objects of a twin chain: workloads, pods, pod metrics, the kubelet stats summary of its
node, Status errors and patching.

Everything here is pure: objects are rendered from the simulation state and the stored workload
specs, and patches (strategic merge, JSON merge, JSON patch) are applied to plain dicts. This module
is the surface the rest of the twin (and the eval) uses; each part lives in a module of its own.
"""

from sentinai.twin.kube.errors import KubeError, Obj, not_found, status_object
from sentinai.twin.kube.meta import INSTANCE_LABEL, NAME_LABEL, kind_of, node_name, timestamp
from sentinai.twin.kube.patch import (
    JSON_PATCH,
    MERGE,
    MERGE_KEYS,
    STRATEGIC,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge,
)
from sentinai.twin.kube.pods import pod_metrics, render_pod
from sentinai.twin.kube.selectors import matches
from sentinai.twin.kube.stats import stats_summary
from sentinai.twin.kube.workloads import (
    IMAGES,
    PORTS,
    container_of,
    initial_workload,
    render_workload,
    resources_json,
    validate,
)

__all__ = [
    "IMAGES",
    "INSTANCE_LABEL",
    "JSON_PATCH",
    "MERGE",
    "MERGE_KEYS",
    "NAME_LABEL",
    "PORTS",
    "STRATEGIC",
    "KubeError",
    "Obj",
    "apply_patch",
    "container_of",
    "initial_workload",
    "json_patch",
    "kind_of",
    "matches",
    "merge_patch",
    "node_name",
    "not_found",
    "pod_metrics",
    "render_pod",
    "render_workload",
    "resources_json",
    "stats_summary",
    "status_object",
    "strategic_merge",
    "timestamp",
    "validate",
]
