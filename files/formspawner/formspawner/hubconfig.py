"""The hub's configuration, applied from a settings document (data only).

The jupyterhub role renders inventory into `settings.json` and installs a static
`jupyterhub_config.py` that calls `apply(c, load_settings(path))`. Each concern is one
small function over a traitlets Config, so each is tested in-process
(tests/unit/test_hubconfig.py), as TLJH tests its configurer. Admins reach any other
traitlet through `extra_config` (inventory: jupyterhub_extra_config), applied last.

`python -m formspawner.hubconfig SETTINGS` checks a settings document the way the hub
would load it and exits non-zero with the problem: the role runs it before a new
document replaces a working one.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from typing import TYPE_CHECKING

from . import courses, identity
from .errors import PolicyError

if TYPE_CHECKING:
    from traitlets.config import Config

_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")


def load_settings(path: str) -> dict:
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def apply(c: Config, settings: dict) -> Config:
    """Every concern, in order, the admin's passthrough last. Only `c` changes (the
    metrics token is read from its file); registering metrics is register_metrics'."""
    apply_hub(c, settings)
    apply_authenticator(c, settings)
    apply_login_groups(c, settings)
    apply_services(c, settings)
    apply_spawner(c, settings)
    apply_named_servers(c, settings)
    if settings.get("swarm"):
        apply_swarm(c, settings)
    else:
        apply_docker_host(c, settings)
    apply_extra_config(c, settings.get("extra_config") or {})
    return c


def apply_hub(c: Config, s: dict) -> None:
    """Where the hub listens, its state, and that users' servers outlive its restarts."""
    scheme = "https" if s.get("tls_cert") else "http"
    c.JupyterHub.bind_url = f"{scheme}://{s['ip']}:{s['port']}"
    c.JupyterHub.hub_bind_url = f"http://{s['hub_ip']}:{s['hub_port']}"
    if s.get("tls_cert"):
        c.JupyterHub.ssl_cert = s["tls_cert"]
        c.JupyterHub.ssl_key = s["tls_key"]
    if s.get("subdomain_host"):
        c.JupyterHub.subdomain_host = s["subdomain_host"]
    data_dir = s["data_dir"]
    c.JupyterHub.cookie_secret_file = os.path.join(data_dir, "jupyterhub_cookie_secret")
    c.JupyterHub.db_url = s["db_url"]
    c.JupyterHub.pid_file = os.path.join(data_dir, "jupyterhub.pid")
    c.ConfigurableHTTPProxy.pid_file = os.path.join(data_dir, "jupyterhub-proxy.pid")
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False
    if s.get("active_server_limit"):
        c.JupyterHub.active_server_limit = s["active_server_limit"]


def apply_authenticator(c: Config, s: dict) -> None:
    """Who may log in: the class, its own settings from inventory, admins and allowed users."""
    class_name = s["authenticator_class"]
    c.JupyterHub.authenticator_class = class_name
    c.Authenticator.admin_users = set(s.get("admin_users", []))
    if s.get("allowed_users"):
        c.Authenticator.allowed_users = set(s["allowed_users"])
    c.Authenticator.allow_all = bool(s.get("allow_all"))
    if s["authenticator"] == "dummy":
        c.DummyAuthenticator.password = s["dummy_password"]
    if s["authenticator"] == "native":
        import nativeauthenticator

        c.JupyterHub.template_paths = [os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]
    section = c[class_name.rsplit(".", 1)[1]]
    if class_name.startswith("formspawner.campuslogin."):
        section.login_help = s.get("login_help") or "the hub's administrators"
    for key, value in (s.get("authenticator_config") or {}).items():
        section[key] = value


# The authenticators whose logins bring groups (formspawner.logins), and their sections.
LOGIN_GROUPS = {"ldap": "LDAPAuthenticator", "generic-oauth": "GenericOAuthenticator", "lti13": "LTI13Authenticator"}


def apply_login_groups(c: Config, s: dict) -> None:
    """Groups from the login (inventory: jupyterhub_login_groups): the identity provider's
    groups become the user's hub groups at each login (JupyterHub's manage_groups), and
    members of `admin_groups` are admins. LDAP and LTI 1.3 through a post-login hook over
    what the login brought, OpenID Connect through oauthenticator's own settings with the
    claim `claim`; all name groups by formspawner.logins' rules."""
    groups = s.get("login_groups") or {}
    if not groups.get("enabled"):
        return
    from . import logins

    authenticator = s["authenticator"]
    if authenticator not in LOGIN_GROUPS:
        raise PolicyError(
            f"login_groups: the {authenticator} login brings no groups; use ldap, generic-oauth or lti13,"
            " or give users their groups with load_groups or the admin page"
        )
    admin_groups = list(groups.get("admin_groups") or [])
    section = c[LOGIN_GROUPS[authenticator]]
    section.manage_groups = True
    if authenticator == "ldap":
        section.post_auth_hook = logins.LdapGroupsHook(admin_groups, set(s.get("admin_users", [])))
    elif authenticator == "lti13":
        section.post_auth_hook = logins.LtiGroupsHook(admin_groups, set(s.get("admin_users", [])))
    else:
        claim = groups.get("claim") or "groups"
        section.auth_state_groups_key = lambda auth_state: logins.claim_group_names(
            (auth_state.get("oauth_user") or {}).get(claim)
        )
        if admin_groups:
            section.admin_groups = set(admin_groups)


def apply_services(c: Config, s: dict) -> None:
    """The idle culler, the metrics scraper's token and the admin's own services."""
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if s.get("idle_timeout"):
        c.JupyterHub.services.append({
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={s['idle_timeout']}"],
        })
        named = s.get("named_servers") or {}
        if named.get("enabled") and named.get("remove_when_culled"):
            # Its entry goes from the home page; its volume (server_storage='server') is kept.
            c.JupyterHub.services[-1]["command"].append("--remove-named-servers=true")
        c.JupyterHub.load_roles.append({
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        })
    # /hub/metrics answers the prometheus service's token only (read:metrics).
    c.JupyterHub.authenticate_prometheus = True
    metrics = s.get("metrics") or {}
    if metrics.get("enabled"):
        with open(metrics["token_file"], encoding="utf-8") as token_file:
            c.JupyterHub.services.append({"name": "prometheus", "api_token": token_file.read().strip()})
        c.JupyterHub.load_roles.append({"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]})
    for service in s.get("services", []):
        c.JupyterHub.services.append({"name": service["name"], "api_token": service["api_token"]})
        if service.get("scopes"):
            c.JupyterHub.load_roles.append(
                {"name": service["name"], "scopes": service["scopes"], "services": [service["name"]]}
            )


def apply_user_ids(c: Config, s: dict) -> None:
    """Whose id servers run as: each user's own (distinct: one host only), or the image's."""
    user = s["user"]
    ids = user.get("ids", "image")
    if ids == "auto":
        ids = "image" if s.get("swarm") else "distinct"
    if ids == "distinct" and s.get("swarm"):
        raise PolicyError(
            "jupyterhub_user_ids: distinct is not available on a swarm yet (each volume is given to its user's "
            "id by a short container on the engine that holds it, which the hub does not reach on a swarm's "
            "nodes): use auto or image."
        )
    if ids not in ("distinct", "image"):
        raise PolicyError(f"jupyterhub_user_ids must be auto, distinct or image, not {ids!r}")
    if ids == "distinct":
        c.FormDockerSpawner.user_ids = "distinct"
        c.FormDockerSpawner.first_uid = identity.check_first_uid(int(user.get("first_uid", 200000)))
        c.FormDockerSpawner.uid_record = os.path.join(s["data_dir"], "formspawner-uids.json")
        c.FormDockerSpawner.volume_owner_record = os.path.join(s["data_dir"], "formspawner-volume-owners.txt")


def apply_spawner(c: Config, s: dict) -> None:
    """Users' servers: the options users choose, their storage, limits and confinement."""
    from .launch import launch_handlers

    c.JupyterHub.spawner_class = "formspawner.FormSwarmSpawner" if s.get("swarm") else "formspawner.FormDockerSpawner"
    # Launch links (/hub/launch?...): shown for the user to confirm, never started by the
    # link alone; served under the hub's prefix, inside its login and XSRF checks.
    c.JupyterHub.extra_handlers = launch_handlers()
    c.FormDockerSpawner.launch_links = True
    c.FormDockerSpawner.form_options = s["form_options"]
    course_list = courses.from_config(s.get("courses") or [], "jupyterhub_courses")
    if course_list and s.get("swarm"):
        raise PolicyError(
            "jupyterhub_courses are not available on a swarm yet: their folders are folders of the hub's host, "
            "which the workers do not have."
        )
    # A course's images are offered to its members (its groups added to the image's).
    c.FormDockerSpawner.images = courses.with_course_images(s["images"], course_list, "jupyterhub_courses")
    if course_list:
        c.FormDockerSpawner.courses = s["courses"]
    c.FormDockerSpawner.env_policy = s["env_policy"]
    c.FormDockerSpawner.repo_policy = s["repo_policy"]
    c.FormDockerSpawner.repo_cache_file = os.path.join(s["data_dir"], "formspawner-repo-cache.json")
    user = s["user"]
    c.DockerSpawner.remove = True
    c.DockerSpawner.volumes = {user["volume_name"]: user["volume_mount"]}
    if user.get("volume_whole_home"):
        # The volume at the mount's parent (the home); what it held moves into the mount's
        # folder at each user's next start, so every path stays.
        if s.get("swarm"):
            raise PolicyError(
                "jupyterhub_user_volume_whole_home is not available on a swarm: the move of each "
                "volume's files would run on the hub's engine, not on the node that holds the volume."
            )
        home, folder = posixpath.split(user["volume_mount"].rstrip("/"))
        if not home.startswith("/") or home == "/" or not folder:
            raise PolicyError(
                f"jupyterhub_user_volume_whole_home needs jupyterhub_user_volume_mount to be a folder of "
                f"the home, such as /home/jovyan/work, not {user['volume_mount']!r}"
            )
        c.DockerSpawner.volumes = {user["volume_name"]: home}
        c.FormDockerSpawner.home_volume_moved_into = folder
        c.FormDockerSpawner.home_volume_record = os.path.join(s["data_dir"], "formspawner-whole-home.txt")
    c.FormDockerSpawner.home_volume = user["volume_name"]
    apply_user_ids(c, s)
    for source, target in user.get("shared_mounts", {}).items():
        c.DockerSpawner.volumes[source] = {"bind": target, "mode": "ro"}
    c.DockerSpawner.notebook_dir = user["notebook_dir"]
    c.DockerSpawner.mem_limit = user["mem_limit"]
    c.DockerSpawner.cpu_limit = float(user["cpu_limit"])
    c.FormDockerSpawner.pids_limit = user["pids_limit"]
    apply_storage(c, s)
    # The campus's CA bundle and proxy, for servers and builds (formspawner.outbound).
    outbound = s.get("outbound") or {}
    c.FormDockerSpawner.ca_bundle = outbound.get("ca_bundle", "")
    c.FormDockerSpawner.proxy_env = outbound.get("proxy", {})
    c.FormDockerSpawner.build_network = outbound.get("build_network", "")
    c.Spawner.start_timeout = s["start_timeout"]
    c.Spawner.http_timeout = s["http_timeout"]
    c.FormDockerSpawner.start_slots = start_slots(s.get("start_slots", "auto"), bool(s.get("swarm")))
    c.Spawner.default_url = "/lab"


def apply_storage(c: Config, s: dict) -> None:
    """Storage quotas (the user's volume, the container's writable layer) and the disk the
    hub keeps for itself (formspawner.quota, formspawner.quotad)."""
    from .images import _size

    user, storage = s["user"], s["storage"]
    quotas = {
        key: _size(user[key], f"jupyterhub_user_{key}") if user[key] not in (None, "", 0, "0") else 0
        for key in ("storage_quota", "layer_quota")
    }
    chosen = any((image.get("resources") or {}).get(key) for image in s["images"] for key in quotas)
    if s.get("swarm") and (any(quotas.values()) or chosen):
        raise PolicyError(
            "storage quotas (jupyterhub_user_storage_quota, jupyterhub_user_layer_quota, an image's "
            "resources.storage_quota or layer_quota) are not available on a swarm yet: each node would need "
            "its own quota service and checks. Remove them, or run the hub on one host."
        )
    c.FormDockerSpawner.storage_quota = quotas["storage_quota"]
    c.FormDockerSpawner.layer_quota = quotas["layer_quota"]
    c.FormDockerSpawner.quota_socket = storage["quota_socket"]
    if storage["quota_socket"]:
        use_home_page(c)  # the storage each server used at its last start
    c.FormDockerSpawner.docker_data_root = storage["docker_data_root"]
    free = storage["min_free_disk"]
    c.FormDockerSpawner.min_free_disk = _size(free, "jupyterhub_min_free_disk") if free not in (None, "", 0, "0") else 0


def start_slots(setting, swarm: bool) -> int:
    """How many servers start at once (FormDockerSpawner.start_slots). 'auto': one per core of
    this host, where the servers start, and at least two (benchmarks/README.md, finding 6); on
    a swarm no limit, as the servers start on the workers' cores."""
    if setting == "auto":
        return 0 if swarm else max(2, os.cpu_count() or 1)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise PolicyError(f"jupyterhub_start_slots: 'auto' or a whole number of servers (0: no limit), not {setting!r}")
    return setting


def apply_named_servers(c: Config, s: dict) -> None:
    """Several servers per user (JupyterHub's named servers), each with its own choices;
    the home page lists what each one runs."""
    named = s.get("named_servers") or {}
    if not named.get("enabled"):
        return
    swarm = s.get("swarm") or {}
    if swarm.get("storage") == "pin" and named["storage"] == "user":
        raise PolicyError(
            "named servers with storage 'user' (one volume shared by a user's servers) cannot work with "
            "swarm storage 'pin': each server would be placed on its own node, with its own empty copy "
            "of the volume. Use named server storage 'server' or swarm storage 'shared'."
        )
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = named["limit"]
    c.FormDockerSpawner.server_storage = named["storage"]
    use_home_page(c)


def use_home_page(c: Config) -> None:
    """formspawner's home page (templates/hub/home.html: what each server runs, the
    storage used) before the other pages, once."""
    from importlib import resources

    pages = str(resources.files("formspawner").joinpath("templates", "hub"))
    others = [path for path in c.JupyterHub.get("template_paths", []) if path != pages]
    c.JupyterHub.template_paths = [pages, *others]


def apply_docker_host(c: Config, s: dict) -> None:
    """One host: servers on the users' network, confined by the container's host config
    (no Docker socket is ever mounted, capabilities dropped, no privilege gain through
    setuid programs; the process limit is FormDockerSpawner.pids_limit, as on a swarm)."""
    user = s["user"]
    c.DockerSpawner.network_name = user["network_name"]
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.pull_policy = "ifnotpresent"
    c.DockerSpawner.extra_host_config = {
        "cap_drop": user["cap_drop"],
        "cap_add": user["cap_add"],
        "security_opt": ["no-new-privileges"] if user["no_new_privileges"] else [],
    }


def apply_swarm(c: Config, s: dict) -> None:
    """Several hosts: each server a swarm service on a worker. Services have no host
    config: capabilities go in the container spec, the process limit in the task's
    resources; no-new-privileges is not available to swarm services on these engines
    (API 1.41). FormSwarmSpawner's own defaults cover network, addressing and pulls."""
    user, swarm = s["user"], s["swarm"]
    c.FormSwarmSpawner.extra_placement_spec = {"constraints": swarm["constraints"]}
    c.FormSwarmSpawner.extra_container_spec = {"cap_drop": user["cap_drop"], "cap_add": user["cap_add"]}
    c.FormSwarmSpawner.storage = swarm["storage"]
    c.FormSwarmSpawner.shared_home_root = swarm["shared_home"]
    c.FormSwarmSpawner.shared_volume = user["volume_name"]
    c.FormSwarmSpawner.home_gid = swarm["home_gid"]
    c.FormSwarmSpawner.registry_push = swarm["registry_push"]
    c.FormSwarmSpawner.registry_push_credentials = swarm["registry_push_credentials"]
    c.FormSwarmSpawner.registry_pull = swarm["registry_pull"]


def check_extra_config(extra) -> None:
    """{ClassName: {trait: value}}; anything else would be ignored by traitlets, silently."""
    if not isinstance(extra, dict):
        raise PolicyError("extra_config must be a mapping of class names to settings")
    for class_name, traits in extra.items():
        if not isinstance(class_name, str) or not _CLASS_NAME.fullmatch(class_name):
            raise PolicyError(
                f"extra_config: {class_name!r} is not a configurable class name "
                "(e.g. JupyterHub, Spawner, FormDockerSpawner)"
            )
        if not isinstance(traits, dict) or not all(isinstance(name, str) for name in traits):
            raise PolicyError(f"extra_config.{class_name} must be a mapping of trait names to values")


# A trait the role sets on a class reaches its subclasses too; traitlets takes the value of
# the most specific class that has one. So an admin's value on a subclass would hide the
# role's (FormDockerSpawner.extra_host_config hiding DockerSpawner's cap_drop): the role's
# value is looked for on the class and on these, nearest first.
_BASES = {
    "DockerSpawner": ("Spawner",),
    "SwarmSpawner": ("DockerSpawner", "Spawner"),
    "FormDockerSpawner": ("DockerSpawner", "Spawner"),
    "FormSwarmSpawner": ("FormDockerSpawner", "SwarmSpawner", "DockerSpawner", "Spawner"),
}


def apply_extra_config(c: Config, extra: dict) -> None:
    """Any traitlet, from inventory: {ClassName: {trait: value}}, applied over the above.
    Where the role set the trait too (on that class or a base of it) and both values are
    mappings or lists, they are merged, the admin's keys over the role's and the admin's
    items after the role's (before them in template_paths, searched in order), so that
    setting DockerSpawner.extra_host_config or JupyterHub.load_roles adds to the role's
    confinement and services' roles instead of removing them; an admin's list entry named
    as one of the role's is refused."""
    check_extra_config(extra)
    for class_name, traits in extra.items():
        for name, value in traits.items():
            where = f"extra_config.{class_name}.{name}"
            for section in (class_name, *_BASES.get(class_name, ())):
                if section in c and name in c[section]:
                    value = _merged(c[section][name], value, where)
                    break
            c[class_name][name] = value


def _merged(role, admin, where: str):
    if isinstance(role, dict) and isinstance(admin, dict):
        merged = dict(role)
        for key, value in admin.items():
            merged[key] = _merged(role[key], value, f"{where}.{key}") if key in role else value
        return merged
    if isinstance(role, list) and isinstance(admin, list):
        names = {item.get("name") for item in role if isinstance(item, dict) and item.get("name")}
        for item in admin:
            if isinstance(item, dict) and item.get("name") in names:
                raise PolicyError(
                    f"{where}: {item['name']!r} is set by the jupyterhub role already (its services' "
                    "roles and services come from its own settings: jupyterhub_idle_timeout, "
                    "jupyterhub_metrics_enabled, jupyterhub_services); give yours another name"
                )
        added = [item for item in admin if item not in role]
        # Template folders are searched in order: the admin's own pages come first.
        return [*added, *role] if where.endswith(".template_paths") else [*role, *added]
    if isinstance(role, (dict, list)) and not isinstance(admin, type(role)):
        kind = "a mapping" if isinstance(role, dict) else "a list"
        raise PolicyError(f"{where}: the jupyterhub role sets {kind} here; extra_config must give {kind} too")
    return admin


def check(c: Config) -> None:
    """A broken policy stops the hub here, naming the setting, not at the first spawn."""
    from traitlets.config import Config

    from .spawner import FormDockerSpawner

    section = c.FormSwarmSpawner if "FormSwarmSpawner" in c else Config()
    merged = Config(dict(c.FormDockerSpawner))
    merged.merge(section)
    FormDockerSpawner.check_config(merged)


def register_metrics(settings: dict) -> None:
    """The Docker host's figures on /hub/metrics, read at most every `interval` seconds,
    and the days left on the certificate the hub serves."""
    metrics = settings.get("metrics") or {}
    if metrics.get("enabled"):
        from .metrics import DockerFigures, ServedCertificate

        DockerFigures.register(interval=metrics["interval"])
        quota_socket = (settings.get("storage") or {}).get("quota_socket")
        if quota_socket:
            from .metrics import StorageQuotas

            StorageQuotas.register(quota_socket, interval=metrics["interval"])
        if settings.get("served_cert"):
            ServedCertificate.register(settings["served_cert"])


def load_config_files(directory: str, load_subconfig) -> list[str]:
    """The admin's own config files (*.py in `directory`), in name order, after the above."""
    if not directory or not os.path.isdir(directory):
        return []
    names = sorted(name for name in os.listdir(directory) if name.endswith(".py"))
    for name in names:
        load_subconfig(os.path.join(directory, name))
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m formspawner.hubconfig SETTINGS_JSON", file=sys.stderr)
        return 2
    from traitlets.config import Config

    try:
        settings = load_settings(argv[0])
        check(apply(Config(), settings))
        from traitlets.utils.importstring import import_item

        import_item(settings["authenticator_class"])
    except (OSError, ValueError, KeyError, TypeError, ImportError, PolicyError) as error:
        print(f"{argv[0]}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
