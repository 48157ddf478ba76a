"""Derive the columns of the SuperOffice archive providers the simulator serves from the vendor's
archive-provider reference pages.

Usage: python tools/derive_superoffice_archive_columns.py DOCS_DIR [OUTPUT]
DOCS_DIR holds the reference pages `findappointment.md`, `person.md`, `simplecontact.md`,
`allusers.md` and `contactpersonstaticselectionv2.md` of SuperOfficeDocs/docs (`en/api/archive-providers/reference/`, published at
https://docs.superoffice.com/en/api/archive-providers/reference/); OUTPUT defaults to
simulators/superoffice/archive_columns.json.

Each page's "Supported Columns" tables give a column's name, its restriction type (the filter
operators it takes; `*None*` = not filterable) and whether it can be used in `$orderBy`. The
output maps provider -> column -> [restriction or null, orderable].
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "simulators" / "superoffice" / "archive_columns.json"
PAGES = {
    "FindAppointment": "findappointment.md",
    "Person": "person.md",
    "SimpleContact": "simplecontact.md",
    "AllUsers": "allusers.md",
    "ContactPersonStaticSelectionV2": "contactpersonstaticselectionv2.md",
}
_ROW = re.compile(r"^\|(?P<name>[^|]+)\|(?P<restriction>[^|]*)\|[^|]*\|(?P<order>[^|]*)\|\s*$")


def columns(page: str) -> dict[str, list[Any]]:
    """Name -> [restriction or None, orderable] for every row of the "Supported Columns" tables."""
    found: dict[str, list[Any]] = {}
    in_columns = False
    for line in page.splitlines():
        if line.startswith("## "):
            in_columns = line.startswith("## Supported Columns")
            continue
        match = _ROW.match(line) if in_columns else None
        if match is None:
            continue
        name = match.group("name").strip().replace("\\_", "_")
        restriction = match.group("restriction").strip()
        if name in ("Name", "----"):
            continue
        kind = None if restriction in ("*None*", "") else restriction
        found[name] = [kind, match.group("order").strip() == "x"]
    return found


def derive(docs_dir: Path) -> dict[str, Any]:
    return {
        "source": "SuperOfficeDocs/docs en/api/archive-providers/reference/*.md "
        "(https://docs.superoffice.com/en/api/archive-providers/reference/)",
        "providers": {
            provider: columns((docs_dir / page).read_text("utf-8"))
            for provider, page in PAGES.items()
        },
    }


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    output.write_text(json.dumps(derive(Path(argv[1])), separators=(",", ":")) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv)
