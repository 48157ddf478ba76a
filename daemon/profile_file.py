"""A profile as a TOML file (`synchronizer profile export` / `import`): its connections, its
settings and its users, for backups, moves between installations and scripted set-ups.

```toml
format = 1

[profile]
name = "Adatum"
organisation = "adatum"             # the organisation's slug; made if it does not exist
organisation_name = "Adatum Corp"
enabled = true

[crm]
kind = "superoffice_onsite"         # or superoffice_online (then `tenant` is needed)
url = "https://crm.adatum.example/SuperOffice"
credentials = { encrypted = "gAAAAA…" }

[groupware]
kind = "m365"
settings = { tenant_id = "adatum.example" }

[settings]                          # the profile's sync settings, as `Profile.settings`
crm_time_zone = "Europe/Amsterdam"
sync_interval_minutes = 15

[[users]]
mailbox = "adele@adatum.example"
crm_associate_id = 700
state = "active"
tokens = { encrypted = "gAAAAA…" }
```

Secrets (the CRM's and the groupware's credentials, each user's tokens) never leave in
clear. An export writes each as `{ encrypted = "…" }`: a Fernet token made with the newest of
this installation's ENCRYPTION_KEYS, readable only where that key is configured (a backup, a
second host of the same deployment). `--no-secrets` leaves them out (a file to show someone):
importing such a file keeps the secrets a profile already has, and a new profile's users must
sign in again. An import also takes credentials written in clear (`[crm.credentials]` with
`username` and `password`), so a profile can be set up from a hand-written file; they are
stored encrypted like any other. Tokens are only taken encrypted: they come from a sign-in.

Reading is strict: an unknown key, a value of the wrong type, an unknown setting or a second
user with the same mailbox or associate is an error that names it, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import Database
from common.models import (
    CrmKind,
    GroupwareKind,
    InvitationState,
    Organisation,
    Profile,
    SyncUser,
)
from common.secrets import UndecryptableSecret, key_ring
from daemon import policies

FORMAT = 1
ENCRYPTED = "encrypted"


class ProfileFileError(ValueError):
    """The file cannot be imported; the message names the place and what is wrong."""


@dataclass
class UserEntry:
    mailbox: str
    crm_associate_id: int
    crm_username: str | None = None
    display_name: str | None = None
    state: InvitationState = InvitationState.INVITED
    tokens: dict[str, Any] | None = None  # decrypted; None: not in the file


@dataclass
class ProfileDocument:
    name: str
    organisation: str
    organisation_name: str
    enabled: bool
    crm_kind: CrmKind
    crm_url: str
    crm_tenant: str | None
    crm_credentials: dict[str, Any] | None
    groupware_kind: GroupwareKind
    groupware_settings: dict[str, Any]
    groupware_credentials: dict[str, Any] | None
    settings: dict[str, Any]
    users: list[UserEntry] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------


def parse(text: str, *, json_format: bool = False) -> ProfileDocument:
    """The document in `text` (TOML, or the same as JSON), checked."""
    try:
        data = json.loads(text) if json_format else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ProfileFileError(f"not {'JSON' if json_format else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileFileError("the file must hold a table")
    top = _Table(data, "the file")
    top.allow({"format", "profile", "crm", "groupware", "settings", "users"})
    version = top.get("format", int)
    if version != FORMAT:
        raise ProfileFileError(f"format: expected {FORMAT}, got {version!r}")
    profile = top.table("profile")
    profile.allow({"name", "organisation", "organisation_name", "enabled"})
    crm = top.table("crm")
    crm.allow({"kind", "url", "tenant", "credentials"})
    groupware = top.table("groupware")
    groupware.allow({"kind", "settings", "credentials"})
    crm_kind = _choice(crm, "kind", CrmKind)
    tenant = crm.get("tenant", str, required=False)
    if crm_kind is CrmKind.SUPEROFFICE_ONLINE and not tenant:
        raise ProfileFileError("[crm] tenant: SuperOffice Online needs the context id (Cust…)")
    url = crm.get("url", str)
    if not url.startswith(("https://", "http://")):
        raise ProfileFileError(f"[crm] url: expected an http(s) URL, got {url!r}")
    organisation = profile.get("organisation", str)
    document = ProfileDocument(
        name=profile.get("name", str),
        organisation=organisation,
        organisation_name=profile.get("organisation_name", str, required=False) or organisation,
        enabled=profile.get("enabled", bool, required=False, default=True),
        crm_kind=crm_kind,
        crm_url=url,
        crm_tenant=tenant,
        crm_credentials=_secret(crm, "credentials", clear_allowed=True),
        groupware_kind=_choice(groupware, "kind", GroupwareKind),
        groupware_settings=dict(groupware.get("settings", dict, required=False) or {}),
        groupware_credentials=_secret(groupware, "credentials", clear_allowed=True),
        settings=check_settings(dict(top.get("settings", dict, required=False) or {})),
    )
    users = top.get("users", list, required=False) or []
    mailboxes: dict[str, int] = {}
    associates: dict[int, int] = {}
    for n, raw in enumerate(users, 1):
        if not isinstance(raw, dict):
            raise ProfileFileError(f"users entry {n}: expected a table")
        entry = _user(_Table(raw, f"users entry {n}"))
        key = entry.mailbox.lower()
        if key in mailboxes:
            raise ProfileFileError(
                f"users entry {n}: mailbox {entry.mailbox} is entry {mailboxes[key]} already"
            )
        if entry.crm_associate_id in associates:
            raise ProfileFileError(
                f"users entry {n}: crm_associate_id {entry.crm_associate_id} is entry "
                f"{associates[entry.crm_associate_id]} already"
            )
        mailboxes[key], associates[entry.crm_associate_id] = n, n
        document.users.append(entry)
    return document


def _user(table: _Table) -> UserEntry:
    table.allow({"mailbox", "crm_associate_id", "crm_username", "display_name", "state", "tokens"})
    mailbox = check_mailbox(table.get("mailbox", str), table.where)
    return UserEntry(
        mailbox=mailbox,
        crm_associate_id=table.get("crm_associate_id", int),
        crm_username=table.get("crm_username", str, required=False),
        display_name=table.get("display_name", str, required=False),
        state=_choice(table, "state", InvitationState, default=InvitationState.INVITED),
        tokens=_secret(table, "tokens", clear_allowed=False),
    )


def check_mailbox(mailbox: str, where: str = "mailbox") -> str:
    text = mailbox.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in text):
        raise ProfileFileError(f"{where}: {mailbox!r} is not a mailbox address")
    return text


class _Table:
    """A table of the file, read with its place named in every error."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def allow(self, keys: set[str]) -> None:
        unknown = sorted(set(self.data) - keys)
        if unknown:
            raise ProfileFileError(
                f"{self.where}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(keys))})"
            )

    def get(self, key: str, kind: type, *, required: bool = True, default: Any = None) -> Any:
        if key not in self.data:
            if required:
                raise ProfileFileError(f"{self.where}: {key} is missing")
            return default
        value = self.data[key]
        # bool is an int in Python; a file's `true` is not a number, nor 1 a yes.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProfileFileError(
                f"{self.where}: {key}: expected {_TYPE_WORDS.get(kind, kind.__name__)}, "
                f"got {value!r}"
            )
        if isinstance(value, str) and not value.strip() and required:
            raise ProfileFileError(f"{self.where}: {key} is empty")
        return value

    def table(self, key: str) -> _Table:
        return _Table(self.get(key, dict), f"[{key}]")


_TYPE_WORDS = {str: "a string", int: "an integer", bool: "true or false", dict: "a table"}
_TYPE_WORDS[list] = "a list"


def _choice(table: _Table, key: str, enum: Any, default: Any = None) -> Any:
    value = table.get(key, str, required=default is None)
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ProfileFileError(f"{table.where}: {key}: {value!r} is not one of {allowed}") from None


def _secret(table: _Table, key: str, *, clear_allowed: bool) -> dict[str, Any] | None:
    value = table.get(key, dict, required=False)
    if value is None:
        return None
    where = f"{table.where}: {key}"
    if set(value) == {ENCRYPTED}:
        token = value[ENCRYPTED]
        if not isinstance(token, str):
            raise ProfileFileError(f"{where}: {ENCRYPTED} must be a string")
        try:
            plain = key_ring.decrypt(token)
        except UndecryptableSecret:
            raise ProfileFileError(
                f"{where}: not encrypted with any of this installation's ENCRYPTION_KEYS "
                "(export it again here, or give the secret in clear)"
            ) from None
        except (UnicodeEncodeError, ValueError):
            raise ProfileFileError(f"{where}: {ENCRYPTED} is not an encrypted value") from None
        decoded = json.loads(plain)
        if not isinstance(decoded, dict):
            raise ProfileFileError(f"{where}: the encrypted value is not a table")
        return decoded
    if not clear_allowed:
        raise ProfileFileError(f"{where}: only an exported {{ {ENCRYPTED} = … }} value is taken")
    return dict(value)


# The profile's settings: the sync policy's (daemon.policies) and the daemon's own.
OWN_SETTINGS = {"crm_time_zone", "sync_interval_minutes"}
NESTED_SETTINGS: dict[str, type] = {
    "window": policies.Window,
    "appointment_filter": policies.AppointmentFilter,
    "contact_filter": policies.ContactFilter,
    "guard": policies.DeletionGuard,
    "invitations": policies.Invitations,
}
POLICY_SETTINGS = {f.name for f in dataclasses.fields(policies.Policy)}


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` if every key is known and every value one the daemon takes."""
    known = POLICY_SETTINGS | OWN_SETTINGS
    for key, value in settings.items():
        if key not in known:
            raise ProfileFileError(
                f"[settings]: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        nested = NESTED_SETTINGS.get(key)
        if nested is not None:
            if not isinstance(value, dict):
                raise ProfileFileError(f"[settings] {key}: expected a table")
            names = {f.name for f in dataclasses.fields(nested)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ProfileFileError(
                    f"[settings.{key}]: unknown key {unknown[0]!r} "
                    f"(expected one of {', '.join(sorted(names))})"
                )
    try:
        policies.Policy.from_settings(settings)
    except (ValueError, TypeError) as exc:
        raise ProfileFileError(f"[settings]: {exc}") from None
    zone = settings.get("crm_time_zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ProfileFileError(
                f"[settings] crm_time_zone: {zone!r} is not an IANA time zone"
            ) from None
    interval = settings.get("sync_interval_minutes")
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0 < interval <= 24 * 60
    ):
        raise ProfileFileError(
            f"[settings] sync_interval_minutes: expected a number of minutes from 1 to 1440, "
            f"got {interval!r}"
        )
    return settings


# --- writing ---------------------------------------------------------------------------------


def export(db: Database, profile_id: int, *, secrets: bool = True) -> dict[str, Any]:
    """The profile as the file's document (a dict; `to_toml` writes it)."""
    with db.session() as session:
        profile = session.get(Profile, profile_id)
        if profile is None:
            raise ProfileFileError(f"there is no profile {profile_id}")
        organisation = session.get(Organisation, profile.organisation_id)
        assert organisation is not None  # the profile's foreign key
        crm: dict[str, Any] = {"kind": profile.crm_kind.value, "url": profile.crm_url}
        if profile.crm_tenant:
            crm["tenant"] = profile.crm_tenant
        groupware: dict[str, Any] = {"kind": profile.groupware_kind.value}
        if profile.groupware_settings:
            groupware["settings"] = _plain(profile.groupware_settings)
        if secrets:
            _put_secret(crm, "credentials", profile.crm_credentials)
            _put_secret(groupware, "credentials", profile.groupware_credentials)
        users = []
        for user in session.scalars(
            select(SyncUser).where(SyncUser.profile_id == profile.id).order_by(SyncUser.id)
        ):
            entry: dict[str, Any] = {
                "mailbox": user.mailbox,
                "crm_associate_id": user.crm_associate_id,
                "state": user.invitation_state.value,
            }
            if user.crm_username:
                entry["crm_username"] = user.crm_username
            if user.display_name:
                entry["display_name"] = user.display_name
            if secrets:
                _put_secret(entry, "tokens", user.tokens)
            users.append(entry)
        document: dict[str, Any] = {
            "format": FORMAT,
            "profile": {
                "name": profile.name,
                "organisation": organisation.slug,
                "organisation_name": organisation.name,
                "enabled": profile.enabled,
            },
            "crm": crm,
            "groupware": groupware,
            "settings": _plain(profile.settings or {}),
            "users": users,
        }
    return document


def _put_secret(table: dict[str, Any], key: str, value: dict[str, Any] | None) -> None:
    if value is not None:
        table[key] = {ENCRYPTED: key_ring.encrypt(json.dumps(value, sort_keys=True))}


def _plain(value: Any) -> Any:
    """TOML has no null: a setting that is None is left out (its default is None too)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None]
    return value


HEADER = (
    "# A Synchronizer profile (synchronizer profile export). Secrets are encrypted with this\n"
    "# installation's key: `synchronizer profile import` reads them where ENCRYPTION_KEYS has it.\n"
)


def to_toml(document: dict[str, Any]) -> str:
    return HEADER + tomli_w.dumps(document)


# --- importing -------------------------------------------------------------------------------


@dataclass
class ImportResult:
    profile_id: int
    created: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # users of the profile not in the file

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def import_document(db: Database, document: ProfileDocument, *, update: bool) -> ImportResult:
    """Make the profile the file describes, or with `update` bring the existing one (same
    organisation and name) in line with it. Users are matched by mailbox; users of the
    profile that the file does not list are kept (unlink them by name)."""
    with db.session() as session:
        organisation = session.scalars(
            select(Organisation).where(Organisation.slug == document.organisation)
        ).first()
        if organisation is None:
            organisation = Organisation(name=document.organisation_name, slug=document.organisation)
            session.add(organisation)
            session.flush()
        profile = session.scalars(
            select(Profile).where(
                Profile.organisation_id == organisation.id, Profile.name == document.name
            )
        ).first()
        created = profile is None
        if profile is not None and not update:
            raise ProfileFileError(
                f"organisation {document.organisation!r} has a profile {document.name!r} "
                f"already (profile {profile.id}): give --update to bring it in line with the file"
            )
        if profile is None:
            profile = Profile(organisation=organisation, name=document.name)
            session.add(profile)
        _set_profile(profile, document)
        session.flush()
        result = ImportResult(profile.id, created)
        _set_users(session, profile, document.users, result)
    return result


def _set_profile(profile: Profile, document: ProfileDocument) -> None:
    profile.enabled = document.enabled
    profile.crm_kind, profile.crm_url = document.crm_kind, document.crm_url
    profile.crm_tenant = document.crm_tenant
    profile.groupware_kind = document.groupware_kind
    profile.groupware_settings = document.groupware_settings
    profile.settings = document.settings
    # A file without secrets leaves the stored ones as they are.
    if document.crm_credentials is not None:
        profile.crm_credentials = document.crm_credentials
    if document.groupware_credentials is not None:
        profile.groupware_credentials = document.groupware_credentials


def _set_users(
    session: Session, profile: Profile, entries: list[UserEntry], result: ImportResult
) -> None:
    existing = {
        user.mailbox.lower(): user
        for user in session.scalars(select(SyncUser).where(SyncUser.profile_id == profile.id))
    }
    listed = {entry.mailbox.lower() for entry in entries}
    for entry in entries:
        user = existing.get(entry.mailbox.lower())
        if user is not None and user.crm_associate_id != entry.crm_associate_id:
            raise ProfileFileError(
                f"{entry.mailbox} is linked to associate {user.crm_associate_id}, the file says "
                f"{entry.crm_associate_id}: that is a re-link (`synchronizer user relink "
                f"{entry.mailbox} --associate {entry.crm_associate_id}`), not an import"
            )
        clash = session.scalars(
            select(SyncUser).where(
                SyncUser.profile_id == profile.id,
                SyncUser.crm_associate_id == entry.crm_associate_id,
                func.lower(SyncUser.mailbox) != entry.mailbox.lower(),
            )
        ).first()
        if clash is not None:
            raise ProfileFileError(
                f"associate {entry.crm_associate_id} is linked to {clash.mailbox} in this "
                f"profile, the file gives it to {entry.mailbox}"
            )
        if user is None:
            user = SyncUser(
                profile_id=profile.id,
                crm_associate_id=entry.crm_associate_id,
                mailbox=entry.mailbox,
            )
            session.add(user)
            result.added.append(entry.mailbox)
        else:
            result.updated.append(user.mailbox)
        user.crm_username, user.display_name = entry.crm_username, entry.display_name
        user.invitation_state = entry.state
        if entry.tokens is not None:
            user.tokens = entry.tokens
        session.flush()
    result.kept = sorted(u.mailbox for key, u in existing.items() if key not in listed)
