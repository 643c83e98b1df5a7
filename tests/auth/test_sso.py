"""Single sign-on through a tiny loopback OpenID Connect provider (authorize, token, userinfo).

The provider signs in whoever the test says is at the keyboard (``Provider.claims``); the
hub runs ``BLABS_AUTH=oidc`` and must map the claims to usernames, admin and instructors.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests


class Provider:
    def __init__(self):
        self.claims: dict = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    target = (
                        q["redirect_uri"] + "?" + urlencode({"code": "c0de", "state": q["state"]})
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif url.path == "/userinfo":
                    self._json(provider.claims)
                else:
                    self.send_error(404)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/token":
                    self._json({"access_token": "at", "token_type": "Bearer", "expires_in": 300})
                else:
                    self.send_error(404)

            def _json(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sso_hub(hub_factory):
    provider = Provider()
    hub = hub_factory.create(
        "from blabs_hub.hub.auth import authenticator_class\n"
        "c.JupyterHub.authenticator_class = authenticator_class()\n",
        {
            "BLABS_AUTH": "oidc",
            "OAUTH2_AUTHORIZE_URL": f"{provider.url}/authorize",
            "OAUTH2_TOKEN_URL": f"{provider.url}/token",
            "OAUTH2_USERDATA_URL": f"{provider.url}/userinfo",
            "OAUTH_CLIENT_ID": "blabs",
            "OAUTH_CLIENT_SECRET": "not-secret",
            "BLABS_OIDC_ADMIN_GROUPS": "lab-admins",
            "BLABS_OIDC_INSTRUCTOR_GROUPS": "teachers",
        },
    )
    hub.env["OAUTH_CALLBACK_URL"] = f"{hub.url}/hub/oauth_callback"
    hub.start()
    yield hub, provider
    hub.stop()
    provider.stop()


def sign_in(hub, provider, claims) -> requests.Response:
    provider.claims = claims
    s = requests.Session()
    return s.get(f"{hub.url}/hub/oauth_login?next=/hub/home", timeout=30)


def test_sso_maps_claims_to_username_admin_and_instructors(sso_hub):
    hub, provider = sso_hub
    r = sign_in(
        hub, provider, {"preferred_username": "boss", "name": "B", "groups": ["lab-admins"]}
    )
    assert r.status_code == 200 and r.url.endswith("/hub/home"), (r.status_code, r.url)
    boss = hub.api("GET", "/users/boss").json()
    assert boss["admin"] is True and "blabs-admin" in boss["roles"]

    r = sign_in(hub, provider, {"preferred_username": "teach", "groups": ["/uni/teachers"]})
    assert r.status_code == 200
    teach = hub.api("GET", "/users/teach").json()
    assert teach["admin"] is False and teach["groups"] == ["instructors"]

    r = sign_in(hub, provider, {"sub": "123", "name": "No Username"})
    assert r.status_code == 403
    assert hub.api("GET", "/users/no username").status_code == 404


def test_local_password_pages_are_off_under_sso(sso_hub):
    hub, _ = sso_hub
    assert requests.get(f"{hub.url}/hub/auth/accounts", timeout=10).status_code == 404
    assert requests.get(f"{hub.url}/hub/auth/change-password", timeout=10).status_code == 404
    login = requests.get(f"{hub.url}/hub/login", timeout=10).text
    assert "Sign in with single sign-on" in login and "password_input" not in login
