"""The EWS SOAP endpoint: envelope in, envelope (or fault) out."""

from __future__ import annotations

import collections
import logging
import threading

from flask import Response
from lxml import etree

from simulators.platform.control import claim_fault

from .impersonation import ImpersonationRefused, impersonated
from .operations import Caller
from .organisation import Runtime
from .soap import (
    SERVER_BUSY_TEXT,
    SchemaViolation,
    envelope,
    error,
    fault,
    response_root,
    schema_fault,
    server_busy,
)
from .store import MailboxUser, StoreError
from .xmlns import SOAP, BadXml, local, parse, t, to_bytes

XML = "text/xml; charset=utf-8"
DEFAULT_BACK_OFF_MS = 500


class OperationCounter:
    """How many times each EWS operation was called, per organisation (for tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def _fault_response(body: bytes) -> Response:
    return Response(body, status=500, content_type=XML)


def handle(runtime: Runtime, user: MailboxUser, body: bytes, counter: OperationCounter) -> Response:
    budget = runtime.budget
    if not budget.acquire(user.address):
        text = (
            f"{SERVER_BUSY_TEXT} The user has exceeded the policy part 'MaxConcurrency', "
            f"policy value '{budget.limit}', Budget type: 'Ews'."
        )
        return _fault_response(fault("ErrorServerBusy", text))
    try:
        return _handle(runtime, user, body, counter)
    finally:
        budget.release(user.address)


def _handle(
    runtime: Runtime, user: MailboxUser, body: bytes, counter: OperationCounter
) -> Response:
    try:
        root = parse(body)
    except BadXml as exc:
        return _fault_response(
            fault("ErrorSchemaValidation", f"The request failed schema validation: {exc}")
        )
    header = root.find(f"{{{SOAP}}}Header")
    soap_body = root.find(f"{{{SOAP}}}Body")
    if soap_body is None or len(soap_body) == 0:
        return _fault_response(fault("ErrorSchemaValidation", "The request has no SOAP body."))
    operation = soap_body[0]
    name = local(operation.tag)
    counter.count(f"{runtime.org.domain} {name}")

    requested = header.find(t("RequestServerVersion")) if header is not None else None
    if requested is not None and requested.get("Version") not in runtime.build.api_versions:
        return _fault_response(
            fault("ErrorInvalidServerVersion", "The specified server version is invalid.")
        )
    busy = claim_fault("server_busy")
    if busy is not None:
        return _fault_response(server_busy(int(busy.get("back_off_ms", DEFAULT_BACK_OFF_MS))))

    try:
        acting_as = impersonated(runtime.store, user, header)
    except ImpersonationRefused as exc:
        return _fault_response(fault(exc.code, exc.text))
    caller = Caller(user=user.address.lower(), impersonated=acting_as)

    handler = runtime.operations.handlers.get(name)
    if handler is None:
        return _fault_response(
            fault("ErrorInvalidRequest", f"The request is invalid: {name} is not supported.")
        )
    if name == "SyncFolderItems" and claim_fault("delta_expired") is not None:
        response, messages = response_root(name)
        error(
            messages,
            name,
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid.",
        )
    else:
        with runtime.store.lock:
            try:
                response = handler(operation, caller)
            except SchemaViolation as exc:
                return _fault_response(schema_fault(exc))
            except StoreError as exc:
                response, messages = response_root(name)
                error(messages, name, exc.code, exc.text)
            except (ValueError, KeyError, IndexError, TypeError, StopIteration, AttributeError):
                # A request this simulator cannot make sense of: answer as Exchange does when
                # something unexpected breaks, and keep the cause in the log.
                logging.getLogger(__name__).exception("EWS %s failed", name)
                return _fault_response(
                    fault(
                        "ErrorInternalServerError",
                        "An internal server error occurred. The operation failed.",
                    )
                )
    if not isinstance(response, etree._Element):
        # GetStreamingEvents: a hanging response, one envelope per message as events happen.
        messages = response
        return Response(
            (to_bytes(envelope(runtime.build, message)) for message in messages),
            content_type=XML,
        )
    return Response(to_bytes(envelope(runtime.build, response)), content_type=XML)
