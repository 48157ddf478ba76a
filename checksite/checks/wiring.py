"""Building a run from settings: the one place the page, the API and the CLI share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from checksite.checks.context import CheckContext, Target
from common.config import Settings
from common.ip_port import BadIpPort, parse_ip_port
from common.netguard import GuardPolicy, NetGuard

DEFAULT_DEADLINE_S = 20.0


class BadOption(ValueError):
    """A run option is malformed; the message says which and why."""


def parse_dns_server(text: str) -> str:
    """IP[:PORT] (IPv6 in brackets when a port is given), in its canonical spelling."""
    try:
        return str(parse_ip_port(text))
    except BadIpPort as exc:
        raise BadOption(f"--dns-server expects IP[:PORT]: {exc}") from None


def run_settings(
    settings: Settings,
    *,
    timeout: float | None = None,
    dns_servers: tuple[str, ...] = (),
    ca_bundle: Path | None = None,
    allow_private_networks: bool | None = None,
) -> Settings:
    """The settings with this run's overrides (command-line options) applied."""
    changes: dict[str, Any] = {}
    if timeout is not None:
        if not 1 <= timeout <= 300:
            raise BadOption("--timeout expects seconds from 1 to 300")
        changes["check_timeout_seconds"] = float(timeout)
    if dns_servers:
        changes["check_dns_servers"] = tuple(parse_dns_server(s) for s in dns_servers)
    if ca_bundle is not None:
        changes["check_ca_bundle"] = ca_bundle
    if allow_private_networks is not None:
        changes["check_allow_private_networks"] = allow_private_networks
    return dataclasses.replace(settings, **changes)


def make_guard(settings: Settings) -> NetGuard:
    policy = GuardPolicy(
        allow_private=settings.check_allow_private_networks,
        timeout=min(10.0, settings.check_timeout_seconds),
        dns_servers=settings.check_dns_servers,
        ca_bundle=settings.check_ca_bundle,
    )
    return NetGuard(policy)


def make_context(
    settings: Settings, target: Target, credentials: dict[str, str] | None = None
) -> CheckContext:
    return CheckContext(target, make_guard(settings), settings, credentials or {})


def simulator_settings(settings: Settings, summary: dict[str, Any], **app: Any) -> Settings:
    """Settings pointing the Check site at running simulators, from the summary that
    `synchronizer simulators` writes to instance/simulators.json (a file, not an import: the
    Check site never imports the simulators). `app` adds our demo application's credentials."""
    try:
        changes: dict[str, Any] = {
            "check_allow_private_networks": True,
            "check_dns_servers": (parse_dns_server(str(summary["dns"])),),
            "check_ca_bundle": Path(str(summary["ca_file"])),
            "microsoft_authority_host": summary["login"],
            "microsoft_graph_url": summary["graph"],
            "microsoft_outlook_url": summary["outlook"],
            "google_accounts_url": summary["google"],
            "google_oauth_url": summary["google"],
            "google_api_url": summary["google"],
            "superoffice_online_url": summary["superoffice"],
        }
    except KeyError as exc:
        raise BadOption(f"the simulators' summary has no {exc.args[0]!r}") from None
    return dataclasses.replace(settings, **changes, **app)
