"""FormDockerSpawner on a real hub: spawns checked from inside the user's container."""

import json
import re
import time

import docker
import pytest

from .hubharness import DOCKER_SETTINGS, ENV_POLICY, IMAGES, container_env, container_of

pytestmark = pytest.mark.integration


def no_container(client, user):
    with pytest.raises(docker.errors.NotFound):
        container_of(client, user)
    return True


def test_rest_spawn_runs_the_chosen_image_with_the_users_variables(docker_hub, docker_client):
    response = docker_hub.spawn("alice", {"image": "scipy", "env": {"FOO": "bar baz", "OMP_NUM_THREADS": "4"}})
    assert response.status_code in (201, 202), response.text
    docker_hub.wait_ready("alice")

    container = container_of(docker_client, "alice")
    assert container.attrs["Config"]["Image"] == "jhtest/singleuser:scipy"
    assert container.exec_run(["cat", "/etc/jhtest-flavor"]).output.decode().strip() == "scipy"
    env = container_env(docker_client, "alice")
    assert env["FOO"] == "bar baz"
    assert env["OMP_NUM_THREADS"] == "4"  # the user changed the admin's default
    assert env["TZ"] == "Europe/Berlin"  # fixed by the admin
    assert env["JHTEST_IMAGE"] == "scipy"  # the image's own ENV, beneath everything
    assert env["JUPYTERHUB_USER"] == "alice"
    assert env["JUPYTER_IMAGE_SPEC"] == "jhtest/singleuser:scipy"
    assert "alice" in env["JUPYTERHUB_SERVICE_PREFIX"]


def test_servers_start_through_the_docker_stacks_chain_without_the_images_health_check(docker_hub, docker_client):
    """The stand-in starts as quay.io/jupyter images do (tini, start.sh, its hooks,
    start-notebook.py handing over to start-singleuser.py); the hub leaves the image's
    ENTRYPOINT and CMD alone and switches off its every-3-seconds HEALTHCHECK."""
    declared = docker_client.images.get("jhtest/singleuser:minimal").attrs["Config"]
    assert declared["Healthcheck"]["Test"] == ["CMD", "/etc/jupyter/docker_healthcheck.py"]
    assert declared["Entrypoint"] == ["tini", "-g", "--", "start.sh"]
    docker_hub.spawn("hana", {"image": "minimal"})
    docker_hub.wait_ready("hana")
    container = container_of(docker_client, "hana")
    assert container.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in container.attrs["State"]
    assert container.attrs["Path"] == "tini"
    assert container.attrs["Args"][:3] == ["-g", "--", "start.sh"]
    assert container.attrs["Args"][3] == "start-notebook.py"
    logs = container.logs().decode()
    assert "Entered start.sh with args: start-notebook.py" in logs
    assert "Running hooks in: /usr/local/bin/before-notebook.d" in logs
    assert "using start-singleuser.py instead of start-notebook.py" in logs
    assert "Executing: jupyterhub-singleuser" in logs
    # tini, and under it jupyterhub-singleuser alone: each start file exec'd the next.
    listing = (
        "import os\n"
        "for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):\n"
        "    if pid != os.getpid():\n"
        "        print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode().strip())\n"
    )
    processes = container.exec_run(["python3", "-c", listing]).output.decode().splitlines()
    assert processes[0] == "1 tini -g -- start.sh start-notebook.py", processes
    assert [line.split(" ", 1)[1] for line in processes[1:]] == [
        "/opt/conda/bin/python3 /opt/conda/bin/jupyterhub-singleuser"
    ], processes
    # The upstream check, switched off, still works on the stand-in when run by hand.
    check = container.exec_run(["/etc/jupyter/docker_healthcheck.py"])
    assert check.exit_code == 0, check.output.decode()


def test_user_values_override_the_images_env_but_not_the_platforms(docker_hub, docker_client):
    docker_hub.spawn("erin", {"env": {"JHTEST_IMAGE": "mine"}})
    docker_hub.wait_ready("erin")
    env = container_env(docker_client, "erin")
    assert env["JHTEST_IMAGE"] == "mine"
    assert env["JHTEST_IMAGE_ONLY"] == "from-image"
    assert "OMP_NUM_THREADS" not in env  # the user sent env without the default: removed


def test_spawn_without_options_gets_the_default_image_and_default_variables(docker_hub, docker_client):
    docker_hub.spawn("dave")
    docker_hub.wait_ready("dave")
    assert container_of(docker_client, "dave").attrs["Config"]["Image"] == "jhtest/singleuser:minimal"
    env = container_env(docker_client, "dave")
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["TZ"] == "Europe/Berlin"


def test_wrapped_user_options_body_behaves_like_the_bare_one(docker_hub, docker_client):
    response = docker_hub.spawn("wendy", {"user_options": {"image": "scipy", "env": {"W": "1"}}})
    assert response.status_code in (201, 202), response.text
    docker_hub.wait_ready("wendy")
    assert container_env(docker_client, "wendy")["W"] == "1"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"env": {"JUPYTERHUB_API_TOKEN": "stolen"}}, "reserved by the platform"),
        ({"env": {"path": "/evil"}}, "reserved by the platform"),
        ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "reserved by the platform"),
        ({"env": {"TZ": "UTC"}}, "denied"),
        ({"env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "denied"),
        ({"env": {"A": "x\u0000y"}}, "control character"),
        ({"env": {"A": "x" * 101}}, "longer than this hub allows"),
        ({"env": {f"V{i}": "x" for i in range(11)}}, "Too many variables"),
        ({"env": ["A=1"]}, "must be an object"),
        ({"env": {"A": 1}}, "must be text"),
        ({"image": "jhtest/singleuser:scipy"}, "Unknown image"),
        ({"image": "gpu"}, "Unknown image"),
        ({"image": ["scipy"]}, "must be the name of an image"),
        ({"cmd": ["bash"]}, "Unknown option 'cmd'"),
    ],
)
def test_policy_violations_get_400_with_the_message_and_leave_no_container(docker_hub, docker_client, body, message):
    response = docker_hub.spawn("mallory", body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert no_container(docker_client, "mallory")
    server = docker_hub.api("GET", "/users/mallory").json()["servers"].get("")
    assert not server


def test_group_members_may_choose_their_groups_image(docker_hub, docker_client):
    docker_hub.ensure_user("gina", groups=["gpu-users"])
    response = docker_hub.spawn("gina", {"image": "gpu"})
    assert response.status_code in (201, 202), response.text
    docker_hub.wait_ready("gina")


def test_new_options_on_restart_take_effect(docker_hub, docker_client):
    docker_hub.spawn("fred", {"image": "scipy", "env": {"ROUND": "1"}})
    docker_hub.wait_ready("fred")
    docker_hub.stop_server("fred")
    docker_hub.spawn("fred", {"image": "minimal", "env": {"ROUND": "2"}})
    docker_hub.wait_ready("fred")
    assert container_of(docker_client, "fred").attrs["Config"]["Image"] == "jhtest/singleuser:minimal"
    assert container_env(docker_client, "fred")["ROUND"] == "2"


def test_containers_are_removed_by_the_spawner_not_by_docker_autoremove(docker_hub, docker_client):
    """AutoRemove would make dockerd delete running servers when it restarts under
    live-restore (moby#46308); the spawner removes them itself when they stop."""
    docker_hub.spawn("gus", {"image": "minimal"})
    docker_hub.wait_ready("gus")
    assert container_of(docker_client, "gus").attrs["HostConfig"]["AutoRemove"] is False
    docker_hub.stop_server("gus")
    assert no_container(docker_client, "gus")


def test_recreates_a_kept_container_when_options_changed(make_hub, docker_client):
    """remove=False: DockerSpawner would restart the old container (its issue #423)."""
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY},
        {**DOCKER_SETTINGS, "remove": False},
    )
    hub.spawn("kim", {"image": "scipy", "env": {"ROUND": "1"}})
    hub.wait_ready("kim")
    first = container_of(docker_client, "kim").id
    hub.stop_server("kim")
    assert container_of(docker_client, "kim").status == "exited"

    hub.spawn("kim", {"image": "scipy", "env": {"ROUND": "1"}})  # same options: same container
    hub.wait_ready("kim")
    assert container_of(docker_client, "kim").id == first
    hub.stop_server("kim")

    hub.spawn("kim", {"image": "minimal", "env": {"ROUND": "2"}})
    hub.wait_ready("kim")
    container = container_of(docker_client, "kim")
    assert container.id != first
    assert container.attrs["Config"]["Image"] == "jhtest/singleuser:minimal"
    assert container_env(docker_client, "kim")["ROUND"] == "2"


def test_stored_options_are_checked_again_after_the_policy_changes(make_hub, docker_client):
    hub = make_hub()
    spawner = {"images": IMAGES, "env_policy": ENV_POLICY}
    hub.start("formspawner.FormDockerSpawner", spawner, DOCKER_SETTINGS)
    hub.spawn("olga", {"env": {"SCRATCH_DIR": "/tmp/s"}})
    hub.wait_ready("olga")
    hub.stop_server("olga")
    hub.stop()

    stricter = {**ENV_POLICY, "deny_patterns": ["^AWS_", "^SCRATCH"]}
    hub.start("formspawner.FormDockerSpawner", {**spawner, "env_policy": stricter}, DOCKER_SETTINGS)
    response = hub.spawn("olga")  # bodyless: JupyterHub reuses the stored options
    assert response.status_code == 400, response.text
    assert "SCRATCH_DIR" in response.json()["message"]
    assert no_container(docker_client, "olga")


def test_values_never_reach_the_hub_log(docker_hub, docker_client):
    secret = "s3cr3t-value-4f9a"
    docker_hub.spawn("vera", {"env": {"MY_VALUE": secret}})
    docker_hub.wait_ready("vera")
    docker_hub.spawn("victor", {"env": {"PATH": secret}})
    assert container_env(docker_client, "vera")["MY_VALUE"] == secret
    assert secret not in docker_hub.log_text()


def test_form_shows_choices_and_a_refused_submission_comes_back_with_the_message(docker_hub, docker_client):
    docker_hub.ensure_user("sam")
    session = docker_hub.login("sam")
    page = session.get(f"{docker_hub.url}/hub/spawn")
    assert page.status_code == 200
    assert re.search(r'name="image"[^>]*value="minimal"', page.text.replace("\n", " "))
    assert "Python and JupyterLab" in page.text
    assert 'value="gpu"' not in page.text
    assert "OMP_NUM_THREADS=1" in page.text

    xsrf = session.cookies.get("_xsrf")
    refused = session.post(
        f"{docker_hub.url}/hub/spawn",
        data={"image": "scipy", "env": "GOOD=1\nPYTHONPATH=/evil", "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert refused.status_code == 400
    assert "PYTHONPATH" in refused.text and "reserved by the platform" in refused.text
    assert "GOOD=1" in refused.text  # what the user typed is kept
    assert no_container(docker_client, "sam")

    accepted = session.post(
        f"{docker_hub.url}/hub/spawn",
        data={"image": "scipy", "env": "GOOD=1\n# comment\nexport QUOTED=\"a b\"", "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert accepted.status_code == 302, accepted.text[:500]
    docker_hub.wait_ready("sam")
    env = container_env(docker_client, "sam")
    assert (env["GOOD"], env["QUOTED"]) == ("1", "a b")
    assert container_of(docker_client, "sam").attrs["Config"]["Image"] == "jhtest/singleuser:scipy"


def test_a_launch_link_cannot_set_environment_variables(docker_hub, docker_client):
    docker_hub.ensure_user("lena")
    session = docker_hub.login("lena")
    page = session.get(f"{docker_hub.url}/hub/spawn?env=PIP_INDEX_URL%3Dhttps://evil.example")
    assert page.status_code == 400
    assert "A link cannot set" in page.text
    assert no_container(docker_client, "lena")


def test_progress_reports_the_pull_and_the_start(docker_client, make_hub):
    """An image missing locally is pulled from the local registry with progress events."""
    local = "127.0.0.1:5000/jhtest/singleuser:scipy"
    try:
        docker_client.images.remove(local, force=True)
    except docker.errors.ImageNotFound:
        pass
    hub = make_hub()
    images = [{"name": "remote", "image": local}]
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": images},
        {**DOCKER_SETTINGS, "pull_policy": "ifnotpresent"},
        # Answer the REST call at once, so the test watches the spawn as it happens.
        extra="c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}",
    )
    hub.ensure_user("pat")
    response = hub.spawn("pat", {"image": "remote"})
    assert response.status_code in (201, 202), response.text
    events = hub.progress_events("pat")
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith(f"Pulling image {local}") for m in messages), messages
    assert any("Starting your container" in m for m in messages), messages
    assert events[-1].get("ready"), messages
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress)


def test_with_one_start_slot_the_second_server_waits_its_turn_and_both_start(docker_client, make_hub):
    """start_slots: a server beyond the limit waits until the one before it answers; its
    spawn page says so. Both servers are then ready in the hub and their containers run."""
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "start_slots": 1},
        DOCKER_SETTINGS,
        extra="c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}",
    )
    for user in ("ann", "bob"):
        hub.ensure_user(user)
    for user in ("ann", "bob"):
        response = hub.spawn(user)
        assert response.status_code in (201, 202), response.text
    events = {user: hub.progress_events(user) for user in ("ann", "bob")}
    messages = {user: [e.get("message", "") for e in events[user]] for user in events}
    assert events["ann"][-1].get("ready") and events["bob"][-1].get("ready"), messages
    assert not any(m.startswith("Waiting for your turn") for m in messages["ann"]), messages
    waited = "Waiting for your turn to start: number 1 in line (servers start 1 at a time, so that each is ready"
    assert any(m.startswith(waited) for m in messages["bob"]), messages
    for user in ("ann", "bob"):
        assert hub.api("GET", f"/users/{user}").json()["servers"][""]["ready"]
        assert container_of(docker_client, user).status == "running"


# Run inside a server: its limits as the kernel applies them (cgroup v2 or v1).
CGROUP_READER = """
import json, os
def read(*paths):
    for path in paths:
        if os.path.exists('/sys/fs/cgroup/' + path):
            return open('/sys/fs/cgroup/' + path).read().strip()
def number(text):
    return None if text in (None, 'max', '0', '-1') or int(text) >= 2**60 else int(text)
v2 = os.path.exists('/sys/fs/cgroup/cgroup.controllers')
if v2:
    cpu = read('cpu.max')
else:
    cpu = read('cpu/cpu.cfs_quota_us') + ' ' + read('cpu/cpu.cfs_period_us')
shm = os.statvfs('/dev/shm')
print(json.dumps([
    number(read('memory.max', 'memory/memory.limit_in_bytes')),
    number(read('memory.low', 'memory/memory.soft_limit_in_bytes')),
    cpu,
    number(read('pids.max', 'pids/pids.max')),
    shm.f_blocks * shm.f_frsize,
]))
"""


def test_each_choice_gets_its_own_resources_seen_from_inside_and_users_cannot_ask_for_more(make_hub, docker_client):
    """Per-choice resources (images[].resources) over the hub's settings for every server
    (here 768M and 1 CPU): the cgroup the server runs in and its /dev/shm, read from inside."""
    course = {
        "name": "course", "display_name": "Course", "image": "jhtest/singleuser:minimal",
        "resources": {"mem_limit": "384M", "mem_guarantee": "128M", "cpu_limit": 0.5, "pids_limit": 300,
                      "shm_size": "96M"},
    }  # fmt: skip
    big = {"name": "big", "image": "jhtest/singleuser:minimal", "groups": ["ml"], "resources": {"mem_limit": "1G"}}
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": [*IMAGES, course, big], "env_policy": ENV_POLICY},
        {**DOCKER_SETTINGS, "mem_limit": "768M", "cpu_limit": 1.0},
    )

    def inside(user):
        """[memory limit, memory reservation, "quota period", pids limit, /dev/shm bytes]
        from the container's cgroup (v2, or v1 as on this machine); None: no limit."""
        result = container_of(docker_client, user).exec_run(["python3", "-c", CGROUP_READER])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert hub.spawn("rita", {"image": "course"}).status_code in (201, 202)
    hub.wait_ready("rita")
    assert inside("rita") == [384 * 2**20, 128 * 2**20, "50000 100000", 300, 96 * 2**20]
    # What JupyterHub tells the server about its limits (jupyter-resource-usage shows it).
    env = container_env(docker_client, "rita")
    assert (env["MEM_LIMIT"], env["MEM_GUARANTEE"], env["CPU_LIMIT"]) == (str(384 * 2**20), str(128 * 2**20), "0.5")
    hub.stop_server("rita")
    # The next start with another choice gets the hub's settings again.
    assert hub.spawn("rita", {"image": "minimal"}).status_code in (201, 202)
    hub.wait_ready("rita")
    memory, low, cpu, pids, shm = inside("rita")
    assert (memory, low, cpu) == (768 * 2**20, None, "100000 100000")
    assert pids != 300 and shm == 64 * 2**20  # Docker's default /dev/shm
    hub.stop_server("rita")
    # Resources come with a choice only: a request for more is refused by name, and a
    # choice limited to a group is refused to others as an unknown image.
    response = hub.spawn("rita", {"image": "course", "resources": {"mem_limit": "64G"}})
    assert response.status_code == 400 and "Unknown option 'resources'" in response.json()["message"]
    response = hub.spawn("rita", {"image": "big"})
    assert response.status_code == 400 and "Unknown image 'big'" in response.json()["message"], response.text
    assert hub.api("POST", "/groups/ml", json={"users": ["rita"]}).status_code in (201, 409)
    assert hub.spawn("rita", {"image": "big"}).status_code in (201, 202)
    hub.wait_ready("rita")
    assert inside("rita")[0] == 2**30


def test_a_gpu_choice_reaches_the_engine_as_a_device_request_and_a_host_without_gpus_says_so(make_hub, docker_client):
    """No GPU host is reachable: this engine has no NVIDIA runtime, so it creates the
    container with the choice's device request (what `docker run --gpus` sends) and then
    refuses to start it with its own message, which reaches the user's spawn. The
    container is kept (remove=False) to be read."""
    gpu = {"name": "cuda", "image": "jhtest/singleuser:minimal",
           "resources": {"gpus": {"count": 2, "capabilities": ["gpu", "compute"]}}}  # fmt: skip
    hub = make_hub()
    hub.start("formspawner.FormDockerSpawner", {"images": [*IMAGES, gpu]}, {**DOCKER_SETTINGS, "remove": False})
    response = hub.spawn("gina", {"image": "cuda"})
    deadline = time.monotonic() + 60
    while hub.api("GET", "/users/gina").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hub.api("GET", "/users/gina").json()["servers"], "the start should have failed"
    assert 'could not select device driver "" with capabilities: [[gpu compute]]' in (
        response.text + hub.log_text()
    ), hub.log_text()[-3000:]
    requests_made = container_of(docker_client, "gina").attrs["HostConfig"]["DeviceRequests"]
    assert [{k: r[k] for k in ("Driver", "Count", "Capabilities")} for r in requests_made] == [
        {"Driver": "", "Count": 2, "Capabilities": [["gpu", "compute"]]}
    ]
