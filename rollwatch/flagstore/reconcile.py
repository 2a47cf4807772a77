"""After a broker loss: which copy of the flags is the truth, and what the flag store takes back.

The flag store writes every workflow's signed flags document to the compacted flags topic
and, beside the plain values, to its Redis hash. Normally both agree. A broker that lost
its data (the embedded broker keeps nothing across a restart; a real cluster can lose a
topic) brings the flags topic back empty while Redis still holds the rolled-back values:
a flag store rebuilding from the topic alone would serve the ticket's candidate again,
silently undoing every rollback.

The decision (also in ``docs/control-protocol.md``, "After a broker loss"):

* **The flags topic is the truth for every workflow it holds.** Redis is then only a
  materialization and is overwritten from it.
* **A workflow the topic does not hold, whose Redis hash carries a flags document signed
  by a key trusted for flags, is taken back from Redis** and re-published to the topic, so
  a rolled-back workflow stays rolled back (fail safe). Its command ids come back with it,
  so a replayed command is still a duplicate. Its control-topic position is dropped: it
  points into a log that no longer exists, and positioning by it would skip the commands
  of the new log.
* **Anything else in Redis is refused**: no document (a hash written before documents were
  kept, or by someone else), a document that does not verify, or one that names another
  workflow than its key. It is counted, audited and logged, never served, and the hash is
  replaced by what the flag store holds (deleted when it holds nothing for the workflow).

A flag store that keeps running through the loss still holds its state; it writes every
document to the new flags topic again as soon as it notices the reset
(:meth:`~rollwatch.flagstore.service.FlagStore.on_reset`).

Known limits: whoever can write Redis while the topic is lost can put back an *older*
signed document of the same workflow (a replay, not a forgery); nothing signed says which
of two documents is newer once the log that ordered them is gone. Keep Redis writable by
the flag store only. And the comparison happens once, at start: a flag store that starts
on an emptied topic while Redis is unreachable serves the topic's (empty) state, logs it
and counts it in ``rollwatch_flagstore_redis_errors_total``; it does not retry later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwatch.control.state import WorkflowFlags, verified_state
from rollwatch.trust import Keyring

__all__ = ["Reconciliation", "RedisRefusal", "take_back"]


@dataclass(frozen=True, slots=True)
class RedisRefusal:
    """A Redis copy the flag store would not take back, and why (``code`` is stable, for metrics)."""

    workflow: str
    code: str
    detail: str


@dataclass(slots=True)
class Reconciliation:
    """What the flag store took back from Redis at its last start (served in ``/healthz``)."""

    adopted: list[str] = field(default_factory=list)
    refused: list[RedisRefusal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "adopted": sorted(self.adopted),
            "refused": {r.workflow: f"{r.code}: {r.detail}" for r in sorted(self.refused, key=lambda r: r.workflow)},
        }


def take_back(
    documents: Mapping[str, bytes | None], on_topic: set[str], keyring: Keyring
) -> tuple[list[WorkflowFlags], list[RedisRefusal]]:
    """The Redis copies to take back (workflows the flags topic lacks, verified) and those refused.

    ``documents`` maps each Redis hash's workflow to its ``_document`` field (None when absent).
    """
    adopted: list[WorkflowFlags] = []
    refused: list[RedisRefusal] = []
    for workflow, document in sorted(documents.items()):
        if workflow in on_topic:
            continue  # the topic is the truth for it; the hash is rewritten from the topic
        if document is None:
            refused.append(RedisRefusal(workflow, "unsigned", "the hash holds no signed flags document"))
            continue
        state = verified_state(document, keyring)
        if isinstance(state, tuple):
            refused.append(RedisRefusal(workflow, *state))
        elif state.workflow != workflow:
            detail = f"the document in the hash of {workflow!r} is for {state.workflow!r}"
            refused.append(RedisRefusal(workflow, "wrong_workflow", detail))
        else:
            state.partition = state.offset = None  # a position in the lost log: meaningless in the new one
            adopted.append(state)
    return adopted, refused
