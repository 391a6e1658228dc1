"""PATCH bodies applied to plain dicts: strategic merge, JSON merge (RFC 7386) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from sentinai.twin.kube.errors import KubeError, Obj

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
