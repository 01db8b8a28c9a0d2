"""Keep credentials out of logs and exception messages.

Tokens reach leadscore only through arguments and environment variables. Every client registers the
secrets it holds with :func:`register_secret`; :func:`redact` then removes them (and anything that *looks*
like a credential, in case a secret was never registered, e.g. a token the server sent back) from any text.
:class:`RedactingFilter` applies the same to log records, and :func:`get_logger` attaches it to every
logger of this package — a filter on a parent logger does not see records propagated from its children.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"

_lock = threading.Lock()
_secrets: set[str] = set()

# Shapes that are credentials whatever their value: auth headers, OAuth form fields and JSON members, JWTs.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9\-._~+/!=]+"), rf"\1 {REDACTED}"),
    (
        re.compile(r"(?i)\b(access_token|refresh_token|client_secret|assertion|password|token)=[^&\s\"']+"),
        rf"\1={REDACTED}",
    ),
    (
        re.compile(
            r"(?i)([\"'](?:access_token|refresh_token|client_secret|assertion|password|signature)[\"']\s*:\s*)"
            r"[\"'][^\"']*[\"']"
        ),
        rf'\1"{REDACTED}"',
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
)

# Secrets shorter than this are not registered: replacing e.g. "1" everywhere would garble every message.
_MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` removes it from any text from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    """Return ``str(text)`` with every registered secret and every credential-shaped substring replaced."""
    result = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a secret may contain another
    for secret in secrets:
        if secret in result:
            result = result.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        result = pattern.sub(replacement, result)
    return result


class RedactingFilter(logging.Filter):
    """Rewrite a record's message, with its arguments merged in, through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            # Format the traceback now so that the exception's text is redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        record.msg = redact(message)
        record.args = None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger whose records are redacted before any handler sees them."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
