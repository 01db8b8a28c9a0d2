"""The redaction helper: registered secrets and credential-shaped text never survive."""

from __future__ import annotations

import logging

import pytest

from activation.errors import ActivationError
from activation.redact import REDACTED, RedactingFilter, get_logger, redact, register_secret


def test_registered_secret_is_removed_everywhere() -> None:
    register_secret("s3cr3t-value-123")
    assert redact("token s3cr3t-value-123 and again s3cr3t-value-123") == f"token {REDACTED} and again {REDACTED}"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Bearer pat-na1-abcdef", "pat-na1-abcdef"),
        ("grant_type=client_credentials&client_secret=hunter2hunter2&x=1", "hunter2hunter2"),
        ('{"access_token": "00Dxx!AQ.abc", "instance_url": "https://x"}', "00Dxx!AQ.abc"),
        ("assertion=eyJhbGciOi.eyJpc3Mi.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
        ("jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.sig_nature-1", "sig_nature-1"),
    ],
)
def test_credential_shapes_are_removed_without_registration(text: str, leak: str) -> None:
    cleaned = redact(text)
    assert leak not in cleaned
    assert REDACTED in cleaned


def test_ordinary_text_is_untouched() -> None:
    text = "HubSpot 400: Property values were not valid (leadscore_score)"
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    register_secret("ab")  # would garble every message if it were replaced
    assert redact("abc ab") == "abc ab"


def test_exceptions_redact_their_message() -> None:
    register_secret("another-secret-999")
    assert "another-secret-999" not in str(ActivationError("failed with another-secret-999"))


def test_logger_filter_redacts_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("log-secret-abcdef")
    logger = get_logger("activation.test_redact")
    with caplog.at_level(logging.DEBUG, logger="activation.test_redact"):
        logger.info("sending with %s", "log-secret-abcdef")
        try:
            raise ValueError("boom log-secret-abcdef")
        except ValueError:
            logger.exception("failed")
    assert "log-secret-abcdef" not in caplog.text
    assert REDACTED in caplog.text
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
