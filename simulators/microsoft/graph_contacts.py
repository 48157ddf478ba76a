"""Graph contacts endpoints: CRUD in the default contacts folder and contacts/delta."""

from __future__ import annotations

from flask import Response, request

from simulators.microsoft.delta import delta_response
from simulators.microsoft.errors import not_found
from simulators.microsoft.graph_common import (
    expand_extended,
    extended_filter,
    json_body,
    json_response,
    mailbox_route,
    metadata,
    paged,
    present_ids,
    select,
)
from simulators.microsoft.mailbox import ContactRecord, Mailbox, render_contact


def _context(mailbox: Mailbox) -> str:
    return metadata(f"users('{mailbox.address}')/contacts")


def _render(mailbox: Mailbox, contact: ContactRecord, extended: list[str] | None = None) -> dict:
    return present_ids(render_contact(contact, mailbox.contact_folder_id, extended))


def _check_folder(mailbox: Mailbox, folder_id: str | None) -> None:
    if folder_id is not None and folder_id not in (mailbox.contact_folder_id, "contacts"):
        raise not_found()


@mailbox_route("/contacts", methods=["GET"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts", methods=["GET"], permission="contacts")
def list_contacts(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    _check_folder(mailbox, folder_id)
    wanted = extended_filter()
    extended = expand_extended()
    with mailbox.lock:
        found = list(mailbox.contacts.values())
    if wanted is not None:
        found = [c for c in found if c.extended.matches(*wanted)]
    return paged([_render(mailbox, c, extended) for c in found], _context(mailbox))


@mailbox_route("/contacts", methods=["POST"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts", methods=["POST"], permission="contacts")
def create_contact(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    _check_folder(mailbox, folder_id)
    contact = mailbox.create_contact(json_body())
    body = _render(mailbox, contact)
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body}, status=201)


@mailbox_route("/contacts/<contact_id>", methods=["GET"], permission="contacts")
def get_contact(mailbox: Mailbox, contact_id: str) -> Response:
    body = select([_render(mailbox, mailbox.contact(contact_id), expand_extended())])[0]
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body})


@mailbox_route("/contacts/<contact_id>", methods=["PATCH"], permission="contacts")
def update_contact(mailbox: Mailbox, contact_id: str) -> Response:
    contact = mailbox.update_contact(contact_id, json_body(), request.headers.get("If-Match"))
    body = _render(mailbox, contact)
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body})


@mailbox_route("/contacts/<contact_id>", methods=["DELETE"], permission="contacts")
def delete_contact(mailbox: Mailbox, contact_id: str) -> Response:
    mailbox.delete_contact(contact_id, request.headers.get("If-Match"))
    return Response(status=204)


@mailbox_route("/contacts/delta", methods=["GET"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts/delta", methods=["GET"], permission="contacts")
def contacts_delta(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    _check_folder(mailbox, folder_id)

    def snapshot() -> list[tuple[str, int, dict]]:
        with mailbox.lock:
            found = list(mailbox.contacts.values())
        return [
            (
                c.id,
                c.seq,
                {"@odata.type": "#microsoft.graph.contact", **select([_render(mailbox, c)])[0]},
            )
            for c in found
        ]

    return delta_response(mailbox, "contacts", snapshot)


@mailbox_route("/contactFolders", methods=["GET"], permission="contacts")
def contact_folders(mailbox: Mailbox) -> Response:
    folder = {
        "id": mailbox.contact_folder_id,
        "displayName": "Contacts",
        "parentFolderId": mailbox.calendar_id,
    }
    return json_response(
        {
            "@odata.context": metadata(f"users('{mailbox.address}')/contactFolders"),
            "value": [folder],
        }
    )
