"""The morning digest: one e-mail per rep per day (and optionally a Slack summary) with the three leads to call,
what changed since yesterday and their leads ranked by score.

Pure Python like the rest of :mod:`activation`: values come in as arguments, nothing is read from the
environment. What the orchestration layer calls::

    from activation.digest import SmtpSettings, send_digests
    report = send_digests(con, smtp=SmtpSettings("smtp.example.com", 587, starttls=True, username=u, password=p),
                          sender="Leadscore <leadscore@example.com>")
    report.as_dict()  # reps considered, sent, skipped with reasons, failed with errors, already sent

    with run_smtp_sink("data/mail") as sink:  # the embedded default: a local SMTP server writing .eml files
        send_digests(con, smtp=SmtpSettings(sink.host, sink.port), sender="leadscore@localhost")

Previews without sending: ``send_digests(con, dry_run=True, out_dir=Path("previews"), sender=...)`` or
``python -m activation.digest --warehouse data/warehouse.duckdb --preview-dir previews``.

Modules: :mod:`.content` (what a digest says, from the warehouse; the ranking rules), :mod:`.render` (HTML
and text e-mail), :mod:`.deliver` (SMTP, Slack, the exactly-once record), :mod:`.sink` (local SMTP sink).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import duckdb

from activation.digest.content import (
    CallItem,
    DigestBatch,
    DigestContent,
    DigestInputError,
    DigestLead,
    Rep,
    Skipped,
    build_digests,
    call_list,
    latest_day,
    load_digests,
)
from activation.digest.deliver import (
    EMAIL,
    FAILED,
    SENT,
    SKIPPED,
    SLACK,
    TABLE,
    SlackSender,
    SlackWebhook,
    SmtpSender,
    SmtpSettings,
    describe_slack_error,
    describe_smtp_error,
    ensure_table,
    envelope_sender,
    record,
    sent_keys,
    slack_payload,
)
from activation.digest.render import LIST_LIMIT, build_message, render
from activation.digest.sink import ReceivedMessage, SmtpSink, read_messages, run_smtp_sink, safe_name
from activation.redact import get_logger

log = get_logger(__name__)

ALREADY_SENT = "already_sent"
WOULD_SEND = "would_send"  # dry run


@dataclass(frozen=True)
class DeliveryOutcome:
    user_id: str
    channel: str
    status: str  # sent | failed | skipped | already_sent | would_send
    detail: str | None = None  # the error (failed) or the reason (skipped)
    message_id: str | None = None
    subject: str | None = None


@dataclass
class DigestReport:
    """What a run did, per rep and channel, with the counts a person reads first."""

    day: dt.date
    dry_run: bool
    channels: tuple[str, ...]
    reps_considered: int
    digests: int  # reps with a digest (active, with an e-mail and leads)
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)

    def _count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def sent(self) -> int:
        return self._count(SENT)

    @property
    def failed(self) -> int:
        return self._count(FAILED)

    @property
    def already_sent(self) -> int:
        return self._count(ALREADY_SENT)

    @property
    def would_send(self) -> int:
        return self._count(WOULD_SEND)

    @property
    def skipped(self) -> dict[str, int]:
        """Reps without a digest, by reason (counted once per rep, not per channel)."""
        reasons = {(o.user_id, o.detail) for o in self.outcomes if o.status == SKIPPED}
        return dict(sorted(Counter(reason for _, reason in reasons).items()))  # type: ignore[arg-type]

    @property
    def errors(self) -> list[tuple[str, str, str]]:
        return [(o.user_id, o.channel, o.detail or "") for o in self.outcomes if o.status == FAILED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "dry_run": self.dry_run,
            "channels": list(self.channels),
            "reps_considered": self.reps_considered,
            "digests": self.digests,
            "sent": self.sent,
            "already_sent": self.already_sent,
            "would_send": self.would_send,
            "failed": self.failed,
            "skipped": self.skipped,
            "errors": [{"user_id": u, "channel": c, "error": e} for u, c, e in self.errors],
        }

    def summary(self) -> str:
        what = f"{self.would_send} would be sent (dry run)" if self.dry_run else f"{self.sent} sent"
        skipped = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items()) or "none"
        return (
            f"digest {self.day}: {self.reps_considered} reps, {self.digests} digests; {what}, "
            f"{self.already_sent} already sent, {self.failed} failed; skipped: {skipped}"
        )


def render_digest(
    content: DigestContent, *, sender: str, now: dt.datetime | None = None, list_limit: int = LIST_LIMIT
) -> EmailMessage:
    """One rep's digest as the e-mail that would be sent (multipart/alternative, text + HTML)."""
    return build_message(content, sender=sender, now=now, list_limit=list_limit)


def send_digests(
    con: duckdb.DuckDBPyConnection,
    *,
    sender: str,
    day: dt.date | None = None,
    smtp: SmtpSettings | None = None,
    slack_webhook_url: str | SlackWebhook | None = None,
    dry_run: bool = False,
    out_dir: Path | None = None,
    now: dt.datetime | None = None,
    list_limit: int = LIST_LIMIT,
) -> DigestReport:
    """Build every rep's digest for ``day`` (default: the latest scoring day) and deliver what was not yet.

    Channels: e-mail when ``smtp`` is given, Slack when a webhook is. ``dry_run`` renders and reports what
    would be sent (by e-mail when no channel is configured), sends nothing and writes nothing to the
    warehouse (the connection may be read-only). ``out_dir`` receives an HTML and a text preview per rep.
    A failed send is recorded with its error and retried by the next run; it does not stop the others.
    """
    envelope_from = envelope_sender(sender)  # a bad sender fails before anything is sent
    webhook = SlackWebhook(slack_webhook_url) if isinstance(slack_webhook_url, str) else slack_webhook_url
    channels = tuple(channel for channel, on in ((EMAIL, smtp is not None), (SLACK, webhook is not None)) if on)
    if not channels:
        if not dry_run:
            raise ValueError("no delivery channel: pass smtp settings and/or a Slack webhook (or dry_run=True)")
        channels = (EMAIL,)
    batch = load_digests(con, day)
    report = DigestReport(batch.day, dry_run, channels, batch.reps_considered, len(batch.digests))
    done: set[tuple[str, str]] = set()
    if not dry_run:
        ensure_table(con)
        done = sent_keys(con, batch.day)
    for skipped in batch.skipped:
        for channel in channels:
            if (skipped.user_id, channel) in done:
                continue  # sent earlier today, before the rep lost their leads: the record stays "sent"
            report.outcomes.append(DeliveryOutcome(skipped.user_id, channel, SKIPPED, skipped.reason))
            if not dry_run:
                record(con, batch.day, skipped.user_id, channel, SKIPPED, error=skipped.reason)
    smtp_sender = SmtpSender(smtp, envelope_from) if smtp is not None and not dry_run else None
    slack_sender = SlackSender(webhook) if webhook is not None and not dry_run else None
    try:
        for content in batch.digests:
            message = build_message(content, sender=sender, now=now, list_limit=list_limit)
            if out_dir is not None:
                report.previews.extend(write_preview(out_dir, content, message))
            for channel in channels:
                outcome = _deliver(
                    con, content, channel, message, done, dry_run=dry_run, smtp=smtp_sender, slack=slack_sender
                )
                report.outcomes.append(outcome)
    finally:
        if smtp_sender is not None:
            smtp_sender.close()
        if slack_sender is not None:
            slack_sender.close()
    log.info(report.summary())
    return report


def _deliver(
    con: duckdb.DuckDBPyConnection,
    content: DigestContent,
    channel: str,
    message: EmailMessage,
    done: set[tuple[str, str]],
    *,
    dry_run: bool,
    smtp: SmtpSender | None,
    slack: SlackSender | None,
) -> DeliveryOutcome:
    user_id, day = content.rep.user_id, content.day
    message_id, subject = str(message["Message-ID"]), str(message["Subject"])
    if (user_id, channel) in done:
        return DeliveryOutcome(user_id, channel, ALREADY_SENT, None, message_id, subject)
    if dry_run:
        return DeliveryOutcome(user_id, channel, WOULD_SEND, None, message_id, subject)
    try:
        if channel == EMAIL:
            assert smtp is not None and content.rep.email is not None
            smtp.send(message, content.rep.email)
        else:
            assert slack is not None
            slack.send(slack_payload(content))
    except Exception as exc:
        error = describe_smtp_error(exc) if channel == EMAIL else describe_slack_error(exc)
        log.warning("digest %s for %s by %s failed (retried next run): %s", day, user_id, channel, error)
        record(con, day, user_id, channel, FAILED, message_id=message_id, error=error)
        return DeliveryOutcome(user_id, channel, FAILED, error, message_id, subject)
    # Record at once, before anything else happens: between the server's "accepted" and this row is the
    # only moment a crash makes the next run send this digest again (with the same Message-ID).
    record(con, day, user_id, channel, SENT, message_id=message_id)
    log.info("digest %s for %s sent by %s", day, user_id, channel)
    return DeliveryOutcome(user_id, channel, SENT, None, message_id, subject)


def write_preview(out_dir: Path, content: DigestContent, message: EmailMessage) -> list[Path]:
    """``<out_dir>/<day>/<user id>.html`` and ``.txt``: what the rep would read."""
    folder = Path(out_dir) / content.day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(content.rep.user_id)
    paths = []
    for subtype in ("html", "plain"):
        part = message.get_body(preferencelist=(subtype,))
        assert part is not None
        path = folder / f"{stem}.{'html' if subtype == 'html' else 'txt'}"
        path.write_text(part.get_content(), encoding="utf-8")
        paths.append(path)
    return paths


__all__ = [
    "ALREADY_SENT",
    "EMAIL",
    "FAILED",
    "SENT",
    "SKIPPED",
    "SLACK",
    "TABLE",
    "WOULD_SEND",
    "CallItem",
    "DeliveryOutcome",
    "DigestBatch",
    "DigestContent",
    "DigestInputError",
    "DigestLead",
    "DigestReport",
    "ReceivedMessage",
    "Rep",
    "Skipped",
    "SlackWebhook",
    "SmtpSettings",
    "SmtpSink",
    "build_digests",
    "call_list",
    "latest_day",
    "load_digests",
    "read_messages",
    "render",
    "render_digest",
    "run_smtp_sink",
    "send_digests",
    "write_preview",
]
