"""Predictor settings (``SENTINAI_PREDICTOR_`` prefix)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from sentinai.common.policy import Ladder, load_policy
from sentinai.common.settings import ServiceSettings


def _policy_ladder() -> tuple[float, ...]:
    return load_policy().vcpu_ladder


class PredictorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_PREDICTOR_", extra="ignore", frozen=True)

    # How often each chain with new samples gets a prediction (the twin profile uses 10 s).
    interval_s: float = Field(default=30.0, gt=0)
    horizon_s: float = Field(default=300.0, gt=0)
    # The recommended step must hold the forecast's ceiling times (1 + headroom). The ceiling is
    # already a calibrated bound on the peak (see docs/scaling.md), so no extra margin by default.
    headroom: float = Field(default=0.0, ge=0, le=2)
    # A step down must hold the ceiling times (1 + down_headroom): a margin against flapping.
    down_headroom: float = Field(default=0.1, ge=0, le=2)
    # A step up needs demand now (the level, before the correction) within this share of the
    # current step, i.e. op-geth pinned; the ceiling alone, over a lower level, moves nothing up.
    up_tolerance: float = Field(default=0.05, ge=0, le=1)
    # vCPU steps op-geth may be given, as JSON (``[1,2,4]``); defaults to the policy's ladder.
    ladder: tuple[float, ...] = Field(default_factory=_policy_ladder)
    min_points: int = Field(default=10, ge=3)
    # History kept per chain; a (re)started predictor replays this span from TELEMETRY.
    history_s: float = Field(default=7200.0, gt=0)
    history_points: int = Field(default=720, ge=10, le=100_000)
    # The chain's healthy block time, used until the history shows op-geth with CPU to spare.
    block_time_s: float = Field(default=2.0, gt=0)
    # A chain whose newest sample is older than this (replayed history of a silent chain) is skipped.
    stale_s: float = Field(default=180.0, gt=0)
    seen_ids: int = Field(default=16_384, ge=1)
    durable: str = Field(default="predictor", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8083, ge=0, le=65535)

    @field_validator("ladder")
    @classmethod
    def _ladder_is_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return Ladder(value).steps  # sorted, each step once; empty or a step ≤ 0 is refused
