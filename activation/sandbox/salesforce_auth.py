"""Salesforce OAuth as the sandbox plays it: the token endpoint on two hosts, sessions, the identity URL
and the daily request allocation (with the optional per-app allocation).

The bare sandbox URL plays the generic login host (login.salesforce.com), ``{url}/my/{domain}`` the org's
My Domain. Like Salesforce, the client-credentials flow works only on My Domain; the JWT bearer flow works
on both; the token's ``instance_url`` is always the My Domain URL. Client authentication may come as form
fields or as HTTP Basic (RFC 6749 2.3.1) — the official SDKs use both — and the two must agree.

JWT bearer: the assertion's header and claims are checked (RS256, ``iss`` = consumer key, ``sub`` = the
configured user, ``aud`` = a login URL, ``exp`` in the future, as a number or a numeric string). Its
signature is verified against the configured public key only when the ``cryptography`` package is
importable; without it the signature is accepted unchecked (a sandbox limitation, logged once at start).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from typing import Any

from activation.salesforce_ids import normalize_salesforce_id
from activation.sandbox.config import SALESFORCE_APP_NAME, SandboxConfig
from activation.sandbox.shapes import oauth_error, sf_errors
from activation.sandbox.web import Refusal, Request, Response, json_response

log = logging.getLogger(__name__)

DEFAULT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_NUMERIC = re.compile(r"^\d+(?:\.\d+)?$")


class ApiUsage:
    """The org's rolling request count and this app's share of it, rendered as ``Sforce-Limit-Info``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.app = 0

    def charge(self, daily: int, per_app: int | None) -> tuple[bool, str]:
        """Count one request unless an allocation is spent; (allowed, Sforce-Limit-Info value)."""
        with self._lock:
            spent = self.total >= daily or (per_app is not None and self.app >= per_app)
            if not spent:
                self.total += 1
                self.app += 1
            return not spent, self.header(daily, per_app)

    def header(self, daily: int, per_app: int | None) -> str:
        value = f"api-usage={self.total}/{daily}"
        if per_app is not None:
            value += f"; per-app-api-usage={self.app}/{per_app}(appName={SALESFORCE_APP_NAME})"
        return value

    def reset(self) -> None:
        with self._lock:
            self.total = self.app = 0


class SalesforceAuth:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.base_url = ""  # set by the server once it knows its port
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic); in memory on purpose
        self._tokens_lock = threading.Lock()
        self.usage = ApiUsage()
        self._public_key = _load_public_key(config.salesforce_jwt_public_key_pem)

    @property
    def my_domain_url(self) -> str:
        return f"{self.base_url}/my/{self.config.salesforce_my_domain}"

    # --- token endpoint ------------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("Content-Type", ""):
            return oauth_error("invalid_request", "the token request must be form-encoded")
        try:
            form = request.form()
        except ValueError:
            return oauth_error("invalid_request", "the form is not valid UTF-8")
        client_id, client_secret = _client_credentials(request, form)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if not request.via_my_domain:
                return oauth_error("invalid_grant", "request not supported on this domain")
            if client_id != self.config.salesforce_client_id:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != self.config.salesforce_client_secret:
                return oauth_error("invalid_client", "invalid client credentials")
        elif grant == JWT_GRANT:
            problem = self._check_jwt(form.get("assertion", ""))
            if problem:
                return oauth_error(*problem)
        elif grant == "password":
            return oauth_error("unsupported_grant_type", "the username-password flow is disabled in this org")
        else:
            return oauth_error("unsupported_grant_type", "grant type not supported")
        return json_response(200, self._issue(request.via_my_domain))

    def _issue(self, via_my_domain: bool) -> dict[str, Any]:
        config = self.config
        token = f"{config.salesforce_org_id[:15]}!{secrets.token_urlsafe(32)}"
        with self._tokens_lock:
            self._tokens[token] = time.monotonic() + config.salesforce_token_lifetime
        issued = str(int(time.time() * 1000))
        host = self.my_domain_url if via_my_domain else self.base_url
        return {
            "access_token": token,
            "instance_url": self.my_domain_url,
            "id": f"{host}/id/{config.salesforce_org_id}/{config.salesforce_user_id}",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": base64.b64encode(hashlib.sha256(f"{token}{issued}".encode()).digest()).decode(),
            "scope": "api",
        }

    def _check_jwt(self, assertion: str) -> tuple[str, str] | None:
        parts = assertion.split(".")
        if len(parts) != 3:
            return ("invalid_grant", "invalid assertion: not a JWT")
        try:
            header, claims = (json.loads(_b64url_decode(p)) for p in parts[:2])
            signature = _b64url_decode(parts[2])
        except (ValueError, RecursionError):
            return ("invalid_grant", "invalid assertion: undecodable")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return ("invalid_grant", "invalid assertion: header and claims must be JSON objects")
        if header.get("alg") != "RS256":
            return ("invalid_grant", "invalid assertion: alg must be RS256")
        if claims.get("iss") != self.config.salesforce_client_id:
            return ("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.config.salesforce_username:
            return ("invalid_grant", "user hasn't approved this consumer")
        if claims.get("aud") not in {*DEFAULT_AUDIENCES, self.base_url, self.my_domain_url}:
            return ("invalid_grant", "audience is invalid")
        exp = _expiry(claims.get("exp"))
        if exp is None or exp <= time.time():
            return ("invalid_grant", "expired authorization code")
        if self._public_key is not None and not _signature_ok(self._public_key, parts, signature):
            return ("invalid_grant", "invalid assertion: signature does not verify")
        return None

    # --- sessions ------------------------------------------------------------------------------------
    def expire_tokens(self) -> int:
        with self._tokens_lock:
            count = len(self._tokens)
            self._tokens = dict.fromkeys(self._tokens, 0.0)
        return count

    def issued_tokens(self) -> list[str]:
        return list(self.tokens_snapshot())

    def tokens_snapshot(self) -> dict[str, float]:
        with self._tokens_lock:
            return dict(self._tokens)

    def authenticate(self, request: Request) -> Response | None:
        """401 ``INVALID_SESSION_ID`` unless the bearer token is one we issued and it has not expired."""
        token = request.bearer_token()
        with self._tokens_lock:
            expiry = self._tokens.get(token or "")
        if expiry is None or expiry <= time.monotonic():
            return sf_errors(401, "Session expired or invalid", "INVALID_SESSION_ID")
        return None

    def count_request(self) -> tuple[bool, str]:
        """Charge one request to the daily (and per-app) allocation; (allowed, Sforce-Limit-Info value)."""
        return self.usage.charge(self.config.salesforce_daily_limit, self.config.salesforce_per_app_limit)

    def limit_info(self) -> str:
        return self.usage.header(self.config.salesforce_daily_limit, self.config.salesforce_per_app_limit)

    def identity(self, request: Request) -> Response:
        """The identity URL from the token response: who is logged in, in which org."""
        config = self.config
        org, user = (normalize_salesforce_id(request.params[k]) for k in ("org", "user"))
        if (org, user) != (config.salesforce_org_id, config.salesforce_user_id):
            return sf_errors(404, "Bad_Id: the identity URL does not name this org and user", "NOT_FOUND")
        host = self.my_domain_url if request.via_my_domain else self.base_url
        return json_response(
            200,
            {
                "id": f"{host}/id/{org}/{user}",
                "asserted_user": True,
                "user_id": user,
                "organization_id": org,
                "username": config.salesforce_username,
                "display_name": "Leadscore Integration",
                "active": True,
                "user_type": "STANDARD",
                "urls": {"rest": f"{self.my_domain_url}/services/data/v{{version}}/"},
            },
        )


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    """client_id and client_secret from the form or the Basic header; invalid_client when they disagree."""
    try:
        basic = request.basic_credentials()
    except ValueError:
        raise Refusal(oauth_error("invalid_client", "malformed HTTP Basic client credentials")) from None
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic is None:
        return form_id, form_secret
    if (form_id is not None and form_id != basic[0]) or (form_secret is not None and form_secret != basic[1]):
        raise Refusal(oauth_error("invalid_client", "client credentials in the form and the header disagree"))
    return basic


def _expiry(value: Any) -> float | None:
    """``exp`` as seconds: a JSON number, or a string of digits (some JWT libraries write it that way)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMERIC.match(value):
        return float(value)
    return None


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _load_public_key(pem: str | None) -> Any:
    if not pem:
        return None
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        from cryptography.x509 import load_pem_x509_certificate
    except ImportError:
        log.warning("`cryptography` is not installed: JWT signatures are accepted without verification")
        return None
    data = pem.encode()
    if b"CERTIFICATE" in data:
        return load_pem_x509_certificate(data).public_key()
    return load_pem_public_key(data)


def _signature_ok(public_key: Any, parts: list[str], signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
