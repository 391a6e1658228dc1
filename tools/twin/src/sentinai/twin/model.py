"""The twin's simulation state: small frozen dataclasses, constants and deterministic hashes."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Final, Literal

Component = Literal["op-geth", "op-node", "op-batcher", "op-proposer"]
COMPONENTS: Final[tuple[Component, ...]] = ("op-geth", "op-node", "op-batcher", "op-proposer")
STATEFUL: Final[frozenset[Component]] = frozenset({"op-geth", "op-node"})

# 2026-11-26T00:00:00Z: the fixed sim epoch of --manual runs, so their logs are reproducible.
DEFAULT_EPOCH_S: Final = 1795651200.0
L1_BLOCK_TIME_S: Final = 12
L1_CONFS: Final = 4  # the sequencer's --sequencer.l1-confs
L1_FINALITY_BLOCKS: Final = 64  # two epochs
L1_SAFE_BLOCKS: Final = 32
MAX_SEQUENCER_DRIFT_S: Final = 1800  # after Fjord
GAS_LIMIT: Final = 30_000_000
DEPOSIT_GAS: Final = 47_000  # the L1-info deposit every block starts with
GAS_PER_TX: Final = 130_000
ELASTICITY: Final = 6
BASE_FEE_DENOMINATOR: Final = 250
MIN_BASE_FEE_WEI: Final = 1_000_000
TXPOOL_PENDING_CAP: Final = 5120  # legacypool GlobalSlots
RECENT_BLOCKS: Final = 512
RESTART_TICKS: Final = 3  # a pod is NotReady this many ticks when it is replaced or restarts
L1_CHAIN_ID: Final = 900  # the OP Stack devnet's L1
DISK_CAPACITY_BYTES: Final = 512 * 2**30  # op-geth's data volume (its PersistentVolumeClaim)
L1_INFO_DEPOSITOR: Final = "0xdeaddeaddeaddeaddeaddeaddeaddeaddead0001"
L1_BLOCK_ADDRESS: Final = "0x4200000000000000000000000000000000000015"
SEQUENCER_FEE_VAULT: Final = "0x4200000000000000000000000000000000000011"


@functools.lru_cache(maxsize=1 << 16, typed=True)
def digest(*parts: object) -> str:
    """A 32-byte 0x-hex hash: deterministic stand-in for keccak of the named object.

    Memoised: every poll renders the same pod names, block and transaction hashes again.
    """
    return "0x" + hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


_K8S_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # what the API server uses for generated names


@functools.lru_cache(maxsize=4096)
def _k8s_suffix(key: str, length: int) -> str:
    number = int(digest(key)[2:18], 16)
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_K8S_ALPHABET))
        chars.append(_K8S_ALPHABET[index])
    return "".join(chars)


def seed_for(seed: int, chain: str) -> int:
    """Each chain draws from its own generator so adding a chain does not change another's run."""
    return int(hashlib.sha256(f"{seed}:{chain}".encode()).hexdigest()[:16], 16)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    chain: str
    seed: int = 42
    block_time_s: int = 2
    epoch_s: float = DEFAULT_EPOCH_S
    base_tps: float = 18.0
    cycle_s: float = 86_400.0  # the daily traffic cycle

    @property
    def chain_id_number(self) -> int:
        return 10_000 + int(digest("chain-id", self.chain)[2:10], 16) % 90_000

    @property
    def batcher_address(self) -> str:
        """The batcher's L1 account (its key pays for the batches)."""
        return _address(self.chain, "batcher")

    @property
    def proposer_address(self) -> str:
        """The proposer's L1 account (its key pays for the output proposals)."""
        return _address(self.chain, "proposer")

    @property
    def l2_output_oracle_address(self) -> str:
        """The chain's L2OutputOracle contract on L1."""
        return _address(self.chain, "L2OutputOracle")


def _address(chain: str, role: str) -> str:
    return "0x" + digest(chain, "address", role)[-40:]


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_request_m: int
    memory_request: int
    cpu_limit_m: int | None = None
    memory_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Terminated:
    reason: str
    exit_code: int
    started_tick: int
    finished_tick: int


@dataclass(frozen=True, slots=True)
class Pod:
    """One component's single pod (replicas 0 or 1) and its container."""

    component: Component
    resources: Resources
    replicas: int = 1
    revision: int = 1  # the pod template's revision: every template change makes a new one
    incarnation: int = 0  # a new pod object (rollout or delete) gets a new name and uid
    restart_count: int = 0
    created_tick: int = 0  # when this pod object was created
    started_tick: int = 0  # when its current container started
    down_ticks: int = 0  # > 0: container not running, pod NotReady, its RPC refuses
    waiting_reason: str = "ContainerCreating"
    last_terminated: Terminated | None = None
    cpu_cores: float = 0.0
    memory_bytes: int = 0

    @property
    def exists(self) -> bool:
        return self.replicas > 0

    @property
    def ready(self) -> bool:
        return self.replicas > 0 and self.down_ticks == 0

    @property
    def cpu_request_cores(self) -> float:
        return self.resources.cpu_request_m / 1000

    def name(self, chain: str) -> str:
        """StatefulSet pods are ``op-geth-0``; Deployment pods ``op-batcher-<template>-<pod>``."""
        if self.component in STATEFUL:
            return f"{self.component}-0"
        pod = _k8s_suffix(f"{chain}/{self.component}/pod{self.incarnation}", 5)
        return f"{self.component}-{self.template_hash(chain)}-{pod}"

    def template_hash(self, chain: str) -> str:
        return _k8s_suffix(f"{chain}/{self.component}/rev{self.revision}", 10)


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    timestamp: int
    gas_used: int
    base_fee: int
    tx_count: int  # including the L1-info deposit
    origin: int  # L1 origin number
    sequence_number: int


@dataclass(frozen=True, slots=True)
class Incident:
    kind: str
    params: tuple[tuple[str, float], ...]
    since_tick: int

    def param(self, name: str, default: float) -> float:
        return dict(self.params).get(name, default)


@dataclass(frozen=True, slots=True)
class LogLine:
    component: Component
    text: str


@dataclass(frozen=True, slots=True)
class ChainState:
    config: ChainConfig
    tick: int
    pods: dict[Component, Pod]
    blocks: tuple[Block, ...]  # the most recent RECENT_BLOCKS, oldest first
    l1_head: int
    l1_head_ts: int  # timestamp of L1 block 0 of this chain's history is l1_head_ts - l1_head * 12
    l1_reorgs: tuple[int, ...] = ()  # first L1 number replaced by each re-org, in order
    block_progress: float = 0.0
    pending: int = 0
    queued: int = 0
    traffic_multiplier: float = 1.0
    traffic_noise: float = 0.0
    tps: float = 0.0
    saturation: float = 0.0  # op-geth CPU demand / request
    safe_l2: int = 0
    finalized_l2: int = 0
    batched_to: int = 0  # last L2 block handed to L1 by the batcher
    pending_batch: tuple[int, int] | None = None  # (L2 number, L1 block that includes it)
    confirmed_l2: int = 0  # batched and included on L1; op-node derives it into the safe head
    next_batch_size: int = 30
    safe_history: tuple[tuple[int, int], ...] = ()  # (L1 number, safe L2) when safe moved
    proposed_l2: int = 0
    node_peers: int = 16
    geth_peers: int = 6
    disk_free_bytes: int = 380 * 2**30  # of DISK_CAPACITY_BYTES
    batcher_balance_wei: int = 12 * 10**18
    proposer_balance_wei: int = 5 * 10**18
    sequencer_active: bool = True
    batcher_active: bool = True
    proposer_active: bool = True
    incidents: tuple[Incident, ...] = field(default=())

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    def time_at(self, tick: int) -> float:
        return self.config.epoch_s + tick * self.config.block_time_s

    @property
    def now(self) -> float:
        return self.time_at(self.tick)

    def l1_timestamp(self, number: int) -> int:
        return self.l1_head_ts - (self.l1_head - number) * L1_BLOCK_TIME_S

    def l1_hash(self, number: int) -> str:
        salt = sum(1 for start in self.l1_reorgs if start <= number)
        return digest(self.config.chain, "l1", number, salt)

    def l2_hash(self, number: int) -> str:
        return digest(self.config.chain, "l2", number)

    def active(self, kind: str) -> Incident | None:
        return next((i for i in self.incidents if i.kind == kind), None)
