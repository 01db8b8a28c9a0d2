"""Delivering the morning digest: real SMTP to the local aiosmtpd sink, real HTTP to the sandbox's Slack
webhook, exactly once per rep, day and channel, and a failed send kept and retried by the next run."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import requests

from activation.digest import (
    SlackWebhook,
    SmtpSettings,
    read_messages,
    run_smtp_sink,
    send_digests,
)
from activation.digest.__main__ import main as preview_main
from activation.sandbox import SandboxHandle
from activation.sandbox.slack import slack_messages
from tests.activation.test_digest_content import DAY, SENDER, build_warehouse


@pytest.fixture
def con(tmp_path: Path):
    with build_warehouse(tmp_path / "warehouse.duckdb") as connection:
        yield connection


def deliveries(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, str | None, int]]:
    rows = con.execute(
        "SELECT user_id, channel, status, error, attempts FROM activation.digest_deliveries WHERE digest_date = ?",
        [DAY],
    ).fetchall()
    return {(user, channel): (status, error, attempts) for user, channel, status, error, attempts in rows}


def fast_slack(url: str) -> SlackWebhook:
    return SlackWebhook(url, timeout=5.0, min_interval=0.0)


def test_digests_arrive_at_the_sink_as_multipart_mail_once(con, tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    with run_smtp_sink(mail) as sink:
        smtp = SmtpSettings(sink.host, sink.port)
        first = send_digests(con, smtp=smtp, sender=SENDER)
        assert (first.sent, first.failed, first.already_sent) == (2, 0, 0)
        assert first.skipped == {"inactive": 1, "no_email": 1, "no_leads": 1, "unknown_user": 1}
        received = read_messages(mail, DAY)
        assert sorted(m.envelope_to for m in received) == ["ada@example.com", "grace@example.com"]
        ada = next(m for m in received if m.envelope_to == "ada@example.com")
        assert ada.path.parent == mail / DAY.isoformat()
        assert ada.message.get_content_type() == "multipart/alternative"
        assert ada.subject == "Leadscore - 3 leads to call today (2 spikes, 1 new)"
        assert ada.message["To"] == "Ada Lovelace <ada@example.com>"
        assert ada.envelope_from == "digest@leadscore.example"
        assert "l07@acme.example" in ada.body("plain") and "l07@acme.example" in ada.body("html")
        assert ada.body("html").lstrip().startswith("<!DOCTYPE html>")

        second = send_digests(con, smtp=smtp, sender=SENDER)  # the same day again: nothing goes out
        assert (second.sent, second.already_sent) == (0, 2)
        assert sink.received == 2
    assert deliveries(con)[("U1", "email")] == ("sent", None, 1)
    assert deliveries(con)[("U3", "email")] == ("skipped", "inactive", 2)


def test_a_refused_recipient_is_recorded_and_retried_next_run(con, tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    with run_smtp_sink(mail, refused=["grace@example.com"]) as sink:
        smtp = SmtpSettings(sink.host, sink.port)
        first = send_digests(con, smtp=smtp, sender=SENDER)
        assert (first.sent, first.failed) == (1, 1)  # Grace's refusal does not stop Ada's digest
        ((user, channel, error),) = first.errors
        assert (user, channel) == ("U2", "email")
        assert "recipient refused" in error and "550" in error
        assert deliveries(con)[("U2", "email")][0] == "failed"

        sink.refused.clear()  # the mailbox exists now
        second = send_digests(con, smtp=smtp, sender=SENDER)
        assert (second.sent, second.failed, second.already_sent) == (1, 0, 1)
    assert [m.envelope_to for m in read_messages(mail, DAY)] == ["ada@example.com", "grace@example.com"]
    assert deliveries(con)[("U2", "email")] == ("sent", None, 2)


def test_a_stopped_mail_server_fails_every_send_and_the_next_run_delivers(con, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = send_digests(con, smtp=SmtpSettings("127.0.0.1", port, timeout=5.0), sender=SENDER)
    assert (down.sent, down.failed) == (0, 2)
    assert {e for _, _, e in down.errors} == {"SMTP server refused the connection (is it running?)"}
    with run_smtp_sink(tmp_path / "mail") as sink:
        up = send_digests(con, smtp=SmtpSettings(sink.host, sink.port), sender=SENDER)
    assert (up.sent, up.failed) == (2, 0)
    assert {k: v[0] for k, v in deliveries(con).items() if v[0] != "skipped"} == {
        ("U1", "email"): "sent",
        ("U2", "email"): "sent",
    }


def test_smtp_login_is_used_and_the_password_never_logged(con, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with run_smtp_sink(tmp_path / "mail", credentials=("leadscore", "s3cret-pass-word")) as sink:
        wrong = SmtpSettings(sink.host, sink.port, username="leadscore", password="wrong-pass-word")
        refused = send_digests(con, smtp=wrong, sender=SENDER)
        assert refused.failed == 2 and all("SMTP login refused: 535" in e for _, _, e in refused.errors)
        right = SmtpSettings(sink.host, sink.port, username="leadscore", password="s3cret-pass-word")
        assert "s3cret" not in repr(right)
        assert send_digests(con, smtp=right, sender=SENDER).sent == 2
    assert {m.authenticated_as for m in read_messages(tmp_path / "mail")} == {"leadscore"}
    assert "s3cret-pass-word" not in caplog.text and "wrong-pass-word" not in caplog.text


def test_a_dry_run_renders_previews_and_sends_or_records_nothing(con, tmp_path: Path) -> None:
    with run_smtp_sink(tmp_path / "mail") as sink:
        report = send_digests(
            con, smtp=SmtpSettings(sink.host, sink.port), sender=SENDER, dry_run=True, out_dir=tmp_path / "preview"
        )
        assert (report.would_send, report.sent, sink.received) == (2, 0, 0)
    assert sorted(p.name for p in report.previews) == ["U1.html", "U1.txt", "U2.html", "U2.txt"]
    tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'activation'")
    assert [t for (t,) in tables.fetchall()] == ["lead_owners"]


def test_no_channel_and_a_bad_sender_are_refused_before_anything_happens(con) -> None:
    with pytest.raises(ValueError, match="no delivery channel"):
        send_digests(con, sender=SENDER)
    with pytest.raises(ValueError, match="has no e-mail address"):
        send_digests(con, sender="Leadscore", dry_run=True)


def test_the_preview_cli_writes_html_from_a_read_only_warehouse(tmp_path: Path, capsys) -> None:
    build_warehouse(tmp_path / "w.duckdb").close()
    assert preview_main(["--warehouse", str(tmp_path / "w.duckdb"), "--preview-dir", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "U1: Leadscore - 3 leads to call today (2 spikes, 1 new)" in out
    assert (tmp_path / "p" / DAY.isoformat() / "U1.html").read_text().startswith("<!DOCTYPE html>")
    assert preview_main(["--warehouse", str(tmp_path / "none.duckdb"), "--preview-dir", str(tmp_path / "p")]) == 2


# --- Slack ------------------------------------------------------------------------------------------------
def test_slack_summaries_go_once_per_rep_through_the_sandbox_webhook(
    con, start_sandbox: Callable[..., SandboxHandle], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    url = sandbox.slack_webhook_url()
    with run_smtp_sink(tmp_path / "mail") as sink:
        smtp = SmtpSettings(sink.host, sink.port)
        report = send_digests(con, smtp=smtp, slack_webhook_url=fast_slack(url), sender=SENDER)
        assert (report.sent, report.failed) == (4, 0)  # two reps, two channels
        again = send_digests(con, smtp=smtp, slack_webhook_url=fast_slack(url), sender=SENDER)
        assert (again.sent, again.already_sent) == (0, 4)
    messages = slack_messages(sandbox.url)
    assert len(messages) == 2 and {m["channel"] for m in messages} == {"#sales-morning"}
    ada = next(m for m in messages if "Ada Lovelace" in m["text"])
    section = ada["blocks"][0]["text"]["text"]
    assert section.startswith("*Ada Lovelace* - 3 leads to call today")
    assert "1. *l07@acme.example* (80, A1) - Hot lead (80) had no active owner: routed to you" in section
    assert "2 spikes: l02@acme.example 50 → 70 (+20), l05@acme.example 45 → 55 (+10)" in section
    assert "sandboxDigestHook" not in str(messages)  # the token is never echoed back
    assert deliveries(con)[("U1", "slack")][0] == "sent"


def test_the_sandbox_webhook_refuses_like_slack(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox()
    url = sandbox.slack_webhook_url()
    assert url.startswith(f"{sandbox.url}/slack/services/T") and "/B" in url

    def post(target: str = url, **kwargs) -> tuple[int, str, str]:
        response = requests.post(target, timeout=5, **kwargs)
        return response.status_code, response.text, response.headers["Content-Type"]

    assert post(json={"text": "hello"}) == (200, "ok", "text/plain; charset=utf-8")
    assert post(json={"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]})[:2] == (200, "ok")
    assert post(data={"payload": '{"text": "as a form"}'})[:2] == (200, "ok")
    assert post(json={})[:2] == (400, "no_text")
    assert post(json={"text": "   "})[:2] == (400, "no_text")
    assert post(json={"text": "x", "blocks": [{"no": "type"}]})[:2] == (400, "invalid_blocks")
    assert post(json=["not", "an", "object"])[:2] == (400, "invalid_payload")
    assert post(data=b"{not json", headers={"Content-Type": "application/json"})[:2] == (400, "invalid_payload")
    assert post(url[: url.rindex("/") + 1] + "wrong-token", json={"text": "x"})[:2] == (404, "no_service")
    assert requests.get(url, timeout=5).status_code == 405
    assert [m["text"] for m in slack_messages(sandbox.url)] == ["hello", None, "as a form"]
    assert requests.delete(f"{sandbox.url}/_admin/slack/messages", timeout=5).json() == {"deleted": 3}
    assert slack_messages(sandbox.url) == []
    # The CRM APIs are unaffected: Salesforce's /services still needs its token.
    assert requests.get(f"{sandbox.url}/services/data/v62.0/sobjects/Lead/describe", timeout=5).status_code == 401


def test_a_refused_slack_post_is_recorded_without_the_url_and_retried(
    con, start_sandbox: Callable[..., SandboxHandle], caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = start_sandbox()
    good = sandbox.slack_webhook_url()
    bad = good[: good.rindex("/") + 1] + "revokedWebhookToken00001"
    first = send_digests(con, slack_webhook_url=fast_slack(bad), sender=SENDER)
    assert (first.sent, first.failed) == (0, 2)
    assert {e for _, _, e in first.errors} == {"Slack answered 404 no_service"}
    stored = con.execute("SELECT string_agg(coalesce(error, ''), ' ') FROM activation.digest_deliveries").fetchone()
    assert "revokedWebhookToken" not in stored[0] and "revokedWebhookToken" not in caplog.text
    # An unreachable webhook: requests' own message would quote the URL's path, the record must not.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/slack/services/T1/B1/deadWebhookToken000001"
    unreachable = send_digests(con, slack_webhook_url=fast_slack(dead), sender=SENDER)
    assert {e for _, _, e in unreachable.errors} == {"could not connect to the Slack webhook"}
    assert "deadWebhookToken" not in caplog.text
    retried = send_digests(con, slack_webhook_url=fast_slack(good), sender=SENDER)
    assert (retried.sent, retried.failed) == (2, 0)
    assert deliveries(con)[("U2", "slack")] == ("sent", None, 3)
    assert len(slack_messages(sandbox.url)) == 2


def test_a_send_recorded_on_another_day_does_not_count_for_today(con, tmp_path: Path) -> None:
    with run_smtp_sink(tmp_path / "mail") as sink:
        smtp = SmtpSettings(sink.host, sink.port)
        assert send_digests(con, smtp=smtp, sender=SENDER, day=DAY - dt.timedelta(days=1)).sent == 2
        assert send_digests(con, smtp=smtp, sender=SENDER).sent == 2
    assert sorted(m.day for m in read_messages(tmp_path / "mail")) == [
        (DAY - dt.timedelta(days=1)).isoformat(),
        (DAY - dt.timedelta(days=1)).isoformat(),
        DAY.isoformat(),
        DAY.isoformat(),
    ]


def test_a_crash_between_send_and_record_resends_with_the_same_message_id(
    con, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented window: the server accepted Ada's digest, the process died before its row was written.
    The next run sends it again - the same Message-ID, so the sink (like a mail client) holds one message."""
    import activation.digest as digest

    real_record = digest.record

    def crash_after_send(con, day, user_id, channel, status, **kwargs):
        if status == "sent" and user_id == "U1":
            raise KeyboardInterrupt("the process dies here")
        return real_record(con, day, user_id, channel, status, **kwargs)

    with run_smtp_sink(tmp_path / "mail") as sink:
        smtp = SmtpSettings(sink.host, sink.port)
        monkeypatch.setattr(digest, "record", crash_after_send)
        with pytest.raises(KeyboardInterrupt):
            send_digests(con, smtp=smtp, sender=SENDER)
        monkeypatch.setattr(digest, "record", real_record)
        rerun = send_digests(con, smtp=smtp, sender=SENDER)
        assert sink.received == 3  # Ada twice (Grace comes after Ada and went out once, in the rerun)
    assert (rerun.sent, rerun.already_sent) == (2, 0)
    received = read_messages(tmp_path / "mail", DAY)
    assert sorted(m.envelope_to for m in received) == ["ada@example.com", "grace@example.com"]


def test_a_sent_row_is_final(con) -> None:
    from activation.digest.deliver import ensure_table, record

    ensure_table(con)
    record(con, DAY, "U1", "email", "failed", error="421 try later")
    record(con, DAY, "U1", "email", "sent", message_id="<m@x>")
    record(con, DAY, "U1", "email", "failed", error="late failure")
    record(con, DAY, "U1", "email", "skipped", error="no_leads")
    assert deliveries(con)[("U1", "email")] == ("sent", None, 2)
