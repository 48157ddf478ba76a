"""People working in the simulated services, for the demo and the benchmarks: a Microsoft 365
user editing their calendar (Outlook, through Graph) and a SuperOffice Online user editing
their diary (through the REST API, signed in to SuperID), as their own clients would. Nothing
here goes through Synchronizer: these are the edits it has to notice.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from simulators.world.microsoft import SYNCHRONIZER_APP_ID, SYNCHRONIZER_SECRET
from simulators.world.sign_in import authorize, redeem
from simulators.world.superoffice import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD

REDIRECT = "http://127.0.0.1:5000/auth/superoffice/callback"  # registered for the demo app


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class Outlook:
    """A Microsoft 365 tenant's calendars as their owners see them (Outlook's edits reach
    Graph's store as any client's do; here through an app-only Graph token)."""

    def __init__(self, http: requests.Session, login_url: str, graph_url: str, tenant: str):
        self.http, self.graph = http, graph_url.rstrip("/") + "/v1.0"
        token = redeem(
            http,
            f"{login_url.rstrip('/')}/{tenant}/oauth2/v2.0/token",
            grant_type="client_credentials",
            client_id=SYNCHRONIZER_APP_ID,
            client_secret=SYNCHRONIZER_SECRET,
            scope="https://graph.microsoft.com/.default",
        )
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(
            method, self.graph + path, headers=self.headers, timeout=30, **kwargs
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def create(self, mailbox: str, subject: str, start: datetime, end: datetime) -> str:
        body = {
            "subject": subject,
            "start": {"dateTime": _stamp(start), "timeZone": "UTC"},
            "end": {"dateTime": _stamp(end), "timeZone": "UTC"},
        }
        made = self._call("POST", f"/users/{quote(mailbox)}/events", json=body)
        return str(made["id"])

    def rename(self, mailbox: str, event_id: str, subject: str) -> None:
        self._call(
            "PATCH", f"/users/{quote(mailbox)}/events/{quote(event_id)}", json={"subject": subject}
        )

    def subject(self, mailbox: str, event_id: str) -> str | None:
        found = self._call("GET", f"/users/{quote(mailbox)}/events/{quote(event_id)}")
        return str(found.get("subject")) if found else None

    def find(self, mailbox: str, subject: str, start: datetime, end: datetime) -> str | None:
        """The id of the event called `subject` between `start` and `end`, if there is one."""
        query = urlencode({"startDateTime": _stamp(start) + "Z", "endDateTime": _stamp(end) + "Z"})
        url = f"/users/{quote(mailbox)}/calendarView?{query}"
        while url:
            page = self._call("GET", url.replace(self.graph, ""))
            for event in page.get("value") or []:
                if event.get("subject") == subject:
                    return str(event["id"])
            url = page.get("@odata.nextLink") or ""
        return None


class SuperOfficeDiary:
    """One SuperOffice Online user's diary, as they see it (signed in to SuperID)."""

    def __init__(self, http: requests.Session, online_url: str, context: str, email: str) -> None:
        base = online_url.rstrip("/")
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "client_id": DEMO_CLIENT_ID,
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "openid",
                "state": secrets.token_urlsafe(8),
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
                "acr_values": f"tenant:{context}",
            }
        )
        back = authorize(
            http,
            f"{base}/login/common/oauth/authorize?{query}",
            username=email,
            password=DEMO_PASSWORD,
        )
        tokens = redeem(
            http,
            f"{base}/login/common/oauth/tokens",
            grant_type="authorization_code",
            code=back["code"],
            redirect_uri=REDIRECT,
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            code_verifier=verifier,
        )
        self.http, self.api = http, f"{base}/{context}/api/v1"
        self.headers = {
            "Authorization": f"Bearer {tokens['access_token']}",
            "SO-TimeZone": "UTC, includeTZOffset",
            "Accept": "application/json",
        }

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(
            method, self.api + path, headers=self.headers, timeout=30, **kwargs
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def create(self, title: str, start: datetime, end: datetime) -> int:
        body = {"Title": title, "StartDate": _stamp(start) + "Z", "EndDate": _stamp(end) + "Z"}
        return int(self._call("POST", "/Appointment", json=body)["AppointmentId"])

    def rename(self, appointment_id: int, title: str) -> None:
        entity = self._call("GET", f"/Appointment/{appointment_id}")
        self._call("PUT", f"/Appointment/{appointment_id}", json={**entity, "Title": title})

    def title(self, appointment_id: int) -> str | None:
        return str(self._call("GET", f"/Appointment/{appointment_id}").get("Title"))

    def find(self, associate_id: int, title: str) -> int | None:
        """The id of the associate's appointment called `title`, if there is one."""
        params = {
            "$select": "appointmentId,appointment/title",
            "$filter": f"associateId associateIsOneOf ({associate_id})",
            "$top": "1000",
        }
        rows = self._call("GET", "/Archive/FindAppointment", params=params).get("value") or []
        for row in rows:
            if row.get("appointment/title") == title:
                return int(row["appointmentId"])
        return None
