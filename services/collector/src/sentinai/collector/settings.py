"""Collector settings (pydantic-settings, ``SENTINAI_COLLECTOR_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class CollectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_COLLECTOR_", extra="ignore", frozen=True)

    chains_file: Path
    poll_interval_s: float = Field(default=30.0, gt=0)
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    log_tail_lines: int = Field(default=50, ge=1, le=10_000)
    # Pod logs are read at most this often (0: every poll); the tail must hold what is written in between.
    log_interval_s: float = Field(default=0.0, ge=0)
    # Scale-out: this process polls the chains of shard `shard` of `shards` (by chain id, the same
    # FNV-1a split as the detector partitions), so every chain is polled by exactly one collector.
    shards: int = Field(default=1, ge=1, le=1024)
    shard: int = Field(default=0, ge=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)

    @model_validator(mode="after")
    def _shard_in_range(self) -> Self:
        if self.shard >= self.shards:
            raise ValueError(f"shard {self.shard} is not one of 0..{self.shards - 1}")
        return self
