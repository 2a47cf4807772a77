"""Who is trusted to sign what: principals, their keys, and the documents each may sign.

A consumer never believes a name inside a document. It looks the signing key up in its
keyring and takes the *owner of the key* as the author: ``issued_by`` of a command must
be that owner, and the owner must be allowed to sign that kind of document
(``commands``, ``tickets`` or ``flags``). Whether a command's author may take the
action it asks for is then up to the ticket in force (owners and authority).

The keyring is a JSON file (``schemas/keyring.v1.json``; ``ROLLWATCH_KEYRING_FILE``) so
that gateways in other languages load the same file. Ed25519 keys are listed by their
public half; an HMAC key names the environment variable that holds its secret, so no
secret is ever written into the file.

Without a keyring file (development, the demo, a single-secret deployment) the process's
own signing key is trusted for everything under ``ROLLWATCH_PRINCIPAL``, and each entry of
the older ``ROLLWATCH_VERIFY_KEYS`` is trusted to sign commands as a principal named like
its key id. With a keyring file, the file alone says who may sign what.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal, TypeAlias

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from rollwatch.settings import Settings
from rollwatch.trust.errors import KeyringError
from rollwatch.trust.keys import ED, HMAC, SigningKey, VerifyKey, parse_signing_key, parse_verify_key, public_of

__all__ = [
    "KEYRING_FORMAT",
    "PURPOSES",
    "Keyring",
    "Purpose",
    "TrustedKey",
    "keyring_entry",
    "keyring_from_settings",
    "load_keyring",
    "signing_key_from_settings",
]

Purpose: TypeAlias = Literal["commands", "tickets", "flags"]
PURPOSES: Final[tuple[Purpose, ...]] = ("commands", "tickets", "flags")
KEYRING_FORMAT: Final = "rollwatch.keyring/v1"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One key a consumer trusts: whose it is and what it may sign."""

    key_id: str
    principal: str
    key: VerifyKey
    may_sign: frozenset[Purpose]


class Keyring(Mapping[str, TrustedKey]):
    """``key_id`` -> :class:`TrustedKey`; the only keys a consumer trusts."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise KeyringError(f"key id {key.key_id!r} is listed twice")
            self._keys[key.key_id] = key

    def __getitem__(self, key_id: str) -> TrustedKey:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def principals(self) -> dict[str, list[TrustedKey]]:
        out: dict[str, list[TrustedKey]] = {}
        for key in self._keys.values():
            out.setdefault(key.principal, []).append(key)
        return out

    def merged(self, other: Iterable[TrustedKey]) -> Keyring:
        """This keyring plus keys whose ids it does not hold yet."""
        return Keyring([*self._keys.values(), *(k for k in other if k.key_id not in self._keys)])


Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key_id: Name
    public_key: Annotated[str, StringConstraints(pattern=r"^ed25519:")] | None = None
    secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None


class _PrincipalEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    description: str | None = None
    may_sign: Annotated[list[Purpose], Field(min_length=1)]
    keys: Annotated[list[_KeyEntry], Field(min_length=1)]


class _KeyringFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["rollwatch.keyring/v1"]
    principals: list[_PrincipalEntry]


def _trusted(path: Path, where: str, principal: _PrincipalEntry, entry: _KeyEntry) -> TrustedKey:
    if (entry.public_key is None) == (entry.secret_env is None):
        raise KeyringError(f"{path}: field {where}: expected exactly one of public_key or secret_env")
    if entry.public_key is not None:
        try:
            key = parse_verify_key(entry.public_key, entry.key_id)
        except KeyringError as exc:
            raise KeyringError(f"{path}: field {where}.public_key: {exc}") from None
    else:
        assert entry.secret_env is not None
        secret = os.environ.get(entry.secret_env)
        if not secret:
            raise KeyringError(
                f"{path}: field {where}.secret_env: environment variable {entry.secret_env} is not set "
                "(expected the HMAC secret of this key)"
            )
        key = VerifyKey("hmac-sha256", secret.removeprefix(HMAC).encode())
    return TrustedKey(entry.key_id, principal.name, key, frozenset(principal.may_sign))


def load_keyring(path: Path) -> Keyring:
    """Read a keyring file; every problem names the file, the field and what was expected."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyringError(f"{path}: cannot read the keyring file: {exc.strerror}") from None
    try:
        parsed = _KeyringFile.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise KeyringError(f"{path}: not valid JSON: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise KeyringError(f"{path}: field {field}: {err['msg']}") from None
    names = [p.name for p in parsed.principals]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise KeyringError(f"{path}: field principals: principal {dupes[0]!r} is listed twice")
    keys = [
        _trusted(path, f"principals.{i}.keys.{j}", principal, entry)
        for i, principal in enumerate(parsed.principals)
        for j, entry in enumerate(principal.keys)
    ]
    return Keyring(keys)


def signing_key_from_settings(settings: Settings, keyring: Keyring | None = None) -> SigningKey | None:
    """The key this process signs with, owned by the principal the keyring names for it.

    Without a keyring entry for the key id, the owner is ``settings.principal``.
    """
    if settings.signing_key is None:
        return None
    if keyring is None and settings.keyring_file is not None:
        keyring = load_keyring(settings.keyring_file)
    listed = keyring.get(settings.signing_key_id) if keyring is not None else None
    principal = listed.principal if listed is not None else settings.principal
    return parse_signing_key(settings.signing_key_id, settings.signing_key, principal)


def keyring_from_settings(settings: Settings) -> Keyring:
    """The keyring a consumer trusts (see the module docstring for the two modes)."""
    if settings.keyring_file is not None:
        return load_keyring(settings.keyring_file)
    keys: list[TrustedKey] = []
    own = signing_key_from_settings(settings)
    if own is not None:
        keys.append(TrustedKey(own.key_id, settings.principal, public_of(own), frozenset(PURPOSES)))
    for key_id, text in settings.verify_keys.items():
        if own is not None and key_id == own.key_id:
            keys = [k for k in keys if k.key_id != key_id]
        keys.append(TrustedKey(key_id, key_id, parse_verify_key(text, key_id), frozenset({"commands"})))
    return Keyring(keys)


def keyring_entry(
    principal: str, key_id: str, public_key: str, may_sign: Iterable[Purpose], description: str | None = None
) -> dict[str, object]:
    """One principal's entry for a keyring file (what ``rollwatch keys generate`` prints)."""
    if not public_key.startswith(ED):
        raise KeyringError("a keyring lists Ed25519 public keys as 'ed25519:<base64>'")
    entry: dict[str, object] = {"name": principal, "may_sign": list(dict.fromkeys(may_sign))}
    if description:
        entry["description"] = description
    entry["keys"] = [{"key_id": key_id, "public_key": public_key}]
    return entry
