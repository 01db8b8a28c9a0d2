"""The digest as an e-mail: a short HTML part for phones and a plain-text part with the same content.

The HTML is written for mail clients, not browsers: layout tables, inline CSS only, one column at most
600 px wide that shrinks to a 375 px phone, no images, no web fonts, nothing fetched from elsewhere (a mail
client blocks remote content and a tracking pixel is not ours to add). Every value from the warehouse is
escaped. The order is the order a rep acts in: whom to call and why, what changed since yesterday, then
the ranked list (capped: the CRM holds the rest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

from activation.digest.content import DigestContent, DigestLead
from activation.tasks import gone_quiet

LIST_LIMIT = 25
DIGEST_DATE_HEADER = "X-Leadscore-Digest-Date"  # the scoring day; the local sink files messages by it

# Colours (the only palette): text, muted text, rules, and one colour per kind of change.
INK, MUTED, RULE, PAPER, PAGE = "#111827", "#6b7280", "#e5e7eb", "#ffffff", "#f3f4f6"
COLOURS = {"spike": "#047857", "unowned_hot": "#6d28d9", "decline": "#b91c1c", "tier": "#1d4ed8", "top": "#374151"}
FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    message_id: str


# --- pure text helpers ------------------------------------------------------------------------------------
def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def subject_line(content: DigestContent) -> str:
    """``Leadscore - 3 leads to call today (2 spikes, 1 new)``: the count a rep decides on, in the inbox."""
    subject = f"Leadscore - {calls_today(content)}"
    extras = []
    if content.spikes:
        extras.append(plural(len(content.spikes), "spike"))
    if content.new_to_you:
        extras.append(f"{len(content.new_to_you)} new")
    return f"{subject} ({', '.join(extras)})" if extras else subject


def message_id(day: dt.date, user_id: str, sender: str) -> str:
    """The same Message-ID for the same rep and day, so a digest sent twice is recognisable as one."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "leadscore.invalid"
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain) or "leadscore.invalid"
    digest = hashlib.sha256(f"{day.isoformat()}|{user_id}".encode()).hexdigest()[:24]
    return f"<digest.{day:%Y%m%d}.{digest}@{domain}>"


def long_date(day: dt.date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(day: dt.date) -> str:
    """``Mon 2 Nov 2026``: fits the header line of a phone."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def one_line(value: str | None) -> str:
    """Collapse whitespace: a newline in a name must not break a header or a text line."""
    return " ".join((value or "").split())


def signed(value: float | None) -> str:
    """``+18``, ``-7``, ``0``; empty when unknown."""
    if value is None:
        return ""
    rounded = round(value)
    return f"{rounded:+d}" if rounded else "0"


def score_text(value: float) -> str:
    return f"{value:.0f}"


def move_text(lead: DigestLead, kind: str) -> str:
    """``64 → 82 (+18)`` for a lead's alert of ``kind``; ``42, gone quiet`` for a decline that lost no points."""
    alert = lead.alert(kind)
    if alert is None:
        return score_text(lead.score)
    if gone_quiet(alert.kind, alert.score_change):
        return f"{alert.score:.0f}, gone quiet"
    before = f"{alert.previous_score:.0f} → " if alert.previous_score is not None else ""
    change = f" ({signed(alert.score_change)})" if alert.score_change is not None else ""
    return f"{before}{alert.score:.0f}{change}"


def calls_today(content: DigestContent) -> str:
    """``3 leads to call today``; ``no lead to call today`` when every lead of the rep is declining (they are
    reviewed, not called first), rather than "0 leads"."""
    count = len(content.call_today)
    return f"{plural(count, 'lead')} to call today" if count else "no lead to call today"


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def has_weekly_change(leads: Sequence[DigestLead]) -> bool:
    """Whether any listed lead has a score from 7 days before: in a deployment's first week none has, and a
    column of dashes would read as broken, so the lists leave it out until there is something to show."""
    return any(lead.score_change_7d is not None for lead in leads)


def greeting(content: DigestContent) -> str:
    name = one_line(content.rep.first_name)
    return f"Good morning, {name}." if name else "Good morning."


def preheader(content: DigestContent) -> str:
    """What an inbox shows under the subject: the names to call."""
    names = [one_line(item.lead.display_name) for item in content.call_today]
    return ("Call " + ", ".join(names) + " first.") if names else "Your leads, ranked."


# --- plain text -------------------------------------------------------------------------------------------
def render_text(content: DigestContent, *, list_limit: int = LIST_LIMIT) -> str:
    lines = [
        f"Leadscore - scores as of {long_date(content.day)}",
        "",
        f"{greeting(content)} {capitalised(calls_today(content))}{':' if content.call_today else '.'}",
        "",
    ]
    for number, item in enumerate(content.call_today, 1):
        lead = item.lead
        lines.append(f"{number}. {_text_person(lead)}")
        lines.append(f"   {item.label}: score {score_text(lead.score)}, tier {lead.tier or '-'}")
        lines.append(f"   Why: {one_line(item.why)}")
        lines.append("")
    sections = _changes(content)
    lines.append("Since yesterday")
    if not sections:
        lines.append("  No spikes, declines or new leads.")
    for title, kind, symbol, leads in sections:
        lines.append(f"  {title} ({len(leads)})")
        for lead in leads:
            lines.append(f"    {symbol} {_text_person(lead)}: {move_text(lead, kind)}")
    lines.append("")
    shown = content.leads[:list_limit]
    lines.append(f"Your leads ({len(content.leads)}), by score")
    with_change = has_weekly_change(shown)
    lines.append("    #  score  tier    7d  lead" if with_change else "    #  score  tier  lead")
    for rank, lead in enumerate(shown, 1):
        change = f"{signed(lead.score_change_7d):>4}  " if with_change else ""
        lines.append(f"  {rank:>3}  {score_text(lead.score):>5}  {lead.tier or '-':<4}  {change}{_text_person(lead)}")
    if len(content.leads) > len(shown):
        lines.append(f"  ... and {len(content.leads) - len(shown)} more in the CRM.")
    lines += ["", "-- ", textwrap.fill(_footer_text(content), width=76)]
    return "\n".join(lines) + "\n"


def _text_person(lead: DigestLead) -> str:
    name = one_line(lead.display_name)
    email = one_line(lead.email)
    return f"{name} <{email}>" if email and name != email else name


def _footer_text(content: DigestContent) -> str:
    return (
        f"Leadscore morning digest for {one_line(content.rep.full_name) or content.rep.email}. Scores of "
        f"{content.day.isoformat()}; you get it because you own these leads in the CRM. Spikes and declines "
        "compare with the previous scoring day."
    )


def _changes(content: DigestContent) -> list[tuple[str, str, str, Sequence[DigestLead]]]:
    sections = [
        ("Spikes", "spike", "▲", content.spikes),
        ("New to you", "unowned_hot", "●", content.new_to_you),
        ("Declines", "decline", "▼", content.declines),
    ]
    return [section for section in sections if section[3]]


# --- HTML -------------------------------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape(one_line(str(value)), quote=True)


def render_html(content: DigestContent, *, list_limit: int = LIST_LIMIT) -> str:
    title = subject_line(content)
    rows = [
        _row(
            f'<div style="font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:{MUTED};">'
            f"Leadscore &middot; scores of {_e(short_date(content.day))}</div>"
            f'<h1 style="margin:6px 0 0;font-size:22px;line-height:1.3;font-weight:700;color:{INK};">'
            f"{_e(greeting(content))} {_e(capitalised(calls_today(content)))}</h1>",
            padding="20px 20px 4px",
        )
    ]
    for number, item in enumerate(content.call_today, 1):
        rows.append(_call_card(number, item.lead, item.label, item.why))
    rows.append(_section_title("Since yesterday"))
    changes = _changes(content)
    if not changes:
        rows.append(_row(f'<div style="font-size:15px;color:{MUTED};">No spikes, declines or new leads.</div>'))
    for title_text, kind, symbol, leads in changes:
        rows.append(_change_list(title_text, kind, symbol, leads))
    rows.append(_section_title(f"Your leads ({len(content.leads)}), by score"))
    rows.append(_row(_lead_table(content.leads[:list_limit]), padding="0 12px 4px"))
    if len(content.leads) > list_limit:
        more = len(content.leads) - list_limit
        rows.append(_row(f'<div style="font-size:14px;color:{MUTED};">and {more} more in the CRM</div>'))
    rows.append(
        _row(
            f'<div style="font-size:12px;line-height:1.5;color:{MUTED};">{_e(_footer_text(content))}</div>',
            padding="16px 20px 20px",
            border=True,
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light only">'
        f"<title>{_e(title)}</title></head>\n"
        f'<body style="margin:0;padding:0;background:{PAGE};-webkit-text-size-adjust:100%;">\n'
        f'<div style="display:none;max-height:0;overflow:hidden;opacity:0;">{_e(preheader(content))}</div>\n'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="background:{PAGE};"><tr><td align="center" style="padding:12px 6px;">\n'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="max-width:600px;background:{PAPER};border-radius:8px;border-collapse:separate;'
        f'font-family:{FONT};color:{INK};">\n' + "\n".join(rows) + "\n</table>\n</td></tr></table>\n</body></html>\n"
    )


def _row(inner: str, *, padding: str = "8px 20px", border: bool = False) -> str:
    rule = f"border-top:1px solid {RULE};" if border else ""
    return f'<tr><td style="padding:{padding};{rule}">{inner}</td></tr>'


def _section_title(text: str) -> str:
    return _row(
        f'<h2 style="margin:0;font-size:13px;letter-spacing:.06em;text-transform:uppercase;color:{MUTED};'
        f'font-weight:700;">{_e(text)}</h2>',
        padding="20px 20px 6px",
        border=True,
    )


def _badge(label: str, colour: str) -> str:
    return (
        f'<span style="display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:700;'
        f'color:#ffffff;background:{colour};">{_e(label)}</span>'
    )


def _kind_colour(lead: DigestLead, label: str) -> str:
    for kind in ("unowned_hot", "spike"):
        if lead.alert(kind):
            return COLOURS[kind]
    return COLOURS["tier"] if label.startswith("Tier") else COLOURS["top"]


def _person_html(lead: DigestLead, *, size: int) -> str:
    """The name, linking to a new mail to the lead; the address underneath when the name is not it."""
    name = _e(lead.display_name)
    link_style = f"color:{INK};text-decoration:none;font-size:{size}px;font-weight:600;"
    person = f'<a href="mailto:{_e(lead.email)}" style="{link_style}">{name}</a>' if lead.email else name
    if lead.email and lead.display_name != lead.email:
        person += (
            f'<div style="font-size:13px;color:{MUTED};word-break:break-all;margin-top:1px;">{_e(lead.email)}</div>'
        )
    return person


def _call_card(number: int, lead: DigestLead, label: str, why: str) -> str:
    change = signed(lead.score_change_7d)
    facts = f"score <b>{_e(score_text(lead.score))}</b> &middot; tier {_e(lead.tier or '-')}"
    if change and change != "0":
        facts += f" &middot; {_e(change)} in 7 days"
    inner = (
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border:1px solid {RULE};border-radius:8px;border-collapse:separate;">'
        f'<tr><td style="padding:12px 14px;">'
        f'<div style="margin-bottom:6px;">{_badge(label, _kind_colour(lead, label))}'
        f'<span style="font-size:13px;color:{MUTED};padding-left:8px;">#{number}</span></div>'
        f'<div style="word-break:break-word;">{_person_html(lead, size=17)}</div>'
        f'<div style="font-size:14px;color:{MUTED};margin-top:4px;">{facts}</div>'
        f'<div style="font-size:15px;line-height:1.45;color:{INK};margin-top:8px;">{_e(why)}</div>'
        "</td></tr></table>"
    )
    return _row(inner, padding="6px 20px")


def _change_list(title: str, kind: str, symbol: str, leads: Sequence[DigestLead]) -> str:
    colour = COLOURS[kind]
    items = "".join(
        f'<tr><td valign="top" style="width:18px;padding:5px 0;color:{colour};font-size:14px;">{symbol}</td>'
        f'<td style="padding:5px 0;font-size:15px;word-break:break-word;">{_person_html(lead, size=15)}</td>'
        f'<td valign="top" align="right" style="padding:5px 0 5px 8px;white-space:nowrap;font-size:14px;'
        f'color:{colour};font-weight:600;">{_e(move_text(lead, kind))}</td></tr>'
        for lead in leads
    )
    return _row(
        f'<div style="font-size:14px;font-weight:700;color:{colour};margin:4px 0 2px;">'
        f"{_e(title)} ({len(leads)})</div>"
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">{items}</table>',
        padding="2px 20px 6px",
    )


def _lead_table(leads: Sequence[DigestLead]) -> str:
    with_change = has_weekly_change(leads)
    head = (
        f'<tr style="font-size:12px;color:{MUTED};text-align:left;">'
        '<th style="padding:6px 4px;font-weight:600;">#</th>'
        '<th style="padding:6px 4px;font-weight:600;">Lead</th>'
        '<th style="padding:6px 4px;font-weight:600;text-align:right;">Score</th>'
        + ('<th style="padding:6px 4px;font-weight:600;text-align:right;">7d</th>' if with_change else "")
        + "</tr>"
    )
    body = []
    for rank, lead in enumerate(leads, 1):
        change = signed(lead.score_change_7d)
        colour = COLOURS["spike"] if change.startswith("+") else COLOURS["decline"] if change.startswith("-") else MUTED
        change_cell = (
            f'<td valign="top" align="right" style="padding:7px 4px;border-top:1px solid {RULE};color:{colour};'
            f'white-space:nowrap;">{_e(change or "-")}</td>'
        )
        body.append(
            f'<tr style="font-size:14px;">'
            f'<td valign="top" style="padding:7px 4px;border-top:1px solid {RULE};color:{MUTED};">{rank}</td>'
            f'<td style="padding:7px 4px;border-top:1px solid {RULE};word-break:break-word;">'
            f"{_person_html(lead, size=14)}</td>"
            f'<td valign="top" align="right" style="padding:7px 4px;border-top:1px solid {RULE};white-space:nowrap;">'
            f'<b>{_e(score_text(lead.score))}</b> <span style="color:{MUTED};font-size:12px;">'
            f"{_e(lead.tier or '')}</span></td>"
            f"{change_cell if with_change else ''}</tr>"
        )
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;">{head}{"".join(body)}</table>'
    )


# --- the message ------------------------------------------------------------------------------------------
def render(content: DigestContent, *, sender: str, list_limit: int = LIST_LIMIT) -> RenderedDigest:
    return RenderedDigest(
        subject=subject_line(content),
        text=render_text(content, list_limit=list_limit),
        html=render_html(content, list_limit=list_limit),
        message_id=message_id(content.day, content.rep.user_id, sender),
    )


def build_message(
    content: DigestContent, *, sender: str, now: dt.datetime | None = None, list_limit: int = LIST_LIMIT
) -> EmailMessage:
    """The digest as a multipart/alternative e-mail (text first, HTML last: clients show the last they can).

    ``Message-ID`` is the same for a rep and day however often it is built (see :func:`message_id`);
    ``Date`` is ``now`` (UTC by default).
    """
    if content.rep.email is None:
        raise ValueError(f"rep {content.rep.user_id} has no e-mail address")
    rendered = render(content, sender=sender, list_limit=list_limit)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = formataddr((one_line(content.rep.full_name), content.rep.email))
    now = now or dt.datetime.now(dt.UTC)
    message["Date"] = format_datetime(now if now.tzinfo else now.replace(tzinfo=dt.UTC))
    message["Message-ID"] = rendered.message_id
    message[DIGEST_DATE_HEADER] = content.day.isoformat()
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office replies should not answer it
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
