"""A stand-in LTI 1.3 platform (an LMS: no Moodle or Canvas can run on these machines) for
the launch tests: its own RSA key, its JSON Web Key Set served on loopback, and launches
as an LMS makes them (the third-party login initiation, the authentication response with
a signed id_token, posted back by the student's browser). The hub side is the real
jupyterhub-ltiauthenticator; only the LMS is played here."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"


class Platform:
    def __init__(self, client_id: str = "jupyterhub-tool"):
        self.client_id = client_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        keys = json.dumps({"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}).encode()

        class JWKS(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(keys)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), JWKS)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.jwks_endpoint = f"{self.issuer}/jwks"
        self.authorize_url = f"{self.issuer}/auth"

    def tool_config(self) -> dict:
        """jupyterhub_authenticator_config for this platform, as an admin copies it from the
        LMS's registration of the tool."""
        return {
            "issuer": self.issuer,
            "client_id": [self.client_id],
            "authorize_url": self.authorize_url,
            "jwks_endpoint": self.jwks_endpoint,
            "username_key": "custom_username",  # Moodle: a custom parameter username=$User.username
            "uri_scheme": "http",  # the test hub's own; a campus hub is https
        }

    def launch(self, hub_url: str, username: str, course: dict | None, roles: list[str],
               target: str = "/hub/home", key=None, audience: str | None = None,
               issued: float | None = None) -> requests.Response:  # fmt: skip
        """A student's click on the tool's link in a course: the browser's three requests.
        Returns the hub's answer to the id_token (a redirect on success)."""
        browser = requests.Session()
        start = browser.post(
            f"{hub_url}/hub/lti13/oauth_login",
            data={"iss": self.issuer, "login_hint": username, "target_link_uri": f"{hub_url}{target}",
                  "client_id": self.client_id, "lti_message_hint": "resource-1"},  # fmt: skip
            allow_redirects=False,
        )
        assert start.status_code == 302 and start.headers["Location"].startswith(self.authorize_url), start.text[:500]
        asked = {k: v[0] for k, v in parse_qs(urlparse(start.headers["Location"]).query).items()}
        now = int(issued if issued is not None else time.time())
        claims = {
            "iss": self.issuer, "aud": audience or self.client_id, "sub": uuid.uuid5(uuid.NAMESPACE_URL, username).hex,
            "iat": now, "exp": now + 300, "nonce": asked["nonce"],
            CLAIM + "version": "1.3.0", CLAIM + "deployment_id": "1",
            CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "resource_link": {"id": "resource-1"},
            CLAIM + "target_link_uri": f"{hub_url}{target}", CLAIM + "roles": roles,
            CLAIM + "custom": {"username": username},
        }  # fmt: skip
        if course is not None:
            claims[CLAIM + "context"] = course
        token = jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})
        # Kept for a replay: the same browser posting the same answer again.
        self.last = (browser, asked["redirect_uri"], {"id_token": token, "state": asked["state"]})
        return browser.post(asked["redirect_uri"], data=self.last[2], allow_redirects=False)

    def replay(self, fresh_browser: bool) -> requests.Response:
        """The last launch's id_token posted again, by the same browser or by another one
        (an attacker who captured it)."""
        browser, url, data = self.last
        return (requests.Session() if fresh_browser else browser).post(url, data=data, allow_redirects=False)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
