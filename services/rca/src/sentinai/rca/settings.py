"""RCA settings (``SENTINAI_RCA_`` prefix)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from sentinai.common.settings import ServiceSettings


class RcaSettings(ServiceSettings):
    """The rca's settings.

    The LLM (``llm_*``) is optional and decides nothing: the published class, confidence, risk and
    corroboration are the rules'. ``llm_deadline_s`` bounds the whole LLM step (loading the client,
    connecting, waiting, reading, parsing): the rules' answer is published at most that long after it
    is ready, whatever the model does; at most 2 s. It replaces ``llm_timeout_s`` (litellm's own
    timeout, 8 s) and ``llm_fallback_s`` (2 s), which are retired: their variables are ignored.
    """

    model_config = SettingsConfigDict(env_prefix="SENTINAI_RCA_", extra="ignore", frozen=True)

    # None: rules only. The seed runs RCA on a Claude Haiku 4.5 class model ("anthropic/claude-haiku-4-5").
    llm_model: str | None = None
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_max_tokens: int = Field(default=800, ge=64, le=8192)
    llm_deadline_s: float = Field(default=1.5, gt=0, le=2.0)
    # Model tiers other services may pick from; kept here so one place names them.
    fast_model: str = "qwen3-80b-next"
    best_model: str = "qwen3-235b"
    block_time_s: float = Field(default=2.0, gt=0)
    metric_window: int = Field(default=120, ge=3, le=10_000)
    log_lines: int = Field(default=50, ge=1, le=1000)
    # A diagnosis reads only values and lines this recent (event time, before its anomaly).
    metric_horizon_s: float = Field(default=180.0, gt=0)
    log_horizon_s: float = Field(default=120.0, gt=0)
    recent_actions: int = Field(default=20, ge=1, le=1000)
    # An incident closes this long after its last anomaly resolved.
    quiet_s: float = Field(default=60.0, ge=0)
    # A re-diagnosis with the same class is published only if confidence rose by this much (or its
    # class's evidence rule became met), and no sooner than ``revise_every_s`` after the last one.
    revise_delta: float = Field(default=0.1, gt=0, le=1)
    revise_every_s: float = Field(default=10.0, ge=0)
    # An open incident whose answer still waits for corroboration is re-diagnosed from fresh
    # telemetry at most this often (event time).
    rediagnose_s: float = Field(default=2.0, gt=0)
    # A new telemetry consumer starts this far back so a restarted rca has context at once.
    replay_s: float = Field(default=600.0, ge=0)
    durable_prefix: str = Field(default="rca", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8084, ge=0, le=65535)
