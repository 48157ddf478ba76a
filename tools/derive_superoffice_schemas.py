"""Derive the JSON Schemas the SuperOffice simulator must honour from the vendor's Swagger 2.0 files.

Usage: python tools/derive_superoffice_schemas.py [SPEC_DIR] [OUTPUT]
(defaults: ../shared/specs/superoffice and simulators/superoffice/schemas.json)

Only the operations the simulator serves are kept, with the definitions they reach, converted to
JSON Schema (draft 2020-12) without descriptions. The conversion is strict where Swagger is precise
(types, formats, enums, no unknown properties) and lenient where .NET serialisation is:
- every property may be null ($select "nulls out" other fields, and unset references are null);
- `{"type": "object"}` with nothing else is how Swashbuckle renders System.Object: any value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC_DIR = ROOT.parent / "shared" / "specs" / "superoffice"
DEFAULT_OUTPUT = ROOT / "simulators" / "superoffice" / "schemas.json"

# (spec file stem, swagger path, method) of every operation the simulator serves.
SERVED: list[tuple[str, str, str]] = [
    *[
        (f"Swagger-v1-{entity}", path.format(e=entity), method)
        for entity in ("Appointment", "Person", "Contact")
        for path, method in (
            ("/api/v1/{e}/default", "get"),
            ("/api/v1/{e}", "get"),
            ("/api/v1/{e}", "post"),
            ("/api/v1/{e}/{{id}}", "get"),
            ("/api/v1/{e}/{{id}}", "put"),
            ("/api/v1/{e}/{{id}}", "delete"),
            ("/api/v1/{e}/{{id}}/ForeignKey", "get"),
        )
    ],
    ("Swagger-v1-Appointment", "/api/v1/Appointment/{id}/Participants", "get"),
    ("Swagger-v1-Person", "/api/v1/Person/{id}/Appointments", "get"),
    ("Swagger-v1-Contact", "/api/v1/Contact/{id}/Persons", "get"),
    ("Swagger-v1-Contact", "/api/v1/Contact/{id}/Appointments", "get"),
    ("Swagger-v1-User", "/api/v1/User", "get"),
    ("Swagger-v1-User", "/api/v1/User/{id}", "get"),
    ("Swagger-v1-User", "/api/v1/User/currentPrincipal", "get"),
    ("Swagger-v1-User", "/api/v1/User/currentAssociate", "get"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/default", "get"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook", "get"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook", "post"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/{id}", "get"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/{id}", "put"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/{id}", "delete"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/Test", "post"),
    ("Swagger-v1-Webhook", "/api/v1/Webhook/{webhookId}/LastError", "get"),
    *[
        ("Swagger-v1-ForeignApp", "/api/v1/ForeignApp/{applicationName}/{deviceName}/" + tail, m)
        for tail, m in (
            ("{deviceIdentifier}/Key", "put"),
            ("{deviceIdentifier}/Key", "post"),
            ("{deviceIdentifier}/Key/{keyName}/{tableName}/{recordId}", "get"),
            ("{deviceIdentifier}/Key/{keyName}/{tableName}/{recordId}", "delete"),
            ("{deviceIdentifier}/Key/{keyName}/{tableName}", "get"),
        )
    ],
    ("Swagger-v1-Archive", "/api/v1/Archive/{archiveProviderName}", "get"),
    ("Swagger-v1-TimeZone", "/api/v1/TimeZone", "get"),
    ("Swagger-v1-TimeZone", "/api/v1/TimeZone/base", "get"),
    ("Swagger-v1-TimeZone", "/api/v1/TimeZone/current", "get"),
]

REF_PREFIX = "#/definitions/"
KEPT_KEYWORDS = ("type", "format", "enum")


def convert(schema: dict[str, Any]) -> dict[str, Any]:
    """One Swagger 2.0 schema object as JSON Schema, references pointing into `$defs`."""
    if "$ref" in schema:
        return {"$ref": "#/$defs/" + schema["$ref"].removeprefix(REF_PREFIX)}
    out: dict[str, Any] = {k: schema[k] for k in KEPT_KEYWORDS if k in schema}
    if out.get("type") == "object" and set(schema) <= {"type", "description"}:
        return {}  # System.Object: any JSON value
    if "items" in schema:
        out["items"] = convert(schema["items"])
    if "properties" in schema:
        out["properties"] = {
            name: {"anyOf": [convert(prop), {"type": "null"}]}
            for name, prop in schema["properties"].items()
        }
        out["additionalProperties"] = False
    if "additionalProperties" in schema:
        out["additionalProperties"] = convert(schema["additionalProperties"])
    if out.get("format") in ("int32", "int64", "double", "float", "byte"):
        out.pop("format")  # numeric/byte formats are not JSON Schema formats
    return out


def referenced(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found.add(ref.removeprefix(REF_PREFIX))
        for value in schema.values():
            found |= referenced(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= referenced(value)
    return found


def derive(spec_dir: Path) -> dict[str, Any]:
    specs = {path.stem: json.loads(path.read_text()) for path in spec_dir.glob("Swagger-v1-*.json")}
    operations: dict[str, dict[str, Any]] = {}
    definitions: dict[str, Any] = {}
    pending: list[tuple[str, str]] = []
    for stem, path, method in SERVED:
        op = specs[stem]["paths"][path][method]
        responses = {
            status: convert(resp["schema"]) if "schema" in resp else None
            for status, resp in op["responses"].items()
        }
        body = next((p["schema"] for p in op.get("parameters", []) if p["in"] == "body"), None)
        operations[f"{method.upper()} {path}"] = {
            "responses": responses,
            "body": convert(body) if body else None,
        }
        pending += [(stem, name) for name in referenced([op["responses"], body])]
    while pending:
        stem, name = pending.pop()
        if name in definitions:
            continue
        definition = specs[stem]["definitions"][name]
        definitions[name] = convert(definition)
        pending += [(stem, ref) for ref in referenced(definition)]
    return {
        "source": "SuperOfficeDocs/docs api-sources/openapi/rest (Swagger 2.0, v1-REST)",
        "operations": operations,
        "$defs": dict(sorted(definitions.items())),
    }


def main(argv: list[str]) -> None:
    spec_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC_DIR
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(derive(spec_dir), indent=1, sort_keys=False) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv)
