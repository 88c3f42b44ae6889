"""Groups from the login (formspawner.logins, hubconfig.apply_login_groups): names, admin
from a group, and the hub's configuration for LDAP and OpenID Connect, with the real
authenticator classes (the LDAP login against a real slapd is in
tests/integration/test_ldap_login.py)."""

import asyncio
import logging

import pytest
from test_hubconfig import applied

from formspawner import PolicyError, logins


@pytest.mark.parametrize(
    "dn, name",
    [
        ("cn=ml-101,ou=groups,dc=campus,dc=edu", "ml-101"),
        ("CN=ML 101 (Winter),OU=Groups,DC=campus,DC=edu", "ml-101-winter"),
        ("cn=Data\\, Science,ou=groups,dc=campus,dc=edu", "data-science"),
        ("cn=caf\\C3\\A9+ou=x,dc=campus", "cafe"),
        ("cn=\u00dcbung Statistik,dc=campus", "ubung-statistik"),
        ("cn=a.b_c,dc=campus", "a.b_c"),
    ],
)
def test_an_ldap_groups_name_is_its_first_parts_value_made_readable(dn, name):
    assert logins.ldap_group_names([dn]) == [name]


def test_names_are_sorted_without_repeats_and_at_most_64_characters():
    dns = ["cn=b,dc=x", "cn=a,dc=x", "cn=B,ou=other,dc=x", "cn=" + "x" * 100 + ",dc=x"]
    assert logins.ldap_group_names(dns) == ["a", "b", "x" * 64]


@pytest.mark.parametrize("bad", ["cn=!!!,dc=x", "no equals sign"])
def test_a_group_that_cannot_name_a_hub_group_is_refused(bad):
    with pytest.raises(logins.LoginGroupsError):
        logins.ldap_group_names([bad])


def test_a_claims_groups_are_names_or_paths():
    assert logins.claim_group_names(["/courses/ML-101", "staff", "/"]) == ["ml-101", "staff"]
    assert logins.claim_group_names(None) == []
    with pytest.raises(logins.LoginGroupsError, match="not a list"):
        logins.claim_group_names("staff")


def test_admin_comes_from_an_admin_group_and_goes_with_it():
    assert logins.is_admin(["hub-admins"], ["hub-admins"], "ada", set()) is True
    assert logins.is_admin(["ml-101"], ["hub-admins"], "ada", set()) is False
    assert logins.is_admin(["ml-101"], ["hub-admins"], "root", {"root"}) is True
    assert logins.is_admin(["hub-admins"], [], "ada", set()) is None  # no admin groups: JupyterHub decides


LDAP_CONFIG = {"server_address": "ldap.campus.edu", "allowed_groups": ["cn=ml-101,dc=x"],
               "group_search_filter": "(member={userdn})", "group_attributes": ["member"]}  # fmt: skip
LDAP = {"authenticator": "ldap", "authenticator_class": "formspawner.campuslogin.ldap.LDAPAuthenticator",
        "authenticator_config": LDAP_CONFIG}  # fmt: skip
OIDC = {"authenticator": "generic-oauth", "authenticator_class": "formspawner.campuslogin.oidc.GenericOAuthenticator",
        "authenticator_config": {"client_id": "hub"}}  # fmt: skip


def test_ldap_logins_bring_their_groups_through_the_post_login_hook():
    c = applied(**LDAP, login_groups={"enabled": True, "admin_groups": ["hub-admins"], "claim": "groups"})
    assert c.LDAPAuthenticator.manage_groups is True
    hook = c.LDAPAuthenticator.post_auth_hook
    authenticator = type("Stub", (), {"log": logging.getLogger("test")})()
    model = {"name": "ada", "admin": None,
             "auth_state": {"ldap_groups": ["cn=ML-101,ou=groups,dc=x", "cn=Hub Admins,ou=groups,dc=x"]}}  # fmt: skip
    assert hook(authenticator, None, model) == {**model, "groups": ["hub-admins", "ml-101"], "admin": True}
    model = {"name": "bob", "admin": False, "auth_state": {"ldap_groups": []}}
    assert hook(authenticator, None, model)["groups"] == [] and model["admin"] is False


def test_openid_connect_logins_read_the_claim_through_oauthenticators_own_settings():
    from formspawner.campuslogin.oidc import GenericOAuthenticator

    c = applied(**OIDC, login_groups={"enabled": True, "admin_groups": ["hub-admins"], "claim": "roles"})
    authenticator = GenericOAuthenticator(config=c)
    assert authenticator.manage_groups is True and authenticator.admin_groups == {"hub-admins"}
    state = {"oauth_user": {"roles": ["/courses/ML-101", "hub-admins"]}}
    groups = asyncio.run(authenticator.get_user_groups(state)) if asyncio.iscoroutinefunction(
        authenticator.get_user_groups) else authenticator.get_user_groups(state)  # fmt: skip
    assert sorted(groups) == ["hub-admins", "ml-101"]
    model = asyncio.run(authenticator._apply_managed_groups({"name": "ada", "admin": None, "auth_state": state}))
    assert model["groups"] == ["hub-admins", "ml-101"] and model["admin"] is True


def test_off_by_default_and_refused_for_a_login_without_groups():
    assert "manage_groups" not in applied(**LDAP).LDAPAuthenticator
    with pytest.raises(PolicyError, match="login brings no groups; use ldap, generic-oauth or lti13"):
        applied(login_groups={"enabled": True})


CONTEXT, ROLES = logins.LTI_CONTEXT, logins.LTI_ROLES
MEMBER = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


@pytest.mark.parametrize(
    "roles, groups",
    [
        ([MEMBER + "Learner"], {"ml-101", "ml-101-students"}),
        ([MEMBER + "Instructor"], {"ml-101", "ml-101-instructors"}),
        (["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"], {"ml-101", "ml-101-tas"}),
        (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty"], {"ml-101"}),  # not a course role
    ],
)
def test_an_lti_launch_brings_its_course_and_the_role_in_it(roles, groups):
    mine, every = logins.lti_course_groups({CONTEXT: {"id": "x1", "label": "ML 101"}, ROLES: roles})
    assert mine == groups
    assert every == {"ml-101", "ml-101-students", "ml-101-instructors", "ml-101-tas"}
    assert logins.lti_course_groups({ROLES: roles}) == (set(), set())  # a launch outside a course


def test_an_lti_launch_changes_only_its_own_courses_groups():
    class Group:
        def __init__(self, name):
            self.name = name

    user = type("User", (), {"groups": [Group("phy-2"), Group("ml-101-students"), Group("gpu-users")]})()
    handler = type("Handler", (), {"find_user": lambda self, name: user})()
    authenticator = type("Stub", (), {"log": logging.getLogger("test")})()
    hook = logins.LtiGroupsHook([], set())
    model = {"name": "bob", "admin": None, "auth_state": {CONTEXT: {"label": "ML 101"}, ROLES: [MEMBER + "Instructor"]}}
    assert hook(authenticator, handler, model)["groups"] == ["gpu-users", "ml-101", "ml-101-instructors", "phy-2"]
    assert "admin" in model and model["admin"] is None  # no admin groups: JupyterHub decides
