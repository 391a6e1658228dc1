"""docker-compose.yml and the Dockerfiles agree with each other and with the code they package.

No Docker engine runs here, so this checks what a build and an `up` would trip over: contexts,
Dockerfiles and COPY sources that exist, the module each image runs, ports, environment names the
settings classes read, healthchecks on the right port and path, and start order on health.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import ROOT, SERVICES, accepted_env, default_port, health_path, http_port_env

from sentinai.common.chains import parse_chains

IMAGES = {**{name: f"services/{name}" for name in SERVICES}, "twin": "tools/twin"}
TWIN_PORT = 8545


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def service(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = compose()["services"][name]
    return spec


def dockerfile(folder: str) -> list[Instruction]:
    text = (ROOT / folder / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    out = []
    for line in logical.splitlines():
        if line.strip():
            op, _, args = line.strip().partition(" ")
            out.append(Instruction(op.upper(), " ".join(args.split())))
    return out


def instructions(folder: str, op: str) -> list[str]:
    return [i.args for i in dockerfile(folder) if i.op == op]


def env_of_dockerfile(folder: str) -> dict[str, str]:
    env = {}
    for args in instructions(folder, "ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def healthcheck_url(command: str) -> tuple[int, str]:
    """Port and path of the URL a python-urllib healthcheck opens (the port may come from an env var)."""
    match = re.search(
        r"http://127\.0\.0\.1:(?:(\d+)|' \+ os\.environ\.get\('\w+', '(\d+)'\) \+ ')(/[\w/?=&-]*)", command
    )
    assert match, command
    return int(match.group(1) or match.group(2)), match.group(3)


def test_compose_runs_every_service_the_bus_and_the_twin() -> None:
    assert set(compose()["services"]) == {*SERVICES, "nats", "nats-provision", "redis", "twin"}
    assert "-js" in service("nats")["command"]


def test_nats_has_users_and_each_service_gets_its_own_credentials_only() -> None:
    nats = service("nats")
    command = nats["command"]
    assert command[command.index("--config") + 1] == "/run/secrets/nats_auth"
    assert nats["secrets"] == ["nats_auth"]
    files = {name: spec["file"] for name, spec in compose()["secrets"].items()}
    assert files["nats_auth"].endswith("/auth.conf")
    # Every credentials file comes from one folder under .state/, which git ignores.
    assert {str(Path(f).parent) for f in files.values()} == {".state/compose-nats"}
    assert ".state/" in (ROOT / ".gitignore").read_text().splitlines()
    for name in SERVICES:
        spec = service(name)
        assert spec["secrets"] == [f"nats_{name}"], name
        assert spec["environment"]["SENTINAI_NATS_CREDS"] == f"/run/secrets/nats_{name}"
        assert Path(files[f"nats_{name}"]).name == f"{name}.creds"
    holders = [n for n, spec in compose()["services"].items() if "nats_admin" in spec.get("secrets", [])]
    assert holders == ["nats-provision"]
    provision = service("nats-provision")
    assert provision["entrypoint"] + provision["command"] == [
        "python",
        "-m",
        "sentinai.common.natsauth",
        "provision",
    ]
    assert provision["environment"]["SENTINAI_NATS_CREDS"] == "/run/secrets/nats_admin"
    assert provision["restart"] == "on-failure" and provision["user"] == "10001:10001"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_image_builds_from_the_root_with_its_own_dockerfile(name: str) -> None:
    build = service(name)["build"]
    assert (ROOT / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == f"{IMAGES[name]}/Dockerfile"
    assert (ROOT / build["dockerfile"]).is_file()
    assert service(name)["image"] == f"sentinai/{name}:dev"


@pytest.mark.parametrize("folder", sorted(IMAGES.values()))
def test_each_dockerfile_is_multi_stage_non_root_and_runs_its_module(folder: str) -> None:
    name = folder.rsplit("/", 1)[1]
    stages = instructions(folder, "FROM")
    assert stages == ["python:3.11-slim AS builder", "python:3.11-slim"]
    runs = instructions(folder, "RUN")
    assert f"/opt/venv/bin/pip install -c constraints.txt ./libs/common ./{folder}" in runs
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    for copy in instructions(folder, "COPY"):
        if copy.startswith("--from="):
            assert copy == "--from=builder /opt/venv /opt/venv"
            continue
        source = copy.split()[0]
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    assert instructions(folder, "USER") == ["10001:10001"]
    assert json.loads(instructions(folder, "ENTRYPOINT")[0]) == ["python", "-m", f"sentinai.{name}"]
    assert (ROOT / folder / "src" / "sentinai" / name / "__main__.py").is_file()
    port = TWIN_PORT if name == "twin" else default_port(name)
    assert instructions(folder, "EXPOSE") == [str(port)]
    (check,) = instructions(folder, "HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    want_path = "/control/health" if name == "twin" else health_path(name)
    assert healthcheck_url(command[2]) == (port, want_path)


@pytest.mark.parametrize("name", SERVICES)
def test_image_environment_names_are_settings_fields_and_listen_on_the_default_port(name: str) -> None:
    env = env_of_dockerfile(f"services/{name}")
    runtime = {k: v for k, v in env.items() if k.startswith("SENTINAI_") or k == "SCALING_SIMULATION_MODE"}
    assert set(runtime) <= accepted_env(name)
    assert env[http_port_env(name)] == str(default_port(name))


@pytest.mark.parametrize("name", SERVICES)
def test_compose_environment_ports_and_healthchecks_match_the_settings(name: str) -> None:
    spec = service(name)
    env = spec["environment"]
    assert set(env) <= accepted_env(name), set(env) - accepted_env(name)
    port = int(env[http_port_env(name)])
    assert healthcheck_url(spec["healthcheck"]["test"][3]) == (port, health_path(name))
    assert env["SENTINAI_NATS_URL"] == "nats://nats:4222"
    for key in ("SENTINAI_API_KEY", "SENTINAI_RCA_LLM_API_KEY"):
        # A key is passed through from the operator's shell, never written here.
        assert env.get(key) is None


def test_the_api_is_published_and_writes_need_a_key_from_the_shell() -> None:
    api = service("api")
    assert api["ports"] == ["127.0.0.1:8080:8080"]
    assert "SENTINAI_API_KEY" in api["environment"]


@pytest.mark.parametrize("name", sorted({*SERVICES, "twin"}))
def test_services_start_after_what_they_need_is_healthy(name: str) -> None:
    depends = service(name).get("depends_on", {})
    needs = {"nats", "redis", "nats-provision"} | ({"twin"} if name in ("collector", "executor") else set())
    if name == "twin":
        needs = set()
    assert set(depends) == needs
    for dependency, condition in depends.items():
        if dependency == "nats-provision":
            # A one-shot step: the services start once it has made the streams.
            assert condition == {"condition": "service_completed_successfully"}
            continue
        assert condition == {"condition": "service_healthy"}
        assert "healthcheck" in service(dependency)


@pytest.mark.parametrize("name", sorted({*SERVICES, "twin"}))
def test_our_containers_run_hardened(name: str) -> None:
    spec = service(name)
    assert spec["user"] == "10001:10001"
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]


def test_the_twin_serves_where_the_chain_config_and_kubeconfig_say() -> None:
    twin = service("twin")
    args = twin["command"]
    port = int(args[args.index("--port") + 1])
    assert healthcheck_url(twin["healthcheck"]["test"][3]) == (port, "/control/health")
    configs = compose()["configs"]
    chains = parse_chains(configs["chains"]["content"])
    kubeconfig = yaml.safe_load(configs["kubeconfig"]["content"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"http://twin:{port}"
    assert kubeconfig["users"][0]["user"]["token"] == args[args.index("--token") + 1]
    for name in ("collector", "executor"):
        mounted = {c["target"]: c["source"] for c in service(name)["configs"]}
        assert mounted[service(name)["environment"][f"SENTINAI_{name.upper()}_CHAINS_FILE"]] == "chains"
        for chain in chains:
            assert str(chain.l2_rpc).startswith(f"http://twin:{port}/")
            assert mounted[str(chain.kubeconfig)] == "kubeconfig"


def test_executor_is_dry_run_unless_the_operator_says_otherwise() -> None:
    assert service("executor")["environment"]["SCALING_SIMULATION_MODE"] == "${SCALING_SIMULATION_MODE:-true}"


def test_every_copied_folder_has_the_pyproject_pip_installs() -> None:
    for folder in ("libs/common", *IMAGES.values()):
        assert (ROOT / folder / "pyproject.toml").is_file(), folder
