"""The chain configuration file: which chains to watch and where their endpoints and cluster are.

Shared by the collector (reads the chain) and the executor (writes to its cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from sentinai.common import subjects


class ChainConfigError(ValueError):
    """The chains file is missing, not YAML, or does not match the expected shape."""


class ChainConfig(BaseModel):
    """One chain; an absent endpoint means that target is not polled."""

    # Unknown keys are refused so a misspelt endpoint fails loudly instead of silently not polling.
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    id: str
    l2_rpc: AnyHttpUrl | None = None
    op_node_rpc: AnyHttpUrl | None = None
    batcher_rpc: AnyHttpUrl | None = None
    proposer_rpc: AnyHttpUrl | None = None
    kubeconfig: Path | None = None
    namespace: str = Field(default="default", min_length=1, max_length=63)
    block_time_s: float = Field(default=2.0, gt=0)
    twin_control: AnyHttpUrl | None = None

    @field_validator("id")
    @classmethod
    def _id_is_token(cls, value: str) -> str:
        return subjects.token(value)


class ChainsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    chains: tuple[ChainConfig, ...] = Field(min_length=1)

    @field_validator("chains")
    @classmethod
    def _unique_ids(cls, chains: tuple[ChainConfig, ...]) -> tuple[ChainConfig, ...]:
        ids = [chain.id for chain in chains]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate chain id(s): {', '.join(duplicates)}")
        return chains


def parse_chains(text: str, *, source: str = "<chains>") -> tuple[ChainConfig, ...]:
    """Parse the YAML text of a chains file; errors name the offending field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ChainConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return ChainsFile.model_validate(data).chains
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ChainConfigError(f"{source}: {problems}") from exc


def load_chains(path: Path) -> tuple[ChainConfig, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChainConfigError(f"cannot read chains file {path}: {exc}") from exc
    return parse_chains(text, source=str(path))
