"""The SuperOffice WebAPI over `requests`, written once for every kind of item.

Where the tenant lives: Onsite at a fixed base URL; Online wherever `/api/state/{ctx}` says
(the API host changes with load balancing and incidents, so it is looked up, kept until
`ValidUntil`, and looked up again when a call is answered 421 Misdirected Request).
Every call sends `SO-TimeZone: UTC, includeTZOffset` (dates then carry their offset and mean
one instant whatever the tenant's zone), `Accept: application/json` and the credentials
(`auth`); a 401 renews them once. Answers become the typed errors of
`common.connectors.base`: 404 NotFound, 412 PreconditionFailed, 429 (and a 503 that says when
to come back) Throttled, other 5xx and network failures Transient, other refusals Permanent.
No call is retried here except after a renewal or a new host: the engine owns retries.

Lists are the archive providers' OData (`$select`, `$filter`, `$orderBy`, `$top`); the service
never pages by itself, and pages are read by key (`… and appointmentId gt <last>`), never by
`$skip`, so rows added or removed between two pages shift nothing.
"""

from __future__ import annotations

import email.utils
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from common.connectors.base import (
    AuthExpired,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
)
from common.connectors.superoffice.auth import Credentials
from common.kinds import Side

TIME_ZONE = "UTC, includeTZOffset"
DEFAULT_RETRY_AFTER = 30.0
# Requests a connector has in flight at once. SuperOffice publishes no limit (it "may
# throttle" and meters each app); four, as Outlook allows per mailbox, keeps us polite.
SO_CONCURRENCY = 4
UNAVAILABLE = {"OfflineMaintenance", "Provisioning", "MigrationPending"}


@dataclass
class Onsite:
    """An Onsite installation: the WebAPI under its virtual directory
    (`https://crm.example.com/SuperOffice`)."""

    base_url: str

    def api_root(self, client: SuperOfficeClient) -> str:
        return self.base_url.rstrip("/") + "/api/v1"

    def forget(self) -> None:
        pass  # an Onsite address does not move


@dataclass
class Online:
    """An Online tenant (`Cust12345`), found through SuperID's tenant lookup.

    `superid_url` is the environment (`https://online.superoffice.com`, `sod`, `qaonline`);
    `endpoint` may start from a known `webapi_url` and is replaced whenever it is looked up."""

    context_id: str
    superid_url: str = "https://online.superoffice.com"
    endpoint: str | None = None
    valid_until: datetime | None = None

    def api_root(self, client: SuperOfficeClient) -> str:
        now = client.clock()
        if self.endpoint is None or (self.valid_until is not None and now >= self.valid_until):
            self._look_up(client)
        assert self.endpoint is not None
        return self.endpoint.rstrip("/") + "/api/v1"

    def forget(self) -> None:
        self.endpoint = None

    def _look_up(self, client: SuperOfficeClient) -> None:
        url = f"{self.superid_url.rstrip('/')}/api/state/{self.context_id}"
        client.count("GET", "/api/state")
        try:
            answer = client.http.get(
                url, headers={"Accept": "application/json"}, timeout=client.timeout
            )
            state = answer.json()
        except requests.RequestException as exc:
            raise Transient(f"SuperOffice tenant lookup failed: {exc}") from exc
        except ValueError as exc:
            raise Transient(f"SuperOffice tenant lookup answered {answer.status_code}") from exc
        name = str(state.get("State") or "Unknown")
        if answer.status_code != 200:
            raise Transient(f"SuperOffice tenant lookup answered {answer.status_code}")
        if not state.get("IsRunning") or not state.get("Endpoint"):
            if name in UNAVAILABLE:
                raise Transient(f"SuperOffice tenant {self.context_id} is {name}")
            raise Permanent(f"SuperOffice tenant {self.context_id} is {name}")
        self.endpoint = str(state["Endpoint"])
        self.valid_until = _parse_utc(state.get("ValidUntil"))


Site = Onsite | Online


def _parse_utc(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class SuperOfficeClient:
    """One tenant, one set of credentials. `http` should not trust the environment's CA
    settings (`trust_env = False`) so that `verify` is the one in force."""

    site: Site
    auth: Credentials
    http: requests.Session = field(default_factory=requests.Session)
    timeout: float = 30.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    calls: Counter[str] = field(default_factory=Counter)  # "GET /Appointment" → n
    server_time: datetime | None = None  # the Date of the last answer (the service's clock)
    # Connectors send several requests at once (`SO_CONCURRENCY`): one renewal for all.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, method: str, path: str) -> None:
        parts = [p for p in path.split("?")[0].split("/") if p]
        with self._lock:
            self.calls[f"{method} /{parts[0] if parts else ''}"] += 1

    # --- calls ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One call to `{api}/v1{path}`; its answer when it is a success (2xx or 304)."""
        renewed = moved = False
        while True:
            root = self.site.api_root(self)
            with self._lock:
                credentials = self.auth.headers(self.http, self.timeout)
            sent = {
                "Accept": "application/json",
                "SO-TimeZone": TIME_ZONE,
                **credentials,
                **(headers or {}),
            }
            self.count(method, path)
            try:
                answer = self.http.request(
                    method, root + path, params=params, json=json, headers=sent,
                    timeout=self.timeout, allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                raise Transient(f"SuperOffice {method} {path}: {exc}") from exc
            self._note_time(answer)
            if answer.status_code == 401 and not renewed:
                renewed = True
                with self._lock:  # renewed by a request alongside already, or now
                    fresh = self.auth.headers(self.http, self.timeout) != credentials
                    if fresh or self.auth.renew(self.http, self.timeout):
                        continue
            if answer.status_code == 421 and not moved:
                moved = True  # the tenant moved to another host: look it up again
                self.site.forget()
                continue
            if answer.status_code < 300 or answer.status_code == 304:
                return answer
            raise _error(method, path, answer)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def rows(
        self,
        resource: str,
        *,
        key: str,
        select: Iterable[str],
        where: str,
        after: int = 0,
        top: int,
    ) -> list[dict[str, Any]]:
        """One page of an archive list: `top` rows matching `where` with `key` above
        `after`, in key order (`$orderBy` the primary key, as the best practice says)."""
        columns = [key, *[c for c in select if c != key]]
        restriction = f"({where}) and {key} gt {after}" if after else where
        params = {
            "$select": ",".join(columns),
            "$filter": restriction,
            "$orderBy": key,
            "$top": str(top),
        }
        body = self.get(resource, params)
        return list(body.get("value") or [])

    def now(self) -> datetime:
        """The earlier of the service's time (its last answer's Date) and ours: a listing
        that starts now lists changes from no later than either clock says."""
        ours = self.clock()
        return min(ours, self.server_time) if self.server_time is not None else ours

    def _note_time(self, answer: requests.Response) -> None:
        text = answer.headers.get("Date")
        if not text:
            return
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return
        self.server_time = when if when.tzinfo else when.replace(tzinfo=UTC)


def _message(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200] or answer.reason
    if isinstance(body, dict):
        return str(body.get("ErrorMessage") or body.get("Message") or body)[:500]
    return str(body)[:200]


def _retry_after(answer: requests.Response) -> float | None:
    text = answer.headers.get("Retry-After")
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error(method: str, path: str, answer: requests.Response) -> Exception:
    status = answer.status_code
    what = f"SuperOffice {method} {path}: {status} {_message(answer)}"
    if status == 401:  # after a renewal, or with nothing to renew (a password)
        refused = f"SuperOffice refused the sign-in: {_message(answer)} ({method} {path})"
        return AuthExpired(refused, Side.CRM)
    if status == 404:
        return NotFound(what)
    if status == 412:
        return PreconditionFailed(what)
    wait = _retry_after(answer)
    if status == 429 or (status == 503 and wait is not None):
        return Throttled(wait if wait is not None else DEFAULT_RETRY_AFTER, what)
    if status >= 500 or status == 421:
        return Transient(what)
    return Permanent(what)


def http_date(updated: datetime) -> str:
    """An UpdatedDate as an HTTP date (If-Unmodified-Since is second-grained)."""
    return email.utils.format_datetime(updated.astimezone(UTC), usegmt=True)


def parse_updated(text: str) -> datetime:
    """`CreatedDate`/`UpdatedDate`: UTC, written without an offset."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def listing_day(moment: datetime, margin: timedelta = timedelta(minutes=10)) -> str:
    """The UTC day a listing that starts at `moment` lists changes from, as `YYYY-MM-DD`:
    a margin earlier, so that a clock a little ahead of the service's loses nothing."""
    return (moment - margin).astimezone(UTC).date().isoformat()
