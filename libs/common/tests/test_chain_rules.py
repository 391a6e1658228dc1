"""The stall multiple and the tx-pool cap: one variable each, read alike by every service."""

from __future__ import annotations

import pydantic
import pytest
from pydantic_settings import SettingsConfigDict

from sentinai.common.incidents import STALL_BLOCK_TIMES, TXPOOL_CAP
from sentinai.common.settings import ChainRules, ServiceSettings


class _SomeServiceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINAI_SOMESERVICE_", extra="ignore", frozen=True)


def test_the_defaults_are_the_catalogues() -> None:
    assert ChainRules() == ChainRules(stall_block_times=STALL_BLOCK_TIMES, txpool_cap=TXPOOL_CAP)
    assert (STALL_BLOCK_TIMES, TXPOOL_CAP) == (3.0, 5120.0)
    assert _SomeServiceSettings().chain_rules == ChainRules()


def test_every_service_reads_the_shared_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_STALL_BLOCK_TIMES", "4")
    monkeypatch.setenv("SENTINAI_TXPOOL_CAP", "4096")
    assert _SomeServiceSettings().chain_rules == ChainRules(stall_block_times=4.0, txpool_cap=4096.0)


def test_a_service_prefixed_variable_is_not_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_SOMESERVICE_STALL_BLOCK_TIMES", "9")
    assert _SomeServiceSettings().chain_rules.stall_block_times == STALL_BLOCK_TIMES


@pytest.mark.parametrize("variable", ["SENTINAI_STALL_BLOCK_TIMES", "SENTINAI_TXPOOL_CAP"])
def test_a_rule_must_be_positive(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "0")
    with pytest.raises(pydantic.ValidationError):
        _SomeServiceSettings()


@pytest.mark.parametrize(
    ("block_time_s", "limit_s"),
    [
        pytest.param(2.0, 6.0, id="op-mainnet-2s"),
        pytest.param(1.0, 3.0, id="1s-blocks"),
        pytest.param(0.25, 0.75, id="250ms-blocks"),
    ],
)
def test_the_stall_limit_is_the_multiple_of_the_block_time(block_time_s: float, limit_s: float) -> None:
    assert ChainRules().stall_limit_s(block_time_s) == limit_s


def test_the_stall_limit_is_the_product_the_services_computed() -> None:
    # The detector, the rca and the executor multiplied the multiple by the block time; the planner 3 by it.
    for block_time_s in (0.1, 0.3, 1.7, 2.0, 12.0):
        assert (
            ChainRules().stall_limit_s(block_time_s) == 3 * block_time_s == STALL_BLOCK_TIMES * block_time_s
        )
