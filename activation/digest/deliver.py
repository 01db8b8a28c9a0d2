"""Deliver each rep's digest by SMTP (and optionally to Slack), exactly once per rep, day and channel.

**The record.** ``activation.digest_deliveries`` holds one row per (digest day, rep, channel): ``sent``,
``failed`` (with the error, retried by the next run) or ``skipped`` (with the reason: inactive, no e-mail,
no leads). A (day, rep, channel) already ``sent`` is never sent again, whatever later runs find.

**The window.** Nothing is written before a send (a "sending" mark would turn a crash into a digest that is
never sent); the ``sent`` row is written by one single-row statement right after the server accepted the
message, before the next rep is rendered. If the process dies in between - or the server's final "250 OK"
is lost on the way back - the next run sends that one digest again: at-least-once for that rep, never a
lost digest. The repeat carries the same ``Message-ID`` (rep + day), so mail clients and the local sink
(which files by Message-ID) see one message; Slack has no such id, so there the rare repeat is visible.

**Slack.** An incoming webhook posts to the one channel it was created for (a team channel such as
``#sales-morning``): each rep gets their own short message there (their three calls and the day's spikes
and declines, full list in the e-mail), recorded per rep like the e-mail, so one refused post is retried
alone. The webhook URL is a secret (whoever holds it can post): it is registered with
:mod:`activation.redact` and never logged or stored; errors are stored redacted.

Passwords and webhook URLs never appear in a log line, a ``repr`` or the table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import duckdb
import requests

from activation.digest.content import DigestContent
from activation.digest.render import calls_today, move_text, one_line, plural
from activation.redact import get_logger, redact, register_secret

log = get_logger(__name__)

SCHEMA = "activation"
TABLE = f"{SCHEMA}.digest_deliveries"
EMAIL, SLACK = "email", "slack"
SENT, FAILED, SKIPPED = "sent", "failed", "skipped"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    digest_date DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,          -- email | slack
    message_id VARCHAR,                -- the e-mail's Message-ID (the same for a rep and day on every attempt)
    status VARCHAR NOT NULL,           -- sent | failed | skipped
    error VARCHAR,                     -- why it failed (redacted) or why it was skipped
    attempted_at TIMESTAMP NOT NULL,   -- the last attempt (UTC)
    attempts INTEGER NOT NULL,         -- how many runs recorded this key (a sent row is never updated)
    PRIMARY KEY (digest_date, user_id, channel)
);
"""


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def sent_keys(con: duckdb.DuckDBPyConnection, day: dt.date) -> set[tuple[str, str]]:
    """(user_id, channel) pairs already sent for ``day``: never sent again."""
    rows = con.execute(f"SELECT user_id, channel FROM {TABLE} WHERE digest_date = ? AND status = ?", [day, SENT])
    return {(user_id, channel) for user_id, channel in rows.fetchall()}


def record(
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    user_id: str,
    channel: str,
    status: str,
    *,
    message_id: str | None = None,
    error: str | None = None,
) -> None:
    """Upsert one delivery row (one statement, committed on return: DuckDB autocommits it).

    A ``sent`` row is final: a later ``failed``/``skipped`` for the same key never overwrites it.
    """
    con.execute(
        f"""
        INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, 1)
        ON CONFLICT (digest_date, user_id, channel) DO UPDATE SET
            message_id = excluded.message_id, status = excluded.status, error = excluded.error,
            attempted_at = excluded.attempted_at, attempts = {TABLE}.attempts + 1
        WHERE {TABLE}.status <> 'sent'
        """,
        [day, user_id, channel, message_id, status, redact(error)[:2000] if error else None, _utcnow()],
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- SMTP -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpSettings:
    """Where the digests go out. ``starttls`` upgrades a plain connection (port 587); username and password
    are optional (a relay that trusts the network needs none) and never shown (``repr`` hides the password)."""

    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SMTP host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"SMTP port {self.port} is not a TCP port")
        if self.password and not self.username:
            raise ValueError("an SMTP password was given without a username")
        register_secret(self.password)


class SmtpSender:
    """One SMTP connection for a run, opened on first use and reopened after a failure (a relay that hung up
    on one message must not fail all the next ones)."""

    def __init__(self, settings: SmtpSettings, envelope_from: str) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            client.ehlo()
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password or "")
        except BaseException:
            _quietly_close(client)
            raise
        return client

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Send to ``recipient`` only (the envelope decides, not the headers); raises on any refusal."""
        try:
            if self._client is None:
                self._client = self._connect()
            refused = self._client.send_message(message, from_addr=self.envelope_from, to_addrs=[recipient])
        except BaseException:
            self.close()
            raise
        if refused:  # cannot happen with one recipient (all refused raises), kept for clarity
            raise smtplib.SMTPRecipientsRefused(refused)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(client)


def _quietly_close(client: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        client.close()


def describe_smtp_error(exc: BaseException) -> str:
    """A one-line error a person can act on; the server's own words where it gave any."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{addr}: {code} {_text(reply)}" for addr, (code, reply) in exc.recipients.items()]
        return "recipient refused: " + "; ".join(parts)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP error {exc.smtp_code}: {_text(exc.smtp_error)}"
    if isinstance(exc, ConnectionRefusedError):
        return "SMTP server refused the connection (is it running?)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "SMTP server timed out"
    return f"{type(exc).__name__}: {exc}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


# --- Slack ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlackWebhook:
    """A Slack incoming webhook. ``min_interval`` paces posts (Slack allows about one per second per webhook
    and answers 429 beyond short bursts)."""

    url: str = field(repr=False)
    timeout: float = 10.0
    min_interval: float = 1.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("the Slack webhook URL is not an http(s) URL")  # never echo the URL itself
        register_secret(self.url)
        register_secret(parts.path)  # requests' errors quote the path without the host
        # urllib3 logs every request line (path included) at DEBUG: redact that logger's records too.
        get_logger("urllib3.connectionpool")


class SlackSender:
    def __init__(self, webhook: SlackWebhook) -> None:
        self.webhook = webhook
        self._session = requests.Session()
        self._last = -float("inf")

    def send(self, payload: Mapping[str, Any]) -> None:
        wait = self._last + self.webhook.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()
        response = self._session.post(self.webhook.url, json=payload, timeout=self.webhook.timeout)
        if response.status_code != 200:
            # Slack's error body is a short code (invalid_payload, no_text, no_service, channel_is_archived...).
            raise SlackError(response.status_code, response.text[:200])

    def close(self) -> None:
        self._session.close()


class SlackError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Slack answered {status} {body.strip() or '(empty)'}")
        self.status = status


def describe_slack_error(exc: BaseException) -> str:
    if isinstance(exc, SlackError):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "Slack webhook timed out"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect to the Slack webhook"  # requests' text quotes the secret path
    return redact(f"{type(exc).__name__}: {exc}")


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters (its documented three)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(content: DigestContent) -> dict[str, Any]:
    """One rep's short summary: who to call and why, then the day's changes; ``text`` is the notification
    fallback, ``blocks`` what the channel shows."""
    rep = one_line(content.rep.full_name) or content.rep.user_id
    head = f"*{slack_escape(rep)}* - {calls_today(content)}"
    lines = [head]
    for number, item in enumerate(content.call_today, 1):
        lead = item.lead
        name, tier = slack_escape(one_line(lead.display_name)), slack_escape(lead.tier or "-")
        lines.append(f"{number}. *{name}* ({lead.score:.0f}, {tier}) - {slack_escape(one_line(item.why))}")
    changes = []
    for title, kind, leads in (
        ("spike", "spike", content.spikes),
        ("new", "unowned_hot", content.new_to_you),
        ("decline", "decline", content.declines),
    ):
        if leads:
            names = ", ".join(f"{slack_escape(one_line(x.display_name))} {move_text(x, kind)}" for x in leads[:5])
            more = f" and {len(leads) - 5} more" if len(leads) > 5 else ""
            label = plural(len(leads), title) if title != "new" else f"{len(leads)} new to you"
            changes.append(f"{label}: {names}{more}")
    if changes:
        lines.append("Since yesterday - " + "; ".join(changes))
    lines.append(f"_{plural(len(content.leads), 'lead')} in the e-mail digest of {content.day.isoformat()}_")
    text = "\n".join(lines)
    fallback = f"Leadscore: {rep} - {calls_today(content)}"
    return {"text": fallback, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]}


def envelope_sender(sender: str) -> str:
    """The bare address of a ``From`` such as ``Leadscore <digest@example.com>``."""
    address = parseaddr(sender)[1]
    if "@" not in address:
        raise ValueError(f"sender {sender!r} has no e-mail address")
    return address


__all__ = [
    "EMAIL",
    "FAILED",
    "SENT",
    "SKIPPED",
    "SLACK",
    "TABLE",
    "SlackError",
    "SlackSender",
    "SlackWebhook",
    "SmtpSender",
    "SmtpSettings",
    "describe_slack_error",
    "describe_smtp_error",
    "ensure_table",
    "record",
    "sent_keys",
    "slack_payload",
]
