"""Errors of the trust layer: keys, keyrings and signatures."""

from __future__ import annotations

from typing import Literal, TypeAlias

from rollwatch.errors import ConfigError, RollwatchError

__all__ = ["KeyringError", "SignatureError", "SignatureProblem", "TrustError"]

SignatureProblem: TypeAlias = Literal[
    "unsigned",
    "unknown_key",
    "wrong_alg",
    "bad_signature",
    "not_canonical",
    "key_not_allowed",
    "issuer_mismatch",
    "legacy_refused",
]


class TrustError(RollwatchError):
    """Base class of the trust layer's errors."""


class KeyringError(TrustError, ConfigError):
    """A keyring file or key text is wrong; the message names the file, the field and what was expected."""


class SignatureError(TrustError):
    """A document whose signature does not prove it came from a key allowed to sign it.

    ``problem`` is a stable code for audits, acks and metrics; the message says it in words.
    """

    def __init__(self, problem: SignatureProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)
