"""formspawner.hubconfig: each concern applied to a traitlets Config in-process.

The settings are the shape the role's settings.json.j2 renders (tests/unit/test_jupyterhub_config.py
renders the real template and loads it with JupyterHub; these test the functions one by one).
"""

import copy
import json
import os
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from formspawner import FormDockerSpawner, FormSwarmSpawner, PolicyError, hubconfig

BASE = {
    "ip": "",
    "port": 443,
    "hub_ip": "10.211.0.1",
    "hub_port": 8081,
    "tls_cert": "/etc/jupyterhub/tls/cert.pem",
    "tls_key": "/etc/jupyterhub/tls/key.pem",
    "subdomain_host": "",
    "data_dir": "/var/lib/jupyterhub",
    "db_url": "sqlite:////var/lib/jupyterhub/jupyterhub.sqlite",
    "authenticator": "pam",
    "authenticator_class": "jupyterhub.auth.PAMAuthenticator",
    "authenticator_config": {},
    "dummy_password": "",
    "admin_users": ["admin"],
    "allowed_users": [],
    "allow_all": False,
    "services": [],
    "idle_timeout": 3600,
    "metrics": {"enabled": False, "interval": 300, "token_file": "/nonexistent"},
    "form_options": ["image", "env"],
    "images": [{"name": "minimal", "image": "quay.io/jupyter/minimal-notebook:2026-11-02"}],
    "env_policy": {},
    "repo_policy": {},
    "user": {
        "network_name": "jupyterhub-users",
        "volume_name": "jupyterhub-user-{username}",
        "volume_mount": "/home/jovyan/work",
        "notebook_dir": "/home/jovyan/work",
        "mem_limit": "2G",
        "cpu_limit": 1.0,
        "pids_limit": 1024,
        "cap_drop": ["ALL"],
        "cap_add": [],
        "no_new_privileges": True,
        "shared_mounts": {},
        "storage_quota": "",
        "layer_quota": "",
        "ids": "auto",
        "first_uid": 200000,
    },
    "storage": {"quota_socket": "", "docker_data_root": "/var/lib/docker", "min_free_disk": "2G"},
    "outbound": {"ca_bundle": "", "proxy": {}},
    "start_timeout": 300,
    "start_slots": "auto",
    "http_timeout": 120,
    "swarm": None,
    "extra_config": {},
}
SWARM = {
    "constraints": ["node.role == worker"],
    "storage": "pin",
    "shared_home": "/srv/jupyterhub/home",
    "home_gid": 100,
    "registry_push": "127.0.0.1:5001",
    "registry_push_credentials": "/etc/jupyterhub/registry-push-login",
    "registry_pull": "10.9.0.1:5000",
}


def settings(**changes) -> dict:
    result = copy.deepcopy(BASE)
    result.update(changes)
    return result


def applied(**changes) -> Config:
    return hubconfig.apply(Config(), settings(**changes))


def test_the_hub_listens_where_inventory_says_and_keeps_servers_across_restarts():
    c = applied()
    assert c.JupyterHub.bind_url == "https://:443"
    assert c.JupyterHub.hub_bind_url == "http://10.211.0.1:8081"
    assert c.JupyterHub.ssl_cert == "/etc/jupyterhub/tls/cert.pem"
    assert c.JupyterHub.cleanup_servers is False and c.JupyterHub.cleanup_proxy is False
    assert "subdomain_host" not in c.JupyterHub
    plain = applied(tls_cert="", tls_key="", port=8000, subdomain_host="https://hub.example.edu")
    assert plain.JupyterHub.bind_url == "http://:8000"
    assert "ssl_cert" not in plain.JupyterHub
    assert plain.JupyterHub.subdomain_host == "https://hub.example.edu"


def test_the_authenticators_own_settings_land_in_its_section():
    c = applied(
        authenticator="generic-oauth",
        authenticator_class="formspawner.campuslogin.oidc.GenericOAuthenticator",
        authenticator_config={"client_id": "hub", "allowed_groups": ["students"]},
        allowed_users=["alice"],
    )
    assert c.JupyterHub.authenticator_class == "formspawner.campuslogin.oidc.GenericOAuthenticator"
    assert c.GenericOAuthenticator.client_id == "hub"
    assert c.GenericOAuthenticator.allowed_groups == ["students"]
    assert c.Authenticator.allowed_users == {"alice"}
    assert c.Authenticator.admin_users == {"admin"}
    assert c.GenericOAuthenticator.login_help == "the hub's administrators"
    helped = applied(authenticator="lti13", authenticator_class="formspawner.campuslogin.lti.LTI13Authenticator",
                     login_help="the IT service desk (help@uni.edu)")  # fmt: skip
    assert helped.LTI13Authenticator.login_help == "the IT service desk (help@uni.edu)"
    # JupyterHub's own classes have no such setting: none is given (it would warn at start).
    github = applied(authenticator="github", authenticator_class="oauthenticator.github.GitHubOAuthenticator")
    assert "login_help" not in github.GitHubOAuthenticator


def test_the_culler_gets_only_the_scopes_it_needs_and_no_culler_when_switched_off():
    c = applied(idle_timeout=600)
    assert c.JupyterHub.services[0]["command"][-1] == "--timeout=600"
    assert c.JupyterHub.load_roles[0]["scopes"] == [
        "list:users", "read:users:activity", "read:servers", "delete:servers",
    ]
    assert applied(idle_timeout=0).JupyterHub.services == []


def test_the_metrics_token_is_read_from_its_file(tmp_path):
    token = tmp_path / "metrics-token"
    token.write_text("f" * 40 + "\n")
    c = applied(metrics={"enabled": True, "interval": 60, "token_file": str(token)})
    assert {"name": "prometheus", "api_token": "f" * 40} in c.JupyterHub.services
    assert {"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]} in c.JupyterHub.load_roles
    assert c.JupyterHub.authenticate_prometheus is True


def test_one_host_confines_users_containers_by_their_host_config():
    c = applied()
    assert c.JupyterHub.spawner_class == "formspawner.FormDockerSpawner"
    assert c.DockerSpawner.extra_host_config == {
        "cap_drop": ["ALL"], "cap_add": [], "security_opt": ["no-new-privileges"],
    }
    assert c.FormDockerSpawner.pids_limit == 1024  # the grant's (formspawner.resources), as on a swarm
    assert c.DockerSpawner.network_name == "jupyterhub-users"
    assert c.DockerSpawner.use_internal_ip is True
    assert c.DockerSpawner.mem_limit == "2G" and c.DockerSpawner.cpu_limit == 1.0
    # No Docker socket, no host path but the admin's read-only shared mounts.
    assert c.DockerSpawner.volumes == {"jupyterhub-user-{username}": "/home/jovyan/work"}
    no_nnp = applied(user={**BASE["user"], "no_new_privileges": False})
    assert no_nnp.DockerSpawner.extra_host_config["security_opt"] == []


def test_shared_mounts_are_read_only():
    c = applied(user={**BASE["user"], "shared_mounts": {"/srv/course": "/home/jovyan/shared"}})
    assert c.DockerSpawner.volumes["/srv/course"] == {"bind": "/home/jovyan/shared", "mode": "ro"}


def test_whole_home_volumes_mount_at_the_home_and_move_the_old_files_into_work():
    c = applied(data_dir="/var/lib/jupyterhub", user={**BASE["user"], "volume_whole_home": True})
    assert c.DockerSpawner.volumes == {"jupyterhub-user-{username}": "/home/jovyan"}
    assert c.FormDockerSpawner.home_volume == "jupyterhub-user-{username}"
    assert c.FormDockerSpawner.home_volume_moved_into == "work"
    assert c.FormDockerSpawner.home_volume_record == "/var/lib/jupyterhub/formspawner-whole-home.txt"
    assert "home_volume_moved_into" not in applied().FormDockerSpawner
    # A trailing "/" on the mount is the same folder.
    slash = applied(user={**BASE["user"], "volume_whole_home": True, "volume_mount": "/home/jovyan/work/"})
    assert (slash.DockerSpawner.volumes, slash.FormDockerSpawner.home_volume_moved_into) == (
        {"jupyterhub-user-{username}": "/home/jovyan"}, "work",
    )  # fmt: skip
    with pytest.raises(PolicyError) as refused:
        applied(swarm=SWARM, user={**BASE["user"], "volume_whole_home": True})
    assert str(refused.value) == (
        "jupyterhub_user_volume_whole_home is not available on a swarm: the move of each volume's files would "
        "run on the hub's engine, not on the node that holds the volume."
    )
    with pytest.raises(PolicyError, match="a folder of the home"):
        applied(user={**BASE["user"], "volume_whole_home": True, "volume_mount": "/work"})


def test_users_run_as_their_own_ids_on_one_host_and_as_the_images_user_on_a_swarm():
    c = applied(data_dir="/var/lib/jupyterhub")  # the role's default: auto
    assert c.FormDockerSpawner.user_ids == "distinct"
    assert c.FormDockerSpawner.first_uid == 200000
    assert c.FormDockerSpawner.uid_record == "/var/lib/jupyterhub/formspawner-uids.json"
    assert c.FormDockerSpawner.volume_owner_record == "/var/lib/jupyterhub/formspawner-volume-owners.txt"
    assert "user_ids" not in applied(user={**BASE["user"], "ids": "image"}).FormDockerSpawner
    assert "user_ids" not in applied(swarm=SWARM).FormDockerSpawner
    FormSwarmSpawner(config=applied(swarm=SWARM))  # its own check passes
    with pytest.raises(PolicyError, match="distinct is not available on a swarm yet"):
        applied(swarm=SWARM, user={**BASE["user"], "ids": "distinct"})
    with pytest.raises(PolicyError, match="first_uid 0 is outside"):
        applied(user={**BASE["user"], "first_uid": 0})


def test_courses_reach_the_spawner_and_offer_their_images_to_their_members():
    course = {
        "name": "ml-101", "gid": 990, "path": "/srv/jupyterhub/courses/ml-101", "mount": "/home/jovyan/courses/ml-101",
        "staff_groups": ["ml-staff"], "student_groups": ["ml-101"], "images": ["ml"],
    }  # fmt: skip
    images = [{"name": "minimal", "image": "a", "default": True}, {"name": "ml", "image": "b"}]
    c = applied(courses=[course], images=images)
    assert c.FormDockerSpawner.courses == [course]
    assert c.FormDockerSpawner.images == [images[0], {**images[1], "groups": ["ml-staff", "ml-101"]}]
    assert "courses" not in applied().FormDockerSpawner
    with pytest.raises(PolicyError, match="jupyterhub_courses are not available on a swarm yet"):
        applied(courses=[course], images=images, swarm=SWARM)
    with pytest.raises(PolicyError, match="jupyterhub_courses 'ml-101'.images: no image is named 'ml'"):
        applied(courses=[course], images=images[:1])


def test_a_swarm_confines_users_services_by_their_container_spec_and_resources():
    c = applied(swarm=SWARM)
    assert c.JupyterHub.spawner_class == "formspawner.FormSwarmSpawner"
    assert c.FormSwarmSpawner.extra_container_spec == {"cap_drop": ["ALL"], "cap_add": []}
    assert FormSwarmSpawner(config=c).pids_limit == 1024
    assert c.FormSwarmSpawner.extra_placement_spec == {"constraints": ["node.role == worker"]}
    # Host config and the one-host network do not apply to services.
    assert "extra_host_config" not in c.DockerSpawner and "network_name" not in c.DockerSpawner
    spawner = FormSwarmSpawner(config=c)
    assert (spawner.network_name, spawner.use_internal_ip, spawner.pull_policy) == ("", False, "skip")
    assert spawner.mem_limit == 2 * 1024**3


def test_extra_config_reaches_any_trait_and_wins_over_the_roles_settings():
    c = applied(extra_config={
        "JupyterHub": {"concurrent_spawn_limit": 20},
        "Spawner": {"start_timeout": 600},
        "FormDockerSpawner": {"launch_links": False},
    })
    assert c.JupyterHub.concurrent_spawn_limit == 20
    assert c.Spawner.start_timeout == 600
    assert c.FormDockerSpawner.launch_links is False
    assert c.JupyterHub.bind_url == "https://:443"  # the rest is untouched


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"jupyterhub": {"concurrent_spawn_limit": 20}}, "'jupyterhub' is not a configurable class name"),
        ({"JupyterHub": 20}, "extra_config.JupyterHub must be a mapping"),
        ({"c.JupyterHub": {"x": 1}}, "is not a configurable class name"),
        (["JupyterHub"], "extra_config must be a mapping"),
    ],
)
def test_malformed_extra_config_is_refused_naming_it(extra, message):
    with pytest.raises(PolicyError, match=message):
        applied(extra_config=extra)


def test_a_policy_broken_through_extra_config_fails_the_check():
    c = applied(extra_config={"FormDockerSpawner": {"env_policy": {"allow_pattern": "([unclosed"}}})
    with pytest.raises(PolicyError, match="env_policy.allow_pattern is not a valid regular expression"):
        hubconfig.check(c)
    swarm = applied(swarm=SWARM, extra_config={"FormSwarmSpawner": {"images": []}})
    hubconfig.check(swarm)  # an empty catalogue is allowed: no image choice at all
    bad = applied(swarm=SWARM, extra_config={"FormSwarmSpawner": {"form_options": ["image", "cmd"]}})
    with pytest.raises(PolicyError, match="unknown option"):
        hubconfig.check(bad)


def test_the_admins_config_files_load_in_name_order_after_the_rest(tmp_path):
    (tmp_path / "20-b.py").write_text("")
    (tmp_path / "10-a.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    loaded = []
    assert hubconfig.load_config_files(str(tmp_path), loaded.append) == ["10-a.py", "20-b.py"]
    assert loaded == [str(tmp_path / "10-a.py"), str(tmp_path / "20-b.py")]
    assert hubconfig.load_config_files(str(tmp_path / "missing"), loaded.append) == []


def test_the_check_command_refuses_a_broken_document_and_accepts_a_good_one(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(settings()))
    assert hubconfig.main([str(good)]) == 0
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(settings(env_policy={"deny_patterns": ["("]})))
    assert hubconfig.main([str(broken)]) == 1
    assert "env_policy.deny_patterns[0] is not a valid regular expression" in capsys.readouterr().err
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(settings(authenticator_class="nosuch.Authenticator")))
    assert hubconfig.main([str(missing)]) == 1
    assert "nosuch" in capsys.readouterr().err


def test_the_spawner_built_from_the_config_carries_the_policy():
    spawner = FormDockerSpawner(config=applied())
    assert spawner.images == BASE["images"]
    assert spawner.remove is True and spawner.pull_policy == "ifnotpresent"


def plain(value):
    """A Config as plain data: sections and dicts sorted, sets as sorted lists, classes by name."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in sorted(value.items())}
    if isinstance(value, set):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__name__}"
    return value


HUB = {
    "bind_url": "https://:443",
    "cleanup_proxy": False,
    "cleanup_servers": False,
    "cookie_secret_file": "/var/lib/jupyterhub/jupyterhub_cookie_secret",
    "db_url": "sqlite:////var/lib/jupyterhub/jupyterhub.sqlite",
    "extra_handlers": [["/launch", "formspawner.launch.LaunchHandler"]],
    "hub_bind_url": "http://10.211.0.1:8081",
    "pid_file": "/var/lib/jupyterhub/jupyterhub.pid",
    "ssl_cert": "/etc/jupyterhub/tls/cert.pem",
    "ssl_key": "/etc/jupyterhub/tls/key.pem",
    "authenticate_prometheus": True,
}
CULLER = {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"]}
CULLER_ROLE = {
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}
USERS_SERVERS = {
    "DockerSpawner": {
        "cpu_limit": 1.0,
        "mem_limit": "2G",
        "notebook_dir": "/home/jovyan/work",
        "remove": True,
        "volumes": {"jupyterhub-user-{username}": "/home/jovyan/work"},
    },
    "FormDockerSpawner": {
        "env_policy": {},
        "form_options": ["image", "env"],
        "images": [{"image": "quay.io/jupyter/minimal-notebook:2026-11-02", "name": "minimal"}],
        "launch_links": True,
        "repo_cache_file": "/var/lib/jupyterhub/formspawner-repo-cache.json",
        "repo_policy": {},
        "ca_bundle": "",
        "proxy_env": {},
        "build_network": "",
        "home_volume": "jupyterhub-user-{username}",
        "pids_limit": 1024,
        "start_slots": max(2, os.cpu_count() or 1),
        "storage_quota": 0,
        "layer_quota": 0,
        "quota_socket": "",
        "docker_data_root": "/var/lib/docker",
        "min_free_disk": 2 << 30,
    },
    "Spawner": {"default_url": "/lab", "http_timeout": 120, "start_timeout": 300},
}


def test_one_hosts_whole_config_is_what_the_settings_say_and_nothing_else(tmp_path):
    """Every setting apply() makes, compared whole: a setting dropped, renamed or added is a
    failure here (the confinement of users' containers included)."""
    token = tmp_path / "metrics-token"
    token.write_text("metricstoken\n")
    c = applied(
        subdomain_host="https://hub.example.edu",
        authenticator="dummy",
        authenticator_class="jupyterhub.auth.DummyAuthenticator",
        dummy_password="demo",
        allowed_users=["alice"],
        allow_all=True,
        services=[
            {"name": "grader", "api_token": "t0k", "scopes": ["list:users"]},
            {"name": "plain", "api_token": "t1k"},
        ],
        metrics={"enabled": True, "interval": 60, "token_file": str(token)},
        user={**BASE["user"], "shared_mounts": {"/srv/course": "/home/jovyan/shared"}},
        outbound={"ca_bundle": "/etc/ssl/certs/ca-certificates.crt", "proxy": {"https_proxy": "http://p.edu:3128"},
                  "build_network": "jupyterhub-builds"},
    )
    servers = copy.deepcopy(USERS_SERVERS)
    servers["FormDockerSpawner"].update(
        ca_bundle="/etc/ssl/certs/ca-certificates.crt", proxy_env={"https_proxy": "http://p.edu:3128"},
        build_network="jupyterhub-builds",
        # Each user as their own id: on one host (auto).
        user_ids="distinct",
        first_uid=200000,
        uid_record="/var/lib/jupyterhub/formspawner-uids.json",
        volume_owner_record="/var/lib/jupyterhub/formspawner-volume-owners.txt",
    )
    servers["DockerSpawner"].update(
        extra_host_config={
            "cap_add": [], "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        },
        network_name="jupyterhub-users",
        pull_policy="ifnotpresent",
        use_internal_ip=True,
    )
    servers["DockerSpawner"]["volumes"]["/srv/course"] = {"bind": "/home/jovyan/shared", "mode": "ro"}
    assert plain(c) == plain({
        "Authenticator": {"admin_users": ["admin"], "allow_all": True, "allowed_users": ["alice"]},
        "ConfigurableHTTPProxy": {"pid_file": "/var/lib/jupyterhub/jupyterhub-proxy.pid"},
        "DummyAuthenticator": {"password": "demo"},
        "JupyterHub": {
            **HUB,
            "authenticator_class": "jupyterhub.auth.DummyAuthenticator",
            "subdomain_host": "https://hub.example.edu",
            "spawner_class": "formspawner.FormDockerSpawner",
            "services": [
                CULLER,
                {"api_token": "metricstoken", "name": "prometheus"},
                {"api_token": "t0k", "name": "grader"},
                {"api_token": "t1k", "name": "plain"},
            ],
            "load_roles": [
                CULLER_ROLE,
                {"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]},
                {"name": "grader", "scopes": ["list:users"], "services": ["grader"]},
            ],
        },
        **servers,
    })


def test_a_swarms_whole_config_is_what_the_settings_say_and_nothing_else():
    c = applied(swarm=SWARM)
    assert plain(c) == plain({
        "Authenticator": {"admin_users": ["admin"], "allow_all": False},
        "ConfigurableHTTPProxy": {"pid_file": "/var/lib/jupyterhub/jupyterhub-proxy.pid"},
        "PAMAuthenticator": {},
        "FormSwarmSpawner": {
            "extra_container_spec": {"cap_add": [], "cap_drop": ["ALL"]},
            "extra_placement_spec": {"constraints": ["node.role == worker"]},
            "home_gid": 100,
            "registry_pull": "10.9.0.1:5000",
            "registry_push": "127.0.0.1:5001",
            "registry_push_credentials": "/etc/jupyterhub/registry-push-login",
            "shared_home_root": "/srv/jupyterhub/home",
            "shared_volume": "jupyterhub-user-{username}",
            "storage": "pin",
        },
        "JupyterHub": {
            **HUB,
            "authenticator_class": "jupyterhub.auth.PAMAuthenticator",
            "spawner_class": "formspawner.FormSwarmSpawner",
            "services": [CULLER],
            "load_roles": [CULLER_ROLE],
        },
        **USERS_SERVERS,
        # The servers start on the workers' cores: no limit from the hub's host.
        "FormDockerSpawner": {**USERS_SERVERS["FormDockerSpawner"], "start_slots": 0},
    })


def test_native_authenticator_pages_come_from_its_own_templates():
    import nativeauthenticator

    c = applied(authenticator="native", authenticator_class="nativeauthenticator.NativeAuthenticator")
    assert c.JupyterHub.template_paths == [f"{Path(nativeauthenticator.__file__).parent}/templates"]
    assert "template_paths" not in applied().JupyterHub


def test_settings_and_the_metrics_token_are_read_as_utf8_whatever_the_hosts_locale(tmp_path, monkeypatch):
    # A host whose locale is Latin-1 (stood in for: open() without an encoding reads Latin-1).
    monkeypatch.setattr(hubconfig, "open", lambda path, encoding=None: open(path, encoding=encoding or "latin-1"),
                        raising=False)
    path = tmp_path / "settings.json"
    path.write_bytes(json.dumps({"display_name": "Ünïcode"}, ensure_ascii=False).encode("utf-8"))
    assert hubconfig.load_settings(str(path)) == {"display_name": "Ünïcode"}
    token = tmp_path / "metrics-token"
    token.write_text("tökén\n", encoding="utf-8")
    c = applied(metrics={"enabled": True, "interval": 60, "token_file": str(token)})
    assert {"name": "prometheus", "api_token": "tökén"} in c.JupyterHub.services


def test_the_hosts_figures_are_registered_at_the_settings_interval_only_when_enabled(monkeypatch):
    from formspawner import metrics

    calls = []
    monkeypatch.setattr(metrics.DockerFigures, "register", classmethod(lambda cls, interval: calls.append(interval)))
    hubconfig.register_metrics(settings())
    hubconfig.register_metrics(settings(metrics=None))
    assert calls == []
    hubconfig.register_metrics(settings(metrics={"enabled": True, "interval": 45, "token_file": "/nonexistent"}))
    assert calls == [45]


def test_the_served_certificates_days_are_registered_when_the_hub_serves_one(monkeypatch):
    from formspawner import metrics

    monkeypatch.setattr(metrics.DockerFigures, "register", classmethod(lambda cls, interval: None))
    paths = []
    monkeypatch.setattr(metrics.ServedCertificate, "register", classmethod(lambda cls, path: paths.append(path)))
    enabled = {"enabled": True, "interval": 45, "token_file": "/nonexistent"}
    hubconfig.register_metrics(settings(metrics=enabled))
    hubconfig.register_metrics(settings(served_cert="/var/lib/jupyterhub/acme-served-cert.pem"))
    assert paths == []  # no certificate served, or no metrics
    hubconfig.register_metrics(settings(metrics=enabled, served_cert="/var/lib/jupyterhub/acme-served-cert.pem"))
    assert paths == ["/var/lib/jupyterhub/acme-served-cert.pem"]


def test_the_check_command_says_how_to_call_it_and_what_failed(tmp_path, capsys):
    assert hubconfig.main([]) == 2
    assert capsys.readouterr().err == "usage: python -m formspawner.hubconfig SETTINGS_JSON\n"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(settings(env_policy={"deny_patterns": ["("]})))
    assert hubconfig.main([str(broken)]) == 1
    assert capsys.readouterr().err.startswith(f"{broken}: PolicyError: env_policy.deny_patterns[0] ")


def test_a_settings_document_without_the_optional_keys_applies_with_safe_values():
    """Older settings documents (and hand-written ones) may lack these keys."""
    document = settings()
    for key in ("admin_users", "allow_all", "services"):
        del document[key]
    del document["user"]["shared_mounts"]
    del document["outbound"]
    c = hubconfig.apply(Config(), document)
    assert c.FormDockerSpawner.ca_bundle == "" and c.FormDockerSpawner.proxy_env == {}
    assert c.FormDockerSpawner.build_network == ""
    assert c.Authenticator.admin_users == set() and c.Authenticator.allow_all is False
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler"]
    assert c.DockerSpawner.volumes == {"jupyterhub-user-{username}": "/home/jovyan/work"}


def test_the_limit_on_servers_at_once_reaches_jupyterhub_only_when_set():
    assert applied(active_server_limit=40).JupyterHub.active_server_limit == 40
    assert "active_server_limit" not in applied(active_server_limit=0).JupyterHub


def test_auto_start_slots_are_the_hosts_cores_and_at_least_two(monkeypatch):
    monkeypatch.setattr(hubconfig.os, "cpu_count", lambda: 8)
    assert hubconfig.start_slots("auto", False) == 8
    monkeypatch.setattr(hubconfig.os, "cpu_count", lambda: None)
    assert hubconfig.start_slots("auto", False) == 2


def test_servers_start_one_per_core_at_once_unless_inventory_says_otherwise_and_not_limited_on_a_swarm():
    assert applied().FormDockerSpawner.start_slots == max(2, os.cpu_count() or 1)
    assert applied(swarm=SWARM).FormDockerSpawner.start_slots == 0
    assert applied(start_slots=3).FormDockerSpawner.start_slots == 3
    assert applied(start_slots=0).FormDockerSpawner.start_slots == 0
    older = settings()
    del older["start_slots"]  # settings rendered before the setting existed: 'auto'
    assert hubconfig.apply(Config(), older).FormDockerSpawner.start_slots == max(2, os.cpu_count() or 1)
    for wrong in ("four", -1, True, 2.5):
        with pytest.raises(PolicyError, match=r"jupyterhub_start_slots: 'auto' or a whole number"):
            applied(start_slots=wrong)


# -- extra_config merges with what the role sets (in-process; the rendered config as the hub
# loads it: tests/unit/test_jupyterhub_config.py) --------------------------------------------


def test_extra_config_mappings_merge_key_by_key_and_lists_add_after_the_roles():
    c = applied(extra_config={
        "DockerSpawner": {"extra_host_config": {"shm_size": "1g", "cap_drop": ["NET_RAW"], "pids_limit": 50}},
        "JupyterHub": {"load_roles": [{"name": "sharing", "scopes": ["shares"]}]},
    })  # fmt: skip
    assert c.DockerSpawner.extra_host_config == {
        "pids_limit": 50,  # the admin's value over the role's
        "cap_drop": ["ALL", "NET_RAW"],  # the role's first, then the admin's new ones
        "cap_add": [],
        "security_opt": ["no-new-privileges"],
        "shm_size": "1g",
    }
    assert [role["name"] for role in c.JupyterHub.load_roles][-1] == "sharing"
    assert len(c.JupyterHub.load_roles) >= 2


def test_extra_config_on_a_subclass_merges_with_what_the_role_set_on_its_base():
    """traitlets takes the most specific class's value: FormDockerSpawner's would hide
    DockerSpawner's extra_host_config whole, so the role's is merged into it."""
    c = applied(extra_config={"FormDockerSpawner": {"extra_host_config": {"shm_size": "1g"}}})
    assert c.FormDockerSpawner.extra_host_config["cap_drop"] == ["ALL"]
    assert c.FormDockerSpawner.extra_host_config["shm_size"] == "1g"
    swarm = applied(swarm=SWARM, extra_config={"FormSwarmSpawner": {"extra_container_spec": {"init": True}}})
    assert swarm.FormSwarmSpawner.extra_container_spec["cap_drop"] == ["ALL"]


def test_an_admins_template_folders_come_before_the_roles():
    c = applied(named_servers={"enabled": True, "limit": 3, "storage": "user", "remove_when_culled": False},
                extra_config={"JupyterHub": {"template_paths": ["/etc/jupyterhub/templates"]}})
    assert c.JupyterHub.template_paths[0] == "/etc/jupyterhub/templates"
    assert len(c.JupyterHub.template_paths) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"JupyterHub": {"load_roles": [{"name": "idle-culler", "scopes": []}]}},
         "extra_config.JupyterHub.load_roles: 'idle-culler' is set by the jupyterhub role already (its services' "
         "roles and services come from its own settings: jupyterhub_idle_timeout, jupyterhub_metrics_enabled, "
         "jupyterhub_services); give yours another name"),
        ({"DockerSpawner": {"extra_host_config": ["pids_limit"]}},
         "extra_config.DockerSpawner.extra_host_config: the jupyterhub role sets a mapping here; "
         "extra_config must give a mapping too"),
        ({"JupyterHub": {"load_roles": {"name": "x"}}},
         "extra_config.JupyterHub.load_roles: the jupyterhub role sets a list here; extra_config must give a list too"),
        ({"DockerSpawner": {"extra_host_config": {"cap_drop": "ALL"}}},
         "extra_config.DockerSpawner.extra_host_config.cap_drop: the jupyterhub role sets a list here"),
    ],
)
def test_extra_config_that_would_replace_the_roles_settings_wholesale_is_refused(extra, message):
    with pytest.raises(PolicyError) as refused:
        applied(idle_timeout=3600, extra_config=extra)
    assert message in str(refused.value)


def test_extra_config_scalars_still_win_over_the_roles():
    # A scalar of another type (bytes for the role's "2G") is the admin's to give.
    assert applied(extra_config={"DockerSpawner": {"mem_limit": 2**31}}).DockerSpawner.mem_limit == 2**31
    c = applied(extra_config={"Spawner": {"start_timeout": 600}, "DockerSpawner": {"remove": False}})
    assert c.Spawner.start_timeout == 600 and c.DockerSpawner.remove is False
