"""Per-person API keys: random tokens handed out once, stored only as SHA-256 hashes.

A key file (``SENTINAI_API_KEYS_FILE``; a mounted Kubernetes Secret in a cluster) holds one entry
per principal: its name, its role and the hash of its token. ``sentinai keys add|list|revoke``
edit it; the api re-reads it when it changes, so a revoked key stops working without a restart.
``SENTINAI_API_KEY`` stays as one operator key named ``operator`` for the quick start.

Roles: ``operator`` requests, approves and rejects; ``approver`` approves and rejects; ``viewer``
writes nothing. The principal's name is the actor of every write; a name given in a request body
never is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sentinai.common.identity import identity_key

Role = Literal["operator", "approver", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
Operation = Literal["approve", "reject", "request"]
ALLOWED: dict[Role, frozenset[Operation]] = {
    "operator": frozenset({"approve", "reject", "request"}),
    "approver": frozenset({"approve", "reject"}),
    "viewer": frozenset(),
}
# The principal of ``SENTINAI_API_KEY``; no key in the file may take its name.
ENV_PRINCIPAL = "operator"
TOKEN_PREFIX = "sai_"
_NAME_MAX = 64


class KeyFileError(ValueError):
    """The key file cannot be read or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    source: Literal["keys_file", "env"] = "keys_file"

    def may(self, operation: Operation) -> bool:
        return operation in ALLOWED[self.role]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class KeyEntry(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=_NAME_MAX)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The token's first characters, so `sentinai keys list` can tell keys apart without the token.
    hint: str = Field(max_length=12)
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    keys: tuple[KeyEntry, ...] = ()


def _check_name(name: str) -> str:
    clean = " ".join(name.split())
    if not clean or len(clean) > _NAME_MAX or any(not ch.isprintable() for ch in clean):
        raise KeyFileError(f"a key name is 1–{_NAME_MAX} printable characters, got {name!r}")
    if identity_key(clean) == identity_key(ENV_PRINCIPAL):
        raise KeyFileError(f"{ENV_PRINCIPAL!r} is the name of SENTINAI_API_KEY's principal; choose another")
    return clean


class KeyStore:
    """The key file, re-read whenever its modification time or size changes."""

    def __init__(self, path: Path | None, *, env_key: str | None = None) -> None:
        self.path = path
        self._env_hash = token_hash(env_key) if env_key else None
        self._stamp: tuple[int, int] | None = None
        self._file = KeyFile()

    # ------------------------------------------------------------------------------- reading

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> KeyFile:
        stamp = self._stat()
        if stamp != self._stamp:
            self._file = read_key_file(self.path) if stamp is not None and self.path else KeyFile()
            self._stamp = stamp
        return self._file

    @property
    def configured(self) -> bool:
        """Whether any key could authenticate (the env key or an active key in the file)."""
        return self._env_hash is not None or any(k.active for k in self.load().keys)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal whose key ``token`` is, else ``None`` (compared in constant time per key)."""
        if not token:
            return None
        digest = token_hash(token)
        found: Principal | None = None
        if self._env_hash is not None and hmac.compare_digest(digest, self._env_hash):
            found = Principal(ENV_PRINCIPAL, "operator", "env")
        for entry in self.load().keys:
            if hmac.compare_digest(digest, entry.sha256) and entry.active and found is None:
                found = Principal(entry.name, entry.role)
        return found

    # ------------------------------------------------------------------------------- writing

    def add(self, name: str, role: Role, *, now: datetime | None = None) -> tuple[KeyEntry, str]:
        """A new key for ``name``: the entry stored and the token, which is shown once and never kept."""
        if self.path is None:
            raise KeyFileError("no key file is configured (SENTINAI_API_KEYS_FILE)")
        if role not in ROLES:
            raise KeyFileError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        clean = _check_name(name)
        current = self.load()
        if any(k.active and identity_key(k.name) == identity_key(clean) for k in current.keys):
            raise KeyFileError(f"{clean!r} already has an active key; revoke it first")
        token = new_token()
        entry = KeyEntry(
            name=clean,
            role=role,
            sha256=token_hash(token),
            hint=token[: len(TOKEN_PREFIX) + 4],
            created_at=now or datetime.now(UTC),
        )
        self._write(KeyFile(keys=(*current.keys, entry)))
        return entry, token

    def revoke(self, name: str, *, now: datetime | None = None) -> int:
        """Revoke every active key of ``name``; how many were revoked."""
        if self.path is None:
            raise KeyFileError("no key file is configured (SENTINAI_API_KEYS_FILE)")
        when = now or datetime.now(UTC)
        current = self.load()
        count = 0
        kept: list[KeyEntry] = []
        for entry in current.keys:
            if entry.active and identity_key(entry.name) == identity_key(name):
                kept.append(entry.model_copy(update={"revoked_at": when}))
                count += 1
            else:
                kept.append(entry)
        if count:
            self._write(KeyFile(keys=tuple(kept)))
        return count

    def _write(self, content: KeyFile) -> None:
        assert self.path is not None
        write_key_file(self.path, content)
        self._stamp = None  # re-read on the next call


def read_key_file(path: Path) -> KeyFile:
    try:
        return KeyFile.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return KeyFile()
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from exc


def write_key_file(path: Path, content: KeyFile) -> None:
    """Atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = content.model_dump_json(by_alias=True, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
