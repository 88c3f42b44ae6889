"""Named servers (#22): each server's storage, what the home page says each one runs, and
the hub's settings. Through real spawner objects and the real hubconfig functions; the
hub, the engine and the culler are exercised in tests/integration/test_named_servers.py."""

import os
import re
from types import SimpleNamespace

import pytest
from test_hubconfig import SWARM, settings
from traitlets.config import Config

from formspawner import FormDockerSpawner, FormSwarmSpawner, PolicyError, hubconfig
from formspawner.launch import LaunchHandler

VOLUMES = {"jupyterhub-user-{username}": "/home/jovyan/work", "/srv/data": {"bind": "/data", "mode": "ro"}}
IMAGES = [
    {"name": "minimal", "image": "jhtest/singleuser:minimal", "display_name": "Minimal"},
    {"name": "ml", "image": "jhtest/singleuser:scipy", "display_name": "ML",
     "resources": {"mem_limit": "8G", "cpu_limit": 4}},
]  # fmt: skip


def docker_spawner(server="", cls=FormDockerSpawner, user="alice", ran=True, **config):
    orm = SimpleNamespace(
        name=server, display_name=server, user_options={}, state=None, server=None, last_activity=ran or None
    )
    s = cls(volumes=VOLUMES, home_volume="jupyterhub-user-{username}", images=IMAGES, orm_spawner=orm, **config)
    s.user = SimpleNamespace(name=user, groups=[], url=f"/user/{user}/")
    return s


def sources(s) -> dict:
    return {bind["bind"]: source for source, bind in s.volume_binds.items()}


def test_per_server_storage_gives_each_named_server_its_own_volume_and_the_default_server_keeps_the_users():
    assert sources(docker_spawner(server_storage="server"))["/home/jovyan/work"] == "jupyterhub-user-alice"
    named = sources(docker_spawner("lab-1", server_storage="server"))
    # JupyterHub 6 allows only safe slugs as server names; DockerSpawner's escaping turns
    # their '-' into '-2d', so 'user--server' cannot be two different pairs.
    assert named["/home/jovyan/work"] == "jupyterhub-user-alice--lab-2d1"
    assert named["/data"] == "/srv/data"  # the shared read-only mounts stay as they are
    assert docker_spawner("lab-1", server_storage="server").object_name == "jupyter-alice--lab-2d1"


def test_per_user_storage_mounts_the_users_one_volume_in_every_server():
    for server in ("", "lab", "exam"):
        assert sources(docker_spawner(server))["/home/jovyan/work"] == "jupyterhub-user-alice"


def test_names_stay_distinct_for_users_and_servers_that_look_alike():
    names = {
        sources(docker_spawner(server, user=user, server_storage="server"))["/home/jovyan/work"]
        for user, server in [("a", "b-c"), ("a-b", "c"), ("a--b", "c"), ("a", "bc"), ("ab", "c")]
    }
    assert len(names) == 5


def test_on_a_swarm_with_shared_storage_each_named_server_gets_its_own_directory(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    common = dict(storage="shared", shared_home_root=str(root), home_gid=os.getgid())
    default = docker_spawner(cls=FormSwarmSpawner, server_storage="server", **common)
    named = docker_spawner("lab", cls=FormSwarmSpawner, server_storage="server", **common)
    shared = docker_spawner("lab", cls=FormSwarmSpawner, server_storage="user", **common)
    assert sources(default)["/home/jovyan/work"] == f"{root}/alice"
    assert sources(named)["/home/jovyan/work"] == f"{root}/alice--lab"
    assert sources(shared)["/home/jovyan/work"] == f"{root}/alice"
    named._ensure_home()
    assert (root / "alice--lab").is_dir()


def test_on_a_swarm_with_pinned_volumes_each_named_server_has_its_own_volume():
    named = docker_spawner("lab", cls=FormSwarmSpawner, server_storage="server")
    mounts = {m["Target"]: m for m in named.mounts}
    assert mounts["/home/jovyan/work"]["Source"] == "jupyterhub-user-alice--lab"


def test_the_home_page_says_what_each_server_runs_with_its_resources():
    s = docker_spawner("lab")
    s.user_options = {"image": "ml"}
    assert s.server_summary() == [("Image", "ML"), ("Resources", "8 GB memory, 4 CPUs")]
    s.user_options = {}
    assert s.server_summary() == [("Image", "Minimal")]
    s.user_options = {"image": "gone"}
    assert s.server_summary() == [("Options", "no longer allowed by this hub")]
    assert s.server_state() == "stopped"


def test_a_server_that_never_started_says_so_and_shows_no_choice():
    s = docker_spawner(ran=False)
    assert s.server_state() == "not started yet"
    assert s.server_summary() == []  # not the catalogue's first image, which nobody chose


def test_named_servers_are_off_unless_inventory_turns_them_on():
    c = hubconfig.apply(Config(), settings())
    assert "allow_named_servers" not in c.JupyterHub
    assert c.FormDockerSpawner.home_volume == "jupyterhub-user-{username}"


def test_named_servers_on_set_the_limit_storage_home_page_and_culler():
    named = {"enabled": True, "limit": 2, "storage": "server", "remove_when_culled": False}
    c = hubconfig.apply(Config(), settings(named_servers=named))
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user == 2
    assert c.FormDockerSpawner.server_storage == "server"
    pages = c.JupyterHub.template_paths[0]
    assert os.path.isfile(os.path.join(pages, "home.html"))
    assert not any("remove-named" in part for part in c.JupyterHub.services[0]["command"])
    removing = hubconfig.apply(Config(), settings(named_servers={**named, "remove_when_culled": True}))
    assert removing.JupyterHub.services[0]["command"][-1] == "--remove-named-servers=true"


def test_the_home_page_comes_before_the_native_authenticators_pages():
    named = {"enabled": True, "limit": 0, "storage": "user", "remove_when_culled": False}
    c = hubconfig.apply(
        Config(),
        settings(named_servers=named, authenticator="native",
                 authenticator_class="nativeauthenticator.NativeAuthenticator"),
    )  # fmt: skip
    assert c.JupyterHub.template_paths[0].endswith(os.path.join("templates", "hub"))
    assert c.JupyterHub.template_paths[1].endswith(os.path.join("nativeauthenticator", "templates"))


def test_a_users_shared_volume_with_pinned_swarm_storage_is_refused_naming_both_settings():
    named = {"enabled": True, "limit": 3, "storage": "user", "remove_when_culled": False}
    with pytest.raises(PolicyError) as refused:
        hubconfig.apply(Config(), settings(named_servers=named, swarm=SWARM))
    assert str(refused.value) == (
        "named servers with storage 'user' (one volume shared by a user's servers) cannot work with swarm storage "
        "'pin': each server would be placed on its own node, with its own empty copy of the volume. Use named "
        "server storage 'server' or swarm storage 'shared'."
    )
    hubconfig.apply(Config(), settings(named_servers={**named, "storage": "server"}, swarm=SWARM))
    hubconfig.apply(Config(), settings(named_servers=named, swarm={**SWARM, "storage": "shared"}))


def test_a_links_server_parameter_is_not_an_option():
    request = SimpleNamespace(query_arguments={"server": [b"lab"], "image": [b"ml"]})
    handler = SimpleNamespace(request=request)
    assert LaunchHandler._query(handler) == {"image": ["ml"]}
    assert LaunchHandler._server_name(handler) == "lab"


def test_the_form_lists_the_users_other_servers_with_what_they_run():
    from formspawner.form import render_form

    s = docker_spawner("lab")
    html = render_form(s.option_set, {}, [], servers=[("default", "running", [("Image", "ML")])])
    assert 'id="formspawner-other-servers"' in html and "<strong>default</strong> (running)" in html
    assert "<code>ML</code>" in html
    assert "formspawner-other-servers" not in render_form(s.option_set, {}, [])


def test_swarm_service_names_stay_within_63_characters_and_distinct():
    short = docker_spawner("lab", cls=FormSwarmSpawner)
    assert short.object_name == "jupyter-alice--lab"
    long_user = "a" * 40
    names = {docker_spawner(server, cls=FormSwarmSpawner, user=long_user).object_name
             for server in ("data-science-project-one", "data-science-project-two")}  # fmt: skip
    assert len(names) == 2
    for name in names:
        assert len(name) <= 63 and name.startswith(f"jupyter-{long_user}--da")
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name)


def test_the_storage_a_server_used_at_its_last_start_is_on_the_home_page_and_kept_in_its_state():
    s = docker_spawner("lab")
    assert s.storage_summary() == "" and "storage_usage" not in s.get_state()
    s.storage_usage = (3 << 30, 5 << 30)
    assert s.server_summary()[-1] == ("Storage at its last start", "3 GB of 5 GB used (60%)")
    restored = docker_spawner("lab")
    restored.load_state(s.get_state())
    assert restored.storage_usage == (3 << 30, 5 << 30)
    for bad in ({"storage_usage": "full"}, {"storage_usage": [1]}, {"storage_usage": [1, "2"]}):
        fresh = docker_spawner("lab")
        fresh.load_state(bad)
        assert fresh.storage_usage is None


def test_with_quotas_the_home_page_is_formspawners_once_named_servers_or_not():
    storage = {"quota_socket": "/run/jupyterhub-quota.sock", "docker_data_root": "/var/lib/docker",
               "min_free_disk": ""}  # fmt: skip
    c = hubconfig.apply(Config(), settings(storage=storage))
    assert c.JupyterHub.template_paths[0].endswith(os.path.join("templates", "hub"))
    named = {"enabled": True, "limit": 2, "storage": "server", "remove_when_culled": False}
    c = hubconfig.apply(Config(), settings(storage=storage, named_servers=named))
    assert len(c.JupyterHub.template_paths) == 1 and c.FormDockerSpawner.quota_socket == storage["quota_socket"]
    assert "template_paths" not in hubconfig.apply(Config(), settings()).JupyterHub
