"""Requests to Microsoft Graph for one mailbox, written once: tokens, paging, `$batch`,
Outlook's throttling, and Graph's errors as the connector's typed errors.

- Tokens come from a `TokenSource` (`auth.DelegatedTokens`); a 401 redeems the refresh token
  once, then the request is sent again; a second 401 is `AuthExpired`.
- Every request asks for immutable ids (`Prefer: IdType="ImmutableId"`), so an item keeps
  its id when it moves between folders; each part of a batch asks for them itself, since a
  part inherits nothing of the outer request but its `Authorization`.
- `send` takes any number of requests: one is sent as it is, more go in `$batch` requests of
  at most 20 parts (their URLs relative to the version). Each part is answered on its own.
- At most four requests are in flight per mailbox, in this process (Outlook's
  MailboxConcurrency limit): a single request holds one slot, a batch as many as Outlook runs
  of it at once. One batch runs its parts four at a time (four slots). More than one batch
  (more than 20 requests) are sent up to four at once, each a `dependsOn` chain, which
  Outlook runs one part at a time on one of the mailbox's connections (one slot each): the
  network's round trips overlap instead of adding up. A part a chain did not run because an
  earlier one failed (424) is sent again in the next chain, at no cost to the attempts.
- 429 (and 503) are answered with `Retry-After`, per request and per part: what was throttled
  is sent again after the longest wait asked for, when that is short (`max_sleep`); a longer
  one, or throttling that goes on, becomes `Throttled` for the engine to reschedule. Each
  batch in flight waits for its own parts only.
- A lost answer (a dropped connection, a timeout) is asked again only for requests that may
  be repeated: reads, and creates carrying a `transactionId` (Graph answers a repeated one
  with the first event); anything else is `Transient`, and the engine looks before it
  retries.

Sources: JSON batching and its Outlook limits
(https://learn.microsoft.com/en-us/graph/json-batching, "Sequencing requests with the
dependsOn property"; https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits),
throttling
(https://learn.microsoft.com/en-us/graph/throttling), immutable ids
(https://learn.microsoft.com/en-us/graph/outlook-immutable-id), errors
(https://learn.microsoft.com/en-us/graph/errors).
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from common.connectors.base import (
    AuthExpired,
    ConnectorError,
    CursorExpired,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
)
from common.kinds import Side

GRAPH_ROOT = "https://graph.microsoft.com"
VERSION = "/v1.0"
MAX_BATCH = 20  # parts in one $batch
MAILBOX_CONCURRENCY = 4  # requests in flight per mailbox (Outlook's limit)
WRITES_AT_ONCE = MAX_BATCH * MAILBOX_CONCURRENCY  # a connector's batch: four $batches in flight
IMMUTABLE_IDS = 'IdType="ImmutableId"'


class TokenSource(Protocol):
    def access_token(self, *, force_refresh: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One Graph request: `url` relative to the version (`/me/events`) or a link Graph gave."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    repeatable: bool | None = None  # None: only reads may be sent again after a lost answer

    @property
    def may_repeat(self) -> bool:
        return self.method == "GET" if self.repeatable is None else self.repeatable


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message", "")) if isinstance(error, dict) else str(self.body or "")

    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


Result = Answer | ConnectorError
"""An answer (any status: see `error_of`), or what stood in its way (throttling that did not
end, expired credentials, a lost connection)."""


def error_of(call: Call, result: Result) -> ConnectorError | None:
    """Graph's answer as the connector's typed error (None for a success)."""
    if isinstance(result, ConnectorError):
        return result
    if result.ok:
        return None
    status, code = result.status, result.code
    what = f"{call.method} {call.url.split('?')[0]}: {status} {code}: {result.message}".strip()
    if status == 404 and code == "MailboxNotEnabledForRESTAPI":
        return Permanent(what)  # no Exchange Online mailbox: nothing to retry
    if status == 404:
        return NotFound(what)
    if status == 410:
        return CursorExpired(what)
    if status == 412 or (status == 409 and code == "ErrorIrresolvableConflict"):
        return PreconditionFailed(what)
    if status in (429, 503) and "Retry-After" in result.headers:
        return Throttled(retry_after(result.headers) or 1.0, what)
    if status == 401:
        return AuthExpired(what, Side.GROUPWARE)
    if status >= 500 or status in (408, 429):
        return Transient(what)
    return Permanent(what)


def check(call: Call, result: Result) -> Answer:
    """The successful answer, or its typed error raised."""
    error = error_of(call, result)
    if error is not None:
        raise error
    assert isinstance(result, Answer)
    return result


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date)."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class MailboxSlots:
    """The requests in flight to each mailbox from this process, at most `limit` at once.
    Shared by every client of a mailbox (its calendar's and its contacts' connectors)."""

    _all: dict[str, MailboxSlots] = {}
    _all_lock = threading.Lock()

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._cond = threading.Condition()

    @classmethod
    def of(cls, key: str, limit: int = MAILBOX_CONCURRENCY) -> MailboxSlots:
        with cls._all_lock:
            slots = cls._all.get(key)
            if slots is None:
                slots = cls._all[key] = cls(limit)
            return slots

    def hold(self, n: int) -> _Held:
        return _Held(self, min(max(1, n), self.limit))

    def _acquire(self, n: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight + n <= self.limit)
            self.in_flight += n

    def _release(self, n: int) -> None:
        with self._cond:
            self.in_flight -= n
            self._cond.notify_all()


class _Held:
    def __init__(self, slots: MailboxSlots, n: int) -> None:
        self.slots, self.n = slots, n

    def __enter__(self) -> None:
        self.slots._acquire(self.n)

    def __exit__(self, *exc: object) -> None:
        self.slots._release(self.n)


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override a configured CA
    return session


class GraphClient:
    """Graph for one user's mailbox (delegated: `/me`)."""

    def __init__(
        self,
        tokens: TokenSource,
        mailbox: str,
        *,
        root: str = GRAPH_ROOT,
        session: requests.Session | None = None,
        max_sleep: float = 5.0,
        attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
    ) -> None:
        self.tokens = tokens
        self.mailbox = mailbox.lower()
        self.root = root.rstrip("/")
        self.session = session or new_session()
        self.max_sleep = max_sleep
        self.attempts = attempts
        self.sleep = sleep
        self.timeout = timeout
        self.slots = MailboxSlots.of(f"{self.root}|{self.mailbox}")
        self.calls: Counter[str] = Counter()  # "http" requests made, batch "parts" sent
        self._lock = threading.Lock()  # for `calls` and `_refused`, written by each batch
        self._refused: set[str] = set()  # access tokens Graph refused (already refreshed)

    # --- reading ---------------------------------------------------------------------------

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        call = Call("GET", url, headers=dict(headers or {}))
        return check(call, self.send([call])[0]).json()

    def pages(self, url: str, headers: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink`."""
        next_url: str | None = url
        while next_url:
            page = self.get(next_url, headers)
            yield from page.get("value") or ()
            next_url = page.get("@odata.nextLink")

    # --- sending ---------------------------------------------------------------------------

    def send(self, calls: Sequence[Call]) -> list[Result]:
        """Each call's answer, in order: alone as a plain request, several in `$batch`es of
        at most 20 (more than one batch: up to four at once, each a chain), throttled parts
        sent again as Graph asks."""
        chunks = _balanced(list(calls), MAX_BATCH)
        if len(chunks) <= 1:
            return self._send_chunk(chunks[0], chained=False) if chunks else []
        workers = min(len(chunks), MAILBOX_CONCURRENCY)
        with ThreadPoolExecutor(workers, thread_name_prefix="graph-batch") as pool:
            answered = list(pool.map(lambda chunk: self._send_chunk(chunk, chained=True), chunks))
        return [result for each in answered for result in each]

    def _send_chunk(self, calls: list[Call], *, chained: bool) -> list[Result]:
        results: dict[int, Answer | _Lost] = {}
        pending = list(range(len(calls)))
        refreshed = False
        attempt = 1
        while True:
            answers, token = self._dispatch([calls[i] for i in pending], chained)
            again: list[int] = []
            wait = 0.0
            unauthorised = retrying = False
            for index, answer in zip(pending, answers, strict=True):
                results[index] = answer
                if isinstance(answer, _Lost):
                    if calls[index].may_repeat:
                        again.append(index)
                        wait, retrying = max(wait, 1.0), True
                elif answer.status == 401 and not refreshed:
                    again.append(index)
                    unauthorised = retrying = True
                elif _throttled(answer):
                    again.append(index)
                    wait = max(wait, retry_after(answer.headers) or min(2.0**attempt, 30.0))
                    retrying = True
                elif chained and answer.status == 424:
                    again.append(index)  # not run: a part before it in the chain failed
            if not again:
                break
            if unauthorised:
                self._refresh(token)  # AuthExpired if refused
                refreshed = True
            if retrying and (attempt == self.attempts or wait > self.max_sleep):
                return [
                    _given_up(calls[i], results[i], wait) if i in again else _final(calls[i], r)
                    for i, r in sorted(results.items())
                ]
            if wait:
                self.sleep(wait)
            attempt += retrying  # a chain's unrun parts cost no attempt: each round runs one
            pending = again
        return [_final(calls[i], r) for i, r in sorted(results.items())]

    def _refresh(self, refused: str) -> None:
        """A new access token after Graph refused `refused`: once, however many batches in
        flight were refused it."""
        with self._lock:
            if refused in self._refused:
                return
            self.tokens.access_token(force_refresh=True)
            self._refused.add(refused)

    def _dispatch(self, calls: list[Call], chained: bool) -> tuple[list[Answer | _Lost], str]:
        token = self.tokens.access_token()
        if len(calls) == 1:
            with self.slots.hold(1):
                return [self._plain(calls[0], token)], token
        with self.slots.hold(1 if chained else len(calls)):
            return self._batch(calls, token, chained), token

    def _count(self, **counts: int) -> None:
        with self._lock:
            self.calls.update(counts)

    def _plain(self, call: Call, token: str) -> Answer | _Lost:
        url = call.url if call.url.startswith("http") else f"{self.root}{VERSION}{call.url}"
        headers = {"Authorization": f"Bearer {token}", **self._headers(call)}
        self._count(http=1)
        try:
            response = self.session.request(
                call.method,
                url,
                json=dict(call.body) if call.body is not None else None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return _Lost(f"{type(exc).__name__}: {exc}")
        return Answer(response.status_code, dict(response.headers), _json_of(response))

    def _batch(self, calls: list[Call], token: str, chained: bool) -> list[Answer | _Lost]:
        parts = []
        for n, call in enumerate(calls):
            part: dict[str, Any] = {
                "id": str(n + 1),
                "method": call.method,
                "url": self._relative(call.url),
                "headers": self._headers(call),
            }
            if chained and n:
                part["dependsOn"] = [str(n)]
            if call.body is not None:
                part["body"] = dict(call.body)
                part["headers"]["Content-Type"] = "application/json"
            parts.append(part)
        self._count(http=1, parts=len(parts))
        try:
            response = self.session.post(
                f"{self.root}{VERSION}/$batch",
                json={"requests": parts},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return [_Lost(f"{type(exc).__name__}: {exc}")] * len(calls)
        outer = Answer(response.status_code, dict(response.headers), _json_of(response))
        if not outer.ok:
            return [outer] * len(calls)  # the batch itself was refused: no part ran
        by_id = {str(r.get("id")): r for r in outer.json().get("responses") or ()}
        answers: list[Answer | _Lost] = []
        for n in range(len(calls)):
            found = by_id.get(str(n + 1))
            if found is None:
                answers.append(_Lost("the batch answered without this part"))
                continue
            answers.append(
                Answer(int(found.get("status", 500)), found.get("headers") or {}, found.get("body"))
            )
        return answers

    def _headers(self, call: Call) -> dict[str, str]:
        headers = dict(call.headers)
        prefer = [IMMUTABLE_IDS] + [v for k, v in call.headers.items() if k.lower() == "prefer"]
        headers = {k: v for k, v in headers.items() if k.lower() != "prefer"}
        headers["Prefer"] = ", ".join(prefer)
        return headers

    def _relative(self, url: str) -> str:
        """A part's URL, relative to the version as `$batch` wants it."""
        for prefix in (f"{self.root}{VERSION}", VERSION):
            if url.startswith(prefix):
                return url[len(prefix) :]
        if url.startswith("http"):
            return "/" + url.split(VERSION + "/", 1)[-1]
        return url


@dataclass(frozen=True, slots=True)
class _Lost:
    """No answer came (a dropped connection, a timeout)."""

    reason: str


def _throttled(answer: Answer) -> bool:
    return answer.status == 429 or (answer.status == 503 and "Retry-After" in answer.headers)


def _given_up(call: Call, result: Answer | _Lost, wait: float) -> Result:
    """A call still throttled (or unanswered, or not run by its chain) when the client
    stops trying."""
    if isinstance(result, Answer) and _throttled(result):
        what = f"{call.method} {call.url.split('?')[0]}: throttled"
        return Throttled(max(wait, retry_after(result.headers) or 1.0), what)
    if isinstance(result, Answer) and result.status == 424:
        what = f"{call.method} {call.url.split('?')[0]}: not sent, the mailbox is throttled"
        return Throttled(max(wait, 1.0), what)
    return _final(call, result)


def _balanced(calls: list[Call], size: int) -> list[list[Call]]:
    """`calls` in as few chunks of at most `size` as can hold them, of nearly equal length
    (chains in flight together end together)."""
    if not calls:
        return []
    count = math.ceil(len(calls) / size)
    base, extra = divmod(len(calls), count)
    chunks, start = [], 0
    for n in range(count):
        end = start + base + (1 if n < extra else 0)
        chunks.append(calls[start:end])
        start = end
    return chunks


def _final(call: Call, result: Answer | _Lost) -> Result:
    if isinstance(result, _Lost):
        return Transient(f"{call.method} {call.url.split('?')[0]}: {result.reason}")
    if isinstance(result, Answer) and result.status == 401:
        return AuthExpired(f"Graph refused the refreshed token: {result.message}", Side.GROUPWARE)
    return result


def _json_of(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
