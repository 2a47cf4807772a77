"""Signing and verifying rollback commands (the command side of :mod:`rollwatch.trust`).

A rollback command makes flag stores and gateways change production behaviour, so a
consumer acts only on a command signed by a key its keyring trusts to sign commands, and
takes the key's owner as the author: ``issued_by`` must name that owner.
:func:`sign_command` writes the owner into ``issued_by`` before signing, so a producer
cannot get it wrong.

The signature covers the RFC 8785 bytes of the command as it travels (its JSON form
without ``signature``). A consumer verifies the bytes it *received*, parsed, not a
re-serialization of its own model, so a producer in any language that writes valid JSON
verifies alike.

Commands signed by rollwatch 0.1 carry no ``signature.canon``; their bytes were the
model's sorted-key orjson form (:func:`legacy_bytes`). Consumers accept them while
``legacy_command_signatures`` is on (one release), and refuse them once it is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import SecretStr

from rollwatch.commands import RollbackCommand, Signature
from rollwatch.errors import ConfigError
from rollwatch.trust import (
    Keyring,
    SignatureError,
    SigningKey,
    TrustedKey,
    keyring_from_settings,
    parse_signing_key,
    signature_for,
    signing_key_from_settings,
    verify_document,
)

__all__ = [
    "Keyring",
    "SignatureError",
    "SigningKey",
    "keyring_from_settings",
    "legacy_bytes",
    "sign_command",
    "signing_key_from_settings",
    "verify_command",
]


def legacy_bytes(command: RollbackCommand) -> bytes:
    """The 0.1 signed form: the model's JSON without ``signature``, keys sorted by orjson."""
    body = command.model_dump(mode="json")
    body.pop("signature", None)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign_command(
    command: RollbackCommand, key_id: str | None = None, key: str | bytes | SecretStr | SigningKey | None = None
) -> RollbackCommand:
    """A copy of ``command`` issued by ``key``'s owner and signed by ``key``.

    Raises :class:`ConfigError` when there is no key: an unsigned command would be
    refused by every consumer, so failing at the producer is the useful place.
    """
    if isinstance(key, SigningKey):
        signing = key
    elif key is None or key_id is None:
        raise ConfigError("no signing key: set ROLLWATCH_SIGNING_KEY (and ROLLWATCH_SIGNING_KEY_ID)")
    else:
        signing = parse_signing_key(key_id, key)
    update: dict[str, Any] = {"signature": None}
    if signing.principal is not None:
        update["issued_by"] = signing.principal
    unsigned = command.model_copy(update=update)
    body = unsigned.model_dump(mode="json")
    body.pop("signature", None)
    signature = Signature.model_validate(signature_for(body, signing))
    return unsigned.model_copy(update={"signature": signature})


def verify_command(
    command: RollbackCommand,
    keys: Keyring,
    received: bytes | Mapping[str, Any] | None = None,
    *,
    legacy: bool = True,
) -> TrustedKey:
    """The trusted key that signed ``command``; else :class:`SignatureError`.

    ``received`` is the message as it arrived (bytes or parsed); without it the command's
    own JSON form is verified. ``legacy`` admits the 0.1 signed form.
    """
    if received is None:
        document: Mapping[str, Any] = command.model_dump(mode="json")
    elif isinstance(received, Mapping):
        document = received
    else:
        document = orjson.loads(received)
    trusted = verify_document(document, keys, "commands", legacy=(lambda: legacy_bytes(command)) if legacy else None)
    if trusted.principal != command.issued_by:
        raise SignatureError(
            "issuer_mismatch",
            f"key {trusted.key_id!r} belongs to {trusted.principal!r}; "
            f"the command claims issued_by {command.issued_by!r}",
        )
    return trusted
