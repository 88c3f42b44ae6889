"""Groups from the login: what the campus's identity provider says a user belongs to
becomes the user's JupyterHub groups, synced at each login (JupyterHub's
`Authenticator.manage_groups`), and hub admins come from a named group.

Pure rules and the hook the hub runs after each successful login (`post_auth_hook`); the
hub's configuration wires them (`hubconfig.apply_login_groups`):
- LDAP (`jupyterhub-ldapauthenticator`): the groups of its `allowed_groups` the user is a
  member of arrive as DNs in the login's `auth_state["ldap_groups"]`; each becomes the hub
  group named after the value of its first part (`cn=ML 101,ou=groups,...` -> `ml-101`);
- OpenID Connect (`oauthenticator`): its own `manage_groups` and `auth_state_groups_key`
  read a claim; the names are made readable the same way;
- LTI 1.3 (`jupyterhub-ltiauthenticator`): a launch carries one course (its context) and the
  user's roles in it: the course's group (its label, else its title, made readable) and one
  for the role (`ml-101-instructors`, `ml-101-tas`, `ml-101-students`). A launch changes
  only that course's groups: a student in two courses keeps the other's.
A group name is stable (the same provider group gives the same name at every login) and
readable: lower case, letters, digits, `.`, `_` and `-`, at most 64 characters.
"""

from __future__ import annotations

import re
import unicodedata

NAME_LIMIT = 64


class LoginGroupsError(ValueError):
    """A provider's answer this hub will not turn into groups (the login is refused)."""


def readable(name: str) -> str:
    """A provider's group name as a hub group name: accents dropped (`Übung` -> `ubung`),
    lower case; every run of characters other than letters, digits, `.`, `_` and `-`
    becomes one `-`; at most 64 characters."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9._-]+", "-", plain.strip().lower()).strip("-.")
    if not text:
        raise LoginGroupsError(f"the group {name!r} has no letters or digits to name a hub group after")
    return text[:NAME_LIMIT].rstrip("-.")


def first_rdn_value(dn: str) -> str:
    """The value of a DN's first part, unescaped (RFC 4514: `\\,` and UTF-8 as `\\C3\\A9`):
    `cn=ML\\, 101,ou=groups` -> `ML, 101`."""
    if "=" not in dn:
        raise LoginGroupsError(f"not an LDAP DN: {dn!r}")
    value, i = bytearray(), dn.index("=") + 1
    while i < len(dn):
        char = dn[i]
        if char == "\\" and re.fullmatch(r"[0-9a-fA-F]{2}", dn[i + 1 : i + 3]):
            value.append(int(dn[i + 1 : i + 3], 16))
            i += 3
            continue
        if char == "\\" and i + 1 < len(dn):
            value += dn[i + 1].encode()
            i += 2
            continue
        if char in ",+":
            break
        value += char.encode()
        i += 1
    return value.decode("utf-8", "replace")


def ldap_group_names(dns: list[str]) -> list[str]:
    """The hub groups for the LDAP group DNs a user is a member of, sorted, no repeats."""
    return sorted({readable(first_rdn_value(dn)) for dn in dns})


def claim_group_names(groups: object) -> list[str]:
    """The hub groups for an OpenID Connect groups claim (a list of names or paths, as
    Keycloak's `/course/ml-101`: its last part)."""
    if groups is None:
        return []
    if isinstance(groups, str) or not isinstance(groups, list):
        raise LoginGroupsError(f"the groups claim is not a list of names: {groups!r}")
    return sorted({readable(str(group).rstrip("/").rsplit("/", 1)[-1]) for group in groups if str(group).strip("/")})


def is_admin(groups: list[str], admin_groups: list[str], username: str, admin_users: set[str]) -> bool | None:
    """Whether the login makes the user an admin: True for a member of an admin group;
    False for anyone else when admin groups are set (a user removed from the group loses
    admin at the next login), unless named in admin_users; None leaves it to JupyterHub."""
    if not admin_groups:
        return None
    if set(groups) & set(admin_groups):
        return True
    return True if username in admin_users else False


class LdapGroupsHook:
    """`Authenticator.post_auth_hook` for jupyterhub-ldapauthenticator: the login's LDAP
    groups become its `groups` (synced by JupyterHub's manage_groups) and decide `admin`."""

    def __init__(self, admin_groups: list[str], admin_users: set[str]):
        self.admin_groups, self.admin_users = list(admin_groups), set(admin_users)

    def __call__(self, authenticator, handler, authentication: dict) -> dict:
        state = authentication.get("auth_state") or {}
        groups = ldap_group_names(state.get("ldap_groups") or [])
        authentication["groups"] = groups
        admin = is_admin(groups, self.admin_groups, authentication["name"], self.admin_users)
        if admin is not None:
            authentication["admin"] = admin
        authenticator.log.info("Groups of %s from LDAP: %s", authentication["name"], ", ".join(groups) or "none")
        return authentication


LTI_CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
LTI_ROLES = "https://purl.imsglobal.org/spec/lti/claim/roles"
# LIS membership roles (LTI 1.3 core, A.2.3) -> the role group's suffix. A TA is the
# Instructor sub-role `membership/Instructor#TeachingAssistant` (checked first).
LTI_ROLE_GROUPS = (
    ("membership/instructor#teachingassistant", "tas"),
    ("membership#teachingassistant", "tas"),
    ("membership#instructor", "instructors"),
    ("membership#learner", "students"),
)


def lti_course_groups(claims: dict) -> tuple[set[str], set[str]]:
    """(the launch's groups, every group of that course): the course's group and one for
    each of the user's roles in it; none when the launch names no course."""
    context = claims.get(LTI_CONTEXT) or {}
    if not isinstance(context, dict):
        raise LoginGroupsError(f"the launch's context is not an object: {context!r}")
    name = context.get("label") or context.get("title") or context.get("id")
    if not name:
        return set(), set()
    course = readable(str(name))
    every = {course} | {f"{course}-{suffix}" for _, suffix in LTI_ROLE_GROUPS}
    groups = {course}
    roles = claims.get(LTI_ROLES) or []
    if not isinstance(roles, list):
        raise LoginGroupsError(f"the launch's roles are not a list: {roles!r}")
    for role in roles:
        text = str(role).lower()
        for marker, suffix in LTI_ROLE_GROUPS:
            if text.endswith(marker):
                groups.add(f"{course}-{suffix}")
                break
    return groups, every


class LtiGroupsHook(LdapGroupsHook):
    """`Authenticator.post_auth_hook` for jupyterhub-ltiauthenticator (LTI 1.3): the launch's
    course groups replace that course's groups, the user's other groups stay (a launch
    carries one course), and admin follows the admin groups."""

    def __call__(self, authenticator, handler, authentication: dict) -> dict:
        claims = authentication.get("auth_state") or {}
        mine, every = lti_course_groups(claims)
        user = handler.find_user(authentication["name"]) if handler is not None else None
        kept = {group.name for group in user.groups} - every if user is not None else set()
        groups = sorted(kept | mine)
        authentication["groups"] = groups
        admin = is_admin(groups, self.admin_groups, authentication["name"], self.admin_users)
        if admin is not None:
            authentication["admin"] = admin
        authenticator.log.info(
            "Groups of %s from the LTI launch: %s (kept: %s)",
            authentication["name"], ", ".join(sorted(mine)) or "none", ", ".join(sorted(kept)) or "none",
        )  # fmt: skip
        return authentication
