"""The jupyterhub role's inventory rules (roles/jupyterhub/files/check_inventory.py),
in-process: each rule refuses what it must and lets the role's defaults and working
settings through. Through Ansible, as the role runs it before any change:
test_jupyterhub_config.py (preflight) and test_argument_specs.py (the whole role)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "roles/jupyterhub/files"
_spec = importlib.util.spec_from_file_location("check_inventory", FILES / "check_inventory.py")
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)
egress = checker.load_egress(FILES / "jupyterhub-egress")

DEFAULTS = yaml.safe_load((ROOT / "roles/jupyterhub/defaults/main.yml").read_text())
# The role's defaults as the preflight passes them (the templated ones as they come out).
BASE = {
    **{name: value for name, value in DEFAULTS.items() if name in (
        "jupyterhub_active_server_limit", "jupyterhub_authenticator", "jupyterhub_authenticator_config",
        "jupyterhub_login_groups", "jupyterhub_admin_groups", "jupyterhub_dummy_password", "jupyterhub_extra_packages",
        "jupyterhub_egress_allow", "jupyterhub_egress_policy", "jupyterhub_env_policy", "jupyterhub_extra_config",
        "jupyterhub_extra_config_files", "jupyterhub_form_options", "jupyterhub_images", "jupyterhub_insecure_demo",
        "jupyterhub_metrics_enabled", "jupyterhub_metrics_token", "jupyterhub_port", "jupyterhub_repo_policy",
        "jupyterhub_service_memory_max", "jupyterhub_service_tasks_max", "jupyterhub_services",
        "jupyterhub_start_slots", "jupyterhub_subdomain_host", "jupyterhub_tls_acme",
        "jupyterhub_tls_acme_backend_port", "jupyterhub_tls_cert_src", "jupyterhub_tls_enabled",
        "jupyterhub_tls_key_src", "jupyterhub_user_storage_quota", "jupyterhub_user_layer_quota",
        "jupyterhub_min_free_disk", "jupyterhub_user_volume_name", "jupyterhub_user_ids",
        "jupyterhub_user_first_uid", "jupyterhub_courses", "jupyterhub_course_root", "jupyterhub_course_mount",
        "jupyterhub_team_mount")},
    "jupyterhub_images": [{"name": "minimal", "image": "quay.io/jupyter/minimal-notebook:2025-01-01"}],
    "jupyterhub_user_cpu_limit": 1, "jupyterhub_user_mem_limit": "1G",
    "jupyterhub_data_dir": DEFAULTS["jupyterhub_data_dir"],
    "jupyterhub_db_url": f"sqlite:///{DEFAULTS['jupyterhub_data_dir']}/jupyterhub.sqlite",
    "docker_daemon_options": {}, "hub_port": 8081,
    "hub_packages": [f"jupyterhub=={DEFAULTS['jupyterhub_version']}", "dockerspawner==14.0.0",
                     "jupyterhub-idle-culler==2.0.0"],
    "host": {"memory": 8 << 30, "cpus": 4, "swarm": False},
}  # fmt: skip
ACME = {"jupyterhub_tls_acme": {"email": "admin@example.edu", "domains": ["hub.example.edu"]}}


def errors(**changes) -> list[str]:
    sys.path.insert(0, str(ROOT / "files/formspawner"))
    try:
        return checker.check({**copy.deepcopy(BASE), **changes}, egress)
    finally:
        sys.path.remove(str(ROOT / "files/formspawner"))


def refused(message: str, **changes) -> None:
    found = errors(**changes)
    assert len(found) == 1 and message in found[0], found


def test_the_roles_defaults_pass():
    assert errors() == []
    assert checker.warnings(BASE) == []


@pytest.mark.parametrize("good", ["50%", "100%", "2G", "512M", "1048576", "infinity"])
def test_the_hub_units_memory_limit_is_a_share_a_size_or_infinity(good):
    assert errors(jupyterhub_service_memory_max=good) == []


@pytest.mark.parametrize("bad", ["lots", "150%", "0", "0%", "2g", "2G\nExecStartPre=/bin/sh -c id", "infinity "])
def test_any_other_memory_limit_is_refused_on_one_line(bad):
    found = errors(jupyterhub_service_memory_max=bad)
    assert len(found) == 1 and "jupyterhub_service_memory_max must be a percentage" in found[0], found
    assert "\n" not in found[0]


@pytest.mark.parametrize("good, bad", [(100, 99), ("4096", "many"), ("infinity", True), (12000, "100\n")])
def test_the_hub_units_task_limit_is_at_least_100_or_infinity(good, bad):
    assert errors(jupyterhub_service_tasks_max=good) == []
    refused("jupyterhub_service_tasks_max must be a number of at least 100", jupyterhub_service_tasks_max=bad)


def test_the_dummy_authenticator_needs_the_demo_flag_and_a_password():
    refused("It is for demos and tests only", jupyterhub_authenticator="dummy", jupyterhub_dummy_password="12345678")
    refused(
        "jupyterhub_dummy_password must have at least 8 characters",
        jupyterhub_authenticator="dummy",
        jupyterhub_insecure_demo=True,
        jupyterhub_dummy_password="1234567",
    )
    assert (
        errors(jupyterhub_authenticator="dummy", jupyterhub_insecure_demo="yes", jupyterhub_dummy_password="12345678")
        == []
    )
    assert errors(jupyterhub_authenticator="native", jupyterhub_dummy_password="") == []  # fmt: skip


def test_the_metrics_service_keeps_its_name_and_its_token_is_long():
    prometheus = [{"name": "prometheus", "api_token": "x" * 32}]
    refused("has a service named prometheus", jupyterhub_services=prometheus)
    assert errors(jupyterhub_services=prometheus, jupyterhub_metrics_enabled=False) == []
    assert errors(jupyterhub_services=[{"name": "grader"}, {"api_token": "y"}]) == []
    refused("jupyterhub_metrics_token must have at least 32", jupyterhub_metrics_token="x" * 31)
    assert errors(jupyterhub_metrics_token="x" * 32) == []


def test_a_certificate_comes_with_its_key():
    refused("Set both jupyterhub_tls_cert_src and jupyterhub_tls_key_src", jupyterhub_tls_cert_src="/c.pem")
    refused("Set both jupyterhub_tls_cert_src and jupyterhub_tls_key_src", jupyterhub_tls_key_src="/c.key")
    assert errors(jupyterhub_tls_cert_src="/c.pem", jupyterhub_tls_key_src="/c.key") == []


@pytest.mark.parametrize(
    "acme",
    [
        {"domains": ["*.hub.example.edu"]},
        {"domains": "hub.example.edu"},
        {"domains": ["Hub.example.edu"]},
        {"domains": ["hub.example.edu\n"]},
        {"domains": ["hub"]},
        {"domains": [7]},
        {"domains": ["hub.example.edu"], "directory": "http://ca.example.edu/dir"},
        {"domains": ["hub.example.edu"], "mail": "a@b.c"},
        {"domains": ["hub.example.edu"], "email": "not an address"},
        {"domains": ["hub.example.edu"], "email": "a@b@c"},
        ["hub.example.edu"],
    ],
)
def test_acme_settings_that_cannot_work_are_refused(acme):
    refused("jupyterhub_tls_acme takes email, domains", jupyterhub_tls_acme=acme)


def test_acme_settings_that_work_pass():
    assert errors(**ACME) == []
    assert errors(jupyterhub_tls_acme={
        "domains": ["hub.example.edu", "jupyter.example.edu"], "directory": "https://acme.campus.example.edu/dir",
        "ca_file": "/etc/campus-ca.pem"}) == []  # fmt: skip
    assert errors(jupyterhub_tls_acme={"domains": ["hub.example.edu"], "directory": "", "email": ""}) == []


def test_acme_conflicts_are_refused_only_while_acme_is_on():
    own = {"jupyterhub_tls_cert_src": "/x.pem", "jupyterhub_tls_key_src": "/x.key"}
    refused("choose the certificate from the ACME CA or your own file", **ACME, **own)
    refused(
        "a certificate for *.hub.example.edu, a wildcard", **ACME, jupyterhub_subdomain_host="https://hub.example.edu"
    )
    refused("jupyterhub_port (80) cannot be 80", **ACME, jupyterhub_port=80)
    for backend in (80, 443, 8081):
        message = f"jupyterhub_tls_acme_backend_port ({backend}) must differ"
        refused(message, **ACME, jupyterhub_tls_acme_backend_port=backend)
    assert errors(**ACME, jupyterhub_tls_acme_backend_port=8001) == []
    # The same settings without ACME (no domains, or TLS off) are nobody's conflict.
    for off in ({"jupyterhub_tls_acme": {}}, {**ACME, "jupyterhub_tls_enabled": False}):
        assert errors(**off, **own, jupyterhub_subdomain_host="https://hub.example.edu", jupyterhub_port=80) == []


@pytest.mark.parametrize("good, bad", [("auto", "many"), (0, -1), ("3", True), (12, 2.5), ("10", "3\n")])
def test_start_slots_are_auto_or_a_whole_number(good, bad):
    assert errors(jupyterhub_start_slots=good) == []
    refused(
        "jupyterhub_start_slots must be auto or a whole number of servers (0: no limit), not",
        jupyterhub_start_slots=bad,
    )


def test_extra_config_files_are_python_files():
    refused(
        "/srv/hub/limits.yml, /srv/hub/py do not end in .py",
        jupyterhub_extra_config_files=["/srv/a.py", "/srv/hub/limits.yml", "/srv/hub/py", "/srv/b.py"],
    )
    assert errors(jupyterhub_extra_config_files=["/srv/a.py"]) == []


@pytest.mark.parametrize(
    "entry, message",
    [
        ("10.0.0.1", "jupyterhub_egress_allow[0] is not a mapping"),
        ({"to": "10.0.0.1", "port": [22]}, "jupyterhub_egress_allow[0] has port: an exception takes to, ports"),
        ({"to": "10.0.0.0/33"}, "jupyterhub_egress_allow[0].to is not an IPv4 address"),
        ({"to": "campus.example.edu"}, "jupyterhub_egress_allow[0].to is not an IPv4 address"),
        ({"to": "2001:db8::1"}, "jupyterhub_egress_allow[0].to is not an IPv4 address"),
        ({}, "jupyterhub_egress_allow[0].to is not an IPv4 address"),
        ({"to": "10.0.0.1", "ports": 22}, "jupyterhub_egress_allow[0].ports must be a list of at most 15"),
        ({"to": "10.0.0.1", "ports": list(range(1, 17))}, "jupyterhub_egress_allow[0].ports must be a list"),
        ({"to": "10.0.0.1", "ports": [0]}, "jupyterhub_egress_allow[0].ports must be a port number"),
        ({"to": "10.0.0.1", "ports": [65536]}, "jupyterhub_egress_allow[0].ports must be a port number"),
        ({"to": "10.0.0.1", "ports": ["5432"]}, "jupyterhub_egress_allow[0].ports must be a port number"),
        ({"to": "10.0.0.1", "ports": [True]}, "jupyterhub_egress_allow[0].ports must be a port number"),
        ({"to": "10.0.0.1", "host": "yes"}, "jupyterhub_egress_allow[0].host must be true or false"),
    ],
)
def test_a_network_exception_the_policy_program_would_refuse_is_refused_before_any_change(entry, message):
    found = errors(jupyterhub_egress_allow=[entry])
    assert len(found) == 1 and found[0].startswith(message) and "An exception is {to: ADDRESS" in found[0], found


def test_network_exceptions_the_policy_program_takes_pass():
    allow = [{"to": "10.20.0.5", "ports": [5432, 65535, 1]}, {"to": "10.30.0.0/16"}, {"to": "10.0.0.7", "host": True},
             {"to": "10.1.2.3/16", "ports": list(range(1, 16))}]  # fmt: skip
    assert errors(jupyterhub_egress_allow=allow) == []
    # The same entries pass the program's check of the file the role writes from them.
    egress.check({"policy": "allowlist", "subnets": ["10.211.0.0/24"], "allow": allow,
                  "hub": {"chain": "JUPYTERHUB-INPUT", "from": "10.211.0.0/24", "to": "10.211.0.1", "port": 8081}},
                 "policy.json")  # fmt: skip


@pytest.mark.parametrize(
    "daemon",
    [{"ipv6": True}, {"ipv6": "yes"}, {"default-network-opts": {"bridge": {"com.docker.network.enable_ipv6": "True"}}}],
)
def test_daemon_settings_that_put_users_on_ipv6_are_refused_while_the_policy_is_on(daemon):
    refused("turns IPv6 on for Docker's default bridge", docker_daemon_options=daemon)
    refused("turns IPv6 on", docker_daemon_options=daemon, jupyterhub_egress_policy="allowlist")
    assert errors(docker_daemon_options=daemon, jupyterhub_egress_policy="off") == []


def test_daemon_settings_without_ipv6_pass():
    for daemon in ({"ipv6": False, "log-level": "warn"}, {"default-network-opts": {"bridge": {"x": "true"}}}, None):
        assert errors(docker_daemon_options=daemon) == []


def test_the_spawn_options_are_checked_with_formspawners_rules():
    refused(
        "in jupyterhub_images: the name 'a' is used by more than one entry",
        jupyterhub_images=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}],
    )
    refused("in jupyterhub_user_cpu_limit: 5 is more than this host's 4 CPUs", jupyterhub_user_cpu_limit=5)
    # A swarm's servers run on the workers: the manager's size does not limit them.
    assert errors(jupyterhub_user_cpu_limit=5, host={"memory": 8 << 30, "cpus": 4, "swarm": True}) == []
    refused(
        "in jupyterhub_extra_config: 'jupyterhub' is not a configurable class name",
        jupyterhub_extra_config={"jupyterhub": {"concurrent_spawn_limit": 20}},
    )


def test_every_error_is_reported_at_once():
    found = errors(jupyterhub_start_slots="many", jupyterhub_metrics_token="short",
                   jupyterhub_egress_allow=[{"to": "x"}], jupyterhub_user_cpu_limit=5)  # fmt: skip
    assert len(found) == 4, found


def test_launches_without_subdomains_are_warned_about():
    launches = {**BASE, "jupyterhub_form_options": ["image", "env", "repo"]}
    assert checker.warnings(launches)[0].startswith("WARNING: repository launches are on")
    assert checker.warnings({**launches, "jupyterhub_subdomain_host": "https://hub.example.edu"}) == []


def test_the_program_prints_warnings_or_every_error_and_fails():
    run = [sys.executable, str(FILES / "check_inventory.py"), str(ROOT / "files/formspawner")]
    ok = subprocess.run(run, input=json.dumps({**BASE, "jupyterhub_form_options": ["repo"]}), capture_output=True,
                        text=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(ok.stdout)["warnings"][0].startswith("WARNING: repository launches")
    twice = [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]
    settings = json.dumps({**BASE, "jupyterhub_start_slots": "x", "jupyterhub_images": twice})
    bad = subprocess.run(run, input=settings, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "Inventory error: jupyterhub_start_slots must be auto or a whole number of servers (0: no limit), not x.",
        "Inventory error in jupyterhub_images: the name 'a' is used by more than one entry",
    ]


def test_the_preflight_has_no_rule_of_its_own():
    """A rule lives in one place: the preflight runs the checker and asserts nothing itself."""
    tasks = yaml.safe_load((ROOT / "roles/jupyterhub/tasks/preflight.yml").read_text())
    assert not [task["name"] for task in tasks if "ansible.builtin.assert" in task]


def test_the_database_is_the_sqlite_file_backups_restores_and_upgrades_read():
    """Issue 46: another URL would leave backups and the migration's safety copy silently
    without the database; it is refused, naming the setting and the one it supports."""
    data = DEFAULTS["jupyterhub_data_dir"]
    assert errors(jupyterhub_data_dir=data, jupyterhub_db_url=f"sqlite:///{data}/jupyterhub.sqlite") == []
    for other in ("postgresql://hub:secret@db.example.edu/jupyterhub", f"sqlite:///{data}/other.sqlite",
                  "sqlite:////srv/hub/jupyterhub.sqlite", "sqlite://"):  # fmt: skip
        refused(f"jupyterhub_db_url: {other} is not the database this role can back up", jupyterhub_db_url=other)
    assert errors(jupyterhub_data_dir="/srv/hub", jupyterhub_db_url="sqlite:////srv/hub/jupyterhub.sqlite") == []


def test_groups_from_inventory_as_docs_admin_shows_them_pass():
    """docs/admin.md gives image groups their members with JupyterHub's load_groups."""
    groups = {"ml-course": {"users": ["ada", "grace"]}, "gpu-users": {"users": ["grace"]}}
    assert errors(jupyterhub_extra_config={"JupyterHub": {"load_groups": groups}}) == []


# -- storage quotas (formspawner.quotad) ---------------------------------------------------


@pytest.mark.parametrize(
    "key", ["jupyterhub_user_storage_quota", "jupyterhub_user_layer_quota", "jupyterhub_min_free_disk"]
)
def test_storage_sizes_are_sizes_or_empty(key):
    assert errors(**{key: "5G"}) == [] and errors(**{key: ""}) == []
    refused(f"{key} must be a size such as 512M or 8G, not '5 GB' (or \"\" for none)", **{key: "5 GB"})
    refused(f"{key} must be a size", **{key: "-1G"})


def test_storage_quotas_are_refused_on_a_swarm_naming_the_images_that_set_them():
    image = {"name": "big", "image": "quay.io/jupyter/scipy-notebook:2025-01-01", "resources": {"layer_quota": "2G"}}
    swarm = {**BASE["host"], "swarm": True}
    refused("not available on a swarm in this release", jupyterhub_user_storage_quota="5G", host=swarm)
    refused("/ layer_quota of the images big) are not available on a swarm", jupyterhub_images=[image], host=swarm)
    # The disk the hub keeps is checked on a swarm's manager too: not a quota.
    assert errors(jupyterhub_min_free_disk="2G", host=swarm) == []


def test_storage_quotas_need_a_volume_name_with_a_fixed_start():
    refused("has no fixed start", jupyterhub_user_storage_quota="5G", jupyterhub_user_volume_name="{username}-home")
    assert errors(jupyterhub_user_volume_name="{username}-home") == []


def test_distinct_user_ids_are_refused_on_a_swarm_and_auto_is_not():
    swarm = {**BASE["host"], "swarm": True}
    refused("jupyterhub_user_ids: distinct is not available on a swarm yet", jupyterhub_user_ids="distinct", host=swarm)
    assert errors(jupyterhub_user_ids="auto", host=swarm) == []
    assert errors(jupyterhub_user_ids="distinct") == []


def test_courses_are_checked_as_the_hub_reads_them():
    course = {"name": "ml-101", "staff_groups": ["ml-staff"], "student_groups": ["ml-101"], "images": ["minimal"]}
    # The only image is the one every user gets: it cannot be a course's alone.
    refused("jupyterhub_images: no default image: every entry is limited to groups", jupyterhub_courses=[course])
    refused("jupyterhub_courses 'ml-101'.images: no image is named 'ml'",
            jupyterhub_courses=[{**course, "images": ["ml"]}])  # fmt: skip
    refused("jupyterhub_courses[0].name 'ML' must be", jupyterhub_courses=[{**course, "name": "ML", "images": []}])
    no_staff = {**course, "staff_groups": [], "images": []}
    refused("staff_groups must name at least one group", jupyterhub_courses=[no_staff])
    ml = {"name": "ml", "image": "quay.io/jupyter/scipy-notebook:2025-01-01"}
    with_ml = [*BASE["jupyterhub_images"], ml]
    assert errors(jupyterhub_courses=[{**course, "images": ["ml"]}], jupyterhub_images=with_ml) == []
    refused("the team 'Team A' must be a group name", jupyterhub_courses=[{**no_staff, "staff_groups": ["s"],
                                                                         "team_groups": ["Team A"]}])  # fmt: skip
    teams = [{**course, "images": [], "team_groups": ["team-a"]}]
    refused("team_groups need each user's own id", jupyterhub_courses=teams, jupyterhub_user_ids="image")
    assert errors(jupyterhub_courses=teams) == []
    refused("jupyterhub_courses are not available on a swarm yet", jupyterhub_courses=[{**course, "images": []}],
            host={**BASE["host"], "swarm": True})  # fmt: skip


def test_the_first_user_id_must_be_above_the_images_users():
    refused("jupyterhub_user_first_uid 1000 is outside 1001..", jupyterhub_user_first_uid=1000)
    assert errors(jupyterhub_user_first_uid=1000, jupyterhub_user_ids="image") == []


LDAP_GROUPS = {"allowed_groups": ["cn=ml-101,ou=groups,dc=campus,dc=edu"], "group_search_filter": "(member={userdn})",
               "group_attributes": ["member"], "server_address": "ldap.campus.edu"}  # fmt: skip


def test_groups_from_the_login_need_an_authenticator_that_brings_them():
    ldap = {"jupyterhub_authenticator": "ldap", "jupyterhub_authenticator_config": LDAP_GROUPS}
    assert errors(**ldap, jupyterhub_login_groups=True, jupyterhub_admin_groups=["hub-admins"]) == []
    assert errors(jupyterhub_authenticator="generic-oauth", jupyterhub_login_groups=True) == []
    refused("jupyterhub_login_groups: the native login brings no groups. Use ldap, generic-oauth or lti13",
            jupyterhub_login_groups=True)  # fmt: skip
    refused("jupyterhub_admin_groups needs jupyterhub_login_groups: true", jupyterhub_admin_groups=["hub-admins"])


def test_ldap_groups_need_the_groups_to_look_up_and_how():
    refused("needs in jupyterhub_authenticator_config: allowed_groups, group_search_filter, group_attributes",
            jupyterhub_authenticator="ldap", jupyterhub_login_groups=True,
            jupyterhub_authenticator_config={"server_address": "ldap.campus.edu"})  # fmt: skip
    refused("jupyterhub_authenticator_config.manage_groups is set by jupyterhub_login_groups",
            jupyterhub_authenticator="ldap", jupyterhub_login_groups=True,
            jupyterhub_authenticator_config={**LDAP_GROUPS, "manage_groups": True})  # fmt: skip


MOODLE = "https://moodle.campus.edu/mod/lti"
LTI13 = {"issuer": "https://moodle.campus.edu", "client_id": ["Xy12"], "authorize_url": f"{MOODLE}/auth.php",
         "jwks_endpoint": f"{MOODLE}/certs.php"}  # fmt: skip


def test_an_lti_tool_needs_the_platforms_registration():
    assert errors(jupyterhub_authenticator="lti13", jupyterhub_authenticator_config=LTI13,
                  jupyterhub_login_groups=True) == []  # fmt: skip
    refused("lti13 needs in jupyterhub_authenticator_config the platform's client_id, jwks_endpoint",
            jupyterhub_authenticator="lti13",
            jupyterhub_authenticator_config={k: v for k, v in LTI13.items() if k in ("issuer", "authorize_url")})


def test_extra_hub_packages_are_pinned_and_leave_the_hubs_own_pins_alone():
    assert errors(jupyterhub_extra_packages=["jupyterhub-tmpauthenticator==1.0.0", "ldap3[extras]==2.9.1"]) == []
    refused("jupyterhub_extra_packages: jupyterhub-tmpauthenticator is not a pinned package: write name==version",
            jupyterhub_extra_packages=["jupyterhub-tmpauthenticator"])  # fmt: skip
    good = "sha256:" + "0123456789abcdef" * 4
    assert errors(jupyterhub_extra_packages=[f"pkg==1.0 --hash={good} --hash=sha512:{'a' * 128}"]) == []
    refused("--hash=sha256:00 after pkg==1.0 is not a hash pip can check: write --hash=sha256: and the file's 64",
            jupyterhub_extra_packages=["pkg==1.0 --hash=sha256:00"])  # fmt: skip
    refused("--hash=md5:", jupyterhub_extra_packages=[f"pkg==1.0 --hash=md5:{'0' * 32}"])
    refused("pkg is not a pinned package", jupyterhub_extra_packages=[f"pkg --hash={good}"])
    refused("Dockerspawner is one of the hub's own packages", jupyterhub_extra_packages=["Dockerspawner==13.0.0"])
    refused("JupyterHub is one of the hub's own packages", jupyterhub_extra_packages=["JupyterHub==5.0.0"])
    refused("A_B is listed twice", jupyterhub_extra_packages=["a-b==1", "A_B==2"])
