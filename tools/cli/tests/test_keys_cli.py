"""`sentinai keys add|list|revoke` on a real key file, checked with the api's own KeyStore."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sentinai.api.keys import KeyStore
from sentinai.cli.main import main


def sentinai(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def token_of(stdout: str) -> str:
    [line] = [x for x in stdout.splitlines() if x.startswith("token: ")]
    return line.removeprefix("token: ")


@pytest.fixture(autouse=True)
def no_keys_file_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINAI_API_KEYS_FILE", raising=False)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "api-keys.json"


def test_add_prints_the_token_once_and_the_file_keeps_only_its_hash(
    capsys: pytest.CaptureFixture[str], keys: Path
) -> None:
    code, out, _ = sentinai(capsys, "keys", "add", "alice", "--role", "approver", "--file", str(keys))
    assert code == 0
    token = token_of(out)
    assert out.count(token) == 1
    assert "stored nowhere" in out and "SENTINAI_API_KEY" in out and "x-api-key" in out
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    text = keys.read_text()
    assert token not in text and token[4:] not in text
    # The key works for the api, as alice the approver.
    principal = KeyStore(keys).authenticate(token)
    assert principal is not None and (principal.name, principal.role) == ("alice", "approver")


def test_list_shows_names_roles_hints_and_dates_never_hashes_or_tokens(
    capsys: pytest.CaptureFixture[str], keys: Path
) -> None:
    _, added, _ = sentinai(capsys, "keys", "add", "alice", "--role", "approver", "--file", str(keys))
    sentinai(capsys, "keys", "add", "bob", "--role", "viewer", "--file", str(keys))
    code, listing, _ = sentinai(capsys, "keys", "list", "--file", str(keys))
    assert code == 0
    token = token_of(added)
    [header, alice, bob] = listing.splitlines()
    assert header.split() == ["NAME", "ROLE", "HINT", "CREATED", "REVOKED"]
    assert alice.split()[:3] == ["alice", "approver", token[:8] + "…"]
    assert bob.split()[:2] == ["bob", "viewer"] and bob.split()[-1] == "-"
    hashes = [k["sha256"] for k in json.loads(keys.read_text())["keys"]]
    assert token not in listing and not any(h in listing for h in hashes)
    code, as_json, _ = sentinai(capsys, "keys", "list", "--json", "--file", str(keys))
    rows = json.loads(as_json)
    assert [(r["name"], r["role"], r["revokedAt"]) for r in rows] == [
        ("alice", "approver", None),
        ("bob", "viewer", None),
    ]
    assert not any(h in as_json for h in hashes)


@pytest.mark.parametrize("again", ["alice", "ALICE", "  Alice ", "ａｌｉｃｅ"])
def test_a_second_active_key_for_the_same_person_is_refused(
    capsys: pytest.CaptureFixture[str], keys: Path, again: str
) -> None:
    sentinai(capsys, "keys", "add", "alice", "--role", "approver", "--file", str(keys))
    before = keys.read_text()
    code, out, err = sentinai(capsys, "keys", "add", again, "--role", "operator", "--file", str(keys))
    assert code == 2
    assert "already has an active key" in err and "token" not in out
    assert keys.read_text() == before


def test_revoke_stops_the_key_and_frees_the_name(capsys: pytest.CaptureFixture[str], keys: Path) -> None:
    _, added, _ = sentinai(capsys, "keys", "add", "alice", "--role", "approver", "--file", str(keys))
    old = token_of(added)
    code, out, _ = sentinai(capsys, "keys", "revoke", "ALICE", "--file", str(keys))
    assert code == 0 and "revoked 1 key of ALICE" in out
    assert KeyStore(keys).authenticate(old) is None
    _, listing, _ = sentinai(capsys, "keys", "list", "--file", str(keys))
    name, role, _hint, *created, revoked_day, revoked_time = listing.splitlines()[1].split()
    assert (name, role, len(created)) == ("alice", "approver", 2)
    assert revoked_day[:2] == "20" and revoked_time.count(":") == 2  # when, not "-"
    # A new key for the same person works; the revoked one still does not.
    _, again, _ = sentinai(capsys, "keys", "add", "alice", "--role", "operator", "--file", str(keys))
    principal = KeyStore(keys).authenticate(token_of(again))
    assert principal is not None and principal.role == "operator"
    assert KeyStore(keys).authenticate(old) is None


@pytest.mark.parametrize("name", ["mallory", "alice"], ids=["never-added", "already-revoked"])
def test_revoking_no_active_key_exits_2(capsys: pytest.CaptureFixture[str], keys: Path, name: str) -> None:
    sentinai(capsys, "keys", "add", "alice", "--role", "approver", "--file", str(keys))
    sentinai(capsys, "keys", "revoke", "alice", "--file", str(keys))
    before = keys.read_text()
    code, _, err = sentinai(capsys, "keys", "revoke", name, "--file", str(keys))
    assert code == 2 and f"no active key named {name!r}" in err
    assert keys.read_text() == before


def test_the_file_comes_from_the_flag_else_the_environment_else_the_state_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    sentinai(capsys, "--state-dir", str(state), "keys", "add", "ann", "--role", "viewer")
    assert [k["name"] for k in json.loads((state / "api-keys.json").read_text())["keys"]] == ["ann"]

    from_env = tmp_path / "env-keys.json"
    monkeypatch.setenv("SENTINAI_API_KEYS_FILE", str(from_env))
    sentinai(capsys, "--state-dir", str(state), "keys", "add", "ben", "--role", "viewer")
    flag = tmp_path / "flag-keys.json"
    sentinai(capsys, "--state-dir", str(state), "keys", "add", "cy", "--role", "viewer", "--file", str(flag))
    names = {p.name: [k["name"] for k in json.loads(p.read_text())["keys"]] for p in (from_env, flag)}
    assert names == {"env-keys.json": ["ben"], "flag-keys.json": ["cy"]}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["add", "operator", "--role", "approver"], "SENTINAI_API_KEY"),
        (["add", "   ", "--role", "approver"], "printable characters"),
        (["list"], "cannot read the key file"),
    ],
    ids=["reserved-name", "blank-name", "corrupt-file"],
)
def test_what_the_file_cannot_take_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], keys: Path, argv: list[str], says: str
) -> None:
    if argv == ["list"]:
        keys.parent.mkdir(parents=True)
        keys.write_text("{not json")
    code, out, err = sentinai(capsys, "keys", *argv, "--file", str(keys))
    assert code == 2 and says in err and "token" not in out
