"""Named servers (#22) on a real hub and engine: two servers of one user side by side with
different images, each with its own volume (or sharing the user's), the per-user limit
through the REST API and launch links, the home page listing what each runs, and the real
jupyterhub-idle-culler stopping (and removing) an idle one while the active one stays."""

import time

import pytest
import requests

from .hubharness import ANSWER_AT_ONCE, DOCKER_SETTINGS, ENV_POLICY, IMAGES, LAUNCH_PAGE, PREFIX, Hub
from .test_repo_launches import xsrf_of

pytestmark = pytest.mark.integration

VOLUME = f"{PREFIX}-vol-{{username}}"


def named_config(storage: str, limit: int, cull: int = 0) -> str:
    """The hub's settings through formspawner.hubconfig's own functions, as the role's
    jupyterhub_config.py applies them (the harness keeps its own services and roles)."""
    named = {"enabled": True, "limit": limit, "storage": storage, "remove_when_culled": True}
    return LAUNCH_PAGE + f"""
from traitlets.config import Config
from formspawner import hubconfig
hubconfig.apply_named_servers(c, {{"named_servers": {named!r}}})
c.FormDockerSpawner.home_volume = {VOLUME!r}
c.DockerSpawner.volumes = {{{VOLUME!r}: "/home/jovyan/work"}}
culler = Config()
hubconfig.apply_services(culler, {{"idle_timeout": {cull}, "named_servers": {named!r}, "services": []}})
for service in culler.JupyterHub.services:
    service["command"].append("--cull-every=5")
c.JupyterHub.services.extend(culler.JupyterHub.services)
c.JupyterHub.load_roles.extend(culler.JupyterHub.load_roles)
"""


def named_hub(make_hub, storage: str, limit: int, cull: int = 0, images=IMAGES) -> Hub:
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": images, "env_policy": ENV_POLICY, "form_options": ["image", "env"]},
        DOCKER_SETTINGS,
        extra=named_config(storage, limit, cull),
    )
    return hub


def servers(hub: Hub, user: str, stopped: bool = False) -> dict:
    params = {"include_stopped_servers": "1"} if stopped else {}
    return hub.api("GET", f"/users/{user}", params=params).json().get("servers", {})


def start_named(hub: Hub, user: str, server: str, body: dict) -> requests.Response:
    hub.ensure_user(user)
    return hub.api("POST", f"/users/{user}/servers/{server}", json=body)


def sh(container, command: str) -> str:
    result = container.exec_run(["sh", "-c", command], user="1000")
    assert result.exit_code == 0, result.output
    return result.output.decode()


def home_source(container) -> str:
    return next(m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == "/home/jovyan/work")


@pytest.fixture
def volumes(docker_client):
    yield
    for volume in docker_client.volumes.list(filters={"name": f"{PREFIX}-vol-"}):
        for container in docker_client.containers.list(all=True, filters={"volume": volume.name}):
            container.remove(force=True)
        volume.remove(force=True)


def test_two_servers_side_by_side_with_their_own_images_and_volumes_and_the_culler_stops_the_idle_one(
    make_hub, docker_client, volumes
):
    hub = named_hub(make_hub, "server", limit=2, cull=20)
    assert start_named(hub, "nina", "lab", {"image": "minimal"}).status_code in (201, 202)
    assert start_named(hub, "nina", "ml", {"image": "scipy", "env": {"COURSE": "ml"}}).status_code in (201, 202)
    hub.wait_ready("nina", server_name="lab")
    hub.wait_ready("nina", server_name="ml")
    lab = docker_client.containers.get(f"{PREFIX}-nina--lab")
    ml = docker_client.containers.get(f"{PREFIX}-nina--ml")
    assert "jhtest/singleuser:minimal" in lab.image.tags and "jhtest/singleuser:scipy" in ml.image.tags
    assert "COURSE=ml" in sh(ml, "tr '\\0' '\\n' < /proc/1/environ") and "COURSE" not in sh(lab, "env")
    # Each named server has its own volume: a file written in one is not in the other.
    assert (home_source(lab), home_source(ml)) == (f"{PREFIX}-vol-nina--lab", f"{PREFIX}-vol-nina--ml")
    sh(lab, "echo lab-work > /home/jovyan/work/notes.txt")
    assert sh(ml, "ls /home/jovyan/work") == ""

    # The limit: a third named server is refused by the REST API and by a link, and the
    # refused link leaves no server entry behind.
    third = start_named(hub, "nina", "third", {"image": "minimal"})
    assert third.status_code == 400 and "maximum of 2 named servers" in third.json()["message"]
    session = hub.login("nina")
    page = session.get(f"{hub.url}/hub/launch", params={"server": "third", "image": "minimal"})
    assert page.status_code == 400 and "maximum of 2 named servers" in page.text
    assert set(servers(hub, "nina", stopped=True)) == {"", "lab", "ml"}  # "": the default, never started
    # A link to a running server with the same choice opens it; another choice asks first.
    same = session.get(f"{hub.url}/hub/launch", params={"server": "ml", "image": "scipy"}, allow_redirects=False)
    assert same.status_code == 302 and same.headers["Location"].endswith("/user/nina/ml/")
    other = session.get(f"{hub.url}/hub/launch", params={"server": "lab", "image": "scipy"})
    assert "Your server is already running" in other.text and "Minimal Python" in other.text

    # The home page lists what each server runs.
    home = session.get(f"{hub.url}/hub/home")
    assert home.status_code == 200 and 'id="formspawner-servers"' in home.text
    assert 'data-server-name="lab"' in home.text and "Minimal Python" in home.text and "SciPy" in home.text
    default = home.text[home.text.index('class="formspawner-server" data-server-name=""'):]
    default = default[: default.index("</tr>")]
    assert "not started yet" in default and "Image" not in default, default  # no choice made yet

    # The real culler (timeout 20 s, every 5 s): ml stays active, lab is stopped and removed
    # (remove_when_culled); lab's volume, with the student's file, is kept.
    deadline = time.monotonic() + 90
    while "lab" in servers(hub, "nina", stopped=True) and time.monotonic() < deadline:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        hub.api("POST", "/users/nina/activity", json={"servers": {"ml": {"last_activity": now}}})
        time.sleep(2)
    assert "lab" not in servers(hub, "nina", stopped=True), hub.log_text()[-3000:]
    assert servers(hub, "nina")["ml"]["ready"] is True
    assert not docker_client.containers.list(all=True, filters={"name": f"{PREFIX}-nina--lab"})
    kept = docker_client.containers.run(
        "jhtest/singleuser:minimal", ["cat", "/work/notes.txt"], remove=True,
        volumes={f"{PREFIX}-vol-nina--lab": {"bind": "/work", "mode": "ro"}},
    )  # fmt: skip
    assert kept == b"lab-work\n"
    assert "idle-culler" in hub.log_text()


def test_with_per_user_storage_a_users_servers_share_one_volume_and_a_link_opens_a_new_named_server(
    make_hub, docker_client, volumes
):
    hub = named_hub(make_hub, "user", limit=1)
    assert hub.spawn("omar", {"image": "minimal"}).status_code in (201, 202)
    hub.wait_ready("omar")
    session = hub.login("omar")
    # JupyterHub's rules for server names (safe slugs) hold for links too.
    refused = session.get(f"{hub.url}/hub/launch", params={"server": "Exam 1", "image": "minimal"})
    assert refused.status_code == 400 and "Invalid server_name" in refused.text
    query = {"server": "exam", "image": "scipy"}
    page = session.get(f"{hub.url}/hub/launch", params=query)
    assert page.status_code == 200 and "Start your server from this link?" in page.text and "exam" in page.text
    assert set(servers(hub, "omar", stopped=True)) == {""}, "looking at a link makes no server"
    started = session.post(
        f"{hub.url}/hub/launch", params=query, data={"_xsrf": xsrf_of(page.text)}, allow_redirects=False
    )
    assert started.status_code == 302 and started.headers["Location"].endswith("/spawn-pending/omar/exam")
    hub.wait_ready("omar", server_name="exam")
    default = docker_client.containers.get(f"{PREFIX}-omar")
    exam = docker_client.containers.get(f"{PREFIX}-omar--exam")
    assert "jhtest/singleuser:scipy" in exam.image.tags
    assert home_source(default) == home_source(exam) == f"{PREFIX}-vol-omar"
    sh(default, "echo shared > /home/jovyan/work/both.txt")
    assert sh(exam, "cat /home/jovyan/work/both.txt") == "shared\n"
    # A stopped server stays on the home page with what it last ran.
    assert hub.api("DELETE", "/users/omar/servers/exam").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while servers(hub, "omar").get("exam") and time.monotonic() < deadline:
        time.sleep(0.5)
    home = session.get(f"{hub.url}/hub/home").text
    row = home[home.index('class="formspawner-server" data-server-name="exam"'):]
    row = row[: row.index("</tr>")]
    assert "stopped" in row and "SciPy" in row, row
    # The spawn form of a server shows the user's other servers and what they run.
    form = session.get(f"{hub.url}/hub/spawn/omar/exam").text
    other = form[form.index('id="formspawner-other-servers"'):]
    assert "default</strong> (running)" in other and "Minimal Python" in other[: other.index("</ul>")]


def test_the_move_to_whole_home_storage_waits_for_the_users_other_servers(make_hub, docker_client, volumes):
    """With one volume shared by a user's servers, the move of its files (whole-home
    storage) must not happen under a server that still runs with the old mount."""
    # As the role sets it, servers outlive the hub; every spawn answered at once (202), so
    # that a refusal arrives on the progress stream, as the spawn page shows it.
    keep = "c.JupyterHub.cleanup_servers = False\n" + ANSWER_AT_ONCE
    before = make_hub()
    before.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "form_options": ["image", "env"]},
        DOCKER_SETTINGS,
        extra=named_config("user", 2) + keep,
    )
    assert start_named(before, "pia", "lab", {"image": "minimal"}).status_code in (201, 202)
    before.wait_ready("pia", server_name="lab")
    sh(docker_client.containers.get(f"{PREFIX}-pia--lab"), "echo kept > /home/jovyan/work/notes.txt")
    before.stop()  # the hub goes; the server keeps running, as on an upgrade

    # The same hub (its database: it finds pia's running server), now with whole-home volumes.
    after = before
    whole_home = named_config("user", 2).replace('"/home/jovyan/work"}', '"/home/jovyan"}') + keep
    after.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "form_options": ["image", "env"],
         "home_volume_moved_into": "work"},
        DOCKER_SETTINGS,
        extra=whole_home,
    )  # fmt: skip
    assert start_named(after, "pia", "ml", {"image": "minimal"}).status_code in (201, 202)
    events = after.progress_events("pia", server="ml")
    assert events[-1].get("failed") and "other servers stopped first" in events[-1]["message"], events[-2:]
    assert "lab" in events[-1]["message"]
    lab = docker_client.containers.get(f"{PREFIX}-pia--lab")
    assert sh(lab, "cat /home/jovyan/work/notes.txt") == "kept\n"  # nothing moved under it

    assert after.api("DELETE", "/users/pia/servers/lab").status_code in (202, 204)
    for _ in range(60):
        if "lab" not in servers(after, "pia"):
            break
        time.sleep(0.5)
    assert start_named(after, "pia", "ml", {"image": "minimal"}).status_code in (201, 202)
    after.wait_ready("pia", server_name="ml")
    ml = docker_client.containers.get(f"{PREFIX}-pia--ml")
    assert sh(ml, "cat /home/jovyan/work/notes.txt") == "kept\n"
