"""Derive the simulator's SKU table from Microsoft's licensing CSV.

Reads `product_names_and_service_plan_identifiers.csv` (Microsoft's "Product names and service plan
identifiers for licensing" table, kept outside the project in ../shared/data/m365/) and writes only
the identifiers the Microsoft simulator serves: skuId, skuPartNumber and each SKU's service plans
(id + name). Run from the repository root:

    python tools/derive_m365_skus.py [path/to/csv]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT.parent / "shared/data/m365/product_names_and_service_plan_identifiers.csv"
OUTPUT = ROOT / "simulators/microsoft/skus.json"

# The SKUs the demo tenants hold (plus a few common ones a test may assign).
SERVED_SKUS = (
    "O365_BUSINESS_PREMIUM",  # Microsoft 365 Business Standard
    "O365_BUSINESS_ESSENTIALS",  # Microsoft 365 Business Basic
    "SPB",  # Microsoft 365 Business Premium
    "O365_BUSINESS",  # Microsoft 365 Apps for business (no mailbox)
    "OFFICESUBSCRIPTION",  # Microsoft 365 Apps for enterprise (no mailbox)
    "EXCHANGESTANDARD",  # Exchange Online (Plan 1)
    "EXCHANGEDESKLESS",  # Exchange Online Kiosk
    "SPE_E3",  # Microsoft 365 E3
)


def derive(csv_path: Path) -> dict[str, dict]:
    skus: dict[str, dict] = {}
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            part = row["String_Id"].strip()
            if part not in SERVED_SKUS:
                continue
            plan_name = row["Service_Plan_Name"].strip()
            # The table has at least one malformed row with two names in one cell: skip it.
            if not plan_name or " " in plan_name:
                continue
            sku = skus.setdefault(part, {"skuId": row["GUID"].strip(), "servicePlans": []})
            plan = {"servicePlanId": row["Service_Plan_Id"].strip(), "servicePlanName": plan_name}
            if plan not in sku["servicePlans"]:
                sku["servicePlans"].append(plan)
    missing = set(SERVED_SKUS) - set(skus)
    if missing:
        raise SystemExit(f"SKUs not found in {csv_path}: {sorted(missing)}")
    return {part: skus[part] for part in SERVED_SKUS}


def main(argv: list[str]) -> int:
    csv_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_CSV
    table = derive(csv_path)
    OUTPUT.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} SKUs to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
