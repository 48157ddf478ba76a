"""A Citrix NetScaler (Gateway) style reverse proxy: unauthenticated requests get a login page.

Clients such as exchangelib then see a 302 to an HTML page instead of a 401 challenge, which is
what the Check site has to recognise and explain.
"""

from __future__ import annotations

from flask import Request, Response

LOGIN_PATHS = ("/logon/LogonPoint/tmindex.html", "/vpn/index.html")
SESSION_COOKIE = "NSC_AAAC"

LOGIN_HTML = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Citrix Gateway</title>
<link rel="stylesheet" href="/logon/LogonPoint/receiver/css/ctxs.core.min.css"></head>
<body class="logon"><div id="logonbox-container">
<form method="post" action="/cgi/login" name="vpnForm" autocomplete="off">
<label for="login">User name</label><input type="text" id="login" name="login">
<label for="passwd">Password</label><input type="password" id="passwd" name="passwd">
<input type="submit" id="Log_On" value="Log On">
</form></div></body></html>
"""


def needs_login(request: Request) -> bool:
    return SESSION_COOKIE not in request.cookies


def login_page() -> Response:
    response = Response(LOGIN_HTML, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return response
