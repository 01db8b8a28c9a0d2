"""Exceptions of the activation package; every message is redacted so no credential can leak through one."""

from __future__ import annotations

from activation.redact import redact, register_secret


class ActivationError(Exception):
    """Base class; the message is passed through :func:`activation.redact.redact`."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ConfigurationError(ActivationError):
    """The mapping, the credentials or the CRM's schema are wrong: a person must act before a sync can run."""


class AuthenticationError(ConfigurationError):
    """The CRM refused the credentials (HubSpot 401/403, Salesforce ``invalid_grant``)."""


class DailyLimitReached(ActivationError):
    """The destination's daily request allocation is spent: stop now, the rest goes in the next run."""


class RequestFailed(ActivationError):
    """A request failed in a way that retrying the same request will not fix (or retries ran out).

    ``retryable`` says whether the *next run* may succeed (5xx, timeouts) as opposed to a request the
    destination will always reject (400).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class OutcomeUnknown(RequestFailed):
    """A write that may have been applied: it was sent, and its answer never came (timeout, dropped
    connection) or was a 5xx, which a gateway may send after the CRM committed. Resending a *create* could
    make a second record, so such requests are not resent blindly: the caller looks the record up first."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=True)


class BatchConflict(RequestFailed):
    """HubSpot 409: one conflicting record failed the whole batch; split the batch to isolate it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=409, retryable=False)


class BatchInvalid(RequestFailed):
    """A whole batch refused for the value of some record in it (HubSpot answers one invalid value with a 400
    for the batch and writes none of it): split the batch until the record at fault stands alone.

    ``code`` is the CRM's error code (e.g. ``INVALID_OPTION``) for the reject of that record.
    """

    def __init__(self, message: str, code: str = "VALIDATION_ERROR") -> None:
        super().__init__(message, status=400, retryable=False)
        self.code = code


def checked_secret(value: str | None, name: str) -> str:
    """A credential as configured, without the line break a secret file ends with. Inner whitespace is refused:
    it would reach an HTTP header, fail there, and come back inside an error message."""
    register_secret(value)  # the raw form too, in case anything echoes it
    secret = (value or "").strip()
    register_secret(secret)
    if any(char.isspace() for char in secret):
        raise ConfigurationError(f"{name} contains whitespace; check how the secret is stored")
    return secret
