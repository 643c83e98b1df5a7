"""A form-posting client for the hub's login pages, as a browser without JavaScript."""

import re

import requests

XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')


class FormClient:
    """One browser: a cookie jar, a stable User-Agent (the hub binds anonymous XSRF tokens to
    it), and helpers that fetch a page's XSRF token before posting its form."""

    def __init__(self, hub):
        self.hub = hub
        self.s = requests.Session()
        self.s.headers["User-Agent"] = "blabs-tests"

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return self.s.get(self.hub.url + path, **kw)

    def xsrf(self, path="/hub/login") -> str:
        r = self.get(path)
        match = XSRF.search(r.text)
        assert match, f"no _xsrf on {path}: {r.status_code} {r.text[:300]}"
        return match.group(1)

    def post(self, path, data, *, form_page=None, xsrf=True, **kw):
        data = dict(data)
        if xsrf:
            data["_xsrf"] = self.xsrf(form_page or path)
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.s.post(self.hub.url + path, data=data, **kw)

    def login(self, username, password):
        return self.post("/hub/login", {"username": username, "password": password})

    def change(self, username, old, new, repeat=None):
        return self.post(
            "/hub/auth/change-password",
            {
                "username": username,
                "old_password": old,
                "new_password": new,
                "new_password_repeat": new if repeat is None else repeat,
            },
        )

    def accounts(self, action, username):
        return self.post(
            "/hub/auth/accounts",
            {"action": action, "username": username},
        )


def temporary_password(html: str) -> str:
    match = re.search(r'id="temporary-password">([^<]+)<', html)
    assert match, html[:2000]
    return match.group(1)


def token_for(hub, username, password) -> requests.Response:
    """The documented API-client login: username + password → a hub API token."""
    return requests.post(
        f"{hub.url}/hub/api/users/{username}/tokens",
        json={"auth": {"username": username, "password": password}, "note": "api client"},
        timeout=30,
    )
