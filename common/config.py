"""Settings in one place: embedded defaults < TOML file < SYNCHRONIZER_* environment variables.

Everything is validated at start-up; a bad value raises `ConfigError` naming the setting and
what it expects, which the CLI prints as one line. With no configuration at all the product
runs on embedded defaults: SQLite and SqliteHuey files in ./instance/, and a secret key and an
encryption key generated on first run and kept there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from common.ip_port import BadIpPort, parse_ip_port
from common.secrets import generate_key, is_valid_key

ENV_PREFIX = "SYNCHRONIZER_"
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""

    def __init__(self, setting: str, expected: str, got: object = None) -> None:
        self.setting = setting
        self.expected = expected
        shown = "" if got is None else f" (got {str(got)[:80]!r})"
        super().__init__(f"configuration error: {setting}: expected {expected}{shown}")


@dataclass(frozen=True)
class Settings:
    """Every setting the product reads. Field names are the TOML keys; env vars are upper-case."""

    instance_path: Path = Path("instance")
    database_url: str = ""  # default: sqlite:///<instance>/synchronizer.db
    queue_url: str = (
        ""  # default: sqlite:///<instance>/queue.db (SqliteHuey); redis://… for many hosts
    )
    secret_key: str = ""  # default: generated into <instance>/secret_key
    encryption_keys: tuple[str, ...] = ()  # newest first; default: generated into <instance>
    public_url: str = "http://127.0.0.1:5000"  # where users reach the app (OAuth redirect URIs)
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted (0: none).
    trusted_proxies: int = 0

    # Logging: one line per request; "json" for JSON lines.
    log_format: str = "text"
    log_level: str = "INFO"

    # The sync server's public outbound IP, which customers must allow in their firewalls.
    outbound_ip: str | None = None

    # Our Microsoft application (multi-tenant) and where Microsoft lives.
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_authority_host: str = "https://login.microsoftonline.com"
    microsoft_graph_url: str = "https://graph.microsoft.com"
    # How Synchronizer reaches mailboxes: "delegated" (each user consents for their own mailbox,
    # the product's published model) or "application" (app-only permissions, which the customer
    # restricts with an application access policy).
    microsoft_permission_mode: str = "delegated"
    # Exchange Online (its public Autodiscover v2 tells where a hybrid's mailbox lives).
    microsoft_outlook_url: str = "https://outlook.office365.com"

    # Our Google OAuth client and service account (domain-wide delegation).
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_service_account_file: Path | None = None
    google_accounts_url: str = "https://accounts.google.com"  # the consent screen
    google_oauth_url: str = "https://oauth2.googleapis.com"  # token endpoint
    google_api_url: str = "https://www.googleapis.com"  # Calendar, People, Admin SDK

    # SuperOffice Online's environment (SuperID sign-in and tenant lookup).
    superoffice_online_url: str = "https://online.superoffice.com"
    # Our SuperOffice application (its SuperID OpenID Connect client).
    superoffice_client_id: str | None = None
    superoffice_client_secret: str | None = None

    # A CA bundle the sync connectors verify services with instead of the system's (the
    # simulators' demo CA in the demo and tests); none: the system's.
    sync_ca_bundle: Path | None = None

    # Outgoing mail (invitations, alerts).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_from: str = "synchronizer@localhost"

    # The Check site's network policy.
    check_allow_private_networks: bool = False
    check_timeout_seconds: float = 20.0
    check_dns_servers: tuple[str, ...] = ()  # HOST[:PORT]; empty: the system resolver
    check_ca_bundle: Path | None = None  # extra CA to trust (the simulators' demo CA)
    check_rate_limit: str = "10 per minute"
    check_report_retention_days: int = 30  # stored reports are deleted after this many days
    # Live-progress streams one web process serves at once (each holds a thread until its
    # check ends): per client (IPv6: per /64) and in total; keep the total below the
    # server's threads per process (gunicorn --threads).
    check_streams_per_client: int = 4
    check_streams_total: int = 24

    # A bearer token GET /metrics asks for; none: /metrics answers only this host (loopback).
    metrics_token: str | None = None

    # Secrets that were generated rather than configured (a production warning).
    generated: tuple[str, ...] = field(default=(), compare=False)

    @property
    def database_backend(self) -> str:
        return make_url(self.database_url).get_backend_name()

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        environ: typing.Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read the TOML file (if any) and the environment, validate, fill defaults."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        path = config_file or env.get(ENV_PREFIX + "CONFIG")
        if path:
            raw.update(_read_toml(Path(path)))
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env and f.name != "generated":
                raw[f.name] = env[key]
        raw.update(overrides)
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: typing.Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "generated"}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(
                unknown[0].upper(), "a known setting name (see README, Configuration)"
            )
        hints = typing.get_type_hints(cls)
        values = {name: _coerce(name, hints[name], value) for name, value in raw.items()}
        settings = cls(**values)
        return settings._with_defaults()._validated()

    def _with_defaults(self) -> Settings:
        instance = self.instance_path.resolve()
        _ensure_writable_folder(instance)
        changes: dict[str, Any] = {"instance_path": instance}
        generated: list[str] = []
        if not self.database_url:
            changes["database_url"] = f"sqlite:///{instance / 'synchronizer.db'}"
        if not self.queue_url:
            changes["queue_url"] = f"sqlite:///{instance / 'queue.db'}"
        if not self.secret_key:
            changes["secret_key"] = _generated_secret(instance / "secret_key", _new_secret_key)
            generated.append("SECRET_KEY")
        if not self.encryption_keys:
            key = _generated_secret(instance / "encryption_key", generate_key)
            changes["encryption_keys"] = (key,)
            generated.append("ENCRYPTION_KEYS")
        changes["generated"] = tuple(generated)
        return dataclasses.replace(self, **changes)

    def _validated(self) -> Settings:
        _check_database_url(self.database_url)
        _check_queue_url(self.queue_url)
        for index, key in enumerate(self.encryption_keys):
            if not is_valid_key(key):
                raise ConfigError(
                    "ENCRYPTION_KEYS",
                    f"Fernet keys (32 url-safe base64-encoded bytes); key #{index + 1} is not one",
                )
        if len(self.secret_key) < 16:
            raise ConfigError("SECRET_KEY", "at least 16 characters")
        if self.log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT", "'text' or 'json'", self.log_format)
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", self.log_level)
        for name in (
            "public_url",
            "microsoft_authority_host",
            "microsoft_graph_url",
            "microsoft_outlook_url",
            "google_accounts_url",
            "google_oauth_url",
            "google_api_url",
            "superoffice_online_url",
        ):
            _check_http_url(name, getattr(self, name))
        if self.outbound_ip is not None:
            try:
                ipaddress.ip_address(self.outbound_ip)
            except ValueError:
                raise ConfigError(
                    "OUTBOUND_IP", "an IPv4 or IPv6 address", self.outbound_ip
                ) from None
        if not 0 <= self.trusted_proxies <= 5:
            raise ConfigError("TRUSTED_PROXIES", "a number of proxies from 0 to 5")
        if not 0 < self.smtp_port < 65536:
            raise ConfigError("SMTP_PORT", "a port number 1-65535", self.smtp_port)
        if not 1 <= self.check_timeout_seconds <= 300:
            raise ConfigError("CHECK_TIMEOUT_SECONDS", "a number of seconds from 1 to 300")
        if not 1 <= self.check_streams_per_client <= self.check_streams_total:
            raise ConfigError(
                "CHECK_STREAMS_PER_CLIENT", "at least 1, and at most CHECK_STREAMS_TOTAL"
            )
        for server in self.check_dns_servers:
            _check_dns_server(server)
        if not 1 <= self.check_report_retention_days <= 3650:
            raise ConfigError("CHECK_REPORT_RETENTION_DAYS", "a number of days from 1 to 3650")
        if self.microsoft_permission_mode not in ("delegated", "application"):
            raise ConfigError(
                "MICROSOFT_PERMISSION_MODE",
                "'delegated' or 'application'",
                self.microsoft_permission_mode,
            )
        for name in ("check_ca_bundle", "sync_ca_bundle", "google_service_account_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(name.upper(), "the path of a readable file", path)
        return self

    def warn_about_generated_secrets(self) -> None:
        for name in self.generated:
            log.warning(
                "%s was generated into %s: fine for a demo, but production must set "
                "SYNCHRONIZER_%s itself (and back it up)",
                name,
                self.instance_path,
                name,
            )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("CONFIG", "the path of an existing TOML file", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("CONFIG", f"valid TOML ({exc})", path) from None
    # Accept both a flat file and one with a [synchronizer] table.
    section = data.get("synchronizer", data)
    if not isinstance(section, dict):
        raise ConfigError("CONFIG", "a TOML table of settings", path)
    return dict(section)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    setting = name.upper()
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None or value == "":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(name, inner, value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(setting, "a list (comma-separated in the environment)", value)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(setting, "true or false", value)
    if hint in (int, float):
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(setting, f"a number ({hint.__name__})", value) from None
    if hint is Path:
        return Path(str(value)).expanduser()
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(setting, "a string", value)
        return str(value)
    raise ConfigError(setting, f"a value of type {hint}", value)  # pragma: no cover


def _ensure_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "INSTANCE_PATH", f"a folder that can be created ({exc.strerror})", folder
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError("INSTANCE_PATH", "a writable folder", folder)


def _new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def _generated_secret(path: Path, make: typing.Callable[[], str]) -> str:
    """Read a secret generated on an earlier run, or make one and keep it (owner-only)."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return value


def _check_database_url(url: str) -> None:
    expected = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL", expected, url) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError("DATABASE_URL", expected, parsed.drivername)


def _check_queue_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "redis", "rediss", "memory"):
        raise ConfigError("QUEUE_URL", "sqlite:///PATH, redis://HOST:PORT/DB or memory://", url)


def _check_http_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name.upper(), "an http(s):// URL", url)


def _check_dns_server(server: str) -> None:
    try:
        parse_ip_port(server)
    except BadIpPort:
        raise ConfigError(
            "CHECK_DNS_SERVERS", "IP[:PORT] entries ([IPv6]:PORT with a port)", server
        ) from None
