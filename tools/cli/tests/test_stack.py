"""What `sentinai up` starts: one process per service, or several sharing the work when asked."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sentinai.cli import stack
from sentinai.cli.main import parser, up_settings
from sentinai.common import natsauth

SETUP = "nats-setup"


def children(settings: stack.UpSettings) -> dict[str, dict[str, str]]:
    started = stack.service_children(
        settings, nats_url="nats://127.0.0.1:4222", chains_file=Path("chains.yaml"), poll_s=1.0
    )
    return {child.name: dict(child.env) for child in started}


def test_by_default_each_service_runs_once() -> None:
    started = children(stack.UpSettings())
    assert sorted(started) == sorted([SETUP, *stack.SERVICES])
    assert "SENTINAI_COLLECTOR_SHARD" not in started["collector"]
    assert "SENTINAI_DETECTOR_PARTITION" not in started["detector"]


def test_each_service_connects_as_its_own_nats_user_after_the_admin_step(tmp_path: Path) -> None:
    settings = stack.UpSettings(SENTINAI_STATE_DIR=str(tmp_path))
    started = stack.service_children(
        settings, nats_url="nats://127.0.0.1:4222", chains_file=Path("chains.yaml"), poll_s=1.0
    )
    assert started[0].name == SETUP and started[0].oneshot
    setup = dict(started[0].env)
    assert setup["SENTINAI_NATS_CREDS"] == str(tmp_path.resolve() / "nats" / "auth" / "admin.creds")
    assert setup["SENTINAI_DETECTOR_PARTITIONS"] == "1"
    for child in started[1:]:
        assert child.env["SENTINAI_NATS_CREDS"] == str(stack.nats_creds(tmp_path, child.name))
        assert child.env["SENTINAI_NATS_CREDS"].endswith(f"/nats/auth/{child.name}.creds")


def test_an_external_nats_is_used_as_it_is_configured() -> None:
    started = children(stack.UpSettings(SENTINAI_NATS_URL="nats://nats.example:4222"))
    assert sorted(started) == sorted(stack.SERVICES)
    assert not [name for name, env in started.items() if "SENTINAI_NATS_CREDS" in env]


def test_the_embedded_server_gets_private_users_and_keeps_them_across_starts(tmp_path: Path) -> None:
    data = tmp_path / "nats"
    first = stack.nats_child(port=4300, data_dir=data, bucket="sentinai")
    config = data / "auth" / natsauth.SERVER_CONFIG
    assert list(first.argv[1:]) == ["--config", str(config)]
    assert 'listen: "127.0.0.1:4300"' in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "auth").stat().st_mode) == 0o700
    admin = (data / "auth" / "admin.creds").read_text()
    stack.nats_child(port=4301, data_dir=data, bucket="sentinai")
    assert (data / "auth" / "admin.creds").read_text() == admin
    assert 'listen: "127.0.0.1:4301"' in config.read_text()


def test_up_json_tells_tools_where_the_admin_and_integrations_creds_are(tmp_path: Path) -> None:
    natsauth.ensure_users(stack.nats_auth_dir(tmp_path))
    path = stack.runtime_file(tmp_path)
    stack.Runtime(nats_url="nats://127.0.0.1:4300", api_url="http://127.0.0.1:8080", twin_url=None).save(path)
    loaded = stack.Runtime.load(path)
    assert loaded is not None
    assert loaded.admin_creds == stack.nats_creds(tmp_path, "admin")
    assert loaded.integrations_creds == stack.nats_creds(tmp_path, "integrations")
    assert loaded.nats_options()["inbox_prefix"] == b"_INBOX_admin"


def test_an_up_json_from_before_nats_users_still_loads(tmp_path: Path) -> None:
    path = stack.runtime_file(tmp_path)
    path.write_text(json.dumps({"natsUrl": "nats://h:1", "apiUrl": "http://h:2", "twinUrl": None}))
    loaded = stack.Runtime.load(path)
    assert loaded == stack.Runtime(nats_url="nats://h:1", api_url="http://h:2", twin_url=None)
    assert loaded is not None and loaded.nats_options() == {}


def test_flags_start_collector_shards_and_detector_partitions() -> None:
    args = parser().parse_args(["up", "--collector-shards", "3", "--detector-partitions", "2"])
    started = children(up_settings(args))
    collectors = {n: env for n, env in started.items() if n.startswith("collector")}
    detectors = {n: env for n, env in started.items() if n.startswith("detector")}
    assert sorted(collectors) == ["collector-0", "collector-1", "collector-2"]
    assert sorted(detectors) == ["detector-0", "detector-1"]
    # Every shard and partition exactly once, each process told the count and its own share.
    assert sorted(env["SENTINAI_COLLECTOR_SHARD"] for env in collectors.values()) == ["0", "1", "2"]
    assert {env["SENTINAI_COLLECTOR_SHARDS"] for env in collectors.values()} == {"3"}
    assert sorted(env["SENTINAI_DETECTOR_PARTITION"] for env in detectors.values()) == ["0", "1"]
    assert {env["SENTINAI_DETECTOR_PARTITIONS"] for env in detectors.values()} == {"2"}
    # The admin step makes TELEMETRY for that many partitions before any detector starts.
    assert started[SETUP]["SENTINAI_DETECTOR_PARTITIONS"] == "2"
    assert {env["SENTINAI_NATS_CREDS"].rsplit("/", 1)[1] for env in detectors.values()} == {"detector.creds"}
    # Each process has its own health port.
    ports = [
        env[f"SENTINAI_{n.split('-')[0].upper()}_HTTP_PORT"] for n, env in {**collectors, **detectors}.items()
    ]
    assert len(set(ports)) == len(ports)


def test_the_environment_asks_for_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_COLLECTOR_SHARDS", "2")
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", "4")
    started = children(up_settings(parser().parse_args(["up"])))
    assert sum(n.startswith("collector-") for n in started) == 2
    assert sum(n.startswith("detector-") for n in started) == 4


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_process_count_outside_1_to_64_is_refused(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["up", "--collector-shards", count])
    assert "expected a process count from 1 to 64" in capsys.readouterr().err
