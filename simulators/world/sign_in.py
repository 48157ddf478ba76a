"""A person at the simulated sign-in pages, for the demo and the benchmarks: what a browser
would do at SuperID's sign-in form and at Entra's consent screen, done with requests.

`authorize(http, url)` opens an OAuth authorize URL of either simulator, signs in or accepts
as asked, and returns the parameters the redirect back to the client carried (`code`,
`state`, … or `error`; for `response_mode=form_post`, the fields of the form that posts them). The client then redeems the code as it always does (msal, or a POST
to the token endpoint); `redeem` is that POST for clients without a library.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import requests

_SUPERID_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ENTRA_TICKET = re.compile(r"name='ticket' value='([^']+)'")
_ENTRA_POSTED = re.compile(r"<input type='hidden' name='([^']*)' value='([^']*)'>")


class SignInFailed(Exception):
    pass


def authorize(
    http: requests.Session, url: str, *, username: str = "", password: str = ""
) -> dict[str, str]:
    """Follow an authorize URL to its redirect back to the client: SuperID's form is filled
    with `username` and `password`; Entra signs in by the URL's login_hint, and its consent
    screen, when shown, is accepted."""
    answer = http.get(url, allow_redirects=False, timeout=30)
    if answer.status_code == 200 and 'name="username"' in answer.text:  # SuperID's form
        fields = {
            html.unescape(k): html.unescape(v) for k, v in _SUPERID_FIELD.findall(answer.text)
        }
        fields |= {"username": username, "password": password}
        answer = http.post(url.split("?", 1)[0], data=fields, allow_redirects=False, timeout=30)
    elif answer.status_code == 200 and "Permissions requested" in answer.text:  # Entra
        ticket = _ENTRA_TICKET.search(answer.text)
        if ticket is None:
            raise SignInFailed("Entra's consent screen has no ticket")
        answer = http.post(
            url.split("?", 1)[0] + "/consent",
            data={"ticket": ticket.group(1), "decision": "accept"},
            allow_redirects=False,
            timeout=30,
        )
    posted = _ENTRA_POSTED.findall(answer.text) if answer.status_code == 200 else []
    if posted:  # response_mode=form_post: the page that posts the answer back to the client
        return {html.unescape(k): html.unescape(v) for k, v in posted}
    location = answer.headers.get("Location", "")
    if answer.status_code not in (302, 303) or not location:
        raise SignInFailed(
            f"no redirect back to the client ({answer.status_code}): {answer.text[:300]}"
        )
    return dict(parse_qsl(urlsplit(location).query))


def redeem(http: requests.Session, token_url: str, **form: str) -> dict[str, object]:
    """POST the token request; its JSON answer (SignInFailed when it is an error)."""
    answer = http.post(token_url, data=form, timeout=30)
    body = answer.json()
    if answer.status_code != 200 or "access_token" not in body:
        raise SignInFailed(f"{token_url}: {body}")
    return body
