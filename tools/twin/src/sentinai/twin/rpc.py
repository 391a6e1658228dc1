"""JSON-RPC methods of op-geth, op-node, op-batcher, op-proposer and L1 over the simulated state.

``call`` is pure: it answers from the state, and admin methods return the changed state. Shapes
follow the real clients: hex quantities for op-geth and L1, plain integers in op-node block refs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sentinai.twin import sim
from sentinai.twin.model import (
    GAS_LIMIT,
    L1_BLOCK_ADDRESS,
    L1_CHAIN_ID,
    L1_FINALITY_BLOCKS,
    L1_INFO_DEPOSITOR,
    L1_SAFE_BLOCKS,
    SEQUENCER_FEE_VAULT,
    TXPOOL_PENDING_CAP,
    Block,
    ChainState,
    Component,
    digest,
)

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
SERVER_ERROR: Final = -32000
EMPTY_UNCLES: Final = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
EMPTY_TRIE: Final = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
EMPTY_REQUESTS: Final = "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BASE_TIP_WEI: Final = 100_000
L1: Final = "l1"
# The chain's L1 endpoint is served next to its components (``/chains/<chain>/l1``).
Target = Component | Literal["l1"]
# L2OutputOracle.latestBlockNumber(): the first 4 bytes of keccak256("latestBlockNumber()").
LATEST_BLOCK_NUMBER: Final = "0x4599c788"
_ADDRESS: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Answer:
    result: Any
    state: ChainState  # unchanged unless the method is an admin command


Method = Callable[[ChainState, Sequence[Any]], Answer]


def call(state: ChainState, component: Target, method: str, params: Sequence[Any]) -> Answer:
    handler = _METHODS[component].get(method)
    if handler is None:
        raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
    return handler(state, params)


def _q(value: int) -> str:
    return hex(value)


def _param(params: Sequence[Any], index: int, default: Any = None) -> Any:
    return params[index] if len(params) > index else default


def _number(value: Any, *, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid argument 0: {what} {value!r} is not a hex quantity")


def _resolve(state: ChainState, tag: Any) -> int:
    named = {
        "latest": state.head.number,
        "pending": state.head.number,
        "safe": state.safe_l2,
        "finalized": state.finalized_l2,
        "earliest": 0,
    }
    if isinstance(tag, str) and tag in named:
        return named[tag]
    return _number(tag, what="block number")


# --- op-geth -------------------------------------------------------------------------------------


def _tx_objects(state: ChainState, block: Block, hashes: list[str]) -> list[dict[str, Any]]:
    block_hash = state.l2_hash(block.number)
    common = {"blockHash": block_hash, "blockNumber": _q(block.number), "value": "0x0"}
    deposit = {
        **common,
        "hash": hashes[0],
        "type": "0x7e",
        "from": L1_INFO_DEPOSITOR,
        "to": L1_BLOCK_ADDRESS,
        "gas": "0xf4240",
        "gasPrice": "0x0",
        "input": "0x098999be" + digest("l1info", block.origin)[2:],
        "nonce": _q(block.number),
        "transactionIndex": "0x0",
        "sourceHash": digest("source", block.number),
        "mint": "0x0",
        "depositReceiptVersion": "0x1",
        "v": "0x0",
        "r": "0x0",
        "s": "0x0",
    }
    users = [
        {
            **common,
            "hash": h,
            "type": "0x2",
            "from": "0x" + digest("from", h)[26:],
            "to": "0x" + digest("to", h)[26:],
            "gas": "0x30d40",
            "gasPrice": _q(block.base_fee + BASE_TIP_WEI),
            "maxFeePerGas": _q(2 * block.base_fee + BASE_TIP_WEI),
            "maxPriorityFeePerGas": _q(BASE_TIP_WEI),
            "input": "0x",
            "nonce": _q(int(h[2:6], 16)),
            "transactionIndex": _q(index),
            "chainId": _q(state.config.chain_id_number),
        }
        for index, h in enumerate(hashes[1:], start=1)
    ]
    return [deposit, *users]


def block_json(state: ChainState, block: Block, *, full: bool) -> dict[str, Any]:
    n = block.number
    hashes = [digest(state.config.chain, "tx", n, i) for i in range(block.tx_count)]
    return {
        "baseFeePerGas": _q(block.base_fee),
        "blobGasUsed": "0x0",
        "difficulty": "0x0",
        "excessBlobGas": "0x0",
        "extraData": "0x",
        "gasLimit": _q(GAS_LIMIT),
        "gasUsed": _q(block.gas_used),
        "hash": state.l2_hash(n),
        "logsBloom": "0x" + "00" * 256,
        "miner": SEQUENCER_FEE_VAULT,
        "mixHash": digest("mix", n),
        "nonce": "0x0000000000000000",
        "number": _q(n),
        "parentBeaconBlockRoot": digest("beacon", block.origin),
        "parentHash": state.l2_hash(n - 1),
        "receiptsRoot": digest("receipts", n),
        "requestsHash": EMPTY_REQUESTS,
        "sha3Uncles": EMPTY_UNCLES,
        "size": _q(600 + 110 * block.tx_count),
        "stateRoot": digest("root", n),
        "timestamp": _q(block.timestamp),
        "transactions": _tx_objects(state, block, hashes) if full else hashes,
        "transactionsRoot": digest("txroot", n),
        "uncles": [],
        "withdrawals": [],
        "withdrawalsRoot": EMPTY_TRIE,
    }


def _get_block_by_number(state: ChainState, params: Sequence[Any]) -> Answer:
    block = sim.block_at(state, _resolve(state, _param(params, 0, "latest")))
    full = bool(_param(params, 1, False))
    return Answer(None if block is None else block_json(state, block, full=full), state)


def _get_block_by_hash(state: ChainState, params: Sequence[Any]) -> Answer:
    wanted = str(_param(params, 0, "")).lower()
    block = next((b for b in reversed(state.blocks) if state.l2_hash(b.number) == wanted), None)
    full = bool(_param(params, 1, False))
    return Answer(None if block is None else block_json(state, block, full=full), state)


def _fee_history(state: ChainState, params: Sequence[Any]) -> Answer:
    count = min(1024, max(0, _number(_param(params, 0, "0x1"), what="block count")))
    newest = min(state.head.number, _resolve(state, _param(params, 1, "latest")))
    percentiles = _param(params, 2)
    blocks = [b for b in (sim.block_at(state, n) for n in range(newest - count + 1, newest + 1)) if b]
    if not blocks:
        return Answer({"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": []}, state)
    result: dict[str, Any] = {
        "oldestBlock": _q(blocks[0].number),
        "baseFeePerGas": [_q(b.base_fee) for b in blocks] + [_q(sim.next_base_fee(blocks[-1]))],
        "gasUsedRatio": [round(sim.gas_used_ratio(b), 6) for b in blocks],
        "baseFeePerBlobGas": ["0x1"] * (len(blocks) + 1),
        "blobGasUsedRatio": [0.0] * len(blocks),
    }
    if percentiles:
        result["reward"] = [
            # Tips climb with congestion: full blocks mean bidding for inclusion.
            [
                _q(int(BASE_TIP_WEI * (1 + float(p) / 50) * (10 if sim.gas_used_ratio(b) > 0.9 else 1)))
                for p in percentiles
            ]
            for b in blocks
        ]
    return Answer(result, state)


def _const(value: Callable[[ChainState], Any]) -> Method:
    return lambda state, _params: Answer(value(state), state)


# --- op-node -------------------------------------------------------------------------------------


def _l1_ref(state: ChainState, number: int) -> dict[str, Any]:
    return {
        "hash": state.l1_hash(number),
        "number": number,
        "parentHash": state.l1_hash(number - 1),
        "timestamp": state.l1_timestamp(number),
    }


def _l2_ref(state: ChainState, number: int) -> dict[str, Any]:
    block = sim.block_at(state, number) or state.head
    return {
        "hash": state.l2_hash(block.number),
        "number": block.number,
        "parentHash": state.l2_hash(block.number - 1),
        "timestamp": block.timestamp,
        "l1origin": {"hash": state.l1_hash(block.origin), "number": block.origin},
        "sequenceNumber": block.sequence_number,
    }


def sync_status(state: ChainState) -> dict[str, Any]:
    head_l1 = state.l1_head
    finalized_l1 = _l1_ref(state, head_l1 - L1_FINALITY_BLOCKS)
    unsafe = _l2_ref(state, state.head.number)
    safe = _l2_ref(state, state.safe_l2)
    return {
        "current_l1": _l1_ref(state, head_l1),
        "current_l1_finalized": finalized_l1,
        "head_l1": _l1_ref(state, head_l1),
        "safe_l1": _l1_ref(state, head_l1 - L1_SAFE_BLOCKS),
        "finalized_l1": finalized_l1,
        "unsafe_l2": unsafe,
        "safe_l2": safe,
        "finalized_l2": _l2_ref(state, state.finalized_l2),
        "pending_safe_l2": safe,
        "cross_unsafe_l2": unsafe,
        "local_safe_l2": safe,
    }


def peer_stats(state: ChainState) -> dict[str, int]:
    n = state.node_peers
    return {
        "connected": n,
        "table": 3 * n + (8 if n else 0),
        "blocksTopic": n,
        "blocksTopicV2": n,
        "blocksTopicV3": n,
        "banned": 0,
        "known": 5 * n + (40 if n else 0),
    }


def _switch(component: Component, *, start: bool, noun: str) -> Method:
    def handler(state: ChainState, _params: Sequence[Any]) -> Answer:
        running = {
            "op-node": state.sequencer_active,
            "op-batcher": state.batcher_active,
            "op-proposer": state.proposer_active,
        }[component]
        if running == start:
            raise RpcError(SERVER_ERROR, f"{noun} {'already running' if start else 'not running'}")
        # admin_stopSequencer answers with the hash of the last block it sealed.
        result = state.l2_hash(state.head.number) if component == "op-node" and not start else None
        return Answer(result, sim.set_active(state, component, start))

    return handler


# --- L1 --------------------------------------------------------------------------------------------


def l1_unreachable(state: ChainState) -> bool:
    """During an ``l1_rpc_outage`` the chain's L1 provider answers nobody, the collector included."""
    return state.active("l1_rpc_outage") is not None


def _address(value: Any) -> str:
    if not isinstance(value, str) or _ADDRESS.fullmatch(value) is None:
        raise RpcError(INVALID_PARAMS, f"invalid argument 0: {value!r} is not a hex-encoded 20-byte address")
    return value.lower()


def _get_balance(state: ChainState, params: Sequence[Any]) -> Answer:
    address = _address(_param(params, 0))
    cfg = state.config
    balances = {
        cfg.batcher_address: state.batcher_balance_wei,
        cfg.proposer_address: state.proposer_balance_wei,
    }
    return Answer(_q(balances.get(address, 0)), state)


def _eth_call(state: ChainState, params: Sequence[Any]) -> Answer:
    call = _param(params, 0)
    if not isinstance(call, dict):
        raise RpcError(INVALID_PARAMS, "invalid argument 0: expected a call object")
    to = _address(call.get("to"))
    data = str(call.get("data") or call.get("input") or "0x").lower()
    if to != state.config.l2_output_oracle_address:
        return Answer("0x", state)  # an account without code returns nothing
    if data[:10] == LATEST_BLOCK_NUMBER:
        return Answer("0x" + f"{state.proposed_l2:064x}", state)
    raise RpcError(SERVER_ERROR, "execution reverted")


_VERSION: Final = _const(lambda _s: sim.OP_NODE_VERSION)

_METHODS: Final[dict[Target, dict[str, Method]]] = {
    "op-geth": {
        "eth_blockNumber": _const(lambda s: _q(s.head.number)),
        "eth_getBlockByNumber": _get_block_by_number,
        "eth_getBlockByHash": _get_block_by_hash,
        "txpool_status": _const(
            lambda s: {"pending": _q(min(s.pending, TXPOOL_PENDING_CAP)), "queued": _q(s.queued)}
        ),
        "eth_feeHistory": _fee_history,
        "eth_syncing": _const(lambda _s: False),
        "net_peerCount": _const(lambda s: _q(s.geth_peers)),
        "net_listening": _const(lambda _s: True),
        "net_version": _const(lambda s: str(s.config.chain_id_number)),
        "eth_chainId": _const(lambda s: _q(s.config.chain_id_number)),
        "eth_gasPrice": _const(lambda s: _q(sim.next_base_fee(s.head) + BASE_TIP_WEI)),
        "eth_maxPriorityFeePerGas": _const(lambda _s: _q(BASE_TIP_WEI)),
        "web3_clientVersion": _const(lambda _s: sim.GETH_VERSION),
    },
    "op-node": {
        "optimism_syncStatus": _const(sync_status),
        "opp2p_peerStats": _const(peer_stats),
        "optimism_version": _VERSION,
        "admin_sequencerActive": _const(lambda s: s.sequencer_active),
        "admin_startSequencer": _switch("op-node", start=True, noun="sequencer"),
        "admin_stopSequencer": _switch("op-node", start=False, noun="sequencer"),
        "health_status": _VERSION,
    },
    "op-batcher": {
        "health_status": _VERSION,
        "admin_startBatcher": _switch("op-batcher", start=True, noun="batcher is"),
        "admin_stopBatcher": _switch("op-batcher", start=False, noun="batcher is"),
    },
    "op-proposer": {
        "health_status": _VERSION,
        "admin_startProposer": _switch("op-proposer", start=True, noun="proposer is"),
        "admin_stopProposer": _switch("op-proposer", start=False, noun="proposer is"),
    },
    L1: {
        "eth_getBalance": _get_balance,
        "eth_call": _eth_call,
        "eth_blockNumber": _const(lambda s: _q(s.l1_head)),
        "eth_chainId": _const(lambda _s: _q(L1_CHAIN_ID)),
        "net_version": _const(lambda _s: str(L1_CHAIN_ID)),
    },
}
