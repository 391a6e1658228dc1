"""Render deploy/k8s overlays: with a real kustomize when one is installed, else with a small stand-in.

The stand-in implements only what deploy/k8s uses — ``resources`` (files and directories),
``components``, ``patches`` given by ``path`` (strategic merge, target found by kind, namespace and
name), ``replicas``, ``images``, ``secretGenerator`` literals with ``disableNameSuffixHash`` — and
refuses any other field, so a manifest change that needs more fails loudly instead of rendering
something kustomize would not. Where a kustomize binary exists, a test renders every overlay both
ways and requires the same objects.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

_KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "replicas",
    "images",
    "secretGenerator",
    "generatorOptions",
}
# patchMergeKey of the list fields our patches touch (from the Kubernetes API types); every other
# list is replaced, as a strategic merge patch does for lists without a merge key.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "topologySpreadConstraints": "topologyKey",
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class UnsupportedError(ValueError):
    """The kustomization uses a feature the stand-in does not implement."""


@cache
def kustomize_command() -> tuple[str, ...] | None:
    """``kustomize build`` or ``kubectl kustomize`` (kustomize v4 or newer: components), if installed."""
    if shutil.which("kustomize"):
        return ("kustomize", "build")
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "version", "--client"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        match = re.search(r"Kustomize Version: v(\d+)", out)
        if match and int(match.group(1)) >= 4:
            return ("kubectl", "kustomize")
    return None


def render_with_binary(path: Path) -> list[Doc]:
    command = kustomize_command()
    if command is None:
        raise RuntimeError("no kustomize binary installed")
    result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {path} failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(path: Path) -> list[Doc]:
    """The overlay's objects, from kustomize where installed, else from the stand-in."""
    return render_with_binary(path) if kustomize_command() else build(path)


def ident(doc: Doc) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def build(path: Path) -> list[Doc]:
    """Build a Kustomization directory (the stand-in)."""
    spec = _load(path, "Kustomization")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        _add(docs, _resource(path / entry))
    for entry in spec.get("components", []):
        component = path / entry
        cspec = _load(component, "Component")
        for item in cspec.get("resources", []):
            _add(docs, _resource(component / item))
        _transform(docs, cspec, component)
    _add(docs, _generate(spec))
    _transform(docs, spec, path)
    return docs


def _load(path: Path, kind: str) -> Doc:
    spec: Doc = yaml.safe_load((path / "kustomization.yaml").read_text())
    if spec.get("kind", "Kustomization") != kind:
        raise UnsupportedError(f"{path}: expected a {kind}, found {spec.get('kind')}")
    unknown = set(spec) - _KUSTOMIZATION_FIELDS
    if unknown:
        raise UnsupportedError(f"{path}: fields the stand-in does not implement: {sorted(unknown)}")
    return spec


def _resource(path: Path) -> list[Doc]:
    if path.is_dir():
        return build(path)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _add(docs: list[Doc], new: Iterable[Doc]) -> None:
    seen = {ident(doc) for doc in docs}
    for doc in new:
        if ident(doc) in seen:
            raise ValueError(f"duplicate object {ident(doc)}")
        seen.add(ident(doc))
        docs.append(doc)


def _generate(spec: Doc) -> list[Doc]:
    options = spec.get("generatorOptions", {})
    generators = spec.get("secretGenerator", [])
    if generators and options != {"disableNameSuffixHash": True}:
        raise UnsupportedError("secretGenerator without disableNameSuffixHash: true (name hashes)")
    out = []
    for gen in generators:
        if set(gen) - {"name", "namespace", "literals"}:
            raise UnsupportedError(f"secretGenerator fields: {sorted(gen)}")
        data = {}
        for literal in gen["literals"]:
            key, _, value = literal.partition("=")
            data[key] = base64.b64encode(value.encode()).decode()
        meta = {"name": gen["name"]} | ({"namespace": gen["namespace"]} if "namespace" in gen else {})
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data})
    return out


def _transform(docs: list[Doc], spec: Doc, path: Path) -> None:
    for patch_ref in spec.get("patches", []):
        if set(patch_ref) != {"path"}:
            raise UnsupportedError(f"{path}: patch fields {sorted(patch_ref)} (only `path`)")
        for patch in yaml.safe_load_all((path / patch_ref["path"]).read_text()):
            _apply_patch(docs, patch)
    for rep in spec.get("replicas", []):
        targets = [d for d in docs if d["kind"] in _WORKLOADS and d["metadata"]["name"] == rep["name"]]
        if not targets:
            raise ValueError(f"replicas: no workload named {rep['name']}")
        for doc in targets:
            doc["spec"]["replicas"] = rep["count"]
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                _retag(container, image)


def _apply_patch(docs: list[Doc], patch: Doc) -> None:
    key = ident(patch)
    for i, doc in enumerate(docs):
        if ident(doc) == key:
            docs[i] = _merge(doc, patch)
            return
    raise ValueError(f"patch target not found: {key}")


def _merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v, k) if k in base and v is not None else copy.deepcopy(v)
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(base, list) and isinstance(patch, list) and field in _MERGE_KEYS:
        # kustomize (kyaml) puts the patch's items first, in patch order, then the untouched rest.
        merge_key = _MERGE_KEYS[field]
        existing = {item.get(merge_key): item for item in base}
        patched = [_merge(existing[i[merge_key]], i) if i[merge_key] in existing else i for i in patch]
        keys = {item[merge_key] for item in patch}
        return [*copy.deepcopy(patched), *(item for item in base if item.get(merge_key) not in keys)]
    return copy.deepcopy(patch)


def _containers(doc: Doc) -> list[Doc]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def _retag(container: Doc, image: Doc) -> None:
    ref = container["image"]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if name != image["name"]:
        return
    new_name = image.get("newName", name)
    new_tag = image.get("newTag", tag)
    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
