"""Chain configuration: the file the twin writes parses; a bad file names the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinai.common.chains import ChainConfigError, load_chains, parse_chains

TWIN_FILE = """
chains:
  - id: twin
    l2Rpc: http://127.0.0.1:18080/chains/twin/op-geth
    opNodeRpc: http://127.0.0.1:18080/chains/twin/op-node
    batcherRpc: http://127.0.0.1:18080/chains/twin/op-batcher
    proposerRpc: http://127.0.0.1:18080/chains/twin/op-proposer
    kubeconfig: /tmp/twin/kubeconfig
    namespace: twin
    blockTimeS: 2
    twinControl: http://127.0.0.1:18080/control
  - id: sepolia-l2
    l2Rpc: http://127.0.0.1:8545
"""


def test_twin_chains_file_parses() -> None:
    twin, bare = parse_chains(TWIN_FILE)
    assert twin.id == "twin"
    assert str(twin.op_node_rpc) == "http://127.0.0.1:18080/chains/twin/op-node"
    assert twin.kubeconfig == Path("/tmp/twin/kubeconfig")
    assert twin.namespace == "twin"
    assert twin.block_time_s == 2.0
    assert bare.op_node_rpc is None and bare.kubeconfig is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("chains:\n  - id: a\n    l2Rpc: not a url\n", "chains.0.l2Rpc", id="bad-url"),
        pytest.param("chains:\n  - id: a.b\n", "chains.0.id", id="id-not-a-subject-token"),
        pytest.param("chains:\n  - id: a\n    l2rpc: http://x\n", "chains.0.l2rpc", id="misspelt-key"),
        pytest.param("chains:\n  - l2Rpc: http://x\n", "chains.0.id: Field required", id="missing-id"),
        pytest.param("chains:\n  - id: a\n    blockTimeS: 0\n", "chains.0.blockTimeS", id="zero-block-time"),
        pytest.param("chains: []\n", "chains", id="no-chains"),
        pytest.param("chains:\n  - id: a\n  - id: a\n", "duplicate chain id(s): a", id="duplicate-id"),
        pytest.param("- id: a\n", "<root>", id="not-a-mapping"),
        pytest.param("chains: [\n", "not valid YAML", id="not-yaml"),
    ],
)
def test_bad_chains_file_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ChainConfigError, match=r"^chains\.yaml: ") as info:
        parse_chains(text, source="chains.yaml")
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChainConfigError, match="cannot read chains file"):
        load_chains(tmp_path / "absent.yaml")
