"""Graph directory endpoints of the simulator: users, licences, consent objects, mailboxes."""

from __future__ import annotations

from simulators.microsoft.graph_directory import sku_table
from simulators.world.microsoft import GRAPH_APP_ROLES, SYNCHRONIZER_APP_ID
from tests.fixtures.microsoft import GraphClient


def test_me_with_a_delegated_token(ms_server, ms_session, ms_user_token):
    client = GraphClient(ms_server.url, ms_session, ms_user_token("adele@contoso.example"))
    me = client.get("/me").json()
    assert me["userPrincipalName"] == "adele@contoso.example"
    assert me["mail"] == "adele@contoso.example"
    assert me["@odata.context"].endswith("/v1.0/$metadata#users/$entity")


def test_me_with_an_application_token_is_refused(graph):
    answer = graph.get("/me")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"


def test_users_list_select_and_filter(graph):
    users = graph.get("/users", params={"$select": "id,displayName,userPrincipalName"}).json()[
        "value"
    ]
    assert {u["userPrincipalName"] for u in users} >= {
        "adele@contoso.example",
        "nomail@contoso.example",
    }
    assert set(users[0]) == {"id", "displayName", "userPrincipalName"}
    found = graph.get(
        "/users", params={"$filter": "userPrincipalName eq 'megan@contoso.example'"}
    ).json()["value"]
    assert [u["displayName"] for u in found] == ["Megan Bowen"]
    assert (
        graph.get("/users/nobody@contoso.example").json()["error"]["code"]
        == "Request_ResourceNotFound"
    )


def test_missing_or_bad_token_is_401(ms_server, ms_session):
    answer = ms_session.get(f"{ms_server.url}/v1.0/users")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    bad = GraphClient(ms_server.url, ms_session, "not.a.token").get("/users")
    assert bad.status_code == 401


def test_token_expired_fault(graph, ms_server, ms_session):
    ms_session.post(
        f"{ms_server.url}/_sim/faults", json={"kind": "token_expired", "path": "/v1.0/users"}
    )
    answer = graph.get("/users")
    assert answer.status_code == 401
    assert "expired" in answer.json()["error"]["message"]
    assert graph.get("/users").status_code == 200


def test_subscribed_skus_use_microsofts_identifiers(graph):
    skus = {s["skuPartNumber"]: s for s in graph.get("/subscribedSkus").json()["value"]}
    standard = skus["O365_BUSINESS_PREMIUM"]
    assert standard["skuId"] == "f245ecc8-75af-4f8e-b61f-27d8114de5f3"
    assert standard["capabilityStatus"] == "Enabled"
    assert standard["prepaidUnits"]["enabled"] == 25
    assert standard["consumedUnits"] == 3
    plans = {p["servicePlanName"]: p for p in standard["servicePlans"]}
    assert plans["EXCHANGE_S_STANDARD"]["servicePlanId"] == "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
    assert plans["EXCHANGE_S_STANDARD"]["provisioningStatus"] == "Success"
    apps_plans = {p["servicePlanName"] for p in skus["O365_BUSINESS"]["servicePlans"]}
    assert not {"EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE"} & apps_plans


def test_apps_only_tenant_has_no_mailbox_plan(graph_as):
    skus = graph_as("appsonly.example").get("/subscribedSkus").json()["value"]
    assert [s["skuPartNumber"] for s in skus] == ["O365_BUSINESS"]


def test_license_details_per_user(graph, ms_server, ms_session, ms_user_token):
    details = graph.get("/users/nomail@contoso.example/licenseDetails").json()["value"]
    assert [d["skuPartNumber"] for d in details] == ["O365_BUSINESS"]
    mine = GraphClient(ms_server.url, ms_session, ms_user_token("adele@contoso.example")).get(
        "/me/licenseDetails"
    )
    assert mine.json()["value"][0]["skuId"] == sku_table()["O365_BUSINESS_PREMIUM"]["skuId"]


def test_user_without_mailbox_is_mailbox_not_enabled_for_rest_api(graph):
    for path in (
        "/users/nomail@contoso.example/events",
        "/users/nomail@contoso.example/contacts/delta",
    ):
        answer = graph.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert (
        graph.get("/users/adele@contoso.example/mailboxSettings").status_code == 403
    )  # no MailboxSettings role


def test_service_principal_grants_and_role_assignments(
    ms_world, ms_server, ms_session, ms_app_token
):
    ms_world.tenant("contoso.example").granted_roles.append("Application.Read.All")
    ms_world.tenant("contoso.example").granted_roles.append("Directory.Read.All")
    graph = GraphClient(ms_server.url, ms_session, ms_app_token("contoso.example"))
    sps = graph.get(
        "/servicePrincipals", params={"$filter": f"appId eq '{SYNCHRONIZER_APP_ID}'"}
    ).json()["value"]
    assert len(sps) == 1 and sps[0]["appDisplayName"] == "Synchronizer"
    by_app_id = graph.get(f"/servicePrincipals(appId='{SYNCHRONIZER_APP_ID}')").json()
    assert by_app_id["id"] == sps[0]["id"]
    roles = graph.get(f"/servicePrincipals/{sps[0]['id']}/appRoleAssignments").json()["value"]
    assert GRAPH_APP_ROLES["Calendars.ReadWrite"] in {r["appRoleId"] for r in roles}
    grants = graph.get(
        "/oauth2PermissionGrants", params={"$filter": f"clientId eq '{sps[0]['id']}'"}
    ).json()["value"]
    assert grants[0]["consentType"] == "AllPrincipals"
    assert "Calendars.ReadWrite" in grants[0]["scope"].split()


def test_directory_reads_need_a_role(graph):
    answer = graph.get("/servicePrincipals")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Authorization_RequestDenied"


def test_unknown_segment_is_graph_shaped(graph):
    answer = graph.get("/nothingHere")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"


def test_sim_state_exports_tenants(ms_server, ms_session):
    state = ms_session.get(f"{ms_server.url}/_sim/state").json()
    names = {t["displayName"]: t for t in state["tenants"]}
    assert names["Fourth Coffee"]["consent"] == "none"
    assert names["Litware Inc"]["consent"] == "admin_approval_required"
    assert names["Tailwind Traders"]["namespaceType"] == "Federated"


def test_delegated_token_reaches_only_its_own_mailbox(ms_server, ms_session, ms_user_token):
    client = GraphClient(ms_server.url, ms_session, ms_user_token("adele@contoso.example"))
    assert client.get("/me/events").status_code == 200
    assert client.get("/users/adele@contoso.example/contacts").status_code == 200
    other = client.get("/users/megan@contoso.example/events")
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "ErrorAccessDenied"


def test_default_calendar_is_the_mailbox_probe(graph):
    calendar = graph.get("/users/adele@contoso.example/calendar").json()
    assert calendar["isDefaultCalendar"] is True
    assert calendar["owner"]["address"] == "adele@contoso.example"
    assert (
        graph.get("/users/adele@contoso.example/calendars").json()["value"][0]["id"]
        == calendar["id"]
    )
    missing = graph.get("/users/nomail@contoso.example/calendar")
    assert missing.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


def test_subscribed_skus_need_license_assignment_read_at_least(
    ms_server, ms_session, ms_user_token
):
    def skus(scope: str) -> int:
        token = ms_user_token("admin@contoso.example", (scope,))
        return GraphClient(ms_server.url, ms_session, token).get("/subscribedSkus").status_code

    assert skus("LicenseAssignment.Read.All") == 200
    assert skus("User.Read") == 403


def test_the_authorization_policy_says_whether_users_may_consent(
    ms_server, ms_session, ms_user_token
):
    def assigned(tenant: str) -> list[str]:
        token = ms_user_token(f"admin@{tenant}", ("Policy.Read.All",))
        policy = GraphClient(ms_server.url, ms_session, token).get("/policies/authorizationPolicy")
        assert policy.status_code == 200
        return policy.json()["defaultUserRolePermissions"]["permissionGrantPoliciesAssigned"]

    assert assigned("contoso.example") == [
        "ManagePermissionGrantsForSelf.microsoft-user-default-legacy"
    ]
    assert assigned("litware.example") == []  # approval for apps: users may not consent
    token = ms_user_token("admin@contoso.example", ("User.Read",))
    refused = GraphClient(ms_server.url, ms_session, token).get("/policies/authorizationPolicy")
    assert refused.status_code == 403
