"""EWS ConvertId between the id formats clients use."""

from __future__ import annotations

import base64

from lxml import etree

from .access import Caller, MailboxAccess
from .soap import error, response_root, success
from .xmlns import XSI, m, sub


class ConvertOperations(MailboxAccess):
    # --- ConvertId --------------------------------------------------------------------------
    def convert_id(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("ConvertId")
        destination = op.get("DestinationFormat", "EwsId")
        for source in op.find(m("SourceIds")):
            raw = self._id_bytes(source.get("Format", "EwsId"), source.get("Id", ""))
            if raw is None:
                error(messages, "ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
                continue
            msg = success(messages, "ConvertId")
            alternate = sub(
                msg,
                m("AlternateId"),
                Format=destination,
                Id=self._id_text(destination, raw),
                Mailbox=source.get("Mailbox", caller.mailbox),
            )
            alternate.set(f"{{{XSI}}}type", "t:AlternateIdType")
        return root

    @staticmethod
    def _id_bytes(id_format: str, value: str) -> bytes | None:
        try:
            if id_format == "HexEntryId":
                raw = bytes.fromhex(value)
            elif id_format == "OwaId":
                raw = base64.urlsafe_b64decode(value)
            else:
                raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        return raw if len(raw) >= 8 else None

    @staticmethod
    def _id_text(id_format: str, raw: bytes) -> str:
        if id_format == "HexEntryId":
            return raw.hex().upper()
        if id_format == "OwaId":
            return base64.urlsafe_b64encode(raw).decode()
        return base64.b64encode(raw).decode()
