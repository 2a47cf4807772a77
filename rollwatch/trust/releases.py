"""Signed release tickets on the releases topic.

A ticket changes what flags are in force (its candidate route at its start percent) and
who may command what, so it travels signed like a command. The record value is a JSON
envelope that carries the ticket file as written (YAML or JSON, so problems still point
at its lines) and is signed with :mod:`rollwatch.trust.signatures`::

    {"format": "rollwatch.release/v1", "workflow": "...", "ticket": "REL-2041", "revision": 3,
     "published_at": "2026-12-06T00:00:00Z", "published_by": "release-bot",
     "media_type": "application/yaml", "text": "<the ticket file>", "signature": {...}}

A ticket is retired with the same envelope, ``"retired": true`` and no ``text``. A
Kafka tombstone (null value) is not a retirement: nobody signed it, so consumers refuse it
and keep the ticket in force. ``published_by`` must be the key's owner, the key must be
trusted to sign ``tickets``, and the record key must be the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

import orjson

from rollwatch.commands import rfc3339
from rollwatch.tickets import Ticket, load_ticket_bytes
from rollwatch.trust.errors import SignatureError, TrustError
from rollwatch.trust.keyring import Keyring
from rollwatch.trust.keys import SigningKey
from rollwatch.trust.signatures import sign_document, verify_document

__all__ = [
    "RELEASE_FORMAT",
    "Release",
    "ReleaseRefused",
    "load_release",
    "open_release",
    "release_record",
    "retire_record",
    "ticket_record",
]

RELEASE_FORMAT: Final = "rollwatch.release/v1"

ReleaseProblem: TypeAlias = Literal[
    "unsigned", "malformed", "mismatch", "unknown_key", "wrong_alg", "bad_signature", "not_canonical",
    "key_not_allowed", "issuer_mismatch", "legacy_refused", "older_revision",
]  # fmt: skip


class ReleaseRefused(TrustError):
    """A releases-topic record that must not change what is in force; ``code`` for metrics and audits."""

    def __init__(self, code: ReleaseProblem, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Release:
    """A verified releases-topic record."""

    workflow: str
    ticket: str
    revision: int
    text: bytes | None
    """The ticket file; None for a retirement."""
    author: str
    published_at: str


def _principal(key: SigningKey) -> str:
    if key.principal is None:
        raise TrustError(f"signing key {key.key_id!r} has no owner: set ROLLWATCH_PRINCIPAL or list it in the keyring")
    return key.principal


def _signed(workflow: str, ticket: str, revision: int, key: SigningKey, at: datetime, body: dict[str, Any]) -> bytes:
    document: dict[str, Any] = {
        "format": RELEASE_FORMAT,
        "workflow": workflow,
        "ticket": ticket,
        "revision": revision,
        "published_at": rfc3339(at),
        "published_by": _principal(key),
        **body,
    }
    return orjson.dumps(sign_document(document, key))


def release_record(
    text: bytes, workflow: str, ticket: str, revision: int, key: SigningKey, at: datetime, media_type: str
) -> bytes:
    """The signed releases-topic value that puts the ticket file ``text`` in force."""
    return _signed(workflow, ticket, revision, key, at, {"media_type": media_type, "text": text.decode("utf-8")})


def ticket_record(raw: bytes, ticket: Ticket, key: SigningKey, at: datetime | None = None) -> bytes:
    """The signed releases-topic value for ``ticket``, loaded from the file ``raw``."""
    media_type = "application/json" if raw.lstrip()[:1] == b"{" else "application/yaml"
    when = at or datetime.now(UTC)
    return release_record(raw, ticket.workflow, ticket.ticket, ticket.revision, key, when, media_type)


def retire_record(workflow: str, ticket: str, revision: int, key: SigningKey, at: datetime) -> bytes:
    """The signed releases-topic value that retires ``workflow``'s ticket."""
    return _signed(workflow, ticket, revision, key, at, {"retired": True})


def _str(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise ReleaseRefused("malformed", f"{name}: expected a non-empty string")
    return value


def open_release(key: bytes | None, value: bytes | None, keyring: Keyring) -> Release:
    """The verified release in a releases-topic record; else :class:`ReleaseRefused`."""
    if value is None:
        raise ReleaseRefused("unsigned", "a tombstone is unsigned: retire a ticket with `rollwatch ticket retire`")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or document.get("format") != RELEASE_FORMAT:
        hint = "publish tickets with `rollwatch ticket publish`"
        raise ReleaseRefused("unsigned", f"not a signed {RELEASE_FORMAT} envelope ({hint})")
    try:
        trusted = verify_document(document, keyring, "tickets")
    except SignatureError as exc:
        raise ReleaseRefused(exc.problem, str(exc)) from None
    workflow, author = _str(document, "workflow"), _str(document, "published_by")
    if author != trusted.principal:
        raise ReleaseRefused(
            "issuer_mismatch", f"key {trusted.key_id!r} belongs to {trusted.principal!r}, not {author!r}"
        )
    if key is not None and key.decode("utf-8", "replace") != workflow:
        raise ReleaseRefused("mismatch", f"record key {key.decode('utf-8', 'replace')!r} is not workflow {workflow!r}")
    revision = document.get("revision")
    if type(revision) is not int or revision < 0:
        raise ReleaseRefused("malformed", "revision: expected a whole number")
    retired = document.get("retired", False)
    text = document.get("text")
    if retired is True:
        body = None
    elif retired is False and isinstance(text, str):
        body = text.encode("utf-8")
    else:
        raise ReleaseRefused("malformed", "expected a ticket text, or retired: true")
    return Release(workflow, _str(document, "ticket"), revision, body, author, _str(document, "published_at"))


def load_release(
    key: bytes | None, value: bytes | None, keyring: Keyring, source: str, in_force: Ticket | None
) -> tuple[Release, Ticket | None]:
    """Verify a releases-topic record and load its ticket (None for a retirement).

    Refuses a ticket whose file disagrees with its envelope, and an older revision of the
    ticket in force (a replay of a superseded, once-valid signed revision). Raises
    :class:`ReleaseRefused`, or ``TicketError`` for a signed ticket that does not load.
    """
    release = open_release(key, value, keyring)
    if (
        in_force is not None
        and in_force.workflow == release.workflow
        and in_force.ticket == release.ticket
        and release.revision < in_force.revision
    ):
        raise ReleaseRefused(
            "older_revision", f"{release.ticket} r{release.revision} is older than r{in_force.revision} in force"
        )
    if release.text is None:
        return release, None
    ticket = load_ticket_bytes(release.text, source)
    envelope = (release.workflow, release.ticket, release.revision)
    if (ticket.workflow, ticket.ticket, ticket.revision) != envelope:
        raise ReleaseRefused(
            "mismatch",
            f"the file is {ticket.ticket} r{ticket.revision} for {ticket.workflow!r}; "
            f"the envelope says {release.ticket} r{release.revision} for {release.workflow!r}",
        )
    return release, ticket
