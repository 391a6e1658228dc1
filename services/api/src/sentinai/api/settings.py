"""API settings (``SENTINAI_API_`` prefix)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_API_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    recent_anomalies: int = Field(default=1000, ge=10)
    # A chain whose newest sample is older than this is reported stale by /api/health.
    stale_after_s: float = Field(default=120.0, gt=0)
