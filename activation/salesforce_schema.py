"""The Salesforce custom fields a mapping needs: specs, describe checks, and deployable metadata.

One list of :class:`FieldSpec` serves three readers: the client checks an org's ``describe`` against it, the
sandbox deploys it at start, and ``python -m activation.salesforce_schema`` writes it as Salesforce DX
source (``activation/salesforce_fields/``) that an admin deploys with
``sf project deploy start --source-dir force-app`` — including a permission set, because a field the
integration user cannot see is missing from ``describe``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from activation.mapping import CREATE, ObjectMapping, SyncMapping, load_mapping

SHIPPED_DIR = Path(__file__).with_name("salesforce_fields")
PERMISSION_SET = "Leadscore_Integration"

# Logical type -> (metadata type, describe type, length, precision). Scale comes from `digits`.
_METADATA = {
    "string": ("Text", "string", 255, None),
    "text": ("LongTextArea", "textarea", 32_768, None),
    "number": ("Number", "double", None, 18),
    "integer": ("Number", "double", None, 18),
    "date": ("Date", "date", None, None),
    "datetime": ("DateTime", "datetime", None, None),
    "bool": ("Checkbox", "boolean", None, None),
}
# What an existing field's describe type may be for each logical type.
COMPATIBLE_DESCRIBE_TYPES = {
    # combobox: a picklist that also takes free text (Task.Subject is one).
    "string": {"string", "textarea", "picklist", "combobox", "email", "phone", "url", "reference"},
    "text": {"textarea", "string"},
    "number": {"double", "currency", "percent", "int", "long"},
    "integer": {"double", "int", "long", "currency"},
    "date": {"date"},
    "datetime": {"datetime"},
    "bool": {"boolean"},
    "id": {"string"},
    "key": {"string"},  # create mode's key field: plain text, looked up by SOQL
    "reference": {"reference"},  # create mode's attachment (Task.WhoId)
}


@dataclass(frozen=True)
class FieldSpec:
    sobject: str
    name: str
    label: str
    description: str
    # a mapping type, "id" for the external id field, "key" for create mode's key field, "reference" for the
    # lookup a created record is attached by
    logical_type: str
    metadata_type: str
    describe_type: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    external_id: bool = False

    @property
    def custom(self) -> bool:
        """leadscore's own field, deployed from ``salesforce_fields/``; a standard field (``LastName``) is the
        org's and is only checked."""
        return self.name.endswith("__c")

    def summary(self) -> str:
        """How an admin would describe the field in Setup, e.g. ``Number(18, 1)``."""
        if self.precision is not None:
            return f"{self.metadata_type}({self.precision}, {self.scale or 0})"
        if self.length is not None:
            suffix = ", External ID, Unique" if self.external_id else ""
            return f"{self.metadata_type}({self.length}){suffix}"
        return self.metadata_type


def field_specs(obj: ObjectMapping) -> list[FieldSpec]:
    """The fields ``obj`` needs in Salesforce, on every object it routes to: in upsert mode the external id
    first, then every mapped column. Update mode matches by record Id and needs no external id field. Create
    mode needs its key field (plain text: activities cannot carry unique external ids *(unverified)*, and a
    SOQL lookup needs none) and the lookup field it attaches records by (a standard one, only checked)."""
    target = obj.target("salesforce")
    if target is None:
        return []
    specs = []
    for sobject in target.objects:
        if target.mode == CREATE and target.id_field is not None:
            specs.append(
                FieldSpec(
                    sobject=sobject,
                    name=target.id_field,
                    label=target.id_label,
                    description=f"leadscore's {obj.key_column}: which alert made this record (one per alert).",
                    logical_type="key",
                    metadata_type="Text",
                    describe_type="string",
                    length=80,
                )
            )
            if target.attach is not None and target.attach.field:
                specs.append(
                    FieldSpec(sobject, target.attach.field, target.attach.field, "", "reference", "Lookup", "reference")
                )
        elif target.id_field is not None:
            specs.append(
                FieldSpec(
                    sobject=sobject,
                    name=target.id_field,
                    label=target.id_label,
                    description=f"leadscore's {obj.key_column}; the key every sync upserts by.",
                    logical_type="id",
                    metadata_type="Text",
                    describe_type="string",
                    length=80,
                    external_id=True,
                )
            )
        for field, name in obj.fields_for("salesforce"):
            metadata_type, describe_type, length, precision = _METADATA[field.type]
            scale = (field.digits if field.digits is not None else 4) if field.type == "number" else None
            specs.append(
                FieldSpec(
                    sobject=sobject,
                    name=name,
                    label=field.label,
                    description=field.description,
                    logical_type=field.type,
                    metadata_type=metadata_type,
                    describe_type=describe_type,
                    length=length,
                    precision=precision,
                    scale=0 if field.type == "integer" else scale,
                )
            )
    return specs


def all_field_specs(mapping: SyncMapping) -> list[FieldSpec]:
    return [spec for obj in mapping.for_destination("salesforce") for spec in field_specs(obj)]


def describe_problems(
    specs: Sequence[FieldSpec], describe_fields: Sequence[Mapping[str, Any]], *, creates: bool = False
) -> list[str]:
    """Every way an object's describe falls short of the specs, one line each, naming the fix.

    Every field must be updateable; ``creates`` (upsert mode) also needs it createable.
    """
    by_name = {f["name"].lower(): f for f in describe_fields}
    problems = []
    for spec in specs:
        found = by_name.get(spec.name.lower())
        if found is None:
            problems.append(f"missing field {spec.sobject}.{spec.name}: create it as {spec.summary()}")
            continue
        if found.get("type") not in COMPATIBLE_DESCRIBE_TYPES[spec.logical_type]:
            problems.append(
                f"field {spec.sobject}.{spec.name} has type {found.get('type')!r}; leadscore sends "
                f"{spec.logical_type} values (expected {spec.summary()})"
            )
        if spec.external_id and not (found.get("externalId") or found.get("idLookup")):
            problems.append(f"field {spec.sobject}.{spec.name} must be marked External ID to upsert by it")
        if not found.get("updateable") or (creates and not found.get("createable")):
            problems.append(
                f"field {spec.sobject}.{spec.name} is not editable by the integration user: grant edit access "
                f"(permission set {PERMISSION_SET})"
            )
    return problems


# Custom fields of tasks and events are defined once, on the Activity object, and show on both: metadata
# under objects/Task/ does not deploy. A permission set still grants them as Task.<field> (Salesforce adds
# the Event twin itself).
ACTIVITY_SOBJECTS = frozenset({"Task", "Event"})


def metadata_sobject(sobject: str) -> str:
    """The object a custom field of ``sobject`` is defined on in metadata."""
    return "Activity" if sobject in ACTIVITY_SOBJECTS else sobject


def field_xml(spec: FieldSpec) -> str:
    """A ``CustomField`` in Salesforce DX source format."""
    lines = [
        f"    <fullName>{escape(spec.name)}</fullName>",
        f"    <label>{escape(spec.label[:40])}</label>",
        f"    <description>{escape(spec.description)}</description>",
        f"    <type>{spec.metadata_type}</type>",
        f"    <externalId>{str(spec.external_id).lower()}</externalId>",
    ]
    if spec.metadata_type == "Checkbox":
        lines.append("    <defaultValue>false</defaultValue>")
    else:
        lines.append("    <required>false</required>")
    if spec.precision is not None:
        lines += [f"    <precision>{spec.precision}</precision>", f"    <scale>{spec.scale or 0}</scale>"]
    if spec.length is not None:
        lines.append(f"    <length>{spec.length}</length>")
    if spec.metadata_type == "LongTextArea":
        lines.append("    <visibleLines>5</visibleLines>")
    if spec.external_id:
        lines += ["    <unique>true</unique>", "    <caseSensitive>false</caseSensitive>"]
    return _xml_document("CustomField", lines)


def permission_set_xml(specs: Sequence[FieldSpec]) -> str:
    lines = [f"    <label>{PERMISSION_SET.replace('_', ' ')}</label>"]
    lines.append("    <description>Lets the leadscore integration user read and edit its fields.</description>")
    for spec in specs:
        lines += [
            "    <fieldPermissions>",
            "        <editable>true</editable>",
            f"        <field>{spec.sobject}.{spec.name}</field>",
            "        <readable>true</readable>",
            "    </fieldPermissions>",
        ]
    return _xml_document("PermissionSet", lines)


def _xml_document(root: str, lines: list[str]) -> str:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="http://soap.sforce.com/2006/04/metadata">'
    return "\n".join([head, *lines, f"</{root}>"]) + "\n"


SFDX_PROJECT = """{
  "packageDirectories": [{"path": "force-app", "default": true}],
  "sourceApiVersion": "62.0"
}
"""


def metadata_files(mapping: SyncMapping) -> dict[str, str]:
    """Relative path -> content of the deployable project for ``mapping``."""
    specs = [spec for spec in all_field_specs(mapping) if spec.custom]
    base = "force-app/main/default"
    files = {"sfdx-project.json": SFDX_PROJECT}
    for spec in specs:
        files[f"{base}/objects/{metadata_sobject(spec.sobject)}/fields/{spec.name}.field-meta.xml"] = field_xml(spec)
    files[f"{base}/permissionsets/{PERMISSION_SET}.permissionset-meta.xml"] = permission_set_xml(specs)
    return files


def write_metadata(mapping: SyncMapping, out_dir: Path) -> list[Path]:
    written = []
    for relative, content in metadata_files(mapping).items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the Salesforce fields leadscore needs as DX source.")
    parser.add_argument("--mapping", type=Path, default=None, help="mapping YAML (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help=f"output folder (default: {SHIPPED_DIR})")
    args = parser.parse_args(argv)
    for path in write_metadata(load_mapping(args.mapping), args.out):
        print(path)


if __name__ == "__main__":
    main()
