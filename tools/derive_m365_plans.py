"""Derive checksite/checks/m365_plans.json from Microsoft's licensing table.

Input: "Product names and service plan identifiers for licensing" (the CSV Microsoft publishes;
here ../shared/data/m365/product_names_and_service_plan_identifiers.csv). Output: only what
[m365_plan] needs: the service plans that give a user an Exchange Online mailbox, and per SKU
id its string id, display name and which of those plans it includes.

    python tools/derive_m365_plans.py [CSV] [OUTPUT]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT.parent / "shared/data/m365/product_names_and_service_plan_identifiers.csv"
DEFAULT_OUTPUT = ROOT / "checksite/checks/m365_plans.json"

# Service plans that provision an Exchange Online mailbox (EWS/Graph calendar and contacts).
# Not here on purpose: EXCHANGE_S_FOUNDATION (no mailbox; present in "Apps" SKUs),
# archiving, analytics, multi-geo and EXCHANGE_B_STANDARD (POP/IMAP only).
MAILBOX_PLAN_NAMES = {
    "EXCHANGE_S_STANDARD",
    "EXCHANGE_S_ENTERPRISE",
    "EXCHANGE_S_DESKLESS",
    "EXCHANGE_S_ESSENTIALS",
    "EXCHANGE_L_STANDARD",
    "EXCHANGE_S_STANDARD_MIDMARKET",
    "EXCHANGE_S_STANDARD_GOV",
    "EXCHANGE_S_ENTERPRISE_GOV",
    "EXCHANGE_S_DESKLESS_GOV",
}


def derive(csv_path: Path) -> dict[str, object]:
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    mailbox_plans: dict[str, str] = {}
    skus: dict[str, dict[str, object]] = {}
    for row in rows:
        plan_id = row["Service_Plan_Id"].strip().lower()
        plan_name = row["Service_Plan_Name"].strip()
        sku_id = row["GUID"].strip().lower()
        sku = skus.setdefault(
            sku_id,
            {
                "string_id": row["String_Id"].strip(),
                "name": row["Product_Display_Name"].strip(),
                "mailbox_plans": [],
            },
        )
        if plan_name in MAILBOX_PLAN_NAMES:
            mailbox_plans[plan_id] = plan_name
            plans = sku["mailbox_plans"]
            assert isinstance(plans, list)
            if plan_id not in plans:
                plans.append(plan_id)
    missing = MAILBOX_PLAN_NAMES - set(mailbox_plans.values())
    if missing:
        raise SystemExit(f"the table no longer lists {sorted(missing)}: review MAILBOX_PLAN_NAMES")
    return {
        "source": "Microsoft: Product names and service plan identifiers for licensing (CSV)",
        "mailbox_plans": dict(sorted(mailbox_plans.items())),
        "skus": dict(sorted(skus.items())),
    }


def main() -> None:
    csv_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    output = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(derive(csv_path), indent=0, sort_keys=False) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
