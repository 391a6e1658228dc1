"""What `sentinai up` runs: embedded nats-server (a NATS user per service), the twin, the services."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.cli.supervisor import Child
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import nats_server_binary

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
    # Per-person keys (`sentinai keys add`); default ``<state_dir>/api-keys.json``.
    api_keys_file: Path | None = Field(default=None, validation_alias=_env("API_KEYS_FILE"))
    # The services' KV bucket: the embedded server's permissions name it.
    kv_bucket: str = Field(default="sentinai", validation_alias=_env("KV_BUCKET"))
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
    """Written to ``<state>/up.json`` so `sentinai twin …`, `status`, benches and tests find the stack.

    ``admin_creds`` / ``integrations_creds``: the NATS credentials files of the embedded server's
    ``admin`` and ``integrations`` users (``None``: an external NATS, or a file from before users).
    """

    nats_url: str
    api_url: str
    twin_url: str | None
    admin_creds: Path | None = None
    integrations_creds: Path | None = None

    def save(self, path: Path) -> None:
        """Write the file; creds not given are those of the embedded server under ``path``'s folder."""
        from sentinai.common import natsauth  # noqa: PLC0415 (nats and nkeys cost every `sentinai` command ~1 s)

        path.parent.mkdir(parents=True, exist_ok=True)
        admin = self.admin_creds or _existing(nats_creds(path.parent, natsauth.ADMIN))
        readonly = self.integrations_creds or _existing(nats_creds(path.parent, natsauth.INTEGRATIONS))
        data = {
            "natsUrl": self.nats_url,
            "apiUrl": self.api_url,
            "twinUrl": self.twin_url,
            "natsAdminCreds": None if admin is None else str(admin),
            "natsIntegrationsCreds": None if readonly is None else str(readonly),
        }
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> Runtime | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        admin, readonly = data.get("natsAdminCreds"), data.get("natsIntegrationsCreds")
        return cls(
            nats_url=data["natsUrl"],
            api_url=data["apiUrl"],
            twin_url=data.get("twinUrl"),
            admin_creds=Path(admin) if admin else None,
            integrations_creds=Path(readonly) if readonly else None,
        )

    def nats_options(self) -> dict[str, Any]:
        """``nats.connect`` keyword arguments as the stack's admin (none for an open server)."""
        from sentinai.common import natsauth  # noqa: PLC0415 (nats and nkeys cost every `sentinai` command ~1 s)

        return natsauth.connect_options(self.admin_creds)


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def runtime_file(state_dir: Path) -> Path:
    return state_dir / "up.json"


def nats_auth_dir(state_dir: Path) -> Path:
    """Where `up` keeps the embedded server's users: a credentials file each, and its config."""
    return state_dir.resolve() / "nats" / "auth"


def nats_creds(state_dir: Path, user: str) -> Path:
    from sentinai.common import natsauth  # noqa: PLC0415 (nats and nkeys cost every `sentinai` command ~1 s)

    return natsauth.creds_file(nats_auth_dir(state_dir), user)


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


def nats_child(*, port: int, data_dir: Path, bucket: str | None = None) -> Child:
    """The embedded nats-server, with a user per service (made once, kept in ``data_dir/auth``).

    Its config (listen address, JetStream store, users and permissions) is written afresh each
    start, so the permissions are always this version's; the users' credentials are kept.
    """
    from sentinai.common import natsauth  # noqa: PLC0415 (nats and nkeys cost every `sentinai` command ~1 s)

    auth = data_dir / "auth"
    users = natsauth.ensure_users(auth)
    config = natsauth.server_config(
        users,
        bucket=bucket if bucket is not None else UpSettings().kv_bucket,
        listen=f"127.0.0.1:{port}",
        store_dir=data_dir,
        server_name="sentinai-embedded",
    )
    path = natsauth.write_config(auth / natsauth.SERVER_CONFIG, config)
    return Child("nats", [nats_server_binary(), "--config", str(path)], restart=False)


def nats_setup_child(settings: UpSettings, *, nats_url: str) -> Child:
    """The admin step before any service starts: every stream and the KV bucket, as ``admin``."""
    from sentinai.common import natsauth  # noqa: PLC0415 (nats and nkeys cost every `sentinai` command ~1 s)

    env = {
        "SENTINAI_NATS_URL": nats_url,
        "SENTINAI_NATS_CREDS": str(nats_creds(settings.state_dir, natsauth.ADMIN)),
        "SENTINAI_KV_BUCKET": settings.kv_bucket,
        "SENTINAI_DETECTOR_PARTITIONS": str(settings.detector_partitions),
    }
    argv = [sys.executable, "-m", "sentinai.common.natsauth", "provision"]
    return Child("nats-setup", argv, env=env, restart=False, oneshot=True)


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
    """Every service process of the stack, each with its own health/metrics port.

    Against the embedded server (no ``SENTINAI_NATS_URL``) the admin step comes first and each
    service connects as its own NATS user; an external server is used as it is configured.
    """
    embedded = settings.nats_url is None
    setup = [nats_setup_child(settings, nats_url=nats_url)] if embedded else []
    return setup + [
        service_child(
            name,
            nats_url=nats_url,
            chains_file=chains_file,
            settings=settings,
            poll_s=poll_s,
            api_key=api_key,
            child_name=child,
            share=share,
            creds=nats_creds(settings.state_dir, name) if embedded else None,
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
    creds: Path | None = None,
) -> Child:
    env = {"SENTINAI_NATS_URL": nats_url, "SENTINAI_STATE_DIR": str(settings.state_dir), **(share or {})}
    if creds is not None:
        env["SENTINAI_NATS_CREDS"] = str(creds)
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
            "SENTINAI_API_KEYS_FILE": str(
                (settings.api_keys_file or settings.state_dir / "api-keys.json").resolve()
            ),
        }
    return Child(child_name or name, [sys.executable, "-m", f"sentinai.{name}"], env=env)
