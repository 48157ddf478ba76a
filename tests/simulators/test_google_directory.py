"""Admin SDK Directory against the simulator: who is an admin, and what a Help Desk admin may
not read."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from simulators.world.google import SCOPE_DIRECTORY_USER_RO, SCOPE_ROLES_RO

SCOPES = (SCOPE_DIRECTORY_USER_RO, SCOPE_ROLES_RO)


@pytest.fixture
def directory_as(google_service: Any, google_token: Any) -> Any:
    return lambda email: google_service("admin", "directory_v1", google_token(email, *SCOPES))


def test_users_get_tells_super_and_delegated_admins_apart(directory_as: Any) -> None:
    directory = directory_as("alice@northwind.example")
    alice = (
        directory.users().get(userKey="alice@northwind.example", viewType="admin_view").execute()
    )
    assert (alice["isAdmin"], alice["isDelegatedAdmin"]) == (True, False)
    harry = directory.users().get(userKey="harry@northwind.example").execute()
    assert (harry["isAdmin"], harry["isDelegatedAdmin"]) == (False, True)
    by_id = directory.users().get(userKey=harry["id"]).execute()
    assert by_id["primaryEmail"] == "harry@northwind.example"
    with pytest.raises(HttpError) as err:
        directory.users().get(userKey="tom@tailspin.example").execute()
    assert err.value.resp.status == 404


def test_users_list_pages(directory_as: Any) -> None:
    directory = directory_as("harry@northwind.example")  # Help Desk may read users
    first = directory.users().list(customer="my_customer", maxResults=4).execute()
    second = (
        directory.users()
        .list(customer="my_customer", maxResults=4, pageToken=first["nextPageToken"])
        .execute()
    )
    emails = [u["primaryEmail"] for u in first["users"] + second["users"]]
    assert len(emails) == 6 and emails == sorted(emails)
    assert "nextPageToken" not in second


def test_users_list_query(directory_as: Any) -> None:
    directory = directory_as("alice@northwind.example")

    def emails(query: str) -> list[str]:
        answer = directory.users().list(customer="my_customer", query=query).execute()
        return [u["primaryEmail"] for u in answer.get("users", [])]

    assert emails("email:carol@northwind.example") == ["carol@northwind.example"]
    assert emails("email:d*") == ["dave@northwind.example"]
    assert emails("isAdmin=true") == ["alice@northwind.example"]
    assert emails("givenName:'Erin' isSuspended=false") == ["erin@northwind.example"]
    with pytest.raises(HttpError) as err:
        emails("shoeSize:42")
    assert err.value.resp.status == 400


def test_roles_for_super_admin_and_403_for_help_desk(directory_as: Any) -> None:
    alice = directory_as("alice@northwind.example")
    roles = {r["roleId"]: r for r in alice.roles().list(customer="my_customer").execute()["items"]}
    assignments = (
        alice.roleAssignments()
        .list(
            customer="my_customer",
            userKey="harry@northwind.example",
            includeIndirectRoleAssignments=True,
        )
        .execute()["items"]
    )
    assert [roles[a["roleId"]]["roleName"] for a in assignments] == ["_HELP_DESK_ADMIN_ROLE"]
    assert any(r["isSuperAdminRole"] for r in roles.values())

    harry = directory_as("harry@northwind.example")
    with pytest.raises(HttpError) as err:
        harry.roleAssignments().list(
            customer="my_customer", userKey="harry@northwind.example"
        ).execute()
    assert err.value.resp.status == 403


def test_ordinary_user_is_refused_admin_data(directory_as: Any) -> None:
    carol = directory_as("carol@northwind.example")
    with pytest.raises(HttpError) as err:
        carol.users().list(customer="my_customer").execute()
    assert err.value.resp.status == 403
    public = (
        carol.users().get(userKey="alice@northwind.example", viewType="domain_public").execute()
    )
    assert public["primaryEmail"] == "alice@northwind.example" and "isAdmin" not in public
