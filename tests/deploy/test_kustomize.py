"""deploy/k8s: every overlay renders, passes the Kubernetes schemas, and keeps its security promises."""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    ROOT,
    SERVICES,
    accepted_env,
    default_port,
    health_path,
    http_port_env,
)
from kustomize_lite import Doc, build, ident, kustomize_command, render, render_with_binary

from sentinai.cli import natsusers
from sentinai.common.chains import parse_chains

K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes minor EKS still supports in standard support when this was written.
K8S_VERSION = "1.33.0"
OVERLAYS = ("local", "eks")
TARGET_NAMESPACE = "op-stack"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}
KUBE_API_CLIENTS = {"collector", "executor"}


@cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(render(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[Doc]:
    return copy.deepcopy(list(_rendered(overlay)))


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = (d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    return doc


def workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(doc: Doc) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def service_of(doc: Doc) -> str:
    name: str = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
    return name


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_the_kubernetes_schema_strictly(overlay: str) -> None:
    docs = rendered(overlay)
    assert len(docs) > 40
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_an_unknown_field() -> None:
    deployment = one(rendered("local"), "Deployment", "api")
    pod_spec(deployment)["containers"][0]["securityContext"]["runAsNonroot"] = True  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.skipif(kustomize_command() is None, reason="no kustomize binary: nothing to compare with")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_stand_in_renderer_matches_kustomize(overlay: str) -> None:
    path = K8S / "overlays" / overlay
    ours = {ident(d): d for d in build(path)}
    theirs = {ident(d): d for d in render_with_binary(path)}
    assert ours.keys() == theirs.keys()
    for key, doc in theirs.items():
        assert ours[key] == doc, key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_non_root_read_only_without_capabilities_and_limited(overlay: str) -> None:
    for doc in workloads(rendered(overlay)):
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, ident(doc)
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, ident(doc)
        for container in [*spec["containers"], *spec.get("initContainers", [])]:
            where = (*ident(doc), container["name"])
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in ctx["capabilities"], where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, (where, bound)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_collector_and_executor_get_a_kubernetes_api_token(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in workloads(docs):
        service = service_of(doc)
        account = one(docs, "ServiceAccount", pod_spec(doc)["serviceAccountName"])
        wanted = service in KUBE_API_CLIENTS
        assert pod_spec(doc)["automountServiceAccountToken"] is wanted, ident(doc)
        assert account["automountServiceAccountToken"] is wanted, ident(account)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_each_service_its_health_on_the_port_its_settings_listen_on(overlay: str) -> None:
    docs = rendered(overlay)
    seen = set()
    for doc in workloads(docs):
        service = service_of(doc)
        if service not in SERVICES:
            continue
        seen.add(service)
        (container,) = pod_spec(doc)["containers"]
        (port,) = container["ports"]
        env = env_of(container)
        assert port["name"] == "http"
        assert port["containerPort"] == default_port(service)
        assert env[http_port_env(service)]["value"] == str(port["containerPort"])
        host_env = "SENTINAI_API_HOST" if service == "api" else f"SENTINAI_{service.upper()}_HTTP_HOST"
        assert env[host_env]["value"] == "0.0.0.0"
        assert container["readinessProbe"]["httpGet"] == {"path": health_path(service), "port": "http"}
        assert container["livenessProbe"]["httpGet"]["port"] == "http"
        assert container["image"].rsplit(":", 1)[0].endswith(f"sentinai/{service}")
    assert seen == set(SERVICES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_one_the_service_reads(overlay: str) -> None:
    docs = rendered(overlay)
    shared = one(docs, "ConfigMap", "sentinai-env")["data"]
    for doc in workloads(docs):
        service = service_of(doc)
        if service not in SERVICES:
            continue
        (container,) = pod_spec(doc)["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "sentinai-env"}}]
        names = set(env_of(container)) | set(shared)
        assert names <= accepted_env(service), (service, names - accepted_env(service))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dry_run_is_the_default_and_secrets_come_from_secrets(overlay: str) -> None:
    docs = rendered(overlay)
    assert one(docs, "ConfigMap", "sentinai-safety")["data"]["SCALING_SIMULATION_MODE"] == "true"
    executor = pod_spec(one(docs, "Deployment", "executor"))["containers"][0]
    ref = env_of(executor)["SCALING_SIMULATION_MODE"]["valueFrom"]["configMapKeyRef"]
    assert ref == {"name": "sentinai-safety", "key": "SCALING_SIMULATION_MODE"}
    api = env_of(pod_spec(one(docs, "Deployment", "api"))["containers"][0])
    assert api["SENTINAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "sentinai-api-key"
    rca = env_of(pod_spec(one(docs, "Deployment", "rca"))["containers"][0])
    assert rca["SENTINAI_RCA_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True
    # The per-person key file is a path into a Secret volume, never a value in the manifest.
    assert api["SENTINAI_API_KEYS_FILE"]["value"].startswith("/etc/sentinai/keys/")
    api_pod = pod_spec(one(docs, "Deployment", "api"))
    volumes = {v["name"]: v for v in api_pod["volumes"]}
    assert volumes["api-keys"]["secret"] == {
        "secretName": "sentinai-api-keys",
        "optional": True,
        "defaultMode": 288,
    }
    for doc in workloads(docs):
        for container in pod_spec(doc)["containers"]:
            for env in container.get("env", []):
                if env["name"].endswith("_FILE"):
                    continue  # a path to a mounted Secret, checked above
                assert "KEY" not in env["name"] or "valueFrom" in env, (ident(doc), env["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_target_named_ports(overlay: str) -> None:
    docs = rendered(overlay)
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"]["selector"]
        pods = [
            d
            for d in workloads(docs)
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, ident(svc)
        names = {p["name"] for d in pods for c in pod_spec(d)["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, (ident(svc), port)
    for doc in workloads(docs):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), ident(doc)
        assert labels["app.kubernetes.io/part-of"] == "sentinai"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_chains_file_parses_and_names_a_mounted_kubeconfig(overlay: str) -> None:
    docs = rendered(overlay)
    chains = parse_chains(one(docs, "ConfigMap", "sentinai-chains")["data"]["chains.yaml"])
    kubeconfig = one(docs, "ConfigMap", "sentinai-kubeconfig")["data"]["config"]
    assert yaml.safe_load(kubeconfig)["kind"] == "Config"
    for name in ("collector", "executor"):
        container = pod_spec(one(docs, "Deployment", name))["containers"][0]
        chains_file = env_of(container)[f"SENTINAI_{name.upper()}_CHAINS_FILE"]["value"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(Path(chains_file).parent) in mounts
        for chain in chains:
            assert chain.kubeconfig is not None
            assert str(chain.kubeconfig.parent) in mounts


def _roles(docs: list[Doc], service: str) -> tuple[Doc, Doc]:
    role = one(docs, "Role", f"sentinai-{service}")
    binding = one(docs, "RoleBinding", f"sentinai-{service}")
    return role, binding


def test_the_executor_may_only_read_and_patch_workloads_in_the_chain_namespace() -> None:
    docs = rendered("eks")
    role, binding = _roles(docs, "executor")
    assert role["metadata"]["namespace"] == TARGET_NAMESPACE
    assert binding["metadata"]["namespace"] == TARGET_NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "sentinai-executor",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "executor", "namespace": "sentinai"}]
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert grants == {
        ("apps", "deployments"): {"get", "list", "patch"},
        ("apps", "statefulsets"): {"get", "list", "patch"},
        ("", "pods"): {"get", "list"},
        ("metrics.k8s.io", "pods"): {"get", "list"},
    }
    everything = {verb for verbs in grants.values() for verb in verbs}
    assert not everything & {"delete", "deletecollection", "create", "*"}
    assert not {resource for _, resource in grants} & {"secrets", "pods/exec", "*"}


def test_the_collector_only_reads_pods_their_logs_and_metrics() -> None:
    role, binding = _roles(rendered("eks"), "collector")
    assert role["metadata"]["namespace"] == TARGET_NAMESPACE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collector", "namespace": "sentinai"}]
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert set(rule["resources"]) <= {"pods", "pods/log"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_cluster_wide_rights_and_no_other_writer(overlay: str) -> None:
    docs = rendered(overlay)
    assert not of_kind(docs, "ClusterRole")
    assert not of_kind(docs, "ClusterRoleBinding")
    writers = {
        role["metadata"]["name"]
        for role in of_kind(docs, "Role")
        if any(set(rule["verbs"]) & WRITE_VERBS for rule in role["rules"])
    }
    assert writers <= {"sentinai-executor"}


def _policy(docs: list[Doc], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "NetworkPolicy", name)["spec"]
    return spec


def _ports(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for rule in rules for p in rule.get("ports", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_default_deny_with_explicit_allows(overlay: str) -> None:
    docs = rendered(overlay)
    deny = _policy(docs, "default-deny")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    nats = _policy(docs, "nats")
    assert ("TCP", 4222) in _ports(nats["ingress"])
    assert nats["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "sentinai"}}}
    ]
    assert _ports(_policy(docs, "services-to-nats")["egress"]) == {("TCP", 4222)}
    api = _policy(docs, "api")
    assert api["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "api"}}
    assert _ports(api["ingress"]) == {("TCP", 8080)}
    dns = _policy(docs, "allow-dns-egress")
    assert dns["podSelector"] == {} and _ports(dns["egress"]) == {("UDP", 53), ("TCP", 53)}
    kube_api = _policy(docs, "kube-api-egress")
    (expression,) = kube_api["podSelector"]["matchExpressions"]
    assert set(expression["values"]) == KUBE_API_CLIENTS
    # Every other ingress opening is for Prometheus, NATS, Redis or the twin, never a wildcard.
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("ports"), policy["metadata"]["name"]


def test_the_eks_overlay_is_shaped_for_production() -> None:
    docs = rendered("eks")
    rca = one(docs, "ServiceAccount", "rca")
    assert rca["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert one(docs, "Deployment", "api")["spec"]["replicas"] == 2
    assert one(docs, "HorizontalPodAutoscaler", "api")["spec"]["minReplicas"] == 2
    nats = one(docs, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    # Three peers are only worth having if every stream is kept on all of them.
    assert one(docs, "ConfigMap", "sentinai-env")["data"]["SENTINAI_STREAM_REPLICAS"] == "3"
    cluster = one(docs, "ConfigMap", "nats-config")["data"]["cluster.conf"]
    assert [f"nats://nats-{i}.nats-headless:6222" in cluster for i in range(3)] == [True] * 3
    assert "include ./cluster.conf" in one(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    budgets = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "PodDisruptionBudget")}
    assert budgets == {
        "api": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}}},
        "nats": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_interchangeable_services_scale(overlay: str) -> None:
    docs = rendered(overlay)
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in of_kind(docs, "HorizontalPodAutoscaler")}
    assert scaled == {"api"}
    for name in ("planner", "collector", "predictor", "rca"):
        deployment = one(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == 1
        # Never two at once, not even during a rollout (the planner's ledger is read-modify-write).
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_eks_runs_one_detector_per_partition() -> None:
    docs = rendered("eks")
    detectors = [d for d in workloads(docs) if service_of(d) == "detector"]
    assert sorted(d["metadata"]["name"] for d in detectors) == ["detector-p0", "detector-p1", "detector-p2"]
    partitions = []
    for doc in detectors:
        env = env_of(pod_spec(doc)["containers"][0])
        partitions.append(env["SENTINAI_DETECTOR_PARTITION"]["value"])
        assert env["SENTINAI_DETECTOR_PARTITIONS"]["value"] == "3"
        assert doc["spec"]["replicas"] == 1
        assert doc["spec"]["template"]["metadata"]["labels"]["sentinai.io/partition"] == partitions[-1]
    assert sorted(partitions) == ["0", "1", "2"]
    local = [d for d in workloads(rendered("local")) if service_of(d) == "detector"]
    assert [d["metadata"]["name"] for d in local] == ["detector-p0"]


def test_the_partition_copies_differ_from_the_base_detector_only_in_their_partition() -> None:
    base = yaml.safe_load((K8S / "base" / "detector" / "deployment.yaml").read_text())
    for k in (1, 2):
        copy_ = yaml.safe_load(
            (K8S / "components" / "detector-partitions" / f"detector-p{k}.yaml").read_text()
        )
        expected = copy.deepcopy(base)
        expected["metadata"]["name"] = f"detector-p{k}"
        for labels in (
            expected["metadata"]["labels"],
            expected["spec"]["selector"]["matchLabels"],
            expected["spec"]["template"]["metadata"]["labels"],
        ):
            labels["sentinai.io/partition"] = str(k)
        env = env_of(pod_spec(expected)["containers"][0])
        env["SENTINAI_DETECTOR_PARTITION"]["value"] = str(k)
        env["SENTINAI_DETECTOR_PARTITIONS"]["value"] = "3"
        assert copy_ == expected


def eks_with(component: str, tmp_path: Path) -> list[Doc]:
    """The eks overlay rendered with one of the optional components added."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute paths.
                "resources": [os.path.relpath(K8S / "overlays" / "eks", tmp_path)],
                "components": [os.path.relpath(K8S / "components" / component, tmp_path)],
            }
        )
    )
    return render(tmp_path)


def test_the_redis_component_adds_redis_and_points_every_service_at_it(tmp_path: Path) -> None:
    docs = eks_with("redis", tmp_path)
    redis = one(docs, "StatefulSet", "redis")
    for doc in (redis, one(docs, "Service", "redis"), one(docs, "NetworkPolicy", "redis")):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert one(docs, "ConfigMap", "sentinai-env")["data"]["SENTINAI_REDIS_URL"] == "redis://redis:6379/0"
    assert "SENTINAI_REDIS_URL" in accepted_env("planner")
    assert pod_spec(redis)["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_collector_shards_component_polls_every_chain_from_exactly_one_collector(tmp_path: Path) -> None:
    docs = eks_with("collector-shards", tmp_path)
    collectors = [d for d in workloads(docs) if service_of(d) == "collector"]
    assert sorted(d["metadata"]["name"] for d in collectors) == ["collector", "collector-s1"]
    shards = []
    for doc in collectors:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        env = env_of(pod_spec(doc)["containers"][0])
        shards.append(env["SENTINAI_COLLECTOR_SHARD"]["value"])
        assert env["SENTINAI_COLLECTOR_SHARDS"]["value"] == "2"
        assert doc["spec"]["replicas"] == 1 and doc["spec"]["strategy"] == {"type": "Recreate"}
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": "collector", "sentinai.io/shard": shards[-1]}
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    assert sorted(shards) == ["0", "1"]  # disjoint selectors: neither Deployment adopts the other's pod
    assert {"SENTINAI_COLLECTOR_SHARD", "SENTINAI_COLLECTOR_SHARDS"} <= accepted_env("collector")


def test_the_shard_copy_differs_from_the_base_collector_only_in_its_shard() -> None:
    base = yaml.safe_load((K8S / "base" / "collector" / "deployment.yaml").read_text())
    copy_ = yaml.safe_load((K8S / "components" / "collector-shards" / "collector-s1.yaml").read_text())
    expected = copy.deepcopy(base)
    expected["metadata"]["name"] = "collector-s1"
    for labels in (
        expected["metadata"]["labels"],
        expected["spec"]["selector"]["matchLabels"],
        expected["spec"]["template"]["metadata"]["labels"],
    ):
        labels["sentinai.io/shard"] = "1"
    pod_spec(expected)["containers"][0]["env"] += [
        {"name": "SENTINAI_COLLECTOR_SHARD", "value": "1"},
        {"name": "SENTINAI_COLLECTOR_SHARDS", "value": "2"},
    ]
    assert copy_ == expected


def _secret_volumes(doc: Doc) -> dict[str, Doc]:
    """Volume name → its ``secret`` source, for a workload's pod."""
    return {v["name"]: v["secret"] for v in pod_spec(doc).get("volumes", []) if "secret" in v}


def _mounted_secrets(doc: Doc) -> set[str]:
    return {secret["secretName"] for secret in _secret_volumes(doc).values()}


def _pods(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_pod_mounts_its_own_nats_user_and_no_other(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in workloads(docs):
        service = service_of(doc)
        if service not in SERVICES:
            continue
        (container,) = pod_spec(doc)["containers"]
        creds = Path(env_of(container)["SENTINAI_NATS_CREDS"]["value"])
        assert creds == Path(f"/etc/sentinai/nats/{service}.creds"), ident(doc)
        nats_secrets = {s for s in _mounted_secrets(doc) if s.startswith("nats-creds-")}
        assert nats_secrets == {f"nats-creds-{service}"}, ident(doc)
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(creds.parent))
        assert mount["readOnly"] is True
        assert _secret_volumes(doc)[mount["name"]]["defaultMode"] == 0o440
    # The admin's credentials go to the provisioning Job and nowhere else.
    holders = [ident(d) for d in _pods(docs) if "nats-creds-admin" in _mounted_secrets(d)]
    assert holders == [("Job", "sentinai", "nats-provision")]
    assert not [ident(d) for d in _pods(docs) if "nats-creds-integrations" in _mounted_secrets(d)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_takes_its_users_from_a_secret_and_a_job_provisions_the_streams(overlay: str) -> None:
    docs = rendered(overlay)
    config = one(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "include ./auth/auth.conf" in config
    nats = one(docs, "StatefulSet", "nats")
    assert "nats-auth" in _mounted_secrets(nats)
    mounts = {m["mountPath"] for m in pod_spec(nats)["containers"][0]["volumeMounts"]}
    assert "/etc/nats/auth" in mounts
    job = one(docs, "Job", "nats-provision")
    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "sentinai.common.natsauth", "provision"]
    assert env_of(container)["SENTINAI_NATS_CREDS"]["value"] == "/etc/sentinai/nats/admin.creds"
    partitions = len([d for d in workloads(docs) if service_of(d) == "detector"])
    assert env_of(container)["SENTINAI_DETECTOR_PARTITIONS"]["value"] == str(partitions)
    assert container["envFrom"] == [{"configMapRef": {"name": "sentinai-env"}}]
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"] is True
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    # It may reach NATS like the services (the egress policy selects every SentinAI pod).
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sentinai"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_secrets_nats_users_renders_are_the_ones_the_manifests_mount(
    overlay: str, tmp_path: Path
) -> None:
    secrets = list(yaml.safe_load_all(natsusers.k8s_secrets(tmp_path / "auth")))
    for doc in secrets:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    made = {d["metadata"]["name"]: d for d in secrets}
    docs = rendered(overlay)
    mounted = {s for d in _pods(docs) for s in _mounted_secrets(d) if s.startswith("nats-")} - {"nats-tls"}
    assert mounted <= made.keys()
    assert made.keys() - mounted == {"nats-creds-integrations"}  # for an integration, not deployed here
    for doc in _pods(docs):
        for container in pod_spec(doc)["containers"]:
            creds = env_of(container).get("SENTINAI_NATS_CREDS")
            if creds is not None:
                path = Path(creds["value"])
                user = path.stem
                assert path.name in made[f"nats-creds-{user}"]["stringData"], ident(doc)
                assert f"# SentinAI NATS user: {user}" in made[f"nats-creds-{user}"]["stringData"][path.name]
    assert "authorization {" in made["nats-auth"]["stringData"]["auth.conf"]


def test_eks_serves_nats_over_tls_and_every_client_checks_the_certificate() -> None:
    docs = rendered("eks")
    config = one(docs, "ConfigMap", "nats-config")["data"]
    assert "include ./tls.conf" in config["nats.conf"]
    assert "cert_file: /etc/nats/tls/tls.crt" in config["tls.conf"]
    env = one(docs, "ConfigMap", "sentinai-env")["data"]
    assert env["SENTINAI_NATS_URL"].startswith("tls://")
    ca = Path(env["SENTINAI_NATS_TLS_CA"])
    assert "SENTINAI_NATS_TLS_CA" in accepted_env("planner")
    nats = one(docs, "StatefulSet", "nats")
    assert {i["key"] for i in _secret_volumes(nats)["tls"]["items"]} == {"tls.crt", "tls.key"}
    clients = [d for d in _pods(docs) if d["kind"] != "StatefulSet"]
    assert len(clients) == 10  # seven services (three detectors) and the provisioning Job
    for doc in clients:
        (container,) = pod_spec(doc)["containers"]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(ca.parent))
        secret = _secret_volumes(doc)[mount["name"]]
        # The CA only: a client pod never holds the server's key.
        assert secret["secretName"] == "nats-tls" and secret["items"] == [{"key": "ca.crt", "path": ca.name}]
    local = one(rendered("local"), "ConfigMap", "sentinai-env")["data"]
    assert local["SENTINAI_NATS_URL"].startswith("nats://")
