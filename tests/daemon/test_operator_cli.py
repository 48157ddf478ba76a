"""The operator's CLI for profiles and users, through the `synchronizer` command on a real
SQLite database: `profile export` / `import` (TOML, secrets encrypted with the installation's
key, a strict reader), `user link` / `unlink` / `relink`."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text

from checksite.cli import main
from common.db import Database
from common.kinds import ItemKind, LinkState, Side
from common.models import (
    CrmKind,
    Cursor,
    GroupwareKind,
    InvitationState,
    ItemLink,
    Organisation,
    Profile,
    SyncUser,
)
from common.secrets import configure_keys, generate_key
from daemon.leases import take, user_slot
from tests.daemon.conftest import migrated

PASSWORD = "Onsite-System-Passw0rd!"
REFRESH = "a-refresh-token-nobody-may-read"


@dataclass
class Installation:
    root: Path
    db: Database
    env: dict[str, str]

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env, input=input)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return result

    def refused(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        return result.output

    def users(self) -> dict[str, SyncUser]:
        with self.db.session() as session:
            found = {u.mailbox: u for u in session.scalars(select(SyncUser))}
            for user in found.values():
                user.tokens  # noqa: B018 (deferred: loaded while the session is open)
            return found

    def profiles(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count(Profile.id))) or 0)


def installation(root: Path, key: str) -> Installation:
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'app.db'}"
    env = {
        "SYNCHRONIZER_INSTANCE_PATH": str(root / "instance"),
        "SYNCHRONIZER_DATABASE_URL": url,
        "SYNCHRONIZER_ENCRYPTION_KEYS": key,
        "SYNCHRONIZER_SECRET_KEY": "a test secret key of some length",
    }
    configure_keys([key])
    return Installation(root, migrated(url), env)


@pytest.fixture
def here(tmp_path: Path) -> Installation:
    made = installation(tmp_path / "here", generate_key())
    yield made
    made.db.dispose()


def seed(db: Database) -> int:
    """An Onsite + Microsoft 365 profile with settings, secrets and two users (one signed in)."""
    with db.session() as session:
        org = Organisation(name="Adatum Corp", slug="adatum")
        profile = Profile(
            organisation=org,
            name="Adatum",
            crm_kind=CrmKind.SUPEROFFICE_ONSITE,
            crm_url="https://crm.adatum.example/SuperOffice",
            crm_credentials={"username": "SYNC", "password": PASSWORD},
            groupware_kind=GroupwareKind.MICROSOFT_365,
            groupware_settings={"tenant_id": "adatum.example"},
            settings={
                "crm_time_zone": "Europe/Amsterdam",
                "sync_interval_minutes": 5,
                "contacts": "crm_to_groupware",
                "guard": {"max_deletes": 10},
                "appointment_filter": {"activity_types": None, "exclude_categories": ["Private"]},
            },
        )
        adele = SyncUser(
            profile=profile,
            crm_associate_id=700,
            mailbox="adele@adatum.example",
            display_name="Adele Vance",
            crm_username="ADELE",
            invitation_state=InvitationState.ACTIVE,
            tokens={"cache": json.dumps({"RefreshToken": REFRESH}), "needs_reauthorisation": None},
        )
        megan = SyncUser(profile=profile, crm_associate_id=701, mailbox="megan@adatum.example")
        session.add_all([org, profile, adele, megan])
        session.flush()
        return profile.id


def written(here: Installation, *args: str) -> str:
    path = here.root / "profile.toml"
    here.ok("profile", "export", "Adatum", "--output", str(path), *args)
    assert path.stat().st_mode & 0o777 == 0o600
    return path.read_text()


# --- export and import ---------------------------------------------------------------------


def test_an_exported_profile_imports_whole_where_the_key_is(here: Installation) -> None:
    """Mistake caught: a part of the profile (tenant, nested settings, a user's name or
    tokens, the credentials) left out on the way out or in."""
    seed(here.db)
    exported = written(here)
    other = installation(here.root.parent / "restored", here.env["SYNCHRONIZER_ENCRYPTION_KEYS"])
    (other.root / "p.toml").write_text(exported)
    result = other.ok("profile", "import", str(other.root / "p.toml"), "--json")
    record = json.loads(result.output)
    assert record["created"] is True
    assert record["added"] == ["adele@adatum.example", "megan@adatum.example"]
    with other.db.session() as session:
        profile = session.scalars(select(Profile)).one()
        assert profile.name == "Adatum" and profile.organisation.slug == "adatum"
        assert profile.organisation.name == "Adatum Corp"
        assert profile.crm_credentials == {"username": "SYNC", "password": PASSWORD}
        assert profile.groupware_settings == {"tenant_id": "adatum.example"}
        assert profile.settings == {
            "crm_time_zone": "Europe/Amsterdam",
            "sync_interval_minutes": 5,
            "contacts": "crm_to_groupware",
            "guard": {"max_deletes": 10},
            "appointment_filter": {"exclude_categories": ["Private"]},  # None: the default
        }
    users = other.users()
    assert users["adele@adatum.example"].invitation_state is InvitationState.ACTIVE
    assert users["adele@adatum.example"].display_name == "Adele Vance"
    assert users["adele@adatum.example"].crm_username == "ADELE"
    assert REFRESH in users["adele@adatum.example"].tokens["cache"]
    assert users["megan@adatum.example"].tokens is None
    assert users["megan@adatum.example"].invitation_state is InvitationState.INVITED
    other.db.dispose()


def test_an_export_holds_no_secret_in_clear(here: Installation) -> None:
    """Mistake caught: credentials or tokens written as they are."""
    seed(here.db)
    exported = written(here)
    assert PASSWORD not in exported and REFRESH not in exported
    document = tomllib.loads(exported)
    assert set(document["crm"]["credentials"]) == {"encrypted"}
    assert set(document["users"][0]["tokens"]) == {"encrypted"}
    bare = written(here, "--no-secrets")
    assert "encrypted =" not in bare and PASSWORD not in bare
    as_json = json.loads(here.ok("profile", "export", "1", "--json").output)
    assert as_json["profile"]["name"] == "Adatum" and PASSWORD not in json.dumps(as_json)


def test_secrets_of_another_installation_are_refused_by_name(here: Installation) -> None:
    """Mistake caught: a secret that no configured key opens is stored anyway (or the
    import dies with a traceback)."""
    seed(here.db)
    exported = written(here)
    stranger = installation(here.root.parent / "stranger", generate_key())
    (stranger.root / "p.toml").write_text(exported)
    message = stranger.refused("profile", "import", str(stranger.root / "p.toml"))
    assert "[crm]: credentials: not encrypted with any of this installation's" in message
    assert stranger.profiles() == 0
    stranger.db.dispose()


HAND_WRITTEN = """
format = 1
[profile]
name = "Northwind"
organisation = "northwind"
[crm]
kind = "superoffice_onsite"
url = "https://crm.northwind.example/SuperOffice"
[crm.credentials]
username = "SYNC"
password = "{password}"
[groupware]
kind = "google"
[settings]
crm_time_zone = "Europe/Oslo"
[[users]]
mailbox = "alice@northwind.example"
crm_associate_id = 5
state = "active"
"""


def test_a_hand_written_profile_is_stored_encrypted(here: Installation) -> None:
    """Mistake caught: credentials given in clear stored in clear."""
    path = here.root / "northwind.toml"
    path.write_text(HAND_WRITTEN.format(password=PASSWORD))
    here.ok("profile", "import", str(path))
    with here.db.engine.connect() as raw:
        stored = raw.execute(text("SELECT crm_credentials FROM profile")).scalar_one()
    assert PASSWORD not in stored
    with here.db.session() as session:
        assert session.scalars(select(Profile)).one().crm_credentials["password"] == PASSWORD
    assert here.users()["alice@northwind.example"].invitation_state is InvitationState.ACTIVE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[groupware]", '[groupware]\ncolour = "blue"'), "[groupware]: unknown key 'colour'"),
        (
            ("crm_associate_id = 5", 'crm_associate_id = "5"'),
            "crm_associate_id: expected an integer",
        ),
        (
            ("crm_associate_id = 5", "crm_associate_id = true"),
            "crm_associate_id: expected an integer",
        ),
        (("[settings]", '[settings]\nsync_speed = "fast"'), "unknown setting 'sync_speed'"),
        (("[settings]", '[settings]\nappointments = "sideways"'), "'sideways' is not a valid"),
        (
            ("[settings]", "[settings]\nguard = { max_deleted = 3 }"),
            "[settings.guard]: unknown key",
        ),
        (("[settings]", "[settings]\nsync_interval_minutes = 0"), "sync_interval_minutes"),
        (('"Europe/Oslo"', '"Europe/Atlantis"'), "not an IANA time zone"),
        (('kind = "google"', 'kind = "lotus_notes"'), "kind: 'lotus_notes' is not one of"),
        (("format = 1", "format = 2"), "format: expected 1"),
        (("alice@northwind.example", "alice at northwind"), "is not a mailbox address"),
        (('state = "active"', 'state = "asleep"'), "state: 'asleep' is not one of"),
        (
            ('state = "active"', 'state = "active"\ntokens = { cache = "x" }'),
            "only an exported { encrypted = … } value is taken",
        ),
        (
            ('kind = "superoffice_onsite"', 'kind = "superoffice_online"'),
            "tenant: SuperOffice Online needs the context id",
        ),
        (("[crm]\n", "[crm]\nurl2 = 1\n"), "[crm]: unknown key 'url2'"),
        (('name = "Northwind"', "name = 3"), "name: expected a string"),
        (("name = ", "title = "), "[profile]: unknown key 'title'"),
        (
            (
                "[[users]]",
                "[[users]]\nmailbox = 'bob@northwind.example'\ncrm_associate_id = 5\n[[users]]",
            ),
            "crm_associate_id 5 is entry 1 already",
        ),
        (
            (
                "[[users]]",
                "[[users]]\nmailbox = 'ALICE@northwind.example'\ncrm_associate_id = 6\n[[users]]",
            ),
            "is entry 1 already",
        ),
        (("format = 1", "format = 1\n[profile"), "not TOML"),
    ],
)
def test_a_bad_file_is_refused_by_name_and_nothing_is_written(
    here: Installation, change: tuple[str, str], message: str
) -> None:
    """Mistake caught: a lenient reader (unknown keys ignored, "5" taken as 5, a setting the
    daemon would later choke on stored)."""
    path = here.root / "bad.toml"
    path.write_text(HAND_WRITTEN.format(password=PASSWORD).replace(*change, 1))
    assert message in here.refused("profile", "import", str(path))
    assert here.profiles() == 0


def test_an_import_over_an_existing_profile_needs_update_and_keeps_what_the_file_lacks(
    here: Installation,
) -> None:
    """Mistakes caught: a second profile made beside the first; a file without secrets
    wiping the stored credentials and tokens; users duplicated or dropped; an associate
    changed by an import (that is a re-link)."""
    seed(here.db)
    document = tomllib.loads(written(here, "--no-secrets"))
    path = here.root / "edited.toml"

    def save(doc: dict[str, Any]) -> None:
        import tomli_w

        path.write_text(tomli_w.dumps(doc))

    document["settings"]["sync_interval_minutes"] = 30
    document["users"] = [
        {"mailbox": "ADELE@adatum.example", "crm_associate_id": 700, "state": "active"},
        {"mailbox": "nestor@adatum.example", "crm_associate_id": 702},
    ]
    save(document)
    assert "--update" in here.refused("profile", "import", str(path))
    result = json.loads(here.ok("profile", "import", str(path), "--update", "--json").output)
    assert result == {
        "profile_id": 1,
        "created": False,
        "added": ["nestor@adatum.example"],
        "updated": ["adele@adatum.example"],
        "kept": ["megan@adatum.example"],
    }
    assert here.profiles() == 1
    with here.db.session() as session:
        profile = session.scalars(select(Profile)).one()
        assert profile.settings["sync_interval_minutes"] == 30
        assert profile.crm_credentials == {"username": "SYNC", "password": PASSWORD}
    users = here.users()
    assert sorted(users) == [
        "adele@adatum.example",
        "megan@adatum.example",
        "nestor@adatum.example",
    ]
    assert REFRESH in users["adele@adatum.example"].tokens["cache"]

    document["users"][0]["crm_associate_id"] = 799
    save(document)
    message = here.refused("profile", "import", str(path), "--update")
    assert "that is a re-link" in message and "--associate 799" in message
    document["users"][0]["crm_associate_id"] = 700
    document["users"][1] = {"mailbox": "olga@adatum.example", "crm_associate_id": 701}
    save(document)
    assert "associate 701 is linked to megan" in here.refused(
        "profile", "import", str(path), "--update"
    )


# --- users ---------------------------------------------------------------------------------


def add_links(db: Database, user_id: int, profile_id: int) -> None:
    with db.session() as session:
        session.add(
            ItemLink(
                profile_id=profile_id,
                sync_user_id=user_id,
                kind=ItemKind.APPOINTMENT,
                crm_id="1",
                remote_id="AAA",
                state=LinkState.LINKED,
            )
        )
        session.add(
            Cursor(sync_user_id=user_id, kind=ItemKind.APPOINTMENT, side=Side.CRM, token="t")
        )


def counts(db: Database, user_id: int) -> tuple[int, int]:
    with db.session() as session:
        links = session.scalar(
            select(func.count(ItemLink.id)).where(ItemLink.sync_user_id == user_id)
        )
        cursors = session.scalar(
            select(func.count(Cursor.id)).where(Cursor.sync_user_id == user_id)
        )
    return int(links or 0), int(cursors or 0)


def test_a_linked_user_waits_for_their_own_sign_in_only_where_one_is_needed(
    here: Installation,
) -> None:
    """Mistakes caught: a Microsoft 365 user without tokens made active (their runs fail);
    a Google user (the service account signs in) left invited for ever; a mailbox or an
    associate linked twice in a profile."""
    seed(here.db)
    record = json.loads(
        here.ok(
            "user", "link", "Adatum", "nestor@adatum.example", "--associate", "702", "--json"
        ).output
    )
    assert record["state"] == "invited" and "signed in" in record["note"]
    path = here.root / "northwind.toml"
    path.write_text(HAND_WRITTEN.format(password=PASSWORD))
    here.ok("profile", "import", str(path))
    line = here.ok("user", "link", "Northwind", "bob@northwind.example", "--associate", "6")
    assert "bob@northwind.example (associate 6, profile 'Northwind'): active" in line.output
    assert here.users()["bob@northwind.example"].invitation_state is InvitationState.ACTIVE
    env_app = {**here.env, "SYNCHRONIZER_MICROSOFT_PERMISSION_MODE": "application"}
    applied = CliRunner().invoke(
        main, ["user", "link", "1", "lee@adatum.example", "--associate", "703"], env=env_app
    )
    assert applied.exit_code == 0 and ": active" in applied.output, applied.output

    assert "megan@adatum.example is linked" in here.refused(
        "user", "link", "Adatum", "Megan@adatum.example", "--associate", "710"
    )
    assert "associate 700 is linked to adele" in here.refused(
        "user", "link", "Adatum", "new@adatum.example", "--associate", "700"
    )
    assert "not a mailbox address" in here.refused(
        "user", "link", "Adatum", "nobody", "--associate", "711"
    )
    assert "no profile named 'Fabrikam'" in here.refused(
        "user", "link", "Fabrikam", "x@fabrikam.example", "--associate", "1"
    )


def test_unlink_stops_syncing_and_relink_resumes_where_it_stopped(here: Installation) -> None:
    """Mistakes caught: unlink dropping the links (the relink would pair everything again)
    or leaving the user scheduled; relink leaving the old error, failures or schedule."""
    profile_id = seed(here.db)
    adele = here.users()["adele@adatum.example"]
    add_links(here.db, adele.id, profile_id)
    with here.db.session() as session:
        row = session.get(SyncUser, adele.id)
        assert row is not None
        row.needs_attention = row.last_error = "AADSTS50173: the grant expired"
        row.failures = 3
    record = json.loads(here.ok("user", "unlink", "adele@adatum.example", "--json").output)
    assert record["state"] == "disabled"
    user = here.users()["adele@adatum.example"]
    assert user.invitation_state is InvitationState.DISABLED
    assert user.next_sync_at is None and user.queued_at is None
    assert counts(here.db, adele.id) == (1, 1)

    here.ok("user", "relink", "adele@adatum.example")
    user = here.users()["adele@adatum.example"]
    assert user.invitation_state is InvitationState.ACTIVE  # she has tokens
    assert user.needs_attention is None and user.last_error is None and user.failures == 0
    assert counts(here.db, adele.id) == (1, 1)


def test_relink_as_another_associate_or_mailbox_drops_what_belonged_to_the_old_one(
    here: Installation,
) -> None:
    """Mistakes caught: links of the old diary or calendar kept (the engine would pair new
    items with old ids); another account's tokens kept for a new mailbox; a relink onto a
    mailbox or associate that someone else holds."""
    profile_id = seed(here.db)
    adele = here.users()["adele@adatum.example"]
    add_links(here.db, adele.id, profile_id)
    assert "associate 701 is linked to megan" in here.refused(
        "user", "relink", "adele@adatum.example", "--associate", "701"
    )
    line = here.ok("user", "relink", "adele@adatum.example", "--associate", "720").output
    assert "links and cursors dropped" in line
    assert counts(here.db, adele.id) == (0, 0)
    user = here.users()["adele@adatum.example"]
    assert user.crm_associate_id == 720 and user.tokens is not None

    add_links(here.db, adele.id, profile_id)
    here.ok("user", "relink", "adele@adatum.example", "--mailbox", "adele.vance@adatum.example")
    user = here.users()["adele.vance@adatum.example"]
    assert user.tokens is None and user.invitation_state is InvitationState.INVITED
    assert counts(here.db, adele.id) == (0, 0)


def test_forget_removes_the_user_but_never_under_a_running_sync(here: Installation) -> None:
    """Mistakes caught: a user removed (or re-identified) while a worker syncs them, whose
    run then writes links for someone who is gone; forget leaving the links behind."""
    profile_id = seed(here.db)
    adele = here.users()["adele@adatum.example"]
    add_links(here.db, adele.id, profile_id)
    lease = take(here.db, user_slot(adele.id), "a-worker")
    assert lease is not None
    assert "a sync of adele@adatum.example is running" in here.refused(
        "user", "unlink", "adele@adatum.example", "--forget"
    )
    assert "is running" in here.refused(
        "user", "relink", "adele@adatum.example", "--associate", "730"
    )
    assert here.users()["adele@adatum.example"].crm_associate_id == 700
    with here.db.session() as session:
        row = session.get(SyncUser, adele.id)
        assert row is not None
        row.lease_owner = row.lease_expires_at = None
    record = json.loads(
        here.ok("user", "unlink", "adele@adatum.example", "--forget", "--json").output
    )
    assert record["id"] is None and "forgotten" in record["note"]
    assert "adele@adatum.example" not in here.users()
    assert counts(here.db, adele.id) == (0, 0)
    assert "no user has the mailbox" in here.refused("user", "unlink", "adele@adatum.example")
