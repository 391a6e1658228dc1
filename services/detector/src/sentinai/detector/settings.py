"""Detector settings (``SENTINAI_DETECTOR_`` prefix)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from sentinai.common.incidents import STALL_BLOCK_TIMES
from sentinai.common.settings import ServiceSettings


class DetectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_DETECTOR_", extra="ignore", frozen=True)

    # Scoring mode of gauge metrics: "streaming" (streaming.py, NAB-tuned) or the seed's "zscore".
    mode: Literal["streaming", "zscore"] = "streaming"
    # The window gives every gauge finding its zScore; the z-score mode also decides with it, and so
    # does the streaming mode while a series' model is still warming up.
    window: int = Field(default=60, ge=2, le=10_000)
    z_threshold: float = Field(default=2.0, gt=0)
    min_points: int = Field(default=10, ge=2)
    # The streaming mode's judge of a young series (its model's first 30 points): the z-score with
    # this threshold. The seed's 2 flags one normal point in twenty on a 10–30 point window — about
    # nine anomalies per chain in the first half minute of a fresh deployment; a fault in that first
    # minute stands out far more.
    young_z_threshold: float = Field(default=4.0, gt=0)
    # NAB's 55,000 s cool-down is sized for 5-minute series where every further alert costs score;
    # live, the episode machinery already folds a run of findings into one anomaly.detected, and a
    # long cool-down would hide a real fault that follows a noise alert on the same series.
    streaming_cooldown_s: float = Field(default=600.0, ge=0)
    # Liveness: a head older than stall_block_times x block_time is a stall. The multiple is every
    # service's (``SENTINAI_STALL_BLOCK_TIMES``); the detector's old variable is still read after it.
    block_time_s: float = Field(default=2.0, gt=0)
    stall_block_times: float = Field(
        default=STALL_BLOCK_TIMES,
        gt=0,
        validation_alias=AliasChoices("SENTINAI_STALL_BLOCK_TIMES", "SENTINAI_DETECTOR_STALL_BLOCK_TIMES"),
    )
    l1_stale_s: float = Field(default=120.0, gt=0)
    # unsafe - safe in L2 blocks (300 = 10 min at 2 s blocks) that is also still growing.
    lag_threshold: float = Field(default=300.0, gt=0)
    memory_threshold_pct: float = Field(default=95.0, gt=0, le=100)
    # A crash loop restarts with growing back-off; holding the episode this long keeps it one episode.
    restart_hold_s: float = Field(default=300.0, ge=0)
    # Hysteresis: clean evaluations that close a metric episode; quiet seconds that close a log one.
    resolve_after: int = Field(default=3, ge=1)
    # A CPU rise holds its episode while cpuUsage is at least this share of the request, whatever its
    # baseline was: the planner verifies a scale-up by cpuUsage falling under the same 95 %.
    cpu_saturated_pct: float = Field(default=95.0, gt=0)
    # A gauge episode still open after this long (its value never went back, nor reached a pinned
    # level) is a new level, not an incident: it closes and the series is learnt afresh from there.
    rebaseline_s: float = Field(default=900.0, gt=0)
    # After a head outage (a stall, the sequencing RPC down) resolves, its catch-up (one interval that
    # spans the outage, then blocks faster than the block time) is neither judged nor learnt for this
    # many block times: the outage's liveness episode already reported it.
    recovery_grace_block_times: float = Field(default=5.0, ge=0)
    log_quiet_s: float = Field(default=60.0, gt=0)
    # Consumption: a batch is handed over when full or after batch_timeout_s, whichever comes first.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_timeout_s: float = Field(default=0.01, gt=0)
    # A (re)started detector replays this much metric history to rebuild its windows.
    replay_s: float = Field(default=300.0, ge=0)
    seen_ids: int = Field(default=65_536, ge=1)
    durable_prefix: str = Field(default="detector", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=0, le=65535)
    # Scale-out: this process owns partition `partition` of `partitions` (subject-based, by chain).
    # The detectors own the count: they set the TELEMETRY transform; other services keep what is set.
    partitions: int = Field(
        default=1,
        ge=1,
        le=1024,
        validation_alias=AliasChoices("SENTINAI_DETECTOR_PARTITIONS", "SENTINAI_PARTITIONS"),
    )
    partition: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _owns_one_partition(self) -> Self:
        if self.partitions > 1 and self.partition is None:
            raise ValueError("SENTINAI_DETECTOR_PARTITION is required when SENTINAI_DETECTOR_PARTITIONS > 1")
        if self.partition is not None and self.partition >= self.partitions:
            raise ValueError(f"partition {self.partition} is not one of 0..{self.partitions - 1}")
        return self

    @property
    def stall_limit_s(self) -> float:
        """How old a head may grow before it has stalled, at this chain's block time.

        ``ChainRules.stall_limit_s``'s product, without building a ``ChainRules`` on every sample.
        """
        return self.stall_block_times * self.block_time_s

    @property
    def partitioned(self) -> bool:
        return self.partitions > 1
