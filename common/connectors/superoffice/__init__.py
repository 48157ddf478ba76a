"""The SuperOffice connector (Onsite and Online): `client` (where, who, errors, paging),
`listing` (changes by content, deletions by reconciliation), one module per kind
(`appointments`, `persons`), `series` (recurrences), `mapping`, `stamps` and `webhooks`."""

from common.connectors.superoffice.appointments import SuperOfficeAppointments
from common.connectors.superoffice.auth import Basic, OAuthTokens
from common.connectors.superoffice.client import Online, Onsite, SuperOfficeClient
from common.connectors.superoffice.mapping import Tenant
from common.connectors.superoffice.persons import SuperOfficePersons
from common.connectors.superoffice.stamps import Stamps

__all__ = [
    "Basic",
    "OAuthTokens",
    "Online",
    "Onsite",
    "Stamps",
    "SuperOfficeAppointments",
    "SuperOfficeClient",
    "SuperOfficePersons",
    "Tenant",
]
