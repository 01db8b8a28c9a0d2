"""Error bodies in each API's own shape, and which API a path belongs to.

A client parses errors the way its CRM writes them; an error in the wrong shape (or a 500) would test the
client's fallback path instead of the one that runs in production.
"""

from __future__ import annotations

import uuid
from typing import Any

from activation.sandbox.web import Response, json_response

TOKEN_PATH = "/services/oauth2/token"
HUBSPOT_PREFIXES = ("/crm/", "/account-info/", "/integrations/")
SALESFORCE_PREFIXES = ("/services/", "/id/", "/my/")

# Status -> HubSpot category / Salesforce errorCode for errors raised below the APIs (transport, routing).
_HUBSPOT_CATEGORIES = {404: "OBJECT_NOT_FOUND", 405: "VALIDATION_ERROR", 413: "VALIDATION_ERROR"}
_SALESFORCE_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_ENTITY_TOO_LARGE"}


def hubspot_error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return json_response(status, body)


def sf_errors(status: int, message: str, code: str, fields: list[str] | None = None) -> Response:
    return json_response(status, [{"message": message, "errorCode": code, "fields": fields or []}])


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


def plain_error(status: int, message: str) -> Response:
    return json_response(status, {"message": message})


def api_of(path: str) -> str:
    """``hubspot``, ``salesforce``, ``oauth`` (the token endpoint), ``admin`` or ``other``.

    Under ``/my/{domain}`` (Salesforce's My Domain) only the token endpoint is OAuth; the rest is Salesforce.
    """
    if path.startswith("/my/"):
        inner = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        return "oauth" if api_of(inner) == "oauth" else "salesforce"
    if path.rstrip("/") == TOKEN_PATH:
        return "oauth"
    if path.startswith(SALESFORCE_PREFIXES):
        return "salesforce"
    if path.startswith(HUBSPOT_PREFIXES):
        return "hubspot"
    return "admin" if path.startswith("/_admin") else "other"


def error_for(path: str, status: int, message: str) -> Response:
    """A generic error (bad body, unknown route, wrong method) in the shape of the API ``path`` belongs to.

    Paths that belong to no API (``/``, ``/favicon.ico``) get the admin API's plain ``{"message"}``.
    """
    api = api_of(path)
    if api == "hubspot":
        return hubspot_error(status, message, _HUBSPOT_CATEGORIES.get(status, "VALIDATION_ERROR"))
    if api == "salesforce":
        return sf_errors(status, message, _SALESFORCE_CODES.get(status, "JSON_PARSER_ERROR"))
    if api == "oauth":
        return oauth_error("invalid_request", message, status)
    return plain_error(status, message)
