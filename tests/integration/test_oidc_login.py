"""Logins through the campus single sign-on (#43): OpenID Connect with oauthenticator's
GenericOAuthenticator, configured by the role's own code (hubconfig's apply_authenticator
and apply_login_groups), against a running OpenID Connect provider on loopback
(`oidc-provider-mock`: an authlib provider with discovery, authorization code, token,
userinfo and keys endpoints, whose users and claims the test sets). The browser's round
trip is followed as a student's would be: the hub's login, the provider's sign-in, the
hub's callback. The groups claim becomes hub groups; admin comes from a group and goes
with it."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
import requests
from oidc_provider_mock import User, run_server_in_thread

from .hubharness import IMAGES, start_with_login

COURSE_IMAGE = {"name": "ml", "display_name": "ML 101", "image": "jhtest/singleuser:scipy", "groups": ["ml-101"]}


@pytest.fixture(scope="module")
def provider():
    users = [
        User(sub="ada", claims={"preferred_username": "ada", "groups": ["/courses/ML-101", "students"]}),
        User(sub="grace", claims={"preferred_username": "grace", "groups": ["hub-admins"]}),
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def oidc_hub(make_hub, provider):
    hub = make_hub()
    settings = {
        "authenticator": "generic-oauth",
        "authenticator_class": "oauthenticator.generic.GenericOAuthenticator",
        "authenticator_config": {
            "client_id": "jupyterhub",
            "client_secret": "hub-secret",
            "oauth_callback_url": f"{hub.url}/hub/oauth_callback",
            "authorize_url": f"{provider}/oauth2/authorize",
            "token_url": f"{provider}/oauth2/token",
            "userdata_url": f"{provider}/userinfo",
            "username_claim": "preferred_username",
            "scope": ["openid", "profile"],
        },
        "admin_users": [],
        "allow_all": True,
        "login_groups": {"enabled": True, "admin_groups": ["hub-admins"], "claim": "groups"},
    }
    return start_with_login(hub, settings, [*IMAGES, COURSE_IMAGE])


def sign_in(hub, sub: str) -> requests.Response:
    """A student's login: the hub sends the browser to the provider, the student signs in
    there as `sub`, the provider sends the browser back to the hub's callback."""
    browser = requests.Session()
    to_provider = browser.get(f"{hub.url}/hub/oauth_login", allow_redirects=False)
    assert to_provider.status_code == 302, to_provider.text[:500]
    back = browser.post(to_provider.headers["Location"], data={"sub": sub}, allow_redirects=False)
    assert back.status_code == 302 and "/hub/oauth_callback" in back.headers["Location"], back.text[:500]
    return browser.get(urljoin(hub.url, back.headers["Location"]), allow_redirects=False)


def test_the_groups_claim_becomes_hub_groups_and_admin_comes_from_a_group(oidc_hub, provider):
    answer = sign_in(oidc_hub, "ada")
    assert answer.status_code == 302, answer.text[:800]
    ada = oidc_hub.api("GET", "/users/ada").json()
    assert sorted(ada["groups"]) == ["ml-101", "students"] and ada["admin"] is False
    assert oidc_hub.spawn("ada", {"image": "ml"}).status_code in (201, 202)
    sign_in(oidc_hub, "grace")
    grace = oidc_hub.api("GET", "/users/grace").json()
    assert grace["groups"] == ["hub-admins"] and grace["admin"] is True
    # The provider's admin takes grace out of hub-admins: admin goes at her next login.
    assert requests.put(f"{provider}/users/grace", json={"preferred_username": "grace", "groups": []},
                        timeout=10).status_code == 204  # fmt: skip
    sign_in(oidc_hub, "grace")
    grace = oidc_hub.api("GET", "/users/grace").json()
    assert grace["groups"] == [] and grace["admin"] is False
