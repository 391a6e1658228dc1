"""Collector settings (pydantic-settings, ``SENTINAI_COLLECTOR_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class CollectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_COLLECTOR_", extra="ignore", frozen=True)

    chains_file: Path
    poll_interval_s: float = Field(default=30.0, gt=0)
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    log_tail_lines: int = Field(default=50, ge=1, le=10_000)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)
