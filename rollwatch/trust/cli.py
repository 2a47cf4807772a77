"""``rollwatch keys``: make a key pair and check a keyring, so nobody needs a Python one-liner.

``keys generate`` prints the three settings lines a signer needs (keep the private key
secret: it belongs in the signer's environment or secret store, never in a repository)
and the principal's entry for the consumers' keyring file. ``keys check`` loads a
keyring file the way every consumer does and lists who may sign what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from rollwatch.trust.keyring import PURPOSES, Purpose, keyring_entry, load_keyring
from rollwatch.trust.keys import generate_ed25519

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Signing keys and the keyring (docs/trust-model.md).", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    principal: Annotated[str, typer.Option("--principal", "-p", help="Who owns the key (as tickets name them).")],
    may_sign: Annotated[
        list[str] | None,
        typer.Option("--may-sign", help="commands, tickets or flags; repeat for several (default: commands)."),
    ] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Key id (default: PRINCIPAL-key).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: settings and keyring entry.")] = False,
) -> None:
    """Make an Ed25519 key pair: the signer's settings and the keyring entry for consumers."""
    purposes = may_sign or ["commands"]
    unknown = [p for p in purposes if p not in PURPOSES]
    if unknown:
        raise typer.BadParameter(f"{unknown[0]!r}: expected one of {', '.join(PURPOSES)}", param_hint="--may-sign")
    kid = key_id or f"{principal}-key"
    private, public = generate_ed25519()
    entry = keyring_entry(principal, kid, public, [p for p in PURPOSES if p in purposes])
    settings = {"ROLLWATCH_SIGNING_KEY_ID": kid, "ROLLWATCH_SIGNING_KEY": private, "ROLLWATCH_PRINCIPAL": principal}
    if as_json:
        typer.echo(orjson.dumps({"settings": settings, "keyring_entry": entry}).decode())
        return
    typer.echo("# The signer's settings. Keep ROLLWATCH_SIGNING_KEY secret (a secret store, not a repository).")
    for name, value in settings.items():
        typer.echo(f"{name}={value}")
    typer.echo("# The keyring entry: add it to \"principals\" in every consumer's keyring file.")
    typer.echo(orjson.dumps(entry, option=orjson.OPT_INDENT_2).decode())


@keys_app.command("check")
def keys_check(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="A keyring file (schemas/keyring.v1.json).")],
) -> None:
    """Load a keyring as the consumers do and list each principal, its keys and what it may sign."""
    keyring = load_keyring(file)
    for name, keys in sorted(keyring.principals().items()):
        may: list[Purpose] = sorted({p for k in keys for p in k.may_sign})
        ids = ", ".join(f"{k.key_id} ({k.key.alg})" for k in keys)
        typer.echo(f"{name}: may sign {', '.join(may)}; keys {ids}")
