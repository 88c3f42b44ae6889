"""Logins through the campus single sign-on (#43): OpenID Connect with oauthenticator's
GenericOAuthenticator, configured by the role's own code (hubconfig's apply_authenticator
and apply_login_groups), against a running OpenID Connect provider on loopback
(`oidc-provider-mock`: an authlib provider with discovery, authorization code, token,
userinfo and keys endpoints, whose users and claims the test sets). The browser's round
trip is followed as a student's would be: the hub's login, the provider's sign-in, the
hub's callback, and once in Debian's Chromium, logout at the provider included. The groups
claim becomes hub groups; admin comes from a group and goes with it. A provider that
refuses the hub's client secret, or does not answer, lets no one in: the student's page
says what to do and whom to ask, the hub's log says why."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
import requests
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import expect

from tests.studentflow import SHOTS, chromium_page

from .hubharness import IMAGES, start_with_login

HELPDESK = "the IT service desk (help@campus.test)"
USERS = [
    User(sub="ada", claims={"preferred_username": "ada", "groups": ["/courses/ML-101", "students"]}),
    User(sub="grace", claims={"preferred_username": "grace", "groups": ["hub-admins"]}),
]

COURSE_IMAGE = {"name": "ml", "display_name": "ML 101", "image": "jhtest/singleuser:scipy", "groups": ["ml-101"]}


@pytest.fixture(scope="module")
def provider():
    with run_server_in_thread(user_claims=USERS) as server:
        yield f"http://127.0.0.1:{server.server_port}"


def oidc_settings(hub, provider: str, **config) -> dict:
    """The settings.json keys of an inventory with jupyterhub_authenticator: generic-oauth,
    jupyterhub_login_groups: true, jupyterhub_admin_groups: [hub-admins]."""
    return {
        "authenticator": "generic-oauth",
        "authenticator_class": "formspawner.campuslogin.oidc.GenericOAuthenticator",
        "authenticator_config": {
            "client_id": "jupyterhub",
            "client_secret": "hub-secret",
            "oauth_callback_url": f"{hub.url}/hub/oauth_callback",
            "authorize_url": f"{provider}/oauth2/authorize",
            "token_url": f"{provider}/oauth2/token",
            "userdata_url": f"{provider}/userinfo",
            "username_claim": "preferred_username",
            "scope": ["openid", "profile"],
            "login_service": "Campus sign-in",
            # RP-initiated logout: the hub's logout ends the session at the provider too.
            "logout_redirect_url": f"{provider}/oauth2/end_session?post_logout_redirect_uri={hub.url}/hub/login",
            **config,
        },
        "admin_users": [],
        "allow_all": True,
        "login_groups": {"enabled": True, "admin_groups": ["hub-admins"], "claim": "groups"},
        "login_help": HELPDESK,
    }


@pytest.fixture
def oidc_hub(make_hub, provider):
    hub = make_hub()
    return start_with_login(hub, oidc_settings(hub, provider), [*IMAGES, COURSE_IMAGE])


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


def test_in_the_browser_a_student_signs_in_at_the_provider_and_logs_out_there_too(oidc_hub, provider):
    with chromium_page() as page:
        page.goto(f"{oidc_hub.url}/hub/login")
        page.click("text=Sign in with Campus sign-in")
        page.wait_for_url(f"{provider}/oauth2/authorize**")
        page.fill("input[name=sub]", "ada")
        page.click("button:has-text('Authorize')")
        page.wait_for_url(f"{oidc_hub.url}/hub/spawn**")
        # The course's image, offered through the group the provider's claim brought.
        expect(page.locator("body")).to_contain_text("ML 101")
        page.screenshot(path=str(SHOTS / "oidc-spawn.png"), full_page=True)
        assert sorted(oidc_hub.api("GET", "/users/ada").json()["groups"]) == ["ml-101", "students"]
        # Logout: the hub's, then the provider's end of the session, then the hub's login page.
        page.goto(f"{oidc_hub.url}/hub/logout")
        page.wait_for_url(f"{provider}/oauth2/end_session**")
        page.click("button:has-text('End session')")
        page.wait_for_url(f"{oidc_hub.url}/hub/login**")
        page.goto(f"{oidc_hub.url}/hub/home")
        page.wait_for_url(f"{oidc_hub.url}/hub/login**")
        expect(page.locator("body")).to_contain_text("Sign in with Campus sign-in")


def refused_with_help(answer: requests.Response, reason: str) -> None:
    assert answer.status_code == 503 and reason in answer.text, answer.text[-1200:]
    assert "Logging in did not work. Go back to the login page and sign in again." in answer.text
    assert f"tell {HELPDESK}" in answer.text


def test_a_provider_that_refuses_the_hubs_secret_or_does_not_answer_lets_no_one_in(make_hub):
    # A provider that knows its clients (as a campus's does): the hub is registered with
    # its callback, and then configured with a secret that is not the registered one.
    with run_server_in_thread(user_claims=USERS, require_client_registration=True) as server:
        provider = f"http://127.0.0.1:{server.server_port}"
        hub = make_hub()
        client = requests.post(f"{provider}/oauth2/clients", timeout=10,
                               json={"redirect_uris": [f"{hub.url}/hub/oauth_callback"]}).json()  # fmt: skip
        wrong = oidc_settings(hub, provider, client_id=client["client_id"], client_secret="not-the-registered-one")
        start_with_login(hub, wrong, [*IMAGES, COURSE_IMAGE])
        refused_with_help(sign_in(hub, "ada"), "the campus sign-in did not accept the hub")
        assert hub.api("GET", "/users/ada").status_code == 404
        assert "Login failed: the identity provider answered 401 to the hub's request" in hub.log_text()
        assert "client_id and client_secret" in hub.log_text()
    # The provider's back channel (its token endpoint) does not answer: a closed port on loopback.
    with run_server_in_thread(user_claims=USERS) as server:
        provider = f"http://127.0.0.1:{server.server_port}"
        hub = make_hub()
        start_with_login(hub, oidc_settings(hub, provider, token_url="http://127.0.0.1:9/token"))
        refused_with_help(sign_in(hub, "ada"), "the campus sign-in did not answer")
        assert hub.api("GET", "/users/ada").status_code == 404
        assert "Login failed: the identity provider did not answer" in hub.log_text(), hub.log_text()[-2000:]
