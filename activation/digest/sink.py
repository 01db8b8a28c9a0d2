"""A local SMTP server that keeps every message it receives as an ``.eml`` file (the embedded default's
"mail server", and the tests'): real SMTP on 127.0.0.1, so the digest goes through ``smtplib`` exactly as it
would to a company relay.

Files land in ``<root>/<digest day>/<recipient>-<message id>.eml`` (the day from the digest's
``X-Leadscore-Digest-Date`` header, else the day received, UTC). A digest delivered twice overwrites its own
file (same recipient, same Message-ID), which is what makes a duplicate easy to recognise. Each file starts
with ``X-Sink-*`` headers: the envelope sender and recipient, the SMTP login used (never the password), and
when it arrived.

Only for local use: it binds the loopback address, accepts any sender, and stores everything in clear.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import os
import re
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from activation.digest.render import DIGEST_DATE_HEADER

LOOPBACK = "127.0.0.1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def safe_name(value: str) -> str:
    """A file-name-safe rendering of an address or Message-ID (``<a@b>`` -> ``a@b``)."""
    return _UNSAFE.sub("_", value.strip().strip("<>")).strip("._") or "unnamed"


class _Handler:
    """aiosmtpd hooks: refuse configured recipients, write each accepted message once per recipient."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.lower() in self.sink.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = getattr(session, "auth_data", None)
        user = login.login.decode("utf-8", "replace") if isinstance(login, LoginPassword) else None
        for recipient in envelope.rcpt_tos:
            self.sink.store(envelope.content, envelope.mail_from, recipient, user)
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class SmtpSink:
    """A running sink: where it listens and where it writes. ``refused`` (lower-case addresses) are
    refused at ``RCPT TO`` with 550, the way a relay refuses an unknown mailbox: tests change it live."""

    root: Path
    host: str = LOOPBACK
    port: int = 0
    refused: set[str] = field(default_factory=set)
    credentials: tuple[str, str] | None = None  # accepted AUTH LOGIN/PLAIN; None = no AUTH offered

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0

    def store(self, content: bytes, mail_from: str, recipient: str, user: str | None) -> Path:
        message = email.message_from_bytes(content, policy=email.policy.default)
        day = str(message.get(DIGEST_DATE_HEADER, "")).strip()
        now = dt.datetime.now(dt.UTC)
        if not _DAY.match(day):
            day = now.date().isoformat()
        message_id = str(message.get("Message-ID", "")) or f"no-id-{now:%H%M%S%f}"
        folder = self.root / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_name(recipient)}-{safe_name(message_id)}.eml"
        envelope = (
            f"X-Sink-Envelope-From: {mail_from}\r\nX-Sink-Envelope-To: {recipient}\r\n"
            f"X-Sink-Authenticated-As: {user or '-'}\r\nX-Sink-Received-At: {now.isoformat()}\r\n"
        ).encode()
        # Write then rename: a reader (a test, the Dagster check) never sees half a message.
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".incoming-", suffix=".eml")
        with os.fdopen(handle, "wb") as out:
            out.write(envelope + content)
        os.replace(temporary, path)
        with self._lock:
            self.received += 1
        return path

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if self.credentials and isinstance(auth_data, LoginPassword):
            login, password = self.credentials
            if auth_data.login.decode() == login and auth_data.password.decode() == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def messages(self, day: dt.date | str | None = None) -> list[ReceivedMessage]:
        return read_messages(self.root, day)


class _BoundController(Controller):
    """aiosmtpd's threaded controller on a socket bound before it starts: port 0 gets a free port with no
    race between choosing it and listening on it."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@contextlib.contextmanager
def run_smtp_sink(
    root: str | Path,
    *,
    port: int = 0,
    refused: Iterable[str] = (),
    credentials: tuple[str, str] | None = None,
) -> Iterator[SmtpSink]:
    """Run a sink on 127.0.0.1 (``port`` 0 = a free one) for the ``with`` block; yields it (``.port``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sink = SmtpSink(Path(root), LOOPBACK, sock.getsockname()[1], {a.lower() for a in refused}, credentials)
    options: dict[str, Any] = {"server_hostname": "leadscore-sink.local", "ready_timeout": 10.0}
    if credentials:
        # Loopback only: AUTH is offered without TLS so a client's login can be exercised without certificates.
        options.update(authenticator=sink.authenticate, auth_require_tls=False)
    controller = _BoundController(_Handler(sink), sock, **options)
    try:
        controller.start()
    except BaseException:
        sock.close()
        raise
    try:
        yield sink
    finally:
        controller.stop()
        sock.close()


@dataclass(frozen=True)
class ReceivedMessage:
    path: Path
    day: str
    envelope_from: str
    envelope_to: str
    authenticated_as: str | None
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def body(self, subtype: str) -> str:
        """The ``text/plain`` or ``text/html`` part, decoded."""
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            raise LookupError(f"no text/{subtype} part in {self.path.name}")
        return part.get_content()


def read_messages(root: str | Path, day: dt.date | str | None = None) -> list[ReceivedMessage]:
    """Every message a sink wrote under ``root`` (one digest day, or all), oldest file name first."""
    root = Path(root)
    folders = [root / str(day)] if day is not None else sorted(p for p in root.glob("*") if p.is_dir())
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.eml")):
            if path.name.startswith(".incoming-"):
                continue
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            user = str(message.get("X-Sink-Authenticated-As", "-"))
            found.append(
                ReceivedMessage(
                    path=path,
                    day=folder.name,
                    envelope_from=str(message.get("X-Sink-Envelope-From", "")),
                    envelope_to=str(message.get("X-Sink-Envelope-To", "")),
                    authenticated_as=None if user == "-" else user,
                    message=message,  # type: ignore[arg-type]
                )
            )
    return found
