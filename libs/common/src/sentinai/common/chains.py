"""The chain configuration file: which chains to watch and where their endpoints and cluster are.

Shared by the collector (reads the chain) and the executor (writes to its cluster)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sentinai.common import subjects

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address(value: object) -> str:
    """An L1 account or contract address, lower-cased.

    YAML reads an unquoted ``0x…`` as an integer; an address is exactly 20 bytes, so its leading
    zeros come back when it is written out again at full width.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**160:
        value = f"0x{value:040x}"
    if not isinstance(value, str) or _ADDRESS.fullmatch(value) is None:
        raise ValueError(f"expected a 0x-prefixed 20-byte hex address, got {value!r}")
    return value.lower()


Address = Annotated[str, BeforeValidator(_address)]


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
    # Read on L1 (``l1Rpc``): the batcher's and proposer's balances, and the latest L2 block
    # proposed to the L2OutputOracle.
    l1_rpc: AnyHttpUrl | None = None
    batcher_address: Address | None = None
    proposer_address: Address | None = None
    l2_output_oracle_address: Address | None = None

    @field_validator("id")
    @classmethod
    def _id_is_token(cls, value: str) -> str:
        return subjects.token(value)

    @model_validator(mode="after")
    def _l1_reads_need_l1_rpc(self) -> Self:
        named = [
            to_camel(name)
            for name in ("batcher_address", "proposer_address", "l2_output_oracle_address")
            if getattr(self, name) is not None
        ]
        if named and self.l1_rpc is None:
            raise ValueError(f"{', '.join(named)} must be read on L1: set l1Rpc")
        return self


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
