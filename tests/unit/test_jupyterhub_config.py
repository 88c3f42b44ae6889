"""The jupyterhub role's settings, rendered by Ansible and loaded by JupyterHub through the
role's static jupyterhub_config.py.

Each authenticator the role offers is configured from inventory and loaded with its real
class; hostile inventory text must come back out of the config unchanged, as data.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "jupyterhub"

LOADER = r"""
import json, sys
from traitlets.config.loader import PyFileConfigLoader
from jupyterhub.app import JupyterHub
config = PyFileConfigLoader(sys.argv[1]).load_config()
app = JupyterHub(config=config)
app.db_url = "sqlite://"  # the rendered URL points at the server's data directory
app.init_db()
authenticator = app.authenticator_class(parent=app, db=app.db, config=config)
spawner_section = config.FormDockerSpawner
print(json.dumps({
    "authenticator": type(authenticator).__module__ + "." + type(authenticator).__name__,
    "traits": {name: repr(getattr(authenticator, name)) for name in sys.argv[2:]},
    "images": spawner_section.images,
    "env_policy": spawner_section.env_policy,
    "bind_url": app.bind_url,
    "hub_bind_url": app.hub_bind_url,
    "services": [s["name"] for s in app.services],
    "roles": {r["name"]: r["scopes"] for r in app.load_roles},
    "authenticate_prometheus": app.authenticate_prometheus,
    "token": {s["name"]: s.get("api_token") for s in app.services}.get("prometheus"),
    "spawner_class": app.spawner_class.__name__,
}))
"""


class Unsafe(str):
    """Written with YAML's !unsafe tag: Ansible keeps the text as it is, braces included."""


class InventoryDumper(yaml.SafeDumper):
    pass


InventoryDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style='"'))


def role_tasks(task_file: str, *names: str) -> list[dict]:
    """The role's own tasks of those names from tasks/<task_file>, in the order named
    (each must be there: a renamed task fails the test, not skips it)."""
    tasks = {task.get("name"): task for task in yaml.safe_load((ROLE / "tasks" / task_file).read_text())}
    missing = [name for name in names if name not in tasks]
    assert not missing, f"not in tasks/{task_file}: {missing}"
    return [tasks[name] for name in names]


def run_role_tasks(tmp_path: Path, tasks: list, inventory: dict, succeed: bool = True, handlers: list = ()) -> str:
    """Run tasks on the controller with the role's defaults and vars and the given
    inventory (as extra vars); Ansible's output (which must be a success, or a failure
    when `succeed` is False)."""
    play = [{
        "name": "role tasks",
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "vars": {"role_path": str(ROLE)},
        "tasks": tasks,
        "handlers": list(handlers),
    }]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = tmp_path / "inventory.yml"
    extra.write_text(yaml.dump({"ansible_python_interpreter": sys.executable, **inventory}, Dumper=InventoryDumper))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", f"@{extra}", str(playbook)],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
        timeout=120,
    )
    assert (result.returncode == 0) is succeed, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def render(tmp_path: Path, inventory: dict) -> Path:
    """Render the role's settings with its defaults, vars and the given inventory, beside
    the role's static jupyterhub_config.py, as the role installs them.

    The config directory is tmp_path, with the metrics token the role generates there."""
    config = tmp_path / "jupyterhub_config.py"
    config.write_text((ROLE / "files" / "jupyterhub_config.py").read_text())
    (tmp_path / "metrics-token").write_text("0123456789abcdef0123456789abcdef0123\n")
    template = {"src": str(ROLE / "templates" / "settings.json.j2"), "dest": str(tmp_path / "settings.json"),
                "mode": "0600"}
    run_role_tasks(tmp_path, [{"name": "render", "ansible.builtin.template": template}],
                   {"jupyterhub_config_dir": str(tmp_path), **inventory})
    return config


def load(config: Path, *traits: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(config), *traits], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def spawner_traits(config: Path, spawner_class: str, *names: str) -> list:
    """The traits of a real spawner of that class built from the loaded config (a subprocess,
    as the hub would load it)."""
    probe = (
        "import json, sys; from traitlets.config.loader import PyFileConfigLoader; import formspawner; "
        "s = getattr(formspawner, sys.argv[2])(config=PyFileConfigLoader(sys.argv[1]).load_config()); "
        "print(json.dumps([getattr(s, name) for name in sys.argv[3:]]))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(config), spawner_class, *names],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "authenticator, config, expected_class, checked",
    [
        (
            "generic-oauth",
            {
                "client_id": "jupyterhub",
                "client_secret": "s3cret",
                "oauth_callback_url": "https://hub.example.edu/hub/oauth_callback",
                "authorize_url": "https://sso.example.edu/auth",
                "token_url": "https://sso.example.edu/token",
                "userdata_url": "https://sso.example.edu/userinfo",
                "username_claim": "preferred_username",
                "allowed_groups": ["jupyter-users"],
                "manage_groups": True,
            },
            "formspawner.campuslogin.oidc.GenericOAuthenticator",
            {"client_id": "'jupyterhub'", "token_url": "'https://sso.example.edu/token'"},
        ),
        (
            "github",
            {
                "client_id": "abc",
                "client_secret": "def",
                "oauth_callback_url": "https://hub.example.edu/hub/oauth_callback",
                "allowed_organizations": ["example-university"],
            },
            "oauthenticator.github.GitHubOAuthenticator",
            {"allowed_organizations": "{'example-university'}"},
        ),
        (
            "ldap",
            {
                "server_address": "ldap.example.edu",
                "bind_dn_template": ["uid={username},ou=people,dc=example,dc=edu"],
                "use_ssl": True,
            },
            "formspawner.campuslogin.ldap.LDAPAuthenticator",
            {"server_address": "'ldap.example.edu'", "use_ssl": "True"},
        ),
        (
            "lti13",
            {
                "issuer": "https://moodle.campus.edu",
                "client_id": ["Xy12AbCdEf"],
                "authorize_url": "https://moodle.campus.edu/mod/lti/auth.php",
                "jwks_endpoint": "https://moodle.campus.edu/mod/lti/certs.php",
            },
            "formspawner.campuslogin.lti.LTI13Authenticator",
            {"issuer": "'https://moodle.campus.edu'", "login_help": "\"the hub's administrators\""},
        ),
        ("native", {"open_signup": False}, "nativeauthenticator.nativeauthenticator.NativeAuthenticator",
         {"open_signup": "False"}),
        ("pam", {}, "jupyterhub.auth.PAMAuthenticator", {}),
    ],
)
def test_each_authenticator_loads_with_its_inventory_settings(tmp_path, authenticator, config, expected_class, checked):
    rendered = render(tmp_path, {"jupyterhub_authenticator": authenticator, "jupyterhub_authenticator_config": config})
    loaded = load(rendered, *checked)
    assert loaded["authenticator"] == expected_class
    assert loaded["traits"] == checked
    assert loaded["bind_url"] == "https://:443"
    assert loaded["hub_bind_url"] == "http://10.211.0.1:8081"


HOSTILE = "\"\"\" ' \\ {{ raw }} %s\n\"); import os; os.system('touch /tmp/pwned') #\x00 ünï"


def test_hostile_inventory_text_round_trips_as_data(tmp_path):
    images = [
        {"name": "evil", "display_name": Unsafe(HOSTILE), "image": "example/image:1",
         "description": Unsafe(HOSTILE), "default": True}
    ]
    rendered = render(tmp_path, {"jupyterhub_images": images, "jupyterhub_authenticator": "pam"})
    loaded = load(rendered)
    assert loaded["images"][0]["description"] == HOSTILE
    assert loaded["images"][0]["display_name"] == HOSTILE
    assert not Path("/tmp/pwned").exists()


def test_a_broken_policy_stops_the_config_from_loading(tmp_path):
    rendered = render(
        tmp_path,
        {
            "jupyterhub_authenticator": "pam",
            "jupyterhub_env_policy": {"allow_pattern": "([unclosed"},
        },
    )
    result = subprocess.run([sys.executable, "-c", LOADER, str(rendered)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "env_policy.allow_pattern is not a valid regular expression" in result.stderr


def test_metrics_answer_the_prometheus_services_token_only(tmp_path):
    loaded = load(render(tmp_path, {"jupyterhub_authenticator": "pam"}))
    assert loaded["authenticate_prometheus"] is True
    assert "prometheus" in loaded["services"] and loaded["roles"]["prometheus"] == ["read:metrics"]
    assert loaded["token"] == "0123456789abcdef0123456789abcdef0123"


def test_metrics_can_be_switched_off(tmp_path):
    loaded = load(render(tmp_path, {"jupyterhub_authenticator": "pam", "jupyterhub_metrics_enabled": False}))
    assert "prometheus" not in loaded["services"] and "prometheus" not in loaded["roles"]
    assert loaded["authenticate_prometheus"] is True


def test_on_a_swarm_manager_the_hub_runs_form_swarm_spawner_configured_from_inventory(tmp_path):
    swarm = {
        "jupyterhub_authenticator": "pam",
        "_jupyterhub_swarm": True,
        "_jupyterhub_swarm_info": {"stdout": "10.9.0.1 true"},  # what tasks/swarm.yml reads
        "jupyterhub_swarm_storage": "shared",
        "jupyterhub_user_pids_limit": 300,
    }
    rendered = render(tmp_path, swarm)
    loaded = load(rendered)
    assert loaded["spawner_class"] == "FormSwarmSpawner"
    # Workers' servers reach the hub's API at the manager's swarm address.
    assert loaded["hub_bind_url"] == "http://10.9.0.1:8081"
    traits = spawner_traits(
        rendered, "FormSwarmSpawner", "registry_push", "registry_push_credentials", "registry_pull", "storage",
        "shared_home_root",
        "shared_volume", "pids_limit", "extra_placement_spec", "extra_container_spec", "use_internal_ip",
        "pull_policy", "network_name",
    )
    assert traits == [
        "127.0.0.1:5001",
        str(tmp_path / "registry-push-login"),  # render() puts the config directory here
        "10.9.0.1:5000",
        "shared",
        "/srv/jupyterhub/home",
        "jupyterhub-user-{username}",
        300,
        {"constraints": ["node.role == worker"]},
        {"cap_drop": ["ALL"], "cap_add": []},
        False,
        "skip",
        "",
    ]


def test_named_servers_from_inventory_reach_the_hub_the_spawner_and_the_culler(tmp_path):
    rendered = render(tmp_path, {
        "jupyterhub_authenticator": "pam", "jupyterhub_named_servers": True, "jupyterhub_named_server_limit": 4,
        "jupyterhub_named_server_storage": "server", "jupyterhub_named_server_remove_when_culled": True,
    })  # fmt: skip
    probe = (
        "import json, sys; from traitlets.config.loader import PyFileConfigLoader; "
        "c = PyFileConfigLoader(sys.argv[1]).load_config(); "
        "print(json.dumps([c.JupyterHub.allow_named_servers, c.JupyterHub.named_server_limit_per_user, "
        "c.JupyterHub.services[0]['command'][-1]]))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(rendered)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [True, 4, "--remove-named-servers=true"]
    assert spawner_traits(rendered, "FormDockerSpawner", "server_storage", "home_volume") == [
        "server", "jupyterhub-user-{username}",
    ]
    off = render(tmp_path, {"jupyterhub_authenticator": "pam"})
    assert spawner_traits(off, "FormDockerSpawner", "server_storage") == ["user"]


def test_on_one_host_the_rendered_config_confines_users_containers(tmp_path):
    """The settings that confine users' containers, read back from the role's rendered
    settings through JupyterHub's config loader and a real FormDockerSpawner. The role's
    defaults confine (the process limit from inventory is checked on the swarm above)."""
    rendered = render(tmp_path, {"jupyterhub_authenticator": "pam",
                                 "jupyterhub_user_shared_mounts": {"/srv/course": "/home/jovyan/shared"}})
    host_config, pids, network, internal_ip, volumes, remove = spawner_traits(
        rendered, "FormDockerSpawner", "extra_host_config", "pids_limit", "network_name", "use_internal_ip",
        "volumes", "remove",
    )  # fmt: skip
    assert host_config == {"cap_drop": ["ALL"], "cap_add": [], "security_opt": ["no-new-privileges"]}
    assert pids == 1024
    assert network == "jupyterhub-users" and internal_ip is True and remove is True
    assert volumes == {
        "jupyterhub-user-{username}": "/home/jovyan/work",
        "/srv/course": {"bind": "/home/jovyan/shared", "mode": "ro"},
    }
    assert not any("docker.sock" in source for source in volumes)


def preflight(tmp_path: Path, inventory: dict, succeed: bool = True) -> str:
    """The role's preflight checks run on the controller; their output."""
    tasks = [{"name": "preflight", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "preflight.yml")}]
    return run_role_tasks(tmp_path, tasks, inventory, succeed)


def test_the_hub_unit_has_memory_and_task_limits_and_refuses_bad_ones(tmp_path):
    unit = tmp_path / "jupyterhub.service"
    template = {"src": str(ROLE / "templates" / "jupyterhub.service.j2"), "dest": str(unit), "mode": "0644"}
    render_unit = [{"name": "render", "ansible.builtin.template": template}]
    run_role_tasks(tmp_path, render_unit, {})
    assert {"MemoryMax=50%", "TasksMax=4096"} <= set(unit.read_text().splitlines())
    chosen = {"jupyterhub_service_memory_max": "2G", "jupyterhub_service_tasks_max": "infinity"}
    preflight(tmp_path, chosen)
    run_role_tasks(tmp_path, render_unit, chosen)
    assert {"MemoryMax=2G", "TasksMax=infinity"} <= set(unit.read_text().splitlines())
    for bad in ("lots", "150%", "0", "2G\nExecStartPre=/bin/sh -c id"):
        output = preflight(tmp_path, {"jupyterhub_service_memory_max": bad}, succeed=False)
        assert "jupyterhub_service_memory_max must be a percentage" in output, output[-1500:]
    for bad in (10, "many"):
        output = preflight(tmp_path, {"jupyterhub_service_tasks_max": bad}, succeed=False)
        assert f"jupyterhub_service_tasks_max must be a number of at least 100 or infinity, not {bad}" in output


def test_repository_launches_without_per_user_subdomains_are_warned_about(tmp_path):
    launches = {"jupyterhub_form_options": ["image", "env", "repo"]}
    assert "WARNING: repository launches are on" in preflight(tmp_path, launches)
    subdomains = {**launches, "jupyterhub_subdomain_host": "https://hub.example.edu"}
    assert "WARNING: repository launches are on" not in preflight(tmp_path, subdomains)
    assert "WARNING: repository launches are on" not in preflight(tmp_path, {})


ACME = {"jupyterhub_tls_acme": {"email": "admin@example.edu", "domains": ["hub.example.edu"]}}


def test_acme_mode_puts_the_proxy_behind_nginx_on_loopback_without_a_capability(tmp_path):
    config = render(tmp_path, ACME)
    assert load(config)["bind_url"] == "http://127.0.0.1:8000"
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["tls_cert"] == ""  # nginx serves TLS
    # The metric's file: outside the config directory, whose changes restart the hub.
    assert settings["served_cert"] == "/var/lib/jupyterhub/acme-served-cert.pem"
    unit = tmp_path / "jupyterhub.service"
    template = {"src": str(ROLE / "templates" / "jupyterhub.service.j2"), "dest": str(unit), "mode": "0644"}
    run_role_tasks(tmp_path, [{"name": "render", "ansible.builtin.template": template}], ACME)
    assert "CapabilityBoundingSet=" in unit.read_text().splitlines()
    assert "AmbientCapabilities" not in unit.read_text()
    # Without ACME the proxy serves TLS on 443 itself, with the one capability it needs.
    config = render(tmp_path, {})
    assert load(config)["bind_url"] == "https://:443"
    run_role_tasks(tmp_path, [{"name": "render", "ansible.builtin.template": template}], {})
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit.read_text().splitlines()


# Each ACME rule is tested in-process (test_check_inventory.py); through Ansible, that the
# preflight passes the settings the rules read and stops the run.
@pytest.mark.parametrize(
    "inventory, message",
    [
        ({"jupyterhub_tls_acme": {"domains": ["*.hub.example.edu"]}}, "no wildcards"),
        ({**ACME, "jupyterhub_tls_acme_backend_port": 8081}, "must differ from 80, jupyterhub_port"),
    ],
)
def test_acme_settings_that_cannot_work_are_refused_naming_why(tmp_path, inventory, message):
    output = preflight(tmp_path, inventory, succeed=False)
    assert message in output, output[-2000:]


def test_acme_settings_that_work_pass_preflight(tmp_path):
    preflight(tmp_path, ACME)
    preflight(tmp_path, {"jupyterhub_tls_acme": {
        "domains": ["hub.example.edu", "jupyter.example.edu"],
        "directory": "https://acme.campus.example.edu/directory", "ca_file": "/etc/campus-ca.pem"}})


def test_start_slots_are_auto_or_a_whole_number_before_anything_changes(tmp_path):
    preflight(tmp_path, {"jupyterhub_start_slots": "3"})  # as -e gives it
    for bad in ("many", -1, True):
        output = preflight(tmp_path, {"jupyterhub_start_slots": bad}, succeed=False)
        assert "jupyterhub_start_slots must be auto or a whole number of servers (0: no limit), not" in output


@pytest.mark.parametrize("section", ["DockerSpawner", "FormDockerSpawner"])
def test_extra_host_config_from_inventory_adds_to_the_confinement_never_replaces_it(tmp_path, section):
    """jupyterhub_extra_config's extra_host_config (on the class the role sets or on the
    spawner's own, which traitlets would prefer) keeps the role's process limit, dropped
    capabilities and no-new-privileges, as a real spawner reads the loaded config."""
    rendered = render(tmp_path, {"jupyterhub_extra_config": {section: {"extra_host_config": {
        "shm_size": "1g", "security_opt": ["label=disable"]}}}})  # fmt: skip
    host_config, pids = spawner_traits(rendered, "FormDockerSpawner", "extra_host_config", "pids_limit")
    assert host_config == {
        "cap_drop": ["ALL"], "cap_add": [], "shm_size": "1g", "security_opt": ["no-new-privileges", "label=disable"],
    }
    assert pids == 1024


def test_load_roles_from_inventory_add_to_the_culler_and_metrics_roles(tmp_path):
    """Turning on JupyterHub's sharing through jupyterhub_extra_config's load_roles keeps the
    idle culler's and the metrics service's roles, as the hub loads the config; a role of
    the same name as one of the role's own is refused before anything changes."""
    sharing = {"name": "user", "scopes": ["self", "shares!user"]}
    rendered = render(tmp_path, {"jupyterhub_idle_timeout": 3600,
                                 "jupyterhub_extra_config": {"JupyterHub": {"load_roles": [sharing]}}})
    roles = load(rendered)["roles"]
    assert roles["user"] == ["self", "shares!user"]
    assert roles["idle-culler"] and roles["prometheus"] == ["read:metrics"]
    (tmp_path / "clash").mkdir()
    clash = render(tmp_path / "clash", {"jupyterhub_idle_timeout": 3600, "jupyterhub_extra_config": {
        "JupyterHub": {"load_roles": [{"name": "idle-culler", "scopes": ["admin:users"]}]}}})  # fmt: skip
    result = subprocess.run([sys.executable, "-c", LOADER, str(clash)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "extra_config.JupyterHub.load_roles: 'idle-culler' is set by the jupyterhub role already" in result.stderr


@pytest.mark.parametrize(
    "daemon",
    [{"ipv6": True, "fixed-cidr-v6": "2001:db8:1::/64"},
     {"default-network-opts": {"bridge": {"com.docker.network.enable_ipv6": "true"}}}],
)
def test_daemon_settings_that_put_users_on_ipv6_are_refused_while_the_policy_is_ipv4(tmp_path, daemon):
    out = preflight(tmp_path, {"docker_daemon_options": daemon}, succeed=False)
    assert "turns IPv6 on for Docker's default bridge" in out
    for name, inventory in (("off", {"docker_daemon_options": daemon, "jupyterhub_egress_policy": "off"}),
                            ("v4", {"docker_daemon_options": {"ipv6": False, "log-level": "warn"}})):
        (tmp_path / name).mkdir()
        preflight(tmp_path / name, inventory)
