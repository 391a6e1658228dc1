"""Executor settings (``SENTINAI_EXECUTOR_`` prefix; the seed's switches keep their own names)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings

DAY = 86_400.0


class ExecutorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SENTINAI_EXECUTOR_", extra="ignore", frozen=True, populate_by_name=True
    )

    chains_file: Path
    policy_file: Path | None = None  # None: the policy packaged with sentinai-common
    # Overrides every action's VerifySpec.window_s when set (the seed verifies for 2 min).
    verify_window_s: float | None = Field(default=None, gt=0)
    default_verify_window_s: float = Field(default=120.0, gt=0)
    verify_consecutive: int = Field(default=3, ge=1)
    verify_poll_s: float = Field(default=1.0, gt=0)
    k8s_timeout_s: float = Field(default=10.0, gt=0)
    k8s_retries: int = Field(default=3, ge=0, le=10)
    read_only_mode: bool = Field(
        default=False,
        validation_alias=AliasChoices("SENTINAI_EXECUTOR_READ_ONLY_MODE", "SENTINAI_READ_ONLY_MODE"),
    )
    # Dry-run by default: only SCALING_SIMULATION_MODE=false lets the executor touch a cluster.
    simulation_mode: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "SENTINAI_EXECUTOR_SIMULATION_MODE", "SCALING_SIMULATION_MODE", "SENTINAI_SCALING_SIMULATION_MODE"
        ),
    )
    # An approval older than this is refused: the situation it answered has moved on.
    max_approval_age_s: float = Field(default=900.0, gt=0)
    effect_ttl_s: float = Field(default=90 * DAY, gt=0)
    durable: str = Field(default="executor", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    max_concurrent: int = Field(default=4, ge=1, le=64)
    # JetStream redelivers an approval not acked (nor marked in progress) within this; a third of it
    # is the heartbeat of a running action, two thirds the age at which its record counts as orphaned.
    ack_wait_s: float = Field(default=30.0, ge=3)
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8085, ge=0, le=65535)

    @property
    def beat_every_s(self) -> float:
        return self.ack_wait_s / 3

    @property
    def stale_after_s(self) -> float:
        return self.ack_wait_s * 2 / 3
