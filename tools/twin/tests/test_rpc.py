"""JSON-RPC answers: the shapes real OP Stack clients parse, straight from the simulated state."""

from __future__ import annotations

from random import Random

import pytest

from sentinai.twin import incidents, rpc, sim
from sentinai.twin.model import ChainConfig, ChainState


@pytest.fixture
def state() -> ChainState:
    rng = Random(3)
    state = sim.initial_state(ChainConfig(chain="rpc"), rng)
    for _ in range(5):
        state, _lines = sim.step(state, rng)
    return state


def call(state: ChainState, component: str, method: str, *params: object) -> object:
    return rpc.call(state, component, method, list(params)).result  # type: ignore[arg-type]


def test_every_block_starts_with_the_l1_info_deposit(state: ChainState) -> None:
    rng = Random(4)
    quiet = sim.set_traffic(state, 0.0)
    for _ in range(3):
        quiet, _lines = sim.step(quiet, rng)
    block = call(quiet, "op-geth", "eth_getBlockByNumber", "latest", True)
    assert isinstance(block, dict)
    assert len(block["transactions"]) == 1  # an "empty" OP block
    assert block["transactions"][0]["type"] == "0x7e"
    assert int(block["gasUsed"], 16) > 0
    assert block["miner"] == "0x4200000000000000000000000000000000000011"


def test_blocks_chain_together_and_old_blocks_exist(state: ChainState) -> None:
    head = call(state, "op-geth", "eth_getBlockByNumber", "latest", False)
    assert isinstance(head, dict)
    parent = call(state, "op-geth", "eth_getBlockByNumber", hex(int(head["number"], 16) - 1), False)
    assert isinstance(parent, dict) and parent["hash"] == head["parentHash"]
    assert call(state, "op-geth", "eth_getBlockByNumber", "0x1", False) is not None
    assert call(state, "op-geth", "eth_getBlockByNumber", hex(int(head["number"], 16) + 1), False) is None
    assert call(state, "op-geth", "eth_getBlockByHash", head["hash"], False) == head


def test_sync_status_uses_integer_numbers(state: ChainState) -> None:
    status = call(state, "op-node", "optimism_syncStatus")
    assert isinstance(status, dict)
    for field in ("current_l1", "current_l1_finalized", "head_l1", "safe_l1", "finalized_l1"):
        assert set(status[field]) == {"hash", "number", "parentHash", "timestamp"}
        assert isinstance(status[field]["number"], int)
    for field in (
        "unsafe_l2",
        "safe_l2",
        "finalized_l2",
        "pending_safe_l2",
        "cross_unsafe_l2",
        "local_safe_l2",
    ):
        assert isinstance(status[field]["l1origin"]["number"], int)
    assert status["unsafe_l2"]["number"] == state.head.number
    assert status["head_l1"]["number"] == state.l1_head


def test_fee_history_shape(state: ChainState) -> None:
    history = call(state, "op-geth", "eth_feeHistory", "0x4", "latest")
    assert isinstance(history, dict)
    assert len(history["baseFeePerGas"]) == 5 and len(history["gasUsedRatio"]) == 4
    assert "reward" not in history


def test_admin_stop_sequencer_stops_blocks(state: ChainState) -> None:
    answer = rpc.call(state, "op-node", "admin_stopSequencer", [])
    assert answer.result == state.l2_hash(state.head.number)
    stopped = answer.state
    assert call(stopped, "op-node", "admin_sequencerActive") is False
    with pytest.raises(rpc.RpcError, match="not running"):
        rpc.call(stopped, "op-node", "admin_stopSequencer", [])
    after, _lines = sim.step(stopped, Random(5))
    assert after.head.number == stopped.head.number


def test_unknown_method_is_method_not_found(state: ChainState) -> None:
    with pytest.raises(rpc.RpcError) as unknown:
        rpc.call(state, "op-geth", "optimism_syncStatus", [])
    assert unknown.value.code == rpc.METHOD_NOT_FOUND


# --- L1: the batcher's and proposer's accounts, the L2OutputOracle ------------------------------------


def test_l1_answers_the_batcher_and_proposer_balances(state: ChainState) -> None:
    cfg = state.config
    assert call(state, rpc.L1, "eth_getBalance", cfg.batcher_address, "latest") == hex(
        state.batcher_balance_wei
    )
    # Addresses are case-insensitive (a checksummed address is the same account).
    assert call(
        state, rpc.L1, "eth_getBalance", cfg.proposer_address.upper().replace("0X", "0x"), "latest"
    ) == hex(state.proposer_balance_wei)
    assert call(state, rpc.L1, "eth_getBalance", "0x" + "00" * 20, "latest") == "0x0"
    assert call(state, rpc.L1, "eth_blockNumber") == hex(state.l1_head)
    with pytest.raises(rpc.RpcError) as bad:
        call(state, rpc.L1, "eth_getBalance", "0x1234", "latest")
    assert bad.value.code == rpc.INVALID_PARAMS


def test_the_oracle_answers_latest_block_number_as_one_abi_word(state: ChainState) -> None:
    oracle = state.config.l2_output_oracle_address
    word = call(state, rpc.L1, "eth_call", {"to": oracle, "data": rpc.LATEST_BLOCK_NUMBER}, "latest")
    assert isinstance(word, str) and len(word) == 2 + 64
    assert int(word, 16) == state.proposed_l2
    # An account without code answers nothing; an unknown function of the oracle reverts.
    assert call(state, rpc.L1, "eth_call", {"to": state.config.batcher_address, "data": "0x4599c788"}) == "0x"
    with pytest.raises(rpc.RpcError, match="execution reverted"):
        call(state, rpc.L1, "eth_call", {"to": oracle, "data": "0xdeadbeef"}, "latest")


def test_l1_reads_follow_the_incidents(state: ChainState) -> None:
    rng = Random(5)
    for kind in ("batcher_failure", "proposer_failure"):
        state = sim.inject(state, incidents.make(kind, None, tick=state.tick))
    proposed = state.proposed_l2
    for _ in range(70):
        state, _lines = sim.step(state, rng)
    cfg = state.config
    assert int(call(state, rpc.L1, "eth_getBalance", cfg.batcher_address, "latest"), 16) < 10**15  # type: ignore[arg-type]
    word = call(
        state, rpc.L1, "eth_call", {"to": cfg.l2_output_oracle_address, "data": "0x4599c788"}, "latest"
    )
    assert int(word, 16) == proposed  # type: ignore[arg-type]
    assert not rpc.l1_unreachable(state)
    assert rpc.l1_unreachable(sim.inject(state, incidents.make("l1_rpc_outage", None, tick=state.tick)))
