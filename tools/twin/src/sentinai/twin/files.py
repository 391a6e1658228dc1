"""The files the twin hands to the rest of SentinAI: a kubeconfig and the collector's chain config."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sentinai.twin.model import ChainConfig

CLUSTER = "sentinai-twin"
USER = "sentinai-twin-admin"


def kubeconfig(*, server: str, token: str, chains: Sequence[str]) -> str:
    """One context per chain (its namespace); the first chain's context is current."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {"server": server}}],
        "users": [{"name": USER, "user": {"token": token}}],
        "contexts": [
            {"name": chain, "context": {"cluster": CLUSTER, "user": USER, "namespace": chain}}
            for chain in chains
        ],
        "current-context": chains[0],
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def chains_yaml(*, base_url: str, configs: Sequence[ChainConfig], kubeconfig_path: Path) -> str:
    """The collector's chain list, one entry per twin chain."""
    lines = ["chains:"]
    for cfg in configs:
        chain = cfg.chain
        lines += [
            f"  - id: {chain}",
            f"    l2Rpc: {base_url}/chains/{chain}/op-geth",
            f"    opNodeRpc: {base_url}/chains/{chain}/op-node",
            f"    batcherRpc: {base_url}/chains/{chain}/op-batcher",
            f"    proposerRpc: {base_url}/chains/{chain}/op-proposer",
            f"    kubeconfig: {kubeconfig_path.resolve()}",
            f"    namespace: {chain}",
            f"    blockTimeS: {cfg.block_time_s}",
            f"    l1Rpc: {base_url}/chains/{chain}/l1",
            # Quoted: YAML reads an unquoted 0x… as an integer.
            f'    batcherAddress: "{cfg.batcher_address}"',
            f'    proposerAddress: "{cfg.proposer_address}"',
            f'    l2OutputOracleAddress: "{cfg.l2_output_oracle_address}"',
        ]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Readers polling for the file never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
