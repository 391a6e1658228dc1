"""API settings (``SENTINAI_API_`` prefix; the key and read-only mode keep their shared names)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SENTINAI_API_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    recent_anomalies: int = Field(default=1000, ge=10)
    # A chain whose newest sample is older than this is reported stale by /api/health.
    stale_after_s: float = Field(default=120.0, gt=0)
    # Writes (approve, reject, request) need a key in ``x-api-key``: one of the key file's per-person
    # keys (``sentinai keys add``), or this one, whose principal is ``operator``. With neither, every
    # write is refused.
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_KEY"))
    api_keys_file: Path | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_KEYS_FILE"))
    read_only_mode: bool = Field(
        default=False, validation_alias=AliasChoices("SENTINAI_API_READ_ONLY_MODE", "SENTINAI_READ_ONLY_MODE")
    )
    # Write requests per principal per minute (a token bucket refilled continuously).
    write_rate_per_min: float = Field(default=30.0, gt=0)
    write_burst: int = Field(default=10, ge=1)
    # How long a write waits for the planner's verdict before answering 202 (sent, not yet judged).
    verdict_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Origins allowed to call the API from a browser; empty means CORS stays off.
    cors_origins: tuple[str, ...] = ()
    # How far back a starting replica replays decisions and audit (telemetry: the last sample only).
    replay_hours: float = Field(default=24.0, gt=0)
    history_points: int = Field(default=1800, ge=10)
    notify_file: Path | None = None
