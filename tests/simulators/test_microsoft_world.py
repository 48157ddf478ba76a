"""The Microsoft part of the demo world and the SKU table derived from Microsoft's CSV."""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import msal

from simulators.microsoft.graph_directory import sku_table
from simulators.world.microsoft import (
    SYNCHRONIZER_APP_ID,
    SYNCHRONIZER_SECRET,
    demo_world,
    dns_records,
)

ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "derive_m365_skus", ROOT / "tools/derive_m365_skus.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_dns_records_are_valid_zone_text_and_point_at_microsoft():
    records = dns_records(None)
    for _name, rtype, value in records:
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value)
    mx = {name: value for name, rtype, value in records if rtype == "MX"}
    assert mx["contoso.example"] == "0 contoso-example.mail.protection.outlook.com."
    assert ("autodiscover.contoso.example", "CNAME", "autodiscover.outlook.com.") in records
    # A hybrid's MX (and Autodiscover) come from its on-premises side (world/exchange.py).
    hybrids = {t.default_domain for t in demo_world().tenants if t.onpremises_autodiscover_url}
    assert hybrids and not hybrids & set(mx)
    assert set(mx) == {t.default_domain for t in demo_world().tenants} - hybrids


def test_every_tenant_has_users_and_only_known_skus():
    world = demo_world()
    for tenant in world.tenants:
        assert tenant.users
        for sku in tenant.skus:
            assert sku.part_number in sku_table()
        for user in tenant.users:
            assert set(user.licenses) <= set(sku_table())
    no_mailbox = [u for t in world.tenants for u in t.users if not u.has_mailbox]
    assert "nomail@contoso.example" in {u.user_principal_name for u in no_mailbox}


def test_sku_table_keeps_only_identifiers():
    table = json.loads((ROOT / "simulators/microsoft/skus.json").read_text())
    standard = table["O365_BUSINESS_PREMIUM"]
    assert set(standard) == {"skuId", "servicePlans"}
    assert all(set(p) == {"servicePlanId", "servicePlanName"} for p in standard["servicePlans"])


def test_derive_tool_reads_the_csv_and_skips_malformed_plan_names(tmp_path):
    tool = _load_tool()
    rows = [
        "\ufeffProduct_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names"
    ]
    for part in tool.SERVED_SKUS:
        rows.append(
            f"Product {part},{part},{part.lower()}-guid,EXCHANGE_S_STANDARD,9aaf7827,Exchange Online (Plan 1)"
        )
        rows.append(
            f"Product {part},{part},{part.lower()}-guid,EXCHANGE_S_FOUNDATION PBI_PREMIUM_EM1_ADDON,bogus,Bogus"
        )
    rows.append("Other,OTHER_SKU,other-guid,SOMETHING,1234,Something")
    source = tmp_path / "table.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    table = tool.derive(source)
    assert list(table) == list(tool.SERVED_SKUS)
    assert table["SPB"] == {
        "skuId": "spb-guid",
        "servicePlans": [{"servicePlanId": "9aaf7827", "servicePlanName": "EXCHANGE_S_STANDARD"}],
    }


def test_runner_serves_one_app_as_login_and_graph(sims):
    """The registry's two entries share one app: a token from `login` works on `graph`, and the
    tenants' DNS records are in the simulated DNS."""
    session = sims.session()
    app = msal.ConfidentialClientApplication(
        SYNCHRONIZER_APP_ID,
        client_credential=SYNCHRONIZER_SECRET,
        authority=f"{sims.urls['login']}/contoso.example",
        instance_discovery=False,
        http_client=session,
    )
    token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    users = session.get(
        f"{sims.urls['graph']}/v1.0/users", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert users.status_code == 200
    assert "adele@contoso.example" in {u["userPrincipalName"] for u in users.json()["value"]}
    assert sims.apps["login"] is sims.apps["graph"]
    answer = sims.resolver().resolve("contoso.example", "MX")
    assert [str(r.exchange) for r in answer] == ["contoso-example.mail.protection.outlook.com."]


def test_every_tenant_with_mailboxes_has_a_realistic_calendar():
    for tenant in demo_world().tenants:
        if not any(u.has_mailbox for u in tenant.users):
            continue  # "Microsoft 365 Apps for business": nothing to sync with
        events = max((u.events for u in tenant.users), key=len)
        assert any("recurrence" not in e and not e.get("isAllDay") for e in events)  # single
        days = [
            (
                date.fromisoformat(e["end"]["dateTime"][:10])
                - date.fromisoformat(e["start"]["dateTime"][:10])
            ).days
            for e in events
            if e.get("isAllDay")
        ]
        assert 1 in days and any(d > 1 for d in days)  # all-day and multi-day
        assert any(e.get("sensitivity") == "private" for e in events)
        series = [e for e in events if "recurrence" in e]
        assert any(e.get("exceptions") and e.get("cancelledOccurrences") for e in series)
        assert len({e["start"]["timeZone"] for e in events}) >= 3, tenant.default_domain
