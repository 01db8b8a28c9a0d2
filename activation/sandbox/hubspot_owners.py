"""HubSpot owners: the users records and tasks are assigned to (``hubspot_owner_id``).

Read-only through the API, as in HubSpot: ``GET /crm/v3/owners`` (paged with ``after``, at most 500 per
page; ``archived=true`` lists *only* the deactivated owners, the default only the active ones; ``email``
filters) and ``GET /crm/v3/owners/{id}`` (``idProperty=id|userId``; an archived owner is found only with
``archived=true``). Owners enter the sandbox by seeding, like every other record of the company's CRM.

Writing ``hubspot_owner_id`` on a record checks the value against this table: an owner that does not exist
or is archived is refused like any other invalid value (``INVALID_OWNER_ID``, the whole batch with it).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Any

from activation.sandbox.shapes import hubspot_error
from activation.sandbox.store import Store, select_in
from activation.sandbox.web import Request, Response, json_response

OWNER_PROPERTY = "hubspot_owner_id"  # HubSpot-defined on every object type; its options are the owners
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
_DIGITS = re.compile(r"^[0-9]{1,18}$")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpotOwners:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- API -----------------------------------------------------------------------------------------
    def list(self, request: Request) -> Response:
        archived = _flag(request, "archived")
        limit = _number(request, "limit", DEFAULT_LIMIT)
        after = _number(request, "after", 0)
        if isinstance(archived, Response):
            return archived
        for value in (limit, after):
            if isinstance(value, Response):
                return value
        assert isinstance(limit, int) and isinstance(after, int)
        if not 1 <= limit <= MAX_LIMIT:
            return hubspot_error(400, f"limit must be between 1 and {MAX_LIMIT}", "VALIDATION_ERROR")
        sql = "SELECT * FROM hs_owners WHERE archived = ? AND id > ?"
        params: list[Any] = [int(bool(archived)), after]
        email = (request.query.get("email") or [None])[0]
        if email:
            sql += " AND lower(email) = ?"
            params.append(email.strip().lower())
        with self.store.lock:
            rows = self.store.conn.execute(sql + " ORDER BY id LIMIT ?", (*params, limit + 1)).fetchall()
        payload: dict[str, Any] = {"results": [owner_json(r) for r in rows[:limit]]}
        if len(rows) > limit:
            cursor = str(rows[limit - 1]["id"])
            payload["paging"] = {"next": {"after": cursor, "link": f"/crm/v3/owners?after={cursor}&limit={limit}"}}
        return json_response(200, payload)

    def get(self, request: Request) -> Response:
        archived = _flag(request, "archived")
        if isinstance(archived, Response):
            return archived
        id_property = (request.query.get("idProperty") or ["id"])[0]
        if id_property not in ("id", "userId"):
            return hubspot_error(400, "idProperty must be id or userId", "VALIDATION_ERROR")
        raw = request.params["id"]
        if not _DIGITS.match(raw):
            return hubspot_error(400, f"Invalid owner id {raw!r}: owner ids are numeric", "VALIDATION_ERROR")
        column = "id" if id_property == "id" else "user_id"
        with self.store.lock:
            row = self.store.conn.execute(
                f"SELECT * FROM hs_owners WHERE {column} = ? AND archived = ?", (int(raw), int(bool(archived)))
            ).fetchone()
        if row is None:
            return hubspot_error(404, f"No owner with {id_property} {raw}", "OBJECT_NOT_FOUND")
        return json_response(200, owner_json(row))

    # --- for record writes ---------------------------------------------------------------------------
    def active_among(self, conn: sqlite3.Connection, values: set[str]) -> set[str]:
        """Which of these ``hubspot_owner_id`` values name an existing, non-archived owner."""
        numbers = [int(v) for v in values if _DIGITS.match(v)]
        rows = select_in(conn, "SELECT id FROM hs_owners WHERE archived = 0 AND id IN ({})", (), numbers)
        return {str(r[0]) for r in rows}

    # --- seeding and admin ---------------------------------------------------------------------------
    def seed(self, records: Any) -> int:
        """Insert owners whose id is not held yet: ``{"id", "email", "firstName", "lastName", "userId",
        "archived"}``; returns how many. ValueError names the first malformed record."""
        if not isinstance(records, list):
            raise ValueError("records must be a list")
        parsed: dict[int, tuple[Any, ...]] = {}
        stamp = now_iso()
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise ValueError(f"owner {index}: an object with 'id' is expected")
            owner_id = str(record.get("id") or "").strip()
            if not _DIGITS.match(owner_id) or int(owner_id) == 0:
                raise ValueError(f"owner {index}: {record.get('id')!r} is not a HubSpot owner id")
            user_id = str(record.get("userId") or "").strip()
            if user_id and not _DIGITS.match(user_id):
                raise ValueError(f"owner {index}: userId {record.get('userId')!r} is not numeric")
            archived = record.get("archived") or False
            if not isinstance(archived, bool):
                raise ValueError(f"owner {index}: archived must be true or false")
            texts = [record.get(k) for k in ("email", "firstName", "lastName")]
            if any(t is not None and not isinstance(t, str) for t in texts):
                raise ValueError(f"owner {index}: email, firstName and lastName are strings")
            email = texts[0].strip().lower() if texts[0] else None
            parsed.setdefault(
                int(owner_id),
                (int(owner_id), email, texts[1], texts[2], int(user_id) if user_id else None, int(archived), stamp,
                 stamp),
            )  # fmt: skip
        with self.store.transaction() as conn:
            held = {r[0] for r in select_in(conn, "SELECT id FROM hs_owners WHERE id IN ({})", (), list(parsed))}
            fresh = [row for owner_id, row in parsed.items() if owner_id not in held]
            conn.executemany("INSERT INTO hs_owners VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)
        return len(fresh)

    def set_archived(self, owner_id: str, archived: bool) -> bool:
        """Deactivate (or reactivate) an owner, as removing a user in HubSpot does; False when unknown."""
        if not _DIGITS.match(owner_id):
            return False
        with self.store.transaction() as conn:
            sql = "UPDATE hs_owners SET archived = ?, updated_at = ? WHERE id = ?"
            changed = conn.execute(sql, (int(archived), now_iso(), int(owner_id))).rowcount
        return changed > 0

    def dump(self) -> list[dict[str, Any]]:
        with self.store.lock:
            rows = self.store.conn.execute("SELECT * FROM hs_owners ORDER BY id").fetchall()
        return [owner_json(r) for r in rows]

    def count(self) -> int:
        with self.store.lock:
            return int(self.store.conn.execute("SELECT count(*) FROM hs_owners").fetchone()[0])


def owner_json(row: sqlite3.Row) -> dict[str, Any]:
    user_id = row["user_id"]
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "type": "PERSON",
        "firstName": row["first_name"] or "",
        "lastName": row["last_name"] or "",
        "userId": user_id,
        "userIdIncludingInactive": user_id,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "archived": bool(row["archived"]),
        "teams": [],
    }


def _flag(request: Request, name: str) -> bool | Response:
    raw = (request.query.get(name) or ["false"])[0].strip().lower()
    if raw not in ("true", "false"):
        return hubspot_error(400, f"{name} must be true or false, got {raw!r}", "VALIDATION_ERROR")
    return raw == "true"


def _number(request: Request, name: str, default: int) -> int | Response:
    raw = (request.query.get(name) or [str(default)])[0].strip()
    if not _DIGITS.match(raw):
        return hubspot_error(400, f"{name} must be a non-negative integer, got {raw!r}", "VALIDATION_ERROR")
    return int(raw)
