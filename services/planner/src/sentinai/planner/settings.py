"""Planner settings (``SENTINAI_PLANNER_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class PlannerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_PLANNER_", extra="ignore", frozen=True)

    # None: the policy packaged with sentinai-common.
    policy_file: Path | None = None
    # Below this an RCA is a guess: nothing is proposed for it.
    min_rca_confidence: float = Field(default=0.5, ge=0, le=1)
    # A notification changes nothing, so it may follow a less certain RCA than a cluster action.
    min_notify_confidence: float = Field(default=0.3, ge=0, le=1)
    # A forecast (confidence 0-100) must reach this before it may move CPU.
    min_prediction_confidence: float = Field(default=60.0, ge=0, le=100)
    # A scale-down needs forecasts that fit a lower step for this long (hysteresis).
    scale_down_sustain_s: float = Field(default=300.0, ge=0)
    # A part-way step down (to a step still above what the forecast needs) waits this long instead.
    scale_down_partway_sustain_s: float = Field(default=1800.0, ge=0)
    # What one scaling action (a restart of op-geth) is worth in core-hours: a step down waits while
    # the chain's past lulls at the lower step say keeping the cores costs less than the step down
    # and the step up that ends the lull (0: never wait on that account).
    scale_action_price_core_h: float = Field(default=2.0, ge=0)
    # The lulls the step down is judged on: those that ended within this span.
    scale_lull_memory_s: float = Field(default=86_400.0, gt=0)
    # A consumer created for the first time also takes the events of this many seconds before start.
    first_start_replay_s: float = Field(default=60.0, ge=0)
    expiry_check_s: float = Field(default=5.0, gt=0)
    # How long a resolved incident is remembered: a late or replayed diagnosis of it proposes nothing.
    resolved_memory_s: float = Field(default=86_400.0, gt=0)
    # The chain's block time: verifying "blocks flow again" allows the stall multiple of it
    # (``SENTINAI_STALL_BLOCK_TIMES``, shared by every service).
    block_time_s: float = Field(default=2.0, gt=0)
    durable_prefix: str = Field(default="planner", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8086, ge=0, le=65535)
