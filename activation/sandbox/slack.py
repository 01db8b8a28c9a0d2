"""Slack incoming webhooks, as Slack serves them, for the morning digest's optional Slack summary.

Slack's own URL is ``https://hooks.slack.com/services/T…/B…/<token>``; the sandbox serves the same shape
under ``/slack/services/T…/B…/<token>`` because ``/services`` belongs to Salesforce here. Like Slack: the body
is JSON (or a form field ``payload`` holding JSON); a body that is not a JSON object is ``400
invalid_payload``, one with neither a non-empty ``text`` nor ``blocks`` is ``400 no_text``, malformed
``blocks`` are ``400 invalid_blocks``, an unknown webhook is ``404 no_service``; success is ``200 ok`` as
``text/plain``. Errors are plain-text codes, as Slack sends them.

Accepted messages are kept in memory (a restart forgets them) and read with ``GET /_admin/slack/messages``
(``DELETE`` empties the list). Each webhook posts to a channel named when it is created; the default one
(``#sales-morning``) is :meth:`SandboxHandle.slack_webhook_url`. A webhook URL is a secret: its path is
registered with :mod:`activation.redact` and the request lines the HTTP layer logs are redacted.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any
from urllib.parse import parse_qs

import requests

from activation.redact import get_logger, register_secret
from activation.sandbox.web import Request, Response, json_response

SLACK_ROOT = "/slack/services/"
ADMIN_ROOT = "/_admin/slack/"
DEFAULT_CHANNEL = "#sales-morning"
# Slack's shapes: workspace id T…, bot/integration id B…, a 24-character token.
DEFAULT_WEBHOOK = ("T0LEADSCORE", "B0DIGEST01", "sandboxDigestHook0000001")
MAX_BLOCKS = 50


def slack_text(status: int, code: str) -> Response:
    return Response(status, code.encode(), content_type="text/plain; charset=utf-8")


class SlackWebhooks:
    """The webhooks a sandbox serves and the messages they received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, str] = {}  # "T…/B…/token" -> channel
        self._messages: list[dict[str, Any]] = []
        # The HTTP layer logs request lines at DEBUG; a webhook's path is its secret, so redact them there.
        get_logger("activation.sandbox.transport")
        self.default_path = self.add_webhook(*DEFAULT_WEBHOOK, channel=DEFAULT_CHANNEL)

    def add_webhook(self, team: str, bot: str, token: str, *, channel: str) -> str:
        """Serve a webhook posting to ``channel``; returns its path (append it to the sandbox URL)."""
        for part in (team, bot, token):
            if not part or "/" in part:
                raise ValueError("webhook parts must be non-empty and contain no '/'")
        with self._lock:
            self._channels[f"{team}/{bot}/{token}"] = channel
        path = f"{SLACK_ROOT}{team}/{bot}/{token}"
        register_secret(path)
        return path

    def serves(self, path: str) -> bool:
        return path.startswith((SLACK_ROOT, ADMIN_ROOT))

    def handle(self, request: Request) -> Response:
        if request.path.startswith(ADMIN_ROOT):
            return self._admin(request)
        hook = request.path[len(SLACK_ROOT) :].rstrip("/")
        with self._lock:
            channel = self._channels.get(hook)
        if channel is None:
            return slack_text(404, "no_service")
        if request.method != "POST":
            return slack_text(405, "invalid_method")
        payload = _payload(request)
        if not isinstance(payload, dict):
            return slack_text(400, "invalid_payload")
        text, blocks = payload.get("text"), payload.get("blocks")
        if blocks is not None and not _valid_blocks(blocks):
            return slack_text(400, "invalid_blocks")
        has_text = isinstance(text, str) and text.strip() != ""
        if not has_text and not blocks:
            return slack_text(400, "no_text")
        message = {
            "channel": channel,
            "webhook": hook.rsplit("/", 1)[0],  # T…/B…: which webhook, never its token
            "text": text if isinstance(text, str) else None,
            "blocks": blocks,
            "received_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        with self._lock:
            self._messages.append(message)
        return slack_text(200, "ok")

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._messages]

    def _admin(self, request: Request) -> Response:
        if request.path.rstrip("/") != f"{ADMIN_ROOT}messages":
            return json_response(404, {"message": f"no admin route {request.method} {request.path}"})
        if request.method == "GET":
            return json_response(200, {"messages": self.messages()})
        if request.method == "DELETE":
            with self._lock:
                cleared, self._messages = len(self._messages), []
            return json_response(200, {"deleted": cleared})
        return json_response(405, {"message": f"no admin route {request.method} {request.path}"})


def _payload(request: Request) -> Any:
    """The JSON body, or the JSON of the form field ``payload`` (Slack accepts both); None when unreadable."""
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    try:
        if content_type == "application/x-www-form-urlencoded":
            fields = parse_qs(request.body.decode("utf-8"), errors="strict")
            return json.loads(fields["payload"][0]) if "payload" in fields else None
        return request.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _valid_blocks(blocks: Any) -> bool:
    return (
        isinstance(blocks, list)
        and 0 < len(blocks) <= MAX_BLOCKS
        and all(isinstance(b, dict) and isinstance(b.get("type"), str) and b["type"] for b in blocks)
    )


def slack_messages(url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """What the sandbox at ``url`` received on its webhooks (admin API client, for tests and people)."""
    response = requests.get(f"{url.rstrip('/')}{ADMIN_ROOT}messages", timeout=timeout)
    response.raise_for_status()
    return response.json()["messages"]
