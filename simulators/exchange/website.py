"""A company's ordinary website on the bare domain, as a CMS serves it: every path (also
`/autodiscover/autodiscover.xml`, also a POST) answers 200 with the home page and its sign-in
form. Outlook does not take such a page for Autodiscover and tries its next method."""

from __future__ import annotations

from flask import Response

HOME_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}</title></head>
<body><header><h1>{name}</h1><nav><a href="/">Home</a> <a href="/about">About us</a></nav></header>
<main><p>Welcome to {name}.</p>
<form method="post" action="/members/login" class="login">
<label for="user">Members: user name</label><input id="user" name="user" type="text">
<label for="pass">Password</label><input id="pass" name="pass" type="password">
<button type="submit">Log in</button>
</form></main></body></html>
"""


def home_page(domain: str) -> Response:
    name = domain.split(".")[0].replace("-", " ").title()
    response = Response(HOME_PAGE.format(name=name), content_type="text/html; charset=utf-8")
    response.headers["Server"] = "nginx"
    return response
