"""What `sentinai up` runs: embedded nats-server, the OP Stack twin, and the services."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.cli.supervisor import Child
from sentinai.common.natsserver import nats_server_binary
from sentinai.common.net import free_port

SERVICES = ("detector", "collector", "api", "executor", "predictor", "planner", "rca")


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"SENTINAI_{name}")


class UpSettings(BaseSettings):
    """Where `up` gets its infrastructure: embedded by default, external when these are set."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    nats_url: str | None = Field(default=None, validation_alias=_env("NATS_URL"))
    chains_file: Path | None = Field(default=None, validation_alias=_env("COLLECTOR_CHAINS_FILE"))
    state_dir: Path = Field(default=Path(".state"), validation_alias=_env("STATE_DIR"))
    api_host: str = Field(default="127.0.0.1", validation_alias=_env("API_HOST"))
    api_port: int = Field(default=8080, validation_alias=_env("API_PORT"))
    twin_chains: str = Field(default="twin", validation_alias=_env("TWIN_CHAINS"))
    twin_seed: int = Field(default=42, validation_alias=_env("TWIN_SEED"))
    twin_block_time_s: int = Field(default=2, ge=1, validation_alias=_env("TWIN_BLOCK_TIME_S"))
    twin_poll_interval_s: float = Field(default=2.0, validation_alias=_env("TWIN_POLL_INTERVAL_S"))
    api_key: str | None = Field(default=None, validation_alias=_env("API_KEY"))
    # Scale-out on one machine: collector processes that split the chains between them, and detector
    # processes that split the bus by subject partition (the same split, by chain id).
    collector_shards: int = Field(default=1, ge=1, le=64, validation_alias=_env("COLLECTOR_SHARDS"))
    detector_partitions: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("SENTINAI_DETECTOR_PARTITIONS", "SENTINAI_PARTITIONS"),
    )


@dataclass(frozen=True)
class Runtime:
    """Written to ``<state>/up.json`` so `sentinai twin …` and `status` find the running stack."""

    nats_url: str
    api_url: str
    twin_url: str | None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"natsUrl": self.nats_url, "apiUrl": self.api_url, "twinUrl": self.twin_url})
        )

    @classmethod
    def load(cls, path: Path) -> Runtime | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(nats_url=data["natsUrl"], api_url=data["apiUrl"], twin_url=data.get("twinUrl"))


def runtime_file(state_dir: Path) -> Path:
    return state_dir / "up.json"


def api_key_file(state_dir: Path) -> Path:
    return state_dir / "api-key"


def ensure_api_key(settings: UpSettings) -> str:
    """The key the api demands for writes: ``SENTINAI_API_KEY``, else one kept in the state folder.

    A local stack must be usable for approvals out of the box, but never open: the key is made once,
    readable by the owner only; the operator who started the stack is told where it is.
    """
    if settings.api_key:
        return settings.api_key
    path = api_key_file(settings.state_dir)
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing:
        return existing
    key = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def masked(key: str) -> str:
    """Enough of a key to tell two apart (its first 4 characters), never enough to use it."""
    return f"{key[:4]}…" if len(key) >= 16 else "…"


def nats_child(*, port: int, data_dir: Path) -> Child:
    argv = [
        nats_server_binary(),
        "--jetstream",
        "--addr",
        "127.0.0.1",
        "--port",
        str(port),
        "--store_dir",
        str(data_dir),
        "--server_name",
        "sentinai-embedded",
    ]
    return Child("nats", argv, restart=False)


def twin_child(settings: UpSettings, *, port: int, twin_dir: Path) -> Child:
    argv = [
        sys.executable,
        "-m",
        "sentinai.twin",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chains",
        settings.twin_chains,
        "--seed",
        str(settings.twin_seed),
        "--block-time",
        str(settings.twin_block_time_s),
        "--kubeconfig-out",
        str(twin_dir / "kubeconfig"),
        "--chains-out",
        str(twin_dir / "chains.yaml"),
    ]
    return Child("twin", argv)


def replicas(name: str, settings: UpSettings) -> list[tuple[str, dict[str, str]]]:
    """The processes of service ``name``: its child name and the env that gives it its share."""
    if name == "collector" and settings.collector_shards > 1:
        n = settings.collector_shards
        return [
            (f"collector-{k}", {"SENTINAI_COLLECTOR_SHARDS": str(n), "SENTINAI_COLLECTOR_SHARD": str(k)})
            for k in range(n)
        ]
    if name == "detector" and settings.detector_partitions > 1:
        n = settings.detector_partitions
        return [
            (f"detector-{k}", {"SENTINAI_DETECTOR_PARTITIONS": str(n), "SENTINAI_DETECTOR_PARTITION": str(k)})
            for k in range(n)
        ]
    return [(name, {})]


def service_children(
    settings: UpSettings, *, nats_url: str, chains_file: Path, poll_s: float, api_key: str = ""
) -> list[Child]:
    """Every service process of the stack, each with its own health/metrics port."""
    return [
        service_child(
            name,
            nats_url=nats_url,
            chains_file=chains_file,
            settings=settings,
            poll_s=poll_s,
            api_key=api_key,
            child_name=child,
            share=share,
        )
        for name in SERVICES
        for child, share in replicas(name, settings)
    ]


def service_child(
    name: str,
    *,
    nats_url: str,
    chains_file: Path,
    settings: UpSettings,
    poll_s: float,
    api_key: str = "",
    child_name: str | None = None,
    share: dict[str, str] | None = None,
) -> Child:
    env = {"SENTINAI_NATS_URL": nats_url, "SENTINAI_STATE_DIR": str(settings.state_dir), **(share or {})}
    if name == "collector":
        env |= {
            "SENTINAI_COLLECTOR_CHAINS_FILE": str(chains_file),
            "SENTINAI_COLLECTOR_POLL_INTERVAL_S": str(poll_s),
        }
    if name != "api":
        prefix = f"SENTINAI_{name.upper()}_"
        # A fixed health/metrics port would collide with a second stack on the same machine.
        env[prefix + "HTTP_PORT"] = str(free_port())
        env[prefix + "BLOCK_TIME_S"] = str(settings.twin_block_time_s)
    if name == "executor":
        env |= {"SENTINAI_EXECUTOR_CHAINS_FILE": str(chains_file)}
    if name == "predictor":
        env |= {"SENTINAI_PREDICTOR_INTERVAL_S": "10"}
    if name == "api":
        env |= {
            "SENTINAI_API_HOST": settings.api_host,
            "SENTINAI_API_PORT": str(settings.api_port),
            "SENTINAI_API_KEY": api_key,
        }
    return Child(child_name or name, [sys.executable, "-m", f"sentinai.{name}"], env=env)
