"""The unauthenticated admin API under ``/_admin`` (tests, the bench, people), and its client.

Besides stats, faults and limits it seeds records (the sandbox starts as a copy of the company's CRM),
counts them, and deletes them the way a user would in the CRM, so a client's handling of records that
vanished can be tested. Errors are plain ``{"message": ...}`` JSON.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import requests

from activation.sandbox.config import SandboxConfig, check_setting
from activation.sandbox.shapes import plain_error
from activation.sandbox.web import Handler, Refusal, Request, Response, Router, json_object, json_response

if TYPE_CHECKING:
    from activation.sandbox.server import CrmSandbox

ADJUSTABLE_LIMITS = (
    "hubspot_max_per_window",
    "hubspot_daily_limit",
    "hubspot_window_seconds",
    "salesforce_daily_limit",
    "salesforce_per_app_limit",
    "salesforce_token_lifetime",
)
HUBSPOT_TYPES = ("contacts", "companies", "tasks")
SALESFORCE_OBJECTS = ("Lead", "Contact", "Account")


class AdminApi:
    def __init__(self, app: CrmSandbox) -> None:
        self.app = app
        self.router = Router()
        routes = [
            ("GET", "stats", self.stats),
            ("POST", "stats/reset", self.reset_stats),
            ("GET", "faults", self.faults),
            ("POST", "faults", self.set_faults),
            ("POST", "limits", self.set_limits),
            ("POST", "limits/reset", self.reset_limits),
            ("GET", "counts", self.counts),
            ("POST", "salesforce/expire-tokens", self.expire_tokens),
            # before hubspot/{object_type}/...: owners are not records
            ("GET", "hubspot/owners", self.hubspot_owners),
            ("POST", "hubspot/owners/seed", self.seed_hubspot_owners),
            ("POST", "hubspot/owners/{id}/archive", self.archive_hubspot_owner),
            ("GET", "hubspot/{object_type}/objects", self.hubspot_objects),
            ("POST", "hubspot/{object_type}/seed", self.seed_hubspot),
            ("DELETE", "hubspot/{object_type}/objects/{id}", self.delete_hubspot),
            ("GET", "salesforce/{sobject}/records", self.salesforce_records),
            ("POST", "salesforce/{sobject}/seed", self.seed_salesforce),
            ("POST", "salesforce/{sobject}/fields", self.add_salesforce_fields),
            ("DELETE", "salesforce/{sobject}/records/{id}", self.delete_salesforce),
        ]
        for method, path, handler in routes:
            self.router.add(method, f"/_admin/{path}", f"admin.{path}", _refusals_answered(handler))

    def handle(self, request: Request) -> Response:
        matched = self.router.match(request.method, request.path)
        if matched is None:
            status = 405 if self.router.allows_path(request.path) else 404
            return plain_error(status, f"no admin route {request.method} {request.path}")
        _, handler, request.params = matched
        return handler(request)

    # --- stats, faults, limits -----------------------------------------------------------------------
    def stats(self, request: Request) -> Response:
        return json_response(200, self.app.stats())

    def reset_stats(self, request: Request) -> Response:
        self.app.reset_stats()
        return json_response(200, self.app.stats())

    def faults(self, request: Request) -> Response:
        return json_response(200, self.app.config.faults.as_dict())

    def set_faults(self, request: Request) -> Response:
        try:
            self.app.set_faults(_json_object(request))
        except ValueError as exc:
            return plain_error(400, str(exc))
        return json_response(200, self.app.config.faults.as_dict())

    def set_limits(self, request: Request) -> Response:
        body = _json_object(request)
        unknown = set(body) - set(ADJUSTABLE_LIMITS)
        if unknown:
            return plain_error(400, f"unknown limits {sorted(unknown)}; known: {sorted(ADJUSTABLE_LIMITS)}")
        hints = typing.get_type_hints(SandboxConfig)
        try:
            for name, value in body.items():
                check_setting(name, value, hints[name])
        except ValueError as exc:
            return plain_error(400, str(exc))
        for name, value in body.items():
            setattr(self.app.config, name, value)
        return json_response(200, {name: getattr(self.app.config, name) for name in ADJUSTABLE_LIMITS})

    def reset_limits(self, request: Request) -> Response:
        self.app.window.reset()
        self.app.salesforce.auth.usage.reset()
        return json_response(200, {"reset": True})

    def expire_tokens(self, request: Request) -> Response:
        return json_response(200, {"expired": self.app.salesforce.expire_tokens()})

    # --- records -------------------------------------------------------------------------------------
    def counts(self, request: Request) -> Response:
        return json_response(200, self.app.counts())

    def hubspot_objects(self, request: Request) -> Response:
        return json_response(200, {"results": self.app.hubspot.dump_objects(_hubspot_type(request))})

    def salesforce_records(self, request: Request) -> Response:
        return json_response(200, {"records": self.app.salesforce.records.dump(request.params["sobject"])})

    def hubspot_owners(self, request: Request) -> Response:
        return json_response(200, {"results": self.app.hubspot.owners.dump()})

    def seed_hubspot_owners(self, request: Request) -> Response:
        try:
            inserted = self.app.hubspot.owners.seed(_json_object(request).get("records"))
        except ValueError as exc:
            return plain_error(400, str(exc))
        return json_response(200, {"inserted": inserted})

    def archive_hubspot_owner(self, request: Request) -> Response:
        archived = _json_object(request).get("archived", True)
        if not isinstance(archived, bool):
            return plain_error(400, "archived must be true or false")
        if not self.app.hubspot.owners.set_archived(request.params["id"], archived):
            return plain_error(404, f"no HubSpot owner {request.params['id']}")
        return json_response(200, {"archived": archived})

    def seed_hubspot(self, request: Request) -> Response:
        records = _json_object(request).get("records")
        try:
            inserted = self.app.seed_hubspot(_hubspot_type(request), records)
        except ValueError as exc:
            return plain_error(400, str(exc))
        return json_response(200, {"inserted": inserted})

    def seed_salesforce(self, request: Request) -> Response:
        records = _json_object(request).get("records")
        try:
            inserted = self.app.seed_salesforce(request.params["sobject"], records)
        except ValueError as exc:
            return plain_error(400, str(exc))
        return json_response(200, {"inserted": inserted})

    def add_salesforce_fields(self, request: Request) -> Response:
        try:
            self.app.salesforce.records.add_fields(request.params["sobject"], _json_object(request).get("fields", []))
        except ValueError as exc:
            return plain_error(400, str(exc))
        return json_response(200, {"ok": True})

    def delete_hubspot(self, request: Request) -> Response:
        if not self.app.hubspot.archive(_hubspot_type(request), request.params["id"]):
            return plain_error(404, f"no {request.params['object_type']} record {request.params['id']}")
        return json_response(200, {"deleted": True})

    def delete_salesforce(self, request: Request) -> Response:
        if not self.app.salesforce.records.delete(request.params["sobject"], request.params["id"]):
            return plain_error(404, f"no {request.params['sobject']} record {request.params['id']}")
        return json_response(200, {"deleted": True})


def _refusals_answered(handler: Handler) -> Handler:
    def handle(request: Request) -> Response:
        try:
            return handler(request)
        except Refusal as refusal:
            return refusal.response

    return handle


def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``); 400 ``{"message"}`` otherwise."""
    return json_object(request, lambda reason: plain_error(400, reason)) if request.body else {}


def _hubspot_type(request: Request) -> str:
    object_type = request.params["object_type"]
    if object_type not in HUBSPOT_TYPES:
        raise Refusal(plain_error(404, f"unknown HubSpot object type {object_type!r} (known: {HUBSPOT_TYPES})"))
    return object_type


class SandboxAdmin:
    """Thin client of the admin API (works against a sandbox in another process too)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/_admin/{path}", json=payload, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "stats/reset")

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "faults", changes)

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return self._call("POST", "limits", limits)

    def reset_limits(self) -> None:
        self._call("POST", "limits/reset")

    def expire_salesforce_tokens(self) -> int:
        return self._call("POST", "salesforce/expire-tokens")["expired"]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"hubspot": {"contacts": n, "companies": n}, "salesforce": {"Lead": n, "Contact": n, "Account": n}}``"""
        return self._call("GET", "counts")

    def hubspot_objects(self, object_type: str) -> list[dict[str, Any]]:
        return self._call("GET", f"hubspot/{object_type}/objects")["results"]

    def hubspot_owners(self) -> list[dict[str, Any]]:
        """Every owner, archived ones included, as ``GET /crm/v3/owners`` shows them."""
        return self._call("GET", "hubspot/owners")["results"]

    def seed_hubspot_owners(self, records: list[dict[str, Any]]) -> int:
        """Insert owners (``{"id", "email", "firstName", "lastName", "userId", "archived"}``); returns how many."""
        return self._call("POST", "hubspot/owners/seed", {"records": records})["inserted"]

    def archive_hubspot_owner(self, owner_id: str, archived: bool = True) -> None:
        """Deactivate an owner (as removing the user in HubSpot does), or reactivate it."""
        self._call("POST", f"hubspot/owners/{owner_id}/archive", {"archived": archived})

    def seed_hubspot(self, object_type: str, records: list[dict[str, Any]]) -> int:
        """Insert records (``{"id", "properties"}``) whose id is not held yet; returns how many."""
        return self._call("POST", f"hubspot/{object_type}/seed", {"records": records})["inserted"]

    def delete_hubspot_object(self, object_type: str, object_id: str) -> None:
        self._call("DELETE", f"hubspot/{object_type}/objects/{object_id}")

    def salesforce_records(self, sobject: str) -> list[dict[str, Any]]:
        return self._call("GET", f"salesforce/{sobject}/records")["records"]

    def seed_salesforce(self, sobject: str, records: list[dict[str, Any]]) -> int:
        """Insert records (``{"Id", field: value}``) whose Id is not held yet; returns how many."""
        return self._call("POST", f"salesforce/{sobject}/seed", {"records": records})["inserted"]

    def delete_salesforce_record(self, sobject: str, record_id: str) -> None:
        self._call("DELETE", f"salesforce/{sobject}/records/{record_id}")

    def add_salesforce_fields(self, sobject: str, fields: list[dict[str, Any]]) -> None:
        self._call("POST", f"salesforce/{sobject}/fields", {"fields": fields})
