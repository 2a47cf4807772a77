"""Which Redis copies a flag store takes back after the flags topic was lost (pure; issue 16).

The expected verdicts are written out per case here, not derived from the code under
test: only a document signed by a key trusted for flags, for the workflow its hash is
named after, of a workflow the topic lacks, is taken back.
"""

from __future__ import annotations

import orjson

from rollwatch.control.state import WorkflowFlags
from rollwatch.flagstore.reconcile import take_back
from rollwatch.trust import Keyring, TrustedKey, parse_signing_key, parse_verify_key

SECRET = "reconcile-test-secret"
FLAGSTORE = parse_signing_key("fs", SECRET, "rollwatch-flagstore")
STRANGER = parse_signing_key("other", "another-secret", "someone")
KEYRING = Keyring([TrustedKey("fs", "rollwatch-flagstore", parse_verify_key(SECRET), frozenset({"flags"}))])


def _rolled_back(workflow: str) -> WorkflowFlags:
    return WorkflowFlags(
        workflow,
        {"ai.route.provider": f"{workflow}/stable", "ai.rollout.percent": 0.0},
        version=2,
        partition=1,
        offset=41,
        last_command_id="cmd-2",
        applied=["cmd-1", "cmd-2"],
    )


def test_only_verified_copies_of_workflows_the_topic_lost_are_taken_back() -> None:
    altered = orjson.loads(_rolled_back("forged").to_json(FLAGSTORE))
    altered["flags"]["ai.rollout.percent"] = 100.0  # changed after signing
    documents: dict[str, bytes | None] = {
        "lost": _rolled_back("lost").to_json(FLAGSTORE),
        "on-topic": _rolled_back("on-topic").to_json(FLAGSTORE),
        "plain": None,
        "forged": orjson.dumps(altered),
        "stranger": _rolled_back("stranger").to_json(STRANGER),
        "unsigned": _rolled_back("unsigned").to_json(None),
        "moved": _rolled_back("elsewhere").to_json(FLAGSTORE),
        "garbage": b"{not json",
    }
    adopted, refused = take_back(documents, {"on-topic"}, KEYRING)

    assert [s.workflow for s in adopted] == ["lost"]
    (lost,) = adopted
    assert lost.flags == {"ai.route.provider": "lost/stable", "ai.rollout.percent": 0.0}
    assert lost.applied == ["cmd-1", "cmd-2"] and lost.version == 2  # replays stay duplicates
    assert (lost.partition, lost.offset) == (None, None)  # a position in the lost log is dropped
    assert {(r.workflow, r.code) for r in refused} == {
        ("plain", "unsigned"),
        ("forged", "bad_signature"),
        ("stranger", "unknown_key"),
        ("unsigned", "unsigned"),
        ("moved", "wrong_workflow"),
        ("garbage", "malformed"),
    }


def test_a_signed_copy_survives_a_re_sign_round_trip() -> None:
    """The document the flag store re-publishes verifies again: what it took back it can serve."""
    (state,), _ = take_back({"w": _rolled_back("w").to_json(FLAGSTORE)}, set(), KEYRING)
    again, refused = take_back({"w": state.to_json(FLAGSTORE)}, set(), KEYRING)
    assert refused == [] and again[0].flags == state.flags
