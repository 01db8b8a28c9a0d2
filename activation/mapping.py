"""The declarative mapping from warehouse relations to CRM objects (``mapping.yaml``), with validation.

A mapping lists *objects*; each one reads a relation, identifies its records by a key column, and names,
per destination, the CRM object and how a row finds its record there, and the CRM field of every column.

Two modes, as in the reverse-ETL tools teams already use:

* ``update`` (the default): the people and companies come *from* the CRM, so each row carries the CRM's
  own record id (read from the object's ``identity`` relation) and leadscore updates that record. A row
  whose record does not exist is rejected (``not_found``) and retried next run; nothing is ever created.
  A destination may list several ``routes`` (Salesforce people are Leads until converted, then Contacts):
  the first route whose id column is set wins. HubSpot contacts may fall back to the e-mail address.
* ``upsert`` (explicit opt-in): match on a unique property / external-id field carrying the key column,
  creating the record when it is missing.
* ``create``: each key becomes one new CRM record (a task for an alert), created exactly once and never
  written again. The record is attached to an existing one (``attach_to``: a contact, a Lead...) found like
  update mode finds records, and carries the key in ``id_property`` / ``external_id_field`` so that after a
  lost answer leadscore can look up whether it was created before creating it.

Any object may be switched off (``enabled: false``: skipped and reported as disabled), and a destination
may name ``required`` columns: a row with one of them empty is rejected with the given code instead of
being sent (a task without an owner in that CRM, an owner write that would clear the owner).

Mistakes are reported with the YAML path of the offending entry so that a person can fix the file without
reading this code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MAPPING_PATH = Path(__file__).with_name("mapping.yaml")

# Logical column types; each destination encodes them its own way (see activation.encoding).
FIELD_TYPES = ("string", "text", "number", "integer", "date", "datetime", "bool")
DESTINATIONS = ("hubspot", "salesforce")
# The YAML key that names the key-carrying field of upsert mode differs per destination, as in each vendor's docs.
ID_FIELD_KEYS = {"hubspot": "id_property", "salesforce": "external_id_field"}
UPDATE, UPSERT, CREATE = "update", "upsert", "create"
MODES = (UPDATE, UPSERT, CREATE)
# Where a created record hangs, per destination: HubSpot associates it (an association type id), Salesforce
# sets a lookup field on it (WhoId...).
ATTACH_KEYS = {"hubspot": "association_type_id", "salesforce": "field"}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REJECT_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# A custom field (Leadscore_Score__c) or a standard one (LastName: upsert mode must send the required fields).
_SALESFORCE_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*__c$|^[A-Z][A-Za-z0-9]*$")
_SALESFORCE_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD_NAME_RULES = {
    "hubspot": (_HUBSPOT_NAME, "lower-case letters, digits and underscores, starting with a letter"),
    "salesforce": (_SALESFORCE_FIELD, "a field API name such as Leadscore_Score__c or LastName"),
}


class MappingError(ValueError):
    """The mapping file is invalid; the message names the YAML path of every problem."""


@dataclass(frozen=True)
class FieldMapping:
    """One warehouse column and the CRM field it feeds in each destination."""

    column: str
    type: str
    label: str
    description: str
    targets: Mapping[str, str]
    digits: int | None = None  # numbers are rounded so float noise does not count as a change
    # Warehouse value -> the value each destination takes for it (e.g. high -> HIGH / High); None: as is.
    values: Mapping[str, Mapping[str, str]] | None = None


@dataclass(frozen=True)
class Route:
    """One CRM object a row may go to, and (update mode) the column holding that object's record id."""

    object: str
    record_id: str | None = None  # None in upsert mode: the key column is the match value


@dataclass(frozen=True)
class Attachment:
    """Create mode: the existing record a new one hangs on, found like update mode finds records."""

    routes: tuple[Route, ...]
    match_email: str | None = None  # HubSpot contacts: e-mail column used when the id is missing
    association_type_id: int | None = None  # HubSpot: HUBSPOT_DEFINED association type (task -> contact: 204)
    field: str | None = None  # Salesforce: the lookup field set to the record's id (Task.WhoId)

    @property
    def object(self) -> str:
        return "|".join(route.object for route in self.routes)


@dataclass(frozen=True)
class DestinationTarget:
    """Where an object goes in one destination, and how a row finds its record there."""

    mode: str
    routes: tuple[Route, ...]
    match_email: str | None = None  # update mode, HubSpot contacts: e-mail column used when the id is missing
    # upsert/create mode: HubSpot property / Salesforce field carrying the key (unique in upsert mode)
    id_field: str | None = None
    id_label: str = "Leadscore id"
    property_group: str | None = None  # HubSpot only: group that holds the properties leadscore creates
    attach: Attachment | None = None  # create mode only
    required: Mapping[str, str] = field(default_factory=dict)  # column -> reject code when it is empty

    @property
    def objects(self) -> tuple[str, ...]:
        return tuple(route.object for route in self.routes)

    @property
    def object(self) -> str:
        """The CRM object(s) as people read them, e.g. ``contacts`` or ``Contact|Lead``."""
        return "|".join(self.objects)

    @property
    def identity_columns(self) -> tuple[str, ...]:
        """The columns a row's CRM address is read from (record ids first, then the e-mail); in create mode
        those of the record the new one is attached to."""
        routes, email = (self.attach.routes, self.attach.match_email) if self.attach else (self.routes, None)
        email = email or self.match_email
        columns = [route.record_id for route in routes if route.record_id]
        return tuple(columns + ([email] if email else []))


@dataclass(frozen=True)
class ObjectMapping:
    """A relation synced to one CRM object per destination."""

    name: str
    relation: str
    key_column: str
    latest_by: str | None
    clear_when_missing: bool
    fields: tuple[FieldMapping, ...]
    destinations: Mapping[str, DestinationTarget]
    identity: str | None = None  # relation with the CRM record ids, one row per key (joined on key_column)
    enabled: bool = True  # a disabled object is skipped (and reported as such) by every sync

    def target(self, destination: str) -> DestinationTarget | None:
        return self.destinations.get(destination)

    def fields_for(self, destination: str) -> list[tuple[FieldMapping, str]]:
        """The fields this destination receives, each with its CRM name, in mapping order."""
        return [(f, f.targets[destination]) for f in self.fields if destination in f.targets]


@dataclass(frozen=True)
class SyncMapping:
    objects: tuple[ObjectMapping, ...]

    def object(self, name: str) -> ObjectMapping:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise MappingError(f"no object named {name!r} in the mapping (have: {[o.name for o in self.objects]})")

    def for_destination(self, destination: str) -> Iterator[ObjectMapping]:
        return (o for o in self.objects if destination in o.destinations)


def load_mapping(path: str | Path | None = None) -> SyncMapping:
    """Read and validate a mapping file (the shipped ``activation/mapping.yaml`` by default)."""
    path = Path(path) if path is not None else DEFAULT_MAPPING_PATH
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    return parse_mapping(document, source=str(path))


def parse_mapping(document: Any, *, source: str = "mapping") -> SyncMapping:
    """Validate a parsed YAML document; collect every problem before failing so one fix round suffices."""
    problems: list[str] = []
    objects: list[ObjectMapping] = []
    if not isinstance(document, dict):
        raise MappingError(f"{source}: the top level must be a mapping with keys 'version' and 'objects'")
    _check_keys(document, {"version", "objects"}, "", problems)
    if document.get("version") != 1:
        problems.append("version: must be 1")
    raw_objects = document.get("objects")
    if not isinstance(raw_objects, dict) or not raw_objects:
        problems.append("objects: must be a non-empty mapping of object name -> definition")
        raw_objects = {}
    for name, raw in raw_objects.items():
        obj = _parse_object(str(name), raw, f"objects.{name}", problems)
        if obj is not None:
            objects.append(obj)
    if problems:
        raise MappingError(f"{source} is invalid:\n  - " + "\n  - ".join(problems))
    return SyncMapping(tuple(objects))


def _check_keys(raw: dict[str, Any], allowed: set[str], path: str, problems: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.append(f"{where}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _parse_object(name: str, raw: Any, path: str, problems: list[str]) -> ObjectMapping | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping")
        return None
    allowed = {"relation", "key_column", "identity", "latest_by", "clear_when_missing", "destinations", "fields",
               "enabled"}  # fmt: skip
    _check_keys(raw, allowed, path, problems)
    if not _IDENTIFIER.match(name):
        problems.append(f"{path}: object names must be identifiers")
    relation = raw.get("relation")
    if not isinstance(relation, str) or not _RELATION.match(relation):
        problems.append(f"{path}.relation: must be a table or view name such as lead_scores or main.lead_scores")
    key_column = raw.get("key_column")
    if not isinstance(key_column, str) or not _IDENTIFIER.match(key_column):
        problems.append(f"{path}.key_column: must be a column name")
    identity = raw.get("identity")
    if identity is not None and (not isinstance(identity, str) or not _RELATION.match(identity)):
        problems.append(f"{path}.identity: must be a table or view name such as lead_crm_ids (or omitted)")
    latest_by = raw.get("latest_by")
    if latest_by is not None and (not isinstance(latest_by, str) or not _IDENTIFIER.match(latest_by)):
        problems.append(f"{path}.latest_by: must be a column name (or omitted)")
    clear_when_missing = raw.get("clear_when_missing", True)
    if not isinstance(clear_when_missing, bool):
        problems.append(f"{path}.clear_when_missing: must be true or false")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{path}.enabled: must be true or false")

    destinations: dict[str, DestinationTarget] = {}
    raw_destinations = raw.get("destinations")
    if not isinstance(raw_destinations, dict) or not raw_destinations:
        problems.append(f"{path}.destinations: must name at least one of {', '.join(DESTINATIONS)}")
        raw_destinations = {}
    for destination, raw_target in raw_destinations.items():
        target = _parse_target(str(destination), raw_target, f"{path}.destinations.{destination}", problems)
        if target is not None:
            destinations[str(destination)] = target

    fields: list[FieldMapping] = []
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        problems.append(f"{path}.fields: must be a non-empty list")
        raw_fields = []
    for index, raw_field in enumerate(raw_fields):
        field = _parse_field(raw_field, f"{path}.fields[{index}]", destinations, problems)
        if field is not None:
            fields.append(field)
    _check_unique_names(path, fields, destinations, key_column, problems)
    _check_create_mode(path, destinations, fields, clear_when_missing, problems)
    return ObjectMapping(
        name=name,
        relation=str(relation),
        key_column=str(key_column),
        latest_by=latest_by,
        clear_when_missing=bool(clear_when_missing),
        fields=tuple(fields),
        destinations=destinations,
        identity=identity,
        enabled=bool(enabled),
    )


def _parse_target(destination: str, raw: Any, path: str, problems: list[str]) -> DestinationTarget | None:
    if destination not in DESTINATIONS:
        problems.append(f"{path}: unknown destination (known: {', '.join(DESTINATIONS)})")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping")
        return None
    mode = raw.get("mode", UPDATE)
    if mode not in MODES:
        problems.append(f"{path}.mode: {mode!r} is not one of {', '.join(MODES)}")
        return None
    id_key = ID_FIELD_KEYS[destination]
    hubspot_only = {"property_group"} if destination == "hubspot" else set()
    attach = None
    if mode in (UPSERT, CREATE):
        attach_key = {"attach_to"} if mode == CREATE else set()
        allowed = {"mode", "object", id_key, "id_label", "required", *hubspot_only, *attach_key}
        _check_keys(raw, allowed, path, problems)
        id_field = raw.get(id_key)
        if not isinstance(id_field, str):
            role = "the unique field that carries the key" if mode == UPSERT else "the field that carries the key"
            problems.append(f"{path}.{id_key}: required in mode {mode} ({role})")
        else:
            _check_field_name(destination, id_field, f"{path}.{id_key}", problems)
        routes = (Route(_object_name(raw.get("object"), f"{path}.object", problems)),)
        match_email = None
        if mode == CREATE:
            attach = _parse_attachment(destination, raw.get("attach_to"), f"{path}.attach_to", problems)
    else:
        email_key = {"match_email"} if destination == "hubspot" else set()
        allowed = {"mode", "object", "record_id", "routes", "required", *email_key, *hubspot_only}
        _check_keys(raw, allowed, path, problems)
        routes = _parse_routes(raw, path, problems)
        id_field = None
        match_email = raw.get("match_email")
        if match_email is not None and (not isinstance(match_email, str) or not _IDENTIFIER.match(match_email)):
            problems.append(f"{path}.match_email: must be a column name")
        if match_email is not None and routes[0].object != "contacts":
            problems.append(f"{path}.match_email: only HubSpot contacts can be matched by e-mail")
    group = raw.get("property_group")
    if group is not None and (not isinstance(group, str) or not _HUBSPOT_NAME.match(group)):
        problems.append(f"{path}.property_group: must be a lower-case name such as leadscore")
    required = raw.get("required") or {}
    if not isinstance(required, dict) or not all(
        isinstance(k, str) and _IDENTIFIER.match(k) and isinstance(v, str) and _REJECT_CODE.match(v)
        for k, v in required.items()
    ):
        problems.append(f"{path}.required: must map column names to reject codes such as owner_not_in_crm")
        required = {}
    return DestinationTarget(
        mode=mode,
        routes=routes,
        match_email=match_email,
        id_field=id_field,
        id_label=str(raw.get("id_label") or "Leadscore id"),
        property_group=group,
        attach=attach,
        required=dict(required),
    )


def _parse_attachment(destination: str, raw: Any, path: str, problems: list[str]) -> Attachment | None:
    """``attach_to``: ``object`` + ``record_id`` or ``routes`` (as in update mode), plus how the new record
    is linked: ``association_type_id`` (HubSpot) or ``field`` (Salesforce); HubSpot contacts may add
    ``match_email``."""
    link_key = ATTACH_KEYS[destination]
    if not isinstance(raw, dict):
        problems.append(f"{path}: required in mode create (the existing record the new one is attached to, "
                        f"with object + record_id or routes, and {link_key})")  # fmt: skip
        return None
    email_key = {"match_email"} if destination == "hubspot" else set()
    _check_keys(raw, {"object", "record_id", "routes", link_key, *email_key}, path, problems)
    routes = _parse_routes({k: v for k, v in raw.items() if k in ("object", "record_id", "routes")}, path, problems)
    match_email = raw.get("match_email")
    if match_email is not None and (not isinstance(match_email, str) or not _IDENTIFIER.match(match_email)):
        problems.append(f"{path}.match_email: must be a column name")
    if match_email is not None and routes[0].object != "contacts":
        problems.append(f"{path}.match_email: only HubSpot contacts can be matched by e-mail")
    link = raw.get(link_key)
    if destination == "hubspot":
        if not isinstance(link, int) or isinstance(link, bool) or link < 1:
            problems.append(f"{path}.{link_key}: required, the HUBSPOT_DEFINED association type (task -> contact: 204)")
        return Attachment(routes, match_email, association_type_id=link if isinstance(link, int) else None)
    if not isinstance(link, str) or not _SALESFORCE_FIELD.match(link):
        problems.append(f"{path}.{link_key}: required, the lookup field that takes the record's id (e.g. WhoId)")
    return Attachment(routes, None, field=str(link))


def _parse_routes(raw: dict[str, Any], path: str, problems: list[str]) -> tuple[Route, ...]:
    """``object`` + ``record_id``, or a list of ``routes`` each with both (tried in order)."""
    if "routes" in raw:
        if "object" in raw or "record_id" in raw:
            problems.append(f"{path}: give either routes or object + record_id, not both")
        entries = raw["routes"]
        if not isinstance(entries, list) or not entries:
            problems.append(f"{path}.routes: must be a non-empty list of {{object, record_id}}")
            return (Route("?", "?"),)
        where = [f"{path}.routes[{index}]" for index in range(len(entries))]
    else:
        entries, where = [raw], [path]
    routes = []
    for entry, at in zip(entries, where, strict=True):
        if not isinstance(entry, dict):
            problems.append(f"{at}: must be a mapping with object and record_id")
            continue
        if at != path:
            _check_keys(entry, {"object", "record_id"}, at, problems)
        record_id = entry.get("record_id")
        if not isinstance(record_id, str) or not _IDENTIFIER.match(record_id):
            problems.append(f"{at}.record_id: required in mode update: the column holding the CRM record id")
        routes.append(Route(_object_name(entry.get("object"), f"{at}.object", problems), str(record_id)))
    objects = [route.object for route in routes]
    for name in sorted({o for o in objects if objects.count(o) > 1}):
        problems.append(f"{path}.routes: object {name!r} is listed twice")
    return tuple(routes) or (Route("?", "?"),)


def _object_name(value: Any, path: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not _SALESFORCE_OBJECT.match(value):
        problems.append(f"{path}: must be the CRM object's API name (e.g. contacts, Lead)")
    return str(value)


def _parse_field(
    raw: Any, path: str, destinations: Mapping[str, DestinationTarget], problems: list[str]
) -> FieldMapping | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping")
        return None
    _check_keys(raw, {"column", "type", "label", "description", "digits", "values", *DESTINATIONS}, path, problems)
    column, field_type = raw.get("column"), raw.get("type")
    if not isinstance(column, str) or not _IDENTIFIER.match(column):
        problems.append(f"{path}.column: must be a column name")
    if field_type not in FIELD_TYPES:
        problems.append(f"{path}.type: {field_type!r} is not one of {', '.join(FIELD_TYPES)}")
    digits = raw.get("digits")
    if digits is not None and (field_type != "number" or not isinstance(digits, int) or not 0 <= digits <= 8):
        problems.append(f"{path}.digits: only for type number, an integer from 0 to 8")
    targets: dict[str, str] = {}
    for destination in DESTINATIONS:
        name = raw.get(destination)
        if name is None:
            continue
        if destination not in destinations:
            problems.append(f"{path}.{destination}: the object has no '{destination}' destination")
            continue
        if isinstance(name, str):
            _check_field_name(destination, name, f"{path}.{destination}", problems)
            targets[destination] = name
        else:
            problems.append(f"{path}.{destination}: must be a field name")
    if not targets:
        problems.append(f"{path}: maps to no destination field (add e.g. 'hubspot: leadscore_{column}')")
    values = _parse_values(raw.get("values"), field_type, targets, f"{path}.values", problems)
    return FieldMapping(
        column=str(column),
        type=str(field_type),
        label=str(raw.get("label") or str(column).replace("_", " ").capitalize()),
        description=str(raw.get("description") or ""),
        targets=targets,
        digits=digits,
        values=values,
    )


def _parse_values(
    raw: Any, field_type: Any, targets: Mapping[str, str], path: str, problems: list[str]
) -> dict[str, dict[str, str]] | None:
    """``values: {warehouse value: {destination: CRM value}}``: one entry per destination the field goes to."""
    if raw is None:
        return None
    if field_type not in ("string", "text"):
        problems.append(f"{path}: only string columns can be translated")
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{path}: must map each warehouse value to its value per destination")
        return None
    parsed: dict[str, dict[str, str]] = {}
    for value, per_destination in raw.items():
        if not isinstance(per_destination, dict) or not all(isinstance(v, str) for v in per_destination.values()):
            problems.append(f"{path}.{value}: must map destinations to the CRM's value, e.g. {{hubspot: HIGH}}")
            continue
        missing = sorted(set(targets) - set(per_destination))
        unknown = sorted(set(per_destination) - set(targets))
        if missing or unknown:
            problems.append(f"{path}.{value}: needs exactly the field's destinations {sorted(targets)}")
        parsed[str(value)] = dict(per_destination)
    return parsed


def _check_create_mode(
    path: str,
    destinations: Mapping[str, DestinationTarget],
    fields: list[FieldMapping],
    clear_when_missing: Any,
    problems: list[str],
) -> None:
    """A created record is never written again, so it is never cleared; ``required`` names mapped columns."""
    for destination, target in destinations.items():
        if target.mode == CREATE and clear_when_missing is not False:
            problems.append(f"{path}.clear_when_missing: must be false with mode create (a created record is "
                            "never written again)")  # fmt: skip
        columns = {f.column for f in fields if destination in f.targets}
        for column in sorted(set(target.required) - columns):
            problems.append(f"{path}.destinations.{destination}.required: {column!r} is not a column mapped to "
                            f"{destination}")  # fmt: skip


def _check_field_name(destination: str, name: str, path: str, problems: list[str]) -> None:
    pattern, rule = _FIELD_NAME_RULES[destination]
    if not pattern.match(name):
        problems.append(f"{path}: {name!r} is not a valid {destination} field name ({rule})")


def _check_unique_names(
    path: str,
    fields: list[FieldMapping],
    destinations: Mapping[str, DestinationTarget],
    key_column: Any,
    problems: list[str],
) -> None:
    columns = [f.column for f in fields]
    for column in sorted({c for c in columns if columns.count(c) > 1}):
        problems.append(f"{path}.fields: column {column!r} is mapped twice")
    if key_column in columns and any(t.mode in (UPSERT, CREATE) for t in destinations.values()):
        problems.append(f"{path}.fields: the key column {key_column!r} is sent as the upsert id; do not map it again")
    for destination, target in destinations.items():
        names = [f.targets[destination] for f in fields if destination in f.targets]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{path}.fields: {destination} field {name!r} is the target of several columns")
        if target.id_field is not None and target.id_field in names:
            problems.append(f"{path}.fields: {destination} field {target.id_field!r} is already the id field")
