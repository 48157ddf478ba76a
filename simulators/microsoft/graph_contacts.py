"""Graph contacts endpoints: CRUD and delta in the default contacts folder and in folders made
under it (`contactFolders`)."""

from __future__ import annotations

from flask import Response, request

from simulators.microsoft.delta import delta_response
from simulators.microsoft.graph_common import (
    expand_extended,
    extended_filter,
    immutable_ids,
    json_body,
    json_response,
    mailbox_route,
    metadata,
    paged,
    present_ids,
    select,
)
from simulators.microsoft.ids import immutable
from simulators.microsoft.mailbox import (
    ContactRecord,
    Mailbox,
    contacts_scope,
    render_contact,
)


def _context(mailbox: Mailbox) -> str:
    return metadata(f"users('{mailbox.address}')/contacts")


def _render(mailbox: Mailbox, contact: ContactRecord, extended: list[str] | None = None) -> dict:
    return present_ids(render_contact(contact, extended))


def _folder(mailbox: Mailbox, folder_id: str | None) -> str | None:
    """The folder a path names (None: the path names none, `/contacts/{id}`)."""
    return None if folder_id is None else mailbox.contact_folder(folder_id)


@mailbox_route("/contacts", methods=["GET"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts", methods=["GET"], permission="contacts")
def list_contacts(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    folder = mailbox.contact_folder(folder_id)
    wanted = extended_filter()
    extended = expand_extended()
    found = mailbox.contacts_in(folder)
    if wanted is not None:
        found = [c for c in found if c.extended.matches(*wanted)]
    return paged([_render(mailbox, c, extended) for c in found], _context(mailbox))


@mailbox_route("/contacts", methods=["POST"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts", methods=["POST"], permission="contacts")
def create_contact(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    contact = mailbox.create_contact(json_body(), mailbox.contact_folder(folder_id))
    body = _render(mailbox, contact)
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body}, status=201)


@mailbox_route("/contacts/<contact_id>", methods=["GET"], permission="contacts")
@mailbox_route(
    "/contactFolders/<folder_id>/contacts/<contact_id>", methods=["GET"], permission="contacts"
)
def get_contact(mailbox: Mailbox, contact_id: str, folder_id: str | None = None) -> Response:
    contact = mailbox.contact(contact_id, _folder(mailbox, folder_id))
    body = select([_render(mailbox, contact, expand_extended())])[0]
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body})


@mailbox_route("/contacts/<contact_id>", methods=["PATCH"], permission="contacts")
@mailbox_route(
    "/contactFolders/<folder_id>/contacts/<contact_id>", methods=["PATCH"], permission="contacts"
)
def update_contact(mailbox: Mailbox, contact_id: str, folder_id: str | None = None) -> Response:
    contact = mailbox.update_contact(
        contact_id, json_body(), request.headers.get("If-Match"), _folder(mailbox, folder_id)
    )
    body = _render(mailbox, contact)
    return json_response({"@odata.context": f"{_context(mailbox)}/$entity", **body})


@mailbox_route("/contacts/<contact_id>", methods=["DELETE"], permission="contacts")
@mailbox_route(
    "/contactFolders/<folder_id>/contacts/<contact_id>", methods=["DELETE"], permission="contacts"
)
def delete_contact(mailbox: Mailbox, contact_id: str, folder_id: str | None = None) -> Response:
    mailbox.delete_contact(contact_id, request.headers.get("If-Match"), _folder(mailbox, folder_id))
    return Response(status=204)


@mailbox_route("/contacts/delta", methods=["GET"], permission="contacts")
@mailbox_route("/contactFolders/<folder_id>/contacts/delta", methods=["GET"], permission="contacts")
def contacts_delta(mailbox: Mailbox, folder_id: str | None = None) -> Response:
    folder = mailbox.contact_folder(folder_id)

    def snapshot() -> list[tuple[str, int, dict]]:
        return [
            (
                c.id,
                c.seq,
                {"@odata.type": "#microsoft.graph.contact", **select([_render(mailbox, c)])[0]},
            )
            for c in mailbox.contacts_in(folder)
        ]

    return delta_response(mailbox, "contacts", snapshot, scope=contacts_scope(folder))


def _folder_json(folder_id: str, name: str, parent: str) -> dict:
    if immutable_ids():
        folder_id, parent = immutable(folder_id), immutable(parent)
    return {"id": folder_id, "displayName": name, "parentFolderId": parent}


@mailbox_route("/contactFolders", methods=["GET"], permission="contacts")
def contact_folders(mailbox: Mailbox) -> Response:
    """The folders in the default contacts folder (its child folders, not itself: that one is
    `contactFolders/contacts`), as Graph lists them."""
    with mailbox.lock:
        made = dict(mailbox.contact_folders)
    folders = [_folder_json(i, name, mailbox.contact_folder_id) for i, name in made.items()]
    return json_response(
        {
            "@odata.context": metadata(f"users('{mailbox.address}')/contactFolders"),
            "value": folders,
        }
    )


@mailbox_route("/contactFolders/<folder_id>", methods=["GET"], permission="contacts")
def contact_folder(mailbox: Mailbox, folder_id: str) -> Response:
    """One folder by id, or the default one by its well-known name `contacts`."""
    folder = mailbox.contact_folder(folder_id)
    if folder == mailbox.contact_folder_id:
        body = _folder_json(folder, "Contacts", mailbox.calendar_id)
    else:
        body = _folder_json(folder, mailbox.contact_folders[folder], mailbox.contact_folder_id)
    context = metadata(f"users('{mailbox.address}')/contactFolders/$entity")
    return json_response({"@odata.context": context, **body})


@mailbox_route("/contactFolders", methods=["POST"], permission="contacts")
def create_contact_folder(mailbox: Mailbox) -> Response:
    """A folder under the default contacts folder; a second folder of the same name is 409."""
    body = json_body()
    folder_id = mailbox.create_contact_folder(str(body.get("displayName") or ""))
    return json_response(
        {
            "@odata.context": metadata(f"users('{mailbox.address}')/contactFolders/$entity"),
            **_folder_json(
                folder_id, mailbox.contact_folders[folder_id], mailbox.contact_folder_id
            ),
        },
        status=201,
    )
