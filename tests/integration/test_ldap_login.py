"""Logins from the campus directory (#43): a real slapd (tests/integration/ldapserver.py)
and jupyterhub-ldapauthenticator, configured by the role's own code (hubconfig's
apply_authenticator and apply_login_groups, as settings.json drives them on a server).
Through the hub's login form, as a student logs in: their LDAP groups become their hub
groups, the course image is offered to its group only, admin comes from a group, and a
membership removed in the directory is gone at the next login. A wrong password, an unknown
name or a directory that does not answer lets no one in and creates no one; a directory
that accepts the connection and then stalls holds up only that login, for at most the
time limit, while the hub goes on answering everyone else."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from .hubharness import IMAGES, start_with_login
from .ldapserver import SUFFIX, Slapd, group_dn

USERS = {"ada": "ada-secret-1", "bob": "bob-secret-2", "grace": "grace-secret-3"}
GROUPS = {"ml-101": ["ada", "bob"], "hub-admins": ["grace"], "physics": ["bob"]}
COURSE_IMAGE = {"name": "ml", "display_name": "ML 101", "image": "jhtest/singleuser:scipy", "groups": ["ml-101"]}


@pytest.fixture(scope="module")
def directory():
    workdir = Path(tempfile.mkdtemp(prefix="fstest-ldap-"))
    server = Slapd(workdir, USERS, GROUPS)
    yield server
    server.close()
    shutil.rmtree(workdir, ignore_errors=True)


def ldap_settings(directory: Slapd) -> dict:
    """The settings.json keys a server's inventory would give (jupyterhub_authenticator: ldap,
    jupyterhub_login_groups: true, jupyterhub_admin_groups: [hub-admins])."""
    return {
        "authenticator": "ldap",
        "authenticator_class": "formspawner.campuslogin.ldap.LDAPAuthenticator",
        "authenticator_config": {
            "server_address": "127.0.0.1",
            "server_port": directory.port,
            "tls_strategy": "insecure",  # loopback only; a campus directory is reached over TLS
            "bind_dn_template": [f"uid={{username}},ou=people,{SUFFIX}"],
            "allowed_groups": [group_dn(cn) for cn in GROUPS],
            "group_search_filter": "(member={userdn})",
            "group_attributes": ["member"],
        },
        "admin_users": [],
        "allow_all": True,
        "login_groups": {"enabled": True, "admin_groups": ["hub-admins"], "claim": "groups"},
    }


@pytest.fixture
def ldap_hub(make_hub, directory):
    return start_with_login(make_hub(), ldap_settings(directory), [*IMAGES, COURSE_IMAGE])


def log_in(hub, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf") or ""},
        allow_redirects=False,
    )
    return session, response


def offered_images(hub, session) -> set[str]:
    page = session.get(f"{hub.url}/hub/spawn")
    assert page.status_code == 200, page.text[:500]
    return set(re.findall(r'name="image"[^>]*value="([^"]+)"', page.text)) | set(
        re.findall(r'value="([^"]+)"[^>]*name="image"', page.text)
    )


def test_a_students_ldap_groups_become_hub_groups_and_choose_the_images_offered(ldap_hub, directory):
    session, response = log_in(ldap_hub, "ada", USERS["ada"])
    assert response.status_code == 302, response.text[:500]
    user = ldap_hub.api("GET", "/users/ada").json()
    assert user["groups"] == ["ml-101"] and user["admin"] is False
    assert "ml" in offered_images(ldap_hub, session)
    # bob is in two courses; grace in neither, but an admin through hub-admins.
    log_in(ldap_hub, "bob", USERS["bob"])
    assert sorted(ldap_hub.api("GET", "/users/bob").json()["groups"]) == ["ml-101", "physics"]
    grace, _ = log_in(ldap_hub, "grace", USERS["grace"])
    model = ldap_hub.api("GET", "/users/grace").json()
    assert model["groups"] == ["hub-admins"] and model["admin"] is True
    assert "ml" not in offered_images(ldap_hub, grace)
    # The course image is refused to a non-member through the API too.
    response = ldap_hub.api("POST", "/users/grace/server", json={"image": "ml"})
    assert response.status_code == 400, response.text
    # A wrong password, or a name the directory does not know: no login, no user made.
    _, response = log_in(ldap_hub, "ada", "not-adas-password")
    assert response.status_code == 403 and "Invalid username or password" in response.text
    _, response = log_in(ldap_hub, "mallory", "guess")
    assert response.status_code == 403 and ldap_hub.api("GET", "/users/mallory").status_code == 404


def test_a_membership_removed_in_the_directory_is_gone_at_the_next_login(ldap_hub, directory):
    log_in(ldap_hub, "ada", USERS["ada"])
    assert ldap_hub.api("GET", "/users/ada").json()["groups"] == ["ml-101"]
    directory.remove_member("ml-101", "ada")
    directory.add_member("hub-admins", "bob")
    try:
        session, response = log_in(ldap_hub, "ada", USERS["ada"])
        assert response.status_code == 302
        assert ldap_hub.api("GET", "/users/ada").json()["groups"] == []
        assert "ml" not in offered_images(ldap_hub, session)
        log_in(ldap_hub, "bob", USERS["bob"])
        assert ldap_hub.api("GET", "/users/bob").json()["admin"] is True
        directory.remove_member("hub-admins", "bob")
        log_in(ldap_hub, "bob", USERS["bob"])
        assert ldap_hub.api("GET", "/users/bob").json()["admin"] is False, "admin went with the group"
    finally:
        directory.add_member("ml-101", "ada")


def test_a_directory_that_does_not_answer_lets_no_one_in_and_creates_no_one(make_hub, directory):
    settings = ldap_settings(directory)
    unreachable = {**settings, "authenticator_config": {**settings["authenticator_config"], "server_port": 9},
                   "login_help": "the IT service desk (help@campus.test)"}  # fmt: skip
    hub = start_with_login(make_hub(), unreachable)
    _, response = log_in(hub, "ada", USERS["ada"])
    # The student is told what happened and whom to ask; the log says exactly why.
    assert response.status_code == 503, response.text[-1500:]
    assert "the campus directory did not answer" in response.text and "the IT service desk" in response.text
    assert hub.api("GET", "/users/ada").status_code == 404
    assert re.search(r"Login of 'ada' failed: the directory at 127.0.0.1:9 did not answer \(LDAP\w+Error",
                     hub.log_text()), hub.log_text()[-2000:]  # fmt: skip


def test_a_directory_that_stalls_holds_up_only_that_login_and_only_for_the_time_limit(make_hub, directory):
    # A "directory" on loopback that completes the TCP handshake (the kernel's backlog)
    # and then never answers the bind: what a hung slapd or a half-open firewall does.
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)
    try:
        settings = ldap_settings(directory)
        config = {**settings["authenticator_config"], "server_port": stalled.getsockname()[1], "directory_timeout": 4}
        hub = start_with_login(make_hub(), {**settings, "authenticator_config": config})
        result = {}
        login = threading.Thread(target=lambda: result.update(answer=log_in(hub, "ada", USERS["ada"])[1]))
        login.start()
        # While ada's login waits on the directory, the hub answers others (ldapauthenticator
        # 2.0.2 alone holds the hub's event loop for as long as the directory stalls).
        time.sleep(1.5)
        assert login.is_alive(), "the login did not wait on the stalled directory: nothing was tested"
        assert hub.api("GET", "/users").status_code == 200
        assert requests.get(f"{hub.url}/hub/login", timeout=10).status_code == 200
        assert login.is_alive(), "the hub answered only after the stalled login ended"
        login.join(timeout=60)
        assert not login.is_alive(), "the login waited past the time limit"
        assert result["answer"].status_code == 503, result["answer"].text[-800:]
        assert "the campus directory did not answer" in result["answer"].text
        assert hub.api("GET", "/users/ada").status_code == 404
        assert re.search(r"Login of 'ada' failed: the directory at 127.0.0.1:\d+ did not answer \(LDAP\w+Error",
                         hub.log_text()), hub.log_text()[-2000:]  # fmt: skip
    finally:
        stalled.close()
