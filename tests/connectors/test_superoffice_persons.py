"""The SuperOffice persons connector on the demo world (Contoso, Online): an associate's
persons are those of the companies they are our contact for and their own; an e-mail
change, which moves no date and fires no event in SuperOffice, is found by content; a
company is found by name (made only if there is none); deletion is SuperOffice's soft
delete."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import requests

from common.connectors.base import NotFound, Permanent
from common.connectors.superoffice import SuperOfficePersons
from common.items import Contact
from tests.connectors.contract import listed, read_all, removed
from tests.fixtures.superoffice_connector import (
    ADELE,
    MEGAN,
    SoUser,
    bearer,
    online_client,
    sign_in,
)


def persons(http: requests.Session, base: str, associate: int, email: str) -> SuperOfficePersons:
    client = online_client(http, base, email)
    return SuperOfficePersons(client, associate, context="Cust12345", page_size=5)


@pytest.fixture
def adele(so_http: requests.Session, so_base: str) -> SuperOfficePersons:
    return persons(so_http, so_base, ADELE, "adele@contoso.example")


@pytest.fixture
def user(so_http: requests.Session, so_base: str) -> SoUser:
    tokens = sign_in(so_http, so_base, "adele@contoso.example")
    return SoUser(so_http, f"{so_base}/Cust12345/api/v1", bearer(tokens))


def by_name(pages: list[Any]) -> dict[str, Any]:
    return {f"{s.item.given_name} {s.item.family_name}": s for s in listed(pages).values()}


def test_an_associates_persons_are_their_companies_and_their_own(
    adele: SuperOfficePersons, so_http: requests.Session, so_base: str, user: SoUser
) -> None:
    """Mistake: listing every person of the tenant, or only those of companies (a person
    without a company, with the associate as their own our-contact, would be missed)."""
    pages, _ = read_all(adele, None, None)
    names = by_name(pages)
    # the demo world's customers (Adele is their companies' our-contact) and her colleagues
    assert {"Ingrid Berg", "Kim Berg", "Maria Lopez", "Adele Vance"} <= set(names)
    assert len(pages) >= 3  # pages of five, by key
    ingrid = names["Ingrid Berg"].item
    assert ingrid.company == "Bergen Shipping AS" and ingrid.job_title == ""
    assert ingrid.emails == ("ingrid.berg@bergenshipping.example",)
    assert {(p.kind, p.number) for p in ingrid.phones} == {("work", "+47 2222 1000"),
                                                          ("mobile", "+47 9999 1000")}  # fmt: skip
    megan = persons(so_http, so_base, MEGAN, "megan@contoso.example")
    assert listed(read_all(megan, None, None)[0]) == {}
    loner = user.call("POST", "/Person", json={"Firstname": "Lone", "Lastname": "Wolf",
                                               "Associate": {"AssociateId": MEGAN}})  # fmt: skip
    assert list(listed(read_all(megan, None, None)[0])) == [str(loner["PersonId"])]
    with pytest.raises(NotFound):
        megan.get(names["Ingrid Berg"].id)  # a person of somebody else's company


def test_an_email_change_that_moves_no_date_and_fires_no_event_is_found(
    adele: SuperOfficePersons, user: SoUser
) -> None:
    """SuperOffice keeps e-mail addresses in another table: changing one leaves the
    person's UpdatedDate as it was and fires no webhook. Mistake: listing changes by
    date (the contact on the other side would keep the old address for good)."""
    pages, cursor = read_all(adele, None, None)
    requests_per_pass = len(pages)  # one archive list per page, in key order
    maria = by_name(pages)["Maria Lopez"]
    before = user.entity("Person", int(maria.id))
    user.edit("Person", int(maria.id), Emails=[{"Value": "maria@newdomain.example"}])
    after = user.entity("Person", int(maria.id))
    assert after["UpdatedDate"] == before["UpdatedDate"]  # SuperOffice did not stamp it
    adele.client.calls.clear()
    pages, cursor = read_all(adele, cursor, None)
    shown = listed(pages)
    assert list(shown) == [maria.id]
    assert shown[maria.id].item.emails == ("maria@newdomain.example",)
    # the rows compared page by page, and only the changed person read again
    assert adele.client.calls == {"GET /Person": requests_per_pass + 1}
    pages, _ = read_all(adele, cursor, None)
    assert listed(pages) == {}


def test_a_company_is_found_by_name_and_made_only_when_missing(
    adele: SuperOfficePersons, user: SoUser
) -> None:
    """Mistake: a new company for every contact written with a company name (duplicates of
    the customer in the CRM)."""
    companies = len(user.call("GET", "/Contact", params={"$top": "1000"})["value"])
    made = adele.create(Contact("Nils", "Berg", company="Bergen Shipping AS",
                                emails=("nils@bergenshipping.example",)), "cid-nils")  # fmt: skip
    person = user.entity("Person", int(made.id))
    assert person["Contact"]["ContactId"] == 100 and made.item.company == "Bergen Shipping AS"
    other = adele.create(Contact("Ola", "Ny", company="Brand New AS"), "cid-ola")
    assert other.item.company == "Brand New AS"
    assert len(user.call("GET", "/Contact", params={"$top": "1000"})["value"]) == companies + 1
    found = adele.find_by_correlation_id("cid-nils")
    assert found is not None and found.id == made.id
    renamed = adele.update(
        made.id, dataclasses.replace(made.item, job_title="Skipper"), made.version
    )
    assert renamed.item.job_title == "Skipper" and renamed.item.company == "Bergen Shipping AS"


def test_a_deleted_person_leaves_the_listing(adele: SuperOfficePersons, user: SoUser) -> None:
    pages, cursor = read_all(adele, None, None)
    kim = by_name(pages)["Kim Berg"]
    user.call("DELETE", f"/Person/{kim.id}")  # SuperOffice's soft delete
    pages, _ = read_all(adele, cursor, None)
    assert [r.id for r in removed(pages)] == [kim.id]
    with pytest.raises(NotFound):
        adele.get(kim.id)


def select(http: requests.Session, base: str, person_ids: list[int]) -> None:
    """A static selection made (or changed) in SuperOffice: through the simulator's state,
    as the Selection agent is not simulated."""
    selection = {"selection_id": 9000, "name": "Newsletter", "associate_id": ADELE,
                 "person_ids": person_ids}  # fmt: skip
    answer = http.post(f"{base}/_sim/state",
                       json={"tenants": {"Cust12345": {"selections": [selection]}}})  # fmt: skip
    assert answer.status_code == 204, answer.text


def test_the_persons_of_a_selection_come_and_go_with_it(
    so_http: requests.Session, so_base: str
) -> None:
    """Mistakes: a selection's persons listed from the associate's (or everybody's), a
    person taken out of the selection kept on the other side, a create that would put a
    person outside the selection (and so look deleted at once)."""
    select(so_http, so_base, [1000, 1004])
    client = online_client(so_http, so_base, "megan@contoso.example")
    connector = SuperOfficePersons(client, MEGAN, context="Cust12345", selection_id=9000)
    pages, cursor = read_all(connector, None, None)
    assert set(by_name(pages)) == {"Ingrid Berg", "Maria Lopez"}
    assert by_name(pages)["Maria Lopez"].item.emails == ("maria.lopez@bostonanalytics.example",)
    select(so_http, so_base, [1000, 1006])  # Maria out, Tom in
    pages, cursor = read_all(connector, cursor, None)
    assert set(by_name(pages)) == {"Tom Nguyen"}
    assert [r.id for r in removed(pages)] == ["1004"]
    with pytest.raises(NotFound):
        connector.get("1004")
    assert connector.get("1006").item.company == "Sydney Solar Pty"
    with pytest.raises(Permanent, match="selection 9000"):
        connector.create(Contact("New", "Person"), "cid-new")
