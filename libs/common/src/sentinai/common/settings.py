"""Settings base shared by every service (pydantic-settings, ``SENTINAI_`` prefix).

Each service subclasses ``ServiceSettings`` with its own prefix (``SENTINAI_DETECTOR_`` …); the
connection settings below keep their shared names (``SENTINAI_NATS_URL`` …) whatever the prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.common.incidents import STALL_BLOCK_TIMES, TXPOOL_CAP

LogLevel = Literal["debug", "info", "warn", "error"]


def _shared(name: str) -> AliasChoices:
    return AliasChoices(f"SENTINAI_{name}")


class ChainRules(BaseModel):
    """Facts about the chains every service judges by, the same in all of them.

    ``stall_block_times``: an unsafe head older than this many block times has stopped.
    ``txpool_cap``: the pending transactions op-geth's pool holds before it drops any.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stall_block_times: float = Field(default=STALL_BLOCK_TIMES, gt=0)
    txpool_cap: float = Field(default=TXPOOL_CAP, gt=0)

    def stall_limit_s(self, block_time_s: float) -> float:
        """How old the unsafe head may grow, in seconds, before it counts as stalled."""
        return self.stall_block_times * block_time_s


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_", extra="ignore", frozen=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=_shared("NATS_URL"))
    redis_url: str | None = Field(default=None, validation_alias=_shared("REDIS_URL"))
    log_level: LogLevel = Field(default="info", validation_alias=_shared("LOG_LEVEL"))
    state_dir: Path = Field(default=Path(".state"), validation_alias=_shared("STATE_DIR"))
    kv_bucket: str = Field(default="sentinai", validation_alias=_shared("KV_BUCKET"))
    connect_timeout_s: float = Field(default=5.0, gt=0, validation_alias=_shared("CONNECT_TIMEOUT_S"))
    # How many JetStream servers hold each stream (3 on a production NATS cluster). Unset: a new
    # stream gets 1 and an existing one keeps its count.
    stream_replicas: int | None = Field(default=None, ge=1, le=5, validation_alias=_shared("STREAM_REPLICAS"))
    # This process's NATS user (``natsauth``: an nkey credentials file). Unset: connect without
    # authentication, as to an open development server.
    nats_creds: Path | None = Field(default=None, validation_alias=_shared("NATS_CREDS"))
    # The CA that signed the NATS server's certificate (PEM), for a ``tls://`` server URL.
    nats_tls_ca: Path | None = Field(default=None, validation_alias=_shared("NATS_TLS_CA"))
    # ChainRules, read from one variable each so that no two services judge a stall differently.
    stall_block_times: float = Field(
        default=STALL_BLOCK_TIMES, gt=0, validation_alias=_shared("STALL_BLOCK_TIMES")
    )
    txpool_cap: float = Field(default=TXPOOL_CAP, gt=0, validation_alias=_shared("TXPOOL_CAP"))

    @property
    def chain_rules(self) -> ChainRules:
        return ChainRules(stall_block_times=self.stall_block_times, txpool_cap=self.txpool_cap)


class ProvisionSettings(ServiceSettings):
    """The admin step (``python -m sentinai.common.natsauth provision``): streams and the KV bucket.

    ``partitions`` is the detector partition count the TELEMETRY stream is made for; unset keeps
    what an existing stream has (1 for a new one).
    """

    partitions: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        validation_alias=AliasChoices("SENTINAI_DETECTOR_PARTITIONS", "SENTINAI_PARTITIONS"),
    )
