"""Notifications: rollbacks, promotions, people's commands and escalations posted to webhooks.

Two bodies: a Slack-compatible incoming-webhook body (``{"text": ...}``, which Slack,
Mattermost and Rocket.Chat accept) and a generic JSON body with every field, for anything
else. An escalation's text says who may approve and the exact command to type.

Posting must never slow down what it reports on: :meth:`Notifier.post` only puts the
notice on a bounded queue (dropping the oldest when full, counted) and returns; a
background task posts with retries and exponential backoff (aiohttp, already a
dependency), and gives up on a notice after ``retries`` attempts (counted, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import aiohttp

from rollwatch.commands import MANUAL_ACTIONS, RollbackCommand
from rollwatch.settings import Settings

__all__ = ["Notice", "NoticeKind", "Notifier", "json_body", "notice_for_command", "notice_for_escalation", "slack_body"]

log = logging.getLogger(__name__)

NoticeKind: TypeAlias = Literal["rollback", "promotion", "manual", "approval", "escalation"]
_RETRYABLE: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing people should hear about: a line of text and the fields behind it."""

    kind: NoticeKind
    workflow: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def notice_for_command(command: RollbackCommand) -> Notice:
    """An applied command, said the way an on-call engineer reads it."""
    flags = ", ".join(f"{k}={v}" for k, v in command.flags.items())
    scope = f"{command.workflow}" + (f" (segment {command.segment})" if command.segment else "")
    reason = command.reason
    if command.approves is not None:
        kind: NoticeKind = "approval"
        text = f"{command.issued_by} approved escalation {command.approves} on {scope}: {command.action} ({flags})"
    elif command.action in MANUAL_ACTIONS or reason.gate == "manual":
        kind = "manual"
        text = f"{command.issued_by} ran {command.action} on {scope}: {flags}"
    elif command.action == "promote":
        kind = "promotion"
        text = f"rollwatch promoted {scope}: {flags}"
    else:
        kind = "rollback"
        observed = (
            f"{reason.metric} {reason.observed:g} vs {reason.threshold:g}"
            if (reason.observed is not None and reason.threshold is not None)
            else reason.metric
        )
        text = f"rollwatch rolled back {scope}: {command.action} ({flags}); gate {reason.gate}: {observed}"
    if reason.detail and kind in ("manual", "approval"):
        text += f"; reason: {reason.detail}"
    return Notice(
        kind,
        command.workflow,
        text,
        {
            "command_id": command.command_id,
            "action": command.action,
            "segment": command.segment,
            "flags": dict(command.flags),
            "issued_by": command.issued_by,
            "acting_as": command.acting_as,
            "ticket": command.ticket.model_dump(),
            "gate": reason.gate,
            "reason": reason.detail,
            "evidence": command.evidence.model_dump(mode="json"),
        },
    )


def notice_for_escalation(workflow: str, view: Mapping[str, Any]) -> Notice:
    """A pending escalation (:func:`rollwatch.gates.manual.escalation_views`): who may approve, what to type."""
    who = ", ".join(view.get("may_approve") or ()) or "nobody named in the ticket"
    text = (
        f"rollwatch needs a person on {workflow}: gate {view.get('gate')} wants {view.get('action')}, "
        f"which the automation may not do. May approve: {who}. Type: {view.get('approve')}"
    )
    fields = {k: view.get(k) for k in ("command_id", "action", "gate", "segment", "flags", "may_approve", "approve")}
    return Notice("escalation", workflow, text, fields)


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook body."""
    return {"text": notice.text}


def json_body(notice: Notice) -> dict[str, Any]:
    """The generic body: every field, plus the text."""
    return {"kind": notice.kind, "workflow": notice.workflow, "text": notice.text, **notice.fields}


class Notifier:
    """A bounded queue and one task posting it to every webhook, with retries and backoff."""

    def __init__(
        self,
        slack: list[str],
        generic: list[str],
        *,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self.targets: list[tuple[str, Literal["slack", "json"]]] = [(u, "slack") for u in slack]
        self.targets += [(u, "json") for u in generic]
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._queue: deque[Notice] = deque(maxlen=queue_size)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.counts = {"queued": 0, "sent": 0, "failed": 0, "dropped": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier | None:
        """None when no webhook is configured."""
        if not settings.notify_slack_webhooks and not settings.notify_json_webhooks:
            return None
        return cls(
            list(settings.notify_slack_webhooks),
            list(settings.notify_json_webhooks),
            retries=settings.notify_retries,
            timeout_s=settings.notify_timeout_s,
        )

    def post(self, notice: Notice) -> None:
        """Queue ``notice``; never waits. A full queue drops its oldest notice."""
        if len(self._queue) == self._queue.maxlen:
            self.counts["dropped"] += 1
        self._queue.append(notice)
        self.counts["queued"] += 1
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="rollwatch-notifier")

    async def stop(self, drain_s: float = 2.0) -> None:
        """Give queued notices ``drain_s`` to go out, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _drained(self) -> None:
        while self._queue or self._busy:
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """Post forever (until cancelled)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                notice = self._queue.popleft()
                self._busy = True
                try:
                    await asyncio.gather(*(self._deliver(session, url, kind, notice) for url, kind in self.targets))
                finally:
                    self._busy = False

    async def _deliver(self, session: aiohttp.ClientSession, url: str, kind: str, notice: Notice) -> None:
        body = slack_body(notice) if kind == "slack" else json_body(notice)
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                async with session.post(url, json=body) as response:
                    if response.status < 300:
                        self.counts["sent"] += 1
                        return
                    if response.status not in _RETRYABLE:
                        log.error("webhook %s refused a %s notice: HTTP %d", url, notice.kind, response.status)
                        break
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                log.warning("webhook %s: %s; retrying in %.1fs", url, problem, delay)
                await asyncio.sleep(delay)
                delay *= 2
        self.counts["failed"] += 1
        log.error("webhook %s: gave up on a %s notice for %s", url, notice.kind, notice.workflow)
