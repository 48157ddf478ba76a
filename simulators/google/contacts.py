"""One user's contacts (People API ``people/c…`` resources): create, update with etag, delete,
list with sync tokens, and their rendering with field masks."""

from __future__ import annotations

import copy
from typing import Any

from simulators.google import opaque
from simulators.google.errors import (
    GoogleApiError,
    bad_request,
    error_info,
    int_param,
    not_found,
)
from simulators.google.store import (
    PEOPLE_SYNC_TOKEN_LIFETIME,
    Contact,
    ContactVersion,
    GoogleStore,
)
from simulators.platform.control import claim_fault

PERSON_FIELDS = {
    "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData",
    "coverPhotos", "emailAddresses", "events", "externalIds", "genders", "imClients",
    "interests", "locales", "locations", "memberships", "metadata", "miscKeywords", "names",
    "nicknames", "occupations", "organizations", "phoneNumbers", "photos", "relations",
    "sipAddresses", "skills", "urls", "userDefined",
}  # fmt: skip
WRITABLE_FIELDS = PERSON_FIELDS - {"metadata", "photos", "coverPhotos", "ageRanges"}
SINGLETONS = {"names", "birthdays", "genders", "biographies"}
# Standard parameters of every Google API call: not part of what a token is bound to.
TRANSPORT_PARAMS = {
    "alt", "prettyPrint", "fields", "key", "access_token", "oauth_token", "quotaUser",
    "$.xgafv", "callback", "upload_protocol", "uploadType",
}  # fmt: skip
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def failed_precondition(message: str, reason: str | None = None) -> GoogleApiError:
    details = [error_info(reason, "people.googleapis.com")] if reason else None
    return GoogleApiError(
        400, message, "failedPrecondition", status="FAILED_PRECONDITION", details=details
    )


def parameters_changed() -> GoogleApiError:
    """ "When the page_token or sync_token is specified, all other request parameters must
    match the first call" (connections.list); Google answers its generic 400."""
    return GoogleApiError(400, "Request contains an invalid argument.", "badRequest")


def _bound_parameters(params: dict[str, str]) -> dict[str, str]:
    skip = TRANSPORT_PARAMS | {"syncToken", "pageToken"}
    return {k: v for k, v in sorted(params.items()) if k not in skip}


def parse_mask(value: str | None, name: str, *, required: bool) -> set[str]:
    fields = {f.strip() for f in (value or "").split(",") if f.strip()}
    fields = {f.removeprefix("person.") for f in fields}
    if not fields and required:
        raise bad_request(
            f"{name} mask is required. Please specify one or more valid paths. Valid paths are "
            "documented at https://developers.google.com/people/api/rest/v1/people/get."
        )
    unknown = sorted(fields - PERSON_FIELDS)
    if unknown:
        raise bad_request(f'Invalid {name} mask path: "{unknown[0]}".')
    return fields


def _check_values(person: dict[str, Any], fields: set[str]) -> None:
    for name in fields & SINGLETONS:
        values = person.get(name) or []
        if not isinstance(values, list) or len(values) > 1:
            raise bad_request(f"Invalid person.{name}, only one value allowed.")
    for name in fields:
        if name in person and not isinstance(person[name], list):
            raise bad_request(f"Invalid value at 'person.{name}', expected a list.")


class ContactBookOps:
    def __init__(self, store: GoogleStore, email: str) -> None:
        self.store = store
        self.email = email
        self.book = store.books[email]

    def _stamp(self, contact: Contact) -> None:
        contact.seq = self.store.next_seq()
        contact.etag = opaque.person_etag(contact.seq)
        contact.updated = opaque.rfc3339(self.store.now_dt())
        contact.versions.append(
            ContactVersion(
                contact.seq,
                self.store.now() + self.store.people_propagation_seconds,
                copy.deepcopy(contact.person),
                contact.etag,
                contact.updated,
                contact.deleted,
            )
        )

    def _listed(self, contact: Contact, now: float) -> Contact | None:
        """The contact as sync listings show it at `now`: its latest write that has
        propagated (None while even its creation has not)."""
        if not contact.versions:
            return contact
        shown = [v for v in contact.versions if v.visible_at <= now]
        if not shown:
            return None
        last = shown[-1]
        return Contact(
            contact.resource_name, last.person, last.seq, last.etag, last.updated, last.deleted
        )

    def _propagated_up_to(self, now: float) -> int:
        """The highest sequence below which every write has propagated: a sync token must not
        pass a write that listings do not show yet, or the next sync would miss it."""
        pending = [
            v.seq for c in self.book.contacts.values() for v in c.versions if v.visible_at > now
        ]
        return min(pending) - 1 if pending else self.store.seq

    def create(self, person: dict[str, Any]) -> Contact:
        fields = {k: copy.deepcopy(v) for k, v in person.items() if k in WRITABLE_FIELDS}
        _check_values(fields, set(fields))
        with self.store.lock:
            resource = "people/" + opaque.contact_id()
            contact = Contact(resource, fields, 0, "", "")
            self._stamp(contact)
            self.book.contacts[resource] = contact
            return contact

    def get(self, resource_name: str) -> Contact:
        contact = self.book.contacts.get(resource_name)
        if contact is None or contact.deleted:
            raise not_found("Requested entity was not found.")
        return contact

    def update(
        self, resource_name: str, person: dict[str, Any], update_fields: set[str]
    ) -> Contact:
        given_etag = person.get("etag") or next(
            (s.get("etag") for s in person.get("metadata", {}).get("sources", []) if s.get("etag")),
            None,
        )
        if not given_etag:
            raise bad_request(
                "Request must set person.etag or person.metadata.sources.etag for the source "
                "that is being updated."
            )
        bad = update_fields - WRITABLE_FIELDS
        if bad:
            raise bad_request(f'Invalid updatePersonFields mask path: "{sorted(bad)[0]}".')
        _check_values(person, update_fields)
        with self.store.lock:
            contact = self.get(resource_name)
            if given_etag not in (contact.etag, self.source_etag(contact)):
                raise failed_precondition(
                    "Request person.etag is different than the current person.etag. Clear "
                    "local cache and get the latest person."
                )
            for name in update_fields:
                if person.get(name):
                    contact.person[name] = copy.deepcopy(person[name])
                else:
                    contact.person.pop(name, None)
            self._stamp(contact)
            return contact

    def delete(self, resource_name: str) -> None:
        with self.store.lock:
            contact = self.get(resource_name)
            contact.deleted = True
            contact.person = {}
            self._stamp(contact)

    @staticmethod
    def source_etag(contact: Contact) -> str:
        return "#" + contact.etag[1:]

    def render(self, contact: Contact, fields: set[str] | None) -> dict[str, Any]:
        """The Person resource as the API returns it (all stored fields when `fields` is None)."""
        source_id = contact.resource_name.removeprefix("people/c")
        source_id = format(int(source_id), "x") if source_id.isdigit() else source_id
        source = {"type": "CONTACT", "id": source_id}
        out: dict[str, Any] = {"resourceName": contact.resource_name, "etag": contact.etag}
        metadata: dict[str, Any] = {
            "sources": [
                {**source, "etag": self.source_etag(contact), "updateTime": contact.updated}
            ],
            "objectType": "PERSON",
        }
        if contact.deleted:
            out["metadata"] = {**metadata, "deleted": True}
            return out
        if fields is None or "metadata" in fields:
            out["metadata"] = metadata
        for name, values in contact.person.items():
            if fields is not None and name not in fields:
                continue
            out[name] = [
                {**copy.deepcopy(v), "metadata": {"primary": i == 0, "source": source}}
                if isinstance(v, dict)
                else v
                for i, v in enumerate(values)
            ]
            if name == "names":
                for value in out[name]:
                    full = " ".join(
                        value.get(k, "") for k in ("givenName", "familyName") if value.get(k)
                    )
                    value.setdefault("displayName", full)
                    value.setdefault("unstructuredName", full)
                    last_first = ", ".join(
                        value[k] for k in ("familyName", "givenName") if value.get(k)
                    )
                    value.setdefault("displayNameLastFirst", last_first)
        return out

    def connections(self, params: dict[str, str]) -> dict[str, Any]:
        fields = parse_mask(params.get("personFields"), "personFields", required=True)
        size = int_param(params.get("pageSize"), "pageSize", DEFAULT_PAGE_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise bad_request("pageSize must be between 1 and 1000.")
        page = opaque.decode_token(params["pageToken"]) if params.get("pageToken") else {}
        if page is None:
            raise bad_request("Page token is not valid.")
        bound = _bound_parameters(params)
        if "p" in page and page["p"] != bound:
            raise parameters_changed()
        since: int | None = page.get("s")
        # Google counts the seven days from the full sync, so incremental tokens inherit its time.
        full_sync_time: float = page.get("t", self.store.now())
        sync_token = params.get("syncToken")
        if sync_token:
            token = opaque.decode_token(sync_token)
            if token is None or token.get("u") != self.email:
                raise bad_request("Sync token is not valid.")
            if token.get("p", bound) != bound:
                raise parameters_changed()
            expired = (
                token.get("e") != self.book.epoch
                or self.store.now() - float(token.get("t", 0)) > PEOPLE_SYNC_TOKEN_LIFETIME
                or claim_fault("delta_expired") is not None
            )
            if expired:
                raise failed_precondition(
                    "Sync token is expired. Clear local cache and retry call without the sync "
                    "token.",
                    "EXPIRED_SYNC_TOKEN",
                )
            since = token["s"]
            full_sync_time = float(token.get("t", full_sync_time))
        with self.store.lock:
            now = self.store.now()
            high: int = page.get("h", self._propagated_up_to(now))
            listed = [
                shown
                for shown in (self._listed(c, now) for c in self.book.contacts.values())
                if shown is not None
            ]
            chosen = sorted(
                (
                    c
                    for c in listed
                    if c.seq <= high
                    and (since is None or c.seq > since)
                    and (since is not None or not c.deleted)
                ),
                key=lambda c: c.resource_name,
            )
            total = sum(1 for c in listed if not c.deleted)
            after = page.get("k", "")
            rest = [c for c in chosen if c.resource_name > after]
            chunk = rest[:size]
            result: dict[str, Any] = {
                "connections": [self.render(c, fields) for c in chunk],
                "totalPeople": total,
                "totalItems": total,
            }
            if len(rest) > size:
                result["nextPageToken"] = opaque.encode_token(
                    {
                        "k": chunk[-1].resource_name,
                        "h": high,
                        "s": since,
                        "t": full_sync_time,
                        "p": bound,
                    }
                )
            elif sync_token or params.get("requestSyncToken") == "true":
                result["nextSyncToken"] = opaque.encode_token(
                    {
                        "u": self.email,
                        "s": high,
                        "e": self.book.epoch,
                        "t": full_sync_time,
                        "p": bound,
                    }
                )
            if not result["connections"]:
                del result["connections"]
            return result
