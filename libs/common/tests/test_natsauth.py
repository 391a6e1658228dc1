"""The NATS users generator: private files, stable identities, and permissions taken from `subjects`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sentinai.common import natsauth, streams, subjects

ROOTS = {value for name, value in vars(subjects).items() if name.isupper() and isinstance(value, str)}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ours(allowed: tuple[str, ...]) -> set[str]:
    """The application subjects of a list (not the JetStream API, KV or inbox ones)."""
    return {s for s in allowed if not s.startswith(("$JS.", "$KV.", "_INBOX_"))}


def test_every_user_gets_a_private_credentials_file_in_a_private_folder(tmp_path: Path) -> None:
    folder = tmp_path / "auth"
    users = natsauth.generate(folder)
    assert set(users) == set(natsauth.USERS)
    assert mode(folder) == 0o700
    for user in natsauth.USERS:
        path = natsauth.creds_file(folder, user)
        assert mode(path) == 0o600, path
        assert natsauth.read_credentials(path) == users[user]
        assert users[user].seed.startswith("SU") and users[user].public_key.startswith("U")
    assert mode(folder / natsauth.AUTH_CONFIG) == 0o600
    assert len({c.public_key for c in users.values()}) == len(natsauth.USERS)


def test_a_second_run_keeps_the_identities_and_tightens_loosened_modes(tmp_path: Path) -> None:
    folder = tmp_path / "auth"
    first = natsauth.generate(folder)
    natsauth.creds_file(folder, "planner").chmod(0o644)
    folder.chmod(0o755)
    assert natsauth.generate(folder) == first
    assert mode(natsauth.creds_file(folder, "planner")) == 0o600
    assert mode(folder) == 0o700


def test_the_server_config_holds_public_keys_and_never_a_seed(tmp_path: Path) -> None:
    users = natsauth.ensure_users(tmp_path / "auth")
    config = natsauth.server_config(users, listen="127.0.0.1:4222", store_dir=tmp_path / "js")
    for creds in users.values():
        assert f'nkey: "{creds.public_key}"' in config
        assert creds.seed not in config
    assert 'listen: "127.0.0.1:4222"' in config and "jetstream" in config
    # The read-only user may publish nothing at all (an empty allow list would allow everything).
    assert config.count('publish: { deny: [">"] }') == 1


def test_a_file_that_is_not_credentials_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "planner.creds"
    path.write_text("not a seed\n")
    with pytest.raises(natsauth.CredentialsError, match=r"planner\.creds"):
        natsauth.read_credentials(path)
    good = natsauth.new_credentials("planner").render()
    path.write_text(good.replace("SU", "SX", 1))
    with pytest.raises(natsauth.CredentialsError):
        natsauth.read_credentials(path)
    with pytest.raises(natsauth.CredentialsError, match="cannot read"):
        natsauth.read_credentials(tmp_path / "missing.creds")


def test_an_existing_file_of_another_user_is_not_taken_for_this_one(tmp_path: Path) -> None:
    folder = tmp_path / "auth"
    folder.mkdir()
    natsauth.creds_file(folder, "planner").write_text(natsauth.new_credentials("collector").render())
    with pytest.raises(natsauth.CredentialsError, match="collector"):
        natsauth.ensure_users(folder)


@pytest.mark.parametrize("user", natsauth.USERS)
def test_every_subject_in_a_permission_comes_from_the_subjects_module(user: str) -> None:
    allowed = natsauth.permissions(user)
    for subject in ours(allowed.publish) | ours(allowed.subscribe):
        if subject == ">":
            assert user == natsauth.ADMIN
            continue
        root = subject.removesuffix(".>")
        assert root in ROOTS or subject in ROOTS or root.startswith(f"{subjects.DEAD_LETTER}."), subject


def test_the_collector_sends_telemetry_and_its_dead_letters_only() -> None:
    allowed = natsauth.permissions("collector")
    assert ours(allowed.publish) == {
        subjects.METRICS_RAW_ANY,
        f"{subjects.LOGS_RAW}.>",
        subjects.dead_letter("collector"),
    }
    assert allowed.subscribe == ("_INBOX_collector.>",)
    assert not [s for s in allowed.publish if s.startswith(("$KV.", "$JS.API.CONSUMER"))]


def test_each_decision_subject_has_exactly_one_sender() -> None:
    def senders(subject: str) -> set[str]:
        return {u for u in natsauth.SERVICE_USERS if subject in natsauth.permissions(u).publish}

    assert senders(f"{subjects.ACTION_APPROVED}.>") == {"planner"}
    assert senders(f"{subjects.ACTION_PROPOSED}.>") == {"planner"}
    assert senders(subjects.ACTION_VERDICT_ALL) == {"planner"}
    assert senders(f"{subjects.ACTION_EXECUTED}.>") == {"executor"}
    assert senders(f"{subjects.ACTION_COMMAND}.>") == {"api"}
    assert senders(f"{subjects.ACTION_REQUESTED}.>") == {"api"}
    assert senders(f"{subjects.AUDIT}.>") == {"planner", "rca", "executor"}


def test_only_the_planner_writes_approvals_and_no_service_may_change_a_stream() -> None:
    approvals = "$KV.sentinai.approvals.>"
    writers = {u for u in natsauth.USERS if approvals in natsauth.permissions(u).publish}
    assert writers == {"planner"}
    for user in natsauth.SERVICE_USERS:
        for subject in natsauth.permissions(user).publish:
            assert not subject.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE")), user
            assert not subject.startswith("$JS.API.STREAM.DELETE"), user
        assert natsauth.permissions(user).publish.count(subjects.dead_letter(user)) == 1


def test_a_service_reads_the_streams_it_consumes_and_no_other() -> None:
    def readable(user: str) -> set[str]:
        return {
            spec.name
            for spec in streams.ALL
            if f"$JS.API.CONSUMER.MSG.NEXT.{spec.name}.*" in natsauth.permissions(user).publish
        }

    assert readable("collector") == set()
    assert readable("detector") == readable("predictor") == {"TELEMETRY"}
    assert readable("executor") == {"ACTIONS"}
    assert readable("planner") == {"EVENTS", "ACTIONS", "AUDIT"}
    assert readable("api") == {"TELEMETRY", "EVENTS", "ACTIONS", "AUDIT"}


def test_the_integrations_user_listens_to_events_and_sends_nothing() -> None:
    allowed = natsauth.permissions(natsauth.INTEGRATIONS)
    assert allowed.publish == ()
    assert subjects.ANOMALY_ALL in allowed.subscribe
    assert f"{subjects.AUDIT}.>" in allowed.subscribe
    assert not any(
        s.startswith(("_INBOX", subjects.METRICS_RAW, subjects.LOGS_RAW)) for s in allowed.subscribe
    )


def test_connect_options_sign_as_the_user_and_use_its_own_inboxes(tmp_path: Path) -> None:
    users = natsauth.ensure_users(tmp_path / "auth", ["rca"])
    options = natsauth.connect_options(natsauth.creds_file(tmp_path / "auth", "rca"))
    assert options == {"nkeys_seed_str": users["rca"].seed, "inbox_prefix": b"_INBOX_rca"}
    assert natsauth.connect_options(None) == {}


def test_an_unknown_user_has_no_permissions() -> None:
    with pytest.raises(ValueError, match="unknown NATS user"):
        natsauth.permissions("mallory")
