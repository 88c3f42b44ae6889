"""Check the jupyterhub role's inventory on the controller, before anything changes.

Each rule the argument specs cannot say (meta/argument_specs.yml: types and choices, and
nothing more) is written here, once: rules across settings, formats, and formspawner's
own rules for the spawn options (its plain-Python modules, imported from the source the
role installs). An exception of the network policy is checked by the policy program's own
code (files/jupyterhub-egress, which checks the same entries again on the host), so the
two cannot disagree. Every error is reported at once; nothing here changes anything.

Usage: python3 check_inventory.py FORMSPAWNER_DIR < SETTINGS.json
SETTINGS: the role's variables by name (jupyterhub_...; docker_daemon_options), and
"host": the target's memory in bytes, its CPUs and whether it is a swarm manager, whose
users' servers run on workers (null where the facts were not gathered), and the hub's
own port. Prints {"warnings": [...]}; exits 1 with one "Inventory error" line per error.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import sys
from pathlib import Path

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_KEYS = ("email", "domains", "directory", "ca_file")
DNS_NAME_RE = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
MEMORY_MAX_RE = re.compile(r"([1-9][0-9]?%|100%|[1-9][0-9]*[KMGT]?|infinity)")
TASKS_MAX_RE = re.compile(r"([1-9][0-9]{2,}|infinity)")


class InventoryError(Exception):
    """A setting this role cannot use; the message names it."""


def shown(value: object, width: int = 40) -> str:
    """A value as the admin wrote it, on one line and short."""
    text = str(value).encode("unicode_escape").decode("ascii")
    return text if len(text) <= width else text[: width - 3] + "..."


def truthy(value: object) -> bool:
    """Ansible's `bool` filter: yes/on/true/1 in any case, and true numbers."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "true", "1")
    return value is True or (isinstance(value, (int, float)) and value == 1)


def acme_on(s: dict) -> bool:
    acme = s["jupyterhub_tls_acme"]
    return bool(s["jupyterhub_tls_enabled"]) and isinstance(acme, dict) and bool(acme.get("domains"))


def check_service_limits(s: dict) -> None:
    memory, tasks = s["jupyterhub_service_memory_max"], s["jupyterhub_service_tasks_max"]
    if not MEMORY_MAX_RE.fullmatch(str(memory)):
        raise InventoryError(
            "jupyterhub_service_memory_max must be a percentage of the host's memory (50%), a size "
            f"(512M, 2G) or infinity, not {shown(memory)}"
        )
    if isinstance(tasks, bool) or not TASKS_MAX_RE.fullmatch(str(tasks)):
        raise InventoryError(
            f"jupyterhub_service_tasks_max must be a number of at least 100 or infinity, not {shown(tasks)}"
        )


LTI13_NEEDS = ("issuer", "client_id", "authorize_url", "jwks_endpoint")


def check_authenticator(s: dict) -> None:
    if s["jupyterhub_authenticator"] == "lti13":
        config = s.get("jupyterhub_authenticator_config") or {}
        missing = [key for key in LTI13_NEEDS if not config.get(key)]
        if missing:
            raise InventoryError(
                "jupyterhub_authenticator: lti13 needs in jupyterhub_authenticator_config the platform's "
                + ", ".join(missing)
                + " (from the LMS's registration of the tool: docs/admin.md, \"Launches from the LMS\")."
            )
    if s["jupyterhub_authenticator"] != "dummy":
        return
    if not truthy(s["jupyterhub_insecure_demo"]):
        raise InventoryError(
            "jupyterhub_authenticator: dummy lets anyone log in with one shared password. It is for demos "
            "and tests only: set jupyterhub_insecure_demo: true to confirm, or choose native, pam, "
            "generic-oauth, github or ldap."
        )
    if len(str(s["jupyterhub_dummy_password"] or "")) < 8:
        raise InventoryError("jupyterhub_dummy_password must have at least 8 characters.")


def check_login_groups(s: dict) -> None:
    """Groups from the login: an authenticator that brings them, and what it needs."""
    enabled = truthy(s.get("jupyterhub_login_groups"))
    if s.get("jupyterhub_admin_groups") and not enabled:
        raise InventoryError(
            "jupyterhub_admin_groups needs jupyterhub_login_groups: true (the groups come from the login); "
            "otherwise name the admins in jupyterhub_admin_users."
        )
    if not enabled:
        return
    authenticator = s["jupyterhub_authenticator"]
    if authenticator not in ("ldap", "generic-oauth", "lti13"):
        raise InventoryError(
            f"jupyterhub_login_groups: the {authenticator} login brings no groups. Use ldap, generic-oauth or lti13, "
            "or set it to false and give users their groups with load_groups or the admin page."
        )
    config = s.get("jupyterhub_authenticator_config") or {}
    if authenticator == "ldap":
        missing = [key for key in ("allowed_groups", "group_search_filter", "group_attributes") if not config.get(key)]
        if missing:
            raise InventoryError(
                "jupyterhub_login_groups with ldap needs in jupyterhub_authenticator_config: "
                + ", ".join(missing)
                + " (allowed_groups: the DNs of the groups to bring, e.g. cn=ml-101,ou=groups,dc=campus,dc=edu; "
                "group_search_filter: (member={userdn}); group_attributes: [member]). With jupyterhub_allow_all "
                "false, only members of those groups may log in."
            )
    for key in ("manage_groups", "auth_state_groups_key", "admin_groups", "post_auth_hook"):
        if key in config:
            raise InventoryError(
                f"jupyterhub_authenticator_config.{key} is set by jupyterhub_login_groups "
                "(and jupyterhub_admin_groups, jupyterhub_login_groups_claim): remove it."
            )


PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==([A-Za-z0-9][A-Za-z0-9.+!_-]*)")


def package_name(name: str) -> str:
    """A package's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# pip's hash options (hash-checking mode), each of its own length.
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")


def check_extra_packages(s: dict) -> None:
    """More packages in the hub's environment: each pinned, none the hub pins itself,
    hashes (pip's `--hash=sha256:...`, any number) where given well-formed."""
    extra = s.get("jupyterhub_extra_packages") or []
    own = {package_name(PIN.fullmatch(p).group(1)) for p in s.get("hub_packages") or [] if PIN.fullmatch(p)}
    own |= {"jupyterhub", "formspawner"}
    seen = set()
    for entry in extra:
        pin, *hashes = str(entry).split() or [""]
        found = PIN.fullmatch(pin)
        if not found:
            raise InventoryError(
                f"jupyterhub_extra_packages: {shown(pin)} is not a pinned package: write name==version "
                "(e.g. jupyterhub-tmpauthenticator==1.0.0), so that every run and the offline bundle install "
                "the same, and the file's hashes after it if you have them (--hash=sha256:...)."
            )
        for option in hashes:
            if not HASH.fullmatch(option):
                raise InventoryError(
                    f"jupyterhub_extra_packages: {shown(option)} after {pin} is not a hash pip can check: write"
                    " --hash=sha256: and the file's 64 hex digits (pip hash FILE prints it; sha384 and sha512 too)."
                )
        name = package_name(found.group(1))
        if name in own:
            raise InventoryError(
                f"jupyterhub_extra_packages: {found.group(1)} is one of the hub's own packages, pinned by the "
                "role (jupyterhub_version, jupyterhub_authenticator_versions, ...): change that setting instead."
            )
        if name in seen:
            raise InventoryError(f"jupyterhub_extra_packages: {found.group(1)} is listed twice.")
        seen.add(name)


def check_metrics(s: dict) -> None:
    names = [service.get("name") for service in s["jupyterhub_services"] if isinstance(service, dict)]
    if truthy(s["jupyterhub_metrics_enabled"]) and "prometheus" in names:
        raise InventoryError(
            "jupyterhub_services has a service named prometheus, the name the role gives the metrics token "
            "(jupyterhub_metrics_enabled). Rename that service, or set jupyterhub_metrics_token to its "
            "token and remove it from jupyterhub_services."
        )
    if 0 < len(s["jupyterhub_metrics_token"] or "") < 32:
        raise InventoryError(
            "jupyterhub_metrics_token must have at least 32 characters (or be empty: generated on the server)."
        )


def check_tls(s: dict) -> None:
    own_cert, own_key = bool(s["jupyterhub_tls_cert_src"]), bool(s["jupyterhub_tls_key_src"])
    if own_cert != own_key:
        raise InventoryError(
            "Set both jupyterhub_tls_cert_src and jupyterhub_tls_key_src, or neither (a self-signed certificate)."
        )
    acme = s["jupyterhub_tls_acme"]
    domains = acme.get("domains", []) if isinstance(acme, dict) else None
    if (
        not isinstance(acme, dict)
        or set(acme) - set(ACME_KEYS)
        or not isinstance(domains, list)
        or not all(isinstance(name, str) and DNS_NAME_RE.fullmatch(name) for name in domains)
        or not str(acme.get("directory") or LETSENCRYPT).startswith("https://")
        or (acme.get("email") and not EMAIL_RE.fullmatch(str(acme["email"])))
    ):
        raise InventoryError(
            "jupyterhub_tls_acme takes email, domains (a list of lower-case DNS names, no wildcards: HTTP-01 "
            "cannot validate them), directory (an https:// ACME directory URL) and ca_file; got "
            f"{shown(json.dumps(acme), 200)}."
        )
    if not acme_on(s):
        return
    if own_cert:
        raise InventoryError(
            "jupyterhub_tls_acme.domains and jupyterhub_tls_cert_src are both set: choose the certificate "
            "from the ACME CA or your own file, not both."
        )
    if s["jupyterhub_subdomain_host"]:
        wildcard = re.sub(r"^https?://", "", s["jupyterhub_subdomain_host"])
        raise InventoryError(
            f"jupyterhub_subdomain_host needs a certificate for *.{wildcard}, a wildcard that Let's Encrypt "
            "issues only through the DNS-01 challenge, which this role does not do (HTTP-01 only). Give a "
            "wildcard certificate with jupyterhub_tls_cert_src / jupyterhub_tls_key_src, or turn subdomains off."
        )
    port, backend, hub = (int(s[name]) for name in ("jupyterhub_port", "jupyterhub_tls_acme_backend_port", "hub_port"))
    if port == 80 or backend in (80, port, hub):
        raise InventoryError(
            "With jupyterhub_tls_acme, port 80 answers the CA's challenge and redirects to https: "
            f"jupyterhub_port ({port}) cannot be 80, and jupyterhub_tls_acme_backend_port ({backend}) must "
            f"differ from 80, jupyterhub_port and the hub's own port {hub}."
        )


def check_database(s: dict) -> None:
    """The backups, the restore, the schema backup before a migration and the upgrade
    checks read the SQLite file in the data directory: another database would leave them
    silently without it. PostgreSQL is not supported in this release (docs/admin.md)."""
    wanted = f"sqlite:///{s['jupyterhub_data_dir']}/jupyterhub.sqlite"
    if s["jupyterhub_db_url"] != wanted:
        raise InventoryError(
            f"jupyterhub_db_url: {shown(s['jupyterhub_db_url'], 80)} is not the database this role can back up, "
            f"restore and upgrade: it supports the SQLite file in jupyterhub_data_dir ({wanted}, the default) "
            "only. Remove jupyterhub_db_url from your inventory; another database (PostgreSQL) is not "
            "supported in this release."
        )


def check_start_slots(s: dict) -> None:
    slots = s["jupyterhub_start_slots"]
    # A string of digits too (-e on the command line gives strings); not true, 2.5 or -1.
    if slots != "auto" and (isinstance(slots, bool) or not re.fullmatch(r"[0-9]+", str(slots))):
        raise InventoryError(
            f"jupyterhub_start_slots must be auto or a whole number of servers (0: no limit), not {shown(slots)}."
        )


def check_extra_config_files(s: dict) -> None:
    others = [str(path) for path in s["jupyterhub_extra_config_files"] if not str(path).endswith(".py")]
    if others:
        raise InventoryError(
            f"jupyterhub_extra_config_files: {', '.join(others)} do not end in .py; the hub loads only *.py "
            "files from jupyterhub_config.d."
        )


def check_network_policy(s: dict, egress) -> None:
    """The policy's rules are IPv4 rules. Users' and builds' networks are made with IPv6 off,
    but Docker's default bridge is not theirs: users' servers on a swarm's workers run there,
    and builds do where no build network is set."""
    for i, rule in enumerate(s["jupyterhub_egress_allow"] or []):
        try:
            egress.check_allow(rule, f"jupyterhub_egress_allow[{i}]")
        except egress.PolicyError as error:
            raise InventoryError(
                f"{error}. An exception is {{to: ADDRESS or ADDRESS/PREFIX (IPv4), ports: [up to 15 port "
                "numbers]}, e.g. {to: 10.20.0.5, ports: [5432]} or {to: 10.30.0.0/16} (every port), and host: "
                "true (a boolean) where the exception is for a service on this host itself."
            ) from None
    if s["jupyterhub_egress_policy"] == "off":
        return
    daemon = s.get("docker_daemon_options") or {}
    bridge = (daemon.get("default-network-opts") or {}).get("bridge") or {}
    bridge_ipv6 = str(bridge.get("com.docker.network.enable_ipv6", "false")).lower() == "true"
    if truthy(daemon.get("ipv6", False)) or bridge_ipv6:
        raise InventoryError(
            "docker_daemon_options turns IPv6 on for Docker's default bridge (ipv6: true, or "
            "default-network-opts bridge com.docker.network.enable_ipv6), where users' servers on a swarm's "
            "workers and builds can run, while jupyterhub_egress_policy's rules are IPv4 only: users would "
            "reach IPv6 addresses no rule covers. Remove the setting, or set jupyterhub_egress_policy: off "
            "if you filter IPv6 yourself."
        )


def check_spawn_options(s: dict) -> None:
    """formspawner's own rules, as the hub applies them (imported from its source)."""
    from formspawner.errors import PolicyError
    from formspawner.hubconfig import check_extra_config
    from formspawner.images import ImageCatalog
    from formspawner.options import OptionSet

    host = s.get("host") or {}
    try:
        OptionSet.from_config(
            s["jupyterhub_form_options"],
            s["jupyterhub_images"],
            s["jupyterhub_env_policy"],
            s["jupyterhub_repo_policy"],
            gpus="count" if host.get("swarm") else "devices",
        )
        if not host.get("swarm"):  # on a swarm, servers run on the workers, whatever their size
            catalog = ImageCatalog.from_config(s["jupyterhub_images"])
            catalog.check_fits(host.get("memory"), host.get("cpus"), s["jupyterhub_user_mem_limit"])
            catalog.check_total(host.get("memory"), int(s["jupyterhub_active_server_limit"] or 0))
            cpus, limit = host.get("cpus"), s["jupyterhub_user_cpu_limit"]
            if cpus and limit and float(limit) > cpus:
                raise PolicyError(
                    f"user_cpu_limit: {float(limit):g} is more than this host's {cpus:g} CPUs "
                    "(Docker refuses to start a server with more)"
                )
        check_extra_config(s["jupyterhub_extra_config"])
    except PolicyError as error:
        raise InventoryError(f"in jupyterhub_{error}") from None


def check_storage(s: dict) -> None:
    """Storage quotas and the disk the hub keeps: sizes, and what quotas need."""
    from formspawner.errors import PolicyError
    from formspawner.images import ImageCatalog, _size

    sizes = {}
    for key in ("jupyterhub_user_storage_quota", "jupyterhub_user_layer_quota", "jupyterhub_min_free_disk"):
        value = s[key]
        if value in (None, "", 0, "0"):
            continue
        try:
            sizes[key] = _size(value, key)
        except PolicyError as error:
            raise InventoryError(f"{error} (or \"\" for none).") from None
    try:
        choices = ImageCatalog.from_config(s["jupyterhub_images"]).choices
    except PolicyError:
        return  # check_spawn_options reports it
    chosen = [c.name for c in choices if c.resources.storage_quota or c.resources.layer_quota]
    if not sizes.keys() - {"jupyterhub_min_free_disk"} and not chosen:
        return
    if (s.get("host") or {}).get("swarm"):
        raise InventoryError(
            "storage quotas (jupyterhub_user_storage_quota, jupyterhub_user_layer_quota, or resources.storage_quota "
            f"/ layer_quota of the images {', '.join(chosen) or 'none'}) are not available on a swarm in this "
            "release: remove them, or run the hub's servers on one host."
        )
    if not s["jupyterhub_user_volume_name"].split("{")[0]:
        raise InventoryError(
            f"jupyterhub_user_volume_name {shown(s['jupyterhub_user_volume_name'])} has no fixed start (such as "
            "jupyterhub-user-{username}): the quota service touches only volumes whose names start with it."
        )


def warnings(s: dict) -> list[str]:
    found = []
    # Without per-user subdomains every user's server is served from the hub's own origin, so
    # a page a launched repository serves (a notebook's HTML output, a JupyterLab extension)
    # runs with the same origin as the hub and as every other user's server.
    if "repo" in s["jupyterhub_form_options"] and not s["jupyterhub_subdomain_host"]:
        found.append(
            "WARNING: repository launches are on ('repo' in jupyterhub_form_options) but "
            "jupyterhub_subdomain_host is empty. A launched repository runs its own code in the user's "
            "server, and without per-user subdomains the pages it serves share the hub's origin "
            "(https://your-hub/user/NAME/...) with the hub and every other user's server. Set "
            "jupyterhub_subdomain_host (wildcard DNS and certificate) to give each server an origin of "
            "its own (docs/admin.md)."
        )
    return found


def load_egress(path: Path):
    """The network policy's program (no .py suffix: it is installed as a command)."""
    loader = importlib.machinery.SourceFileLoader("jupyterhub_egress", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("jupyterhub_egress", loader))
    loader.exec_module(module)
    return module


def check_user_ids(s: dict) -> None:
    """Users' own ids: one host only, above the images' and the host's users."""
    from formspawner.errors import PolicyError
    from formspawner.identity import check_first_uid

    if s["jupyterhub_user_ids"] == "distinct" and (s.get("host") or {}).get("swarm"):
        raise InventoryError(
            "jupyterhub_user_ids: distinct is not available on a swarm yet (each volume is given to its user's id "
            "by a short container on the engine that holds it): use auto (the image's user there) or image."
        )
    if s["jupyterhub_user_ids"] != "image":
        try:
            check_first_uid(int(s["jupyterhub_user_first_uid"]))
        except PolicyError as error:
            raise InventoryError(f"jupyterhub_user_{error}.") from None


def check_courses(s: dict) -> None:
    """Courses as the hub reads them (names, groups, mounts, their images in the catalogue)."""
    from formspawner.courses import from_config, with_course_images
    from formspawner.errors import PolicyError
    from formspawner.images import ImageCatalog

    entries = s["jupyterhub_courses"]
    if not entries:
        return
    if (s.get("host") or {}).get("swarm"):
        raise InventoryError(
            "jupyterhub_courses are not available on a swarm yet: their folders are folders of the hub's host."
        )
    root, mount, teams = s["jupyterhub_course_root"], s["jupyterhub_course_mount"], s["jupyterhub_team_mount"]
    if s["jupyterhub_user_ids"] == "image" and any(isinstance(e, dict) and e.get("team_groups") for e in entries):
        raise InventoryError(
            "jupyterhub_courses' team_groups need each user's own id (jupyterhub_user_ids: auto or distinct): "
            "with the image's user for all, a team's members could delete each other's files."
        )

    def as_passed(entry: dict) -> dict:
        """As the role passes a course, with stand-in group ids (the host gives the real ones)."""
        passed = {key: value for key, value in entry.items() if key != "team_groups"}
        name = entry.get("name")
        passed.update(gid=1, path=f"{root}/{name}", mount=entry.get("mount") or f"{mount}/{name}")
        groups = entry.get("team_groups") or []
        if not isinstance(groups, list):
            raise InventoryError(f"jupyterhub_courses {entry.get('name')!r}.team_groups must be a list of group names")
        passed["teams"] = [
            {"name": team, "gid": 1, "path": f"{root}/.teams/{team}", "mount": f"{teams}/{team}"} for team in groups
        ]
        return passed

    try:
        courses = from_config(
            [as_passed(entry) if isinstance(entry, dict) else entry for entry in entries], "jupyterhub_courses"
        )
        offered = with_course_images(s["jupyterhub_images"], courses, "jupyterhub_courses")
        ImageCatalog.from_config(offered, "jupyterhub_images")
    except PolicyError as error:
        raise InventoryError(f"{str(error).rstrip('.')}.") from None


def check(s: dict, egress) -> list[str]:
    """Every error, each naming its setting (an empty list: the inventory is usable)."""
    rules = (check_service_limits, check_authenticator, check_login_groups, check_extra_packages, check_metrics,
             check_tls, check_database, check_start_slots, check_extra_config_files, check_spawn_options, check_storage,
             check_user_ids, check_courses, lambda s: check_network_policy(s, egress))  # fmt: skip
    errors = []
    for rule in rules:
        try:
            rule(s)
        except InventoryError as error:
            errors.append(str(error))
    return errors


def main(argv: list[str]) -> int:
    sys.path.insert(0, argv[0])
    settings = json.load(sys.stdin)
    errors = check(settings, load_egress(Path(__file__).with_name("jupyterhub-egress")))
    for error in errors:
        print(f"Inventory error{'' if error.startswith('in ') else ':'} {error}", file=sys.stderr)
    if errors:
        return 1
    json.dump({"warnings": warnings(settings)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
