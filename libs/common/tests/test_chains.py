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


L1_FILE = """
chains:
  - id: sepolia-l2
    l1Rpc: https://l1.example:8545
    batcherAddress: "0x8F23BB38F531600e5d8FDDaAEC41F13FaB46E98c"
    proposerAddress: "0x49277EE36A024120Ee218127354c4a3591dc90A9"
    l2OutputOracleAddress: 0x0000f8B4a4D2c3C9E6d33CF6CdA7A1Ac89BBe6E1
"""


def test_l1_accounts_and_oracle_parse_lower_cased() -> None:
    (chain,) = parse_chains(L1_FILE)
    assert str(chain.l1_rpc) == "https://l1.example:8545/"
    assert chain.batcher_address == "0x8f23bb38f531600e5d8fddaaec41f13fab46e98c"
    assert chain.proposer_address == "0x49277ee36a024120ee218127354c4a3591dc90a9"
    # Unquoted, YAML reads the address as an integer: its leading zeros come back.
    assert chain.l2_output_oracle_address == "0x0000f8b4a4d2c3c9e6d33cf6cda7a1ac89bbe6e1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'chains:\n  - id: a\n    l1Rpc: http://l1\n    batcherAddress: "0x1234"\n',
            "chains.0.batcherAddress",
            id="short-address",
        ),
        pytest.param(
            'chains:\n  - id: a\n    l1Rpc: http://l1\n    proposerAddress: "proposer"\n',
            "chains.0.proposerAddress",
            id="not-hex",
        ),
        pytest.param(
            'chains:\n  - id: a\n    batcherAddress: "0x' + "ab" * 20 + '"\n',
            "batcherAddress must be read on L1: set l1Rpc",
            id="address-without-l1-rpc",
        ),
    ],
)
def test_bad_l1_settings_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ChainConfigError) as info:
        parse_chains(text, source="chains.yaml")
    assert message in str(info.value)
