"""The HTML pages of the simulated Google sign-in and consent screens (Jinja, autoescaped)."""

_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto;color:#202124}
.box{border:1px solid #dadce0;border-radius:8px;padding:2rem}h1{font-weight:400}
.err{color:#d93025}button{padding:.5rem 1.5rem;margin-right:.5rem}</style></head><body>
<div class="box"><p>Google (simulated)</p>"""
_FOOT = "</div></body></html>"

SIGN_IN_PAGE = (
    _HEAD.replace("{{ title }}", "Sign in - Google Accounts")
    + """<h1>Sign in</h1><p>to continue</p>
<form method="get" action="">
{% for key, value in params.items() if key != "email" %}
<input type="hidden" name="{{ key }}" value="{{ value }}">{% endfor %}
<label>Email <input type="email" name="email" autofocus required></label>
{% if error %}<p class="err">{{ error }}</p>{% endif %}
<button type="submit">Next</button></form>"""
    + _FOOT
)

CONSENT_PAGE = (
    _HEAD.replace("{{ title }}", "Sign in - Google Accounts")
    + """<h1>{{ app }} wants access to your Google Account</h1><p>{{ email }}</p>
<form method="post" action="/o/oauth2/v2/auth/decision">
<input type="hidden" name="ticket" value="{{ ticket }}">
<p>Select what {{ app }} can access</p>
{% for scope in scopes %}<label><input type="checkbox" name="scope" value="{{ scope }}" checked>
{{ scope }}</label><br>{% endfor %}
<p><button type="submit" name="decision" value="deny">Cancel</button>
<button type="submit" name="decision" value="allow">Continue</button></p></form>"""
    + _FOOT
)

BLOCKED_PAGE = (
    _HEAD.replace("{{ title }}", "Access blocked")
    + """<h1>Access blocked: {{ app }}'s request does not comply with your organization's
policies</h1><p>{{ email }}</p>
<p>Access to your account data is restricted by policies within your organization. Please
contact the administrator of your organization for more information.</p>
<p class="err">Error 400: admin_policy_enforced</p>"""
    + _FOOT
)

ERROR_PAGE = (
    _HEAD.replace("{{ title }}", "Error")
    + """<h1>Access blocked: Authorization Error</h1><p>{{ message }}</p>
<p class="err">Error {{ code }}: {{ error }}</p>"""
    + _FOOT
)
