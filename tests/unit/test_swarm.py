"""FormSwarmSpawner's own decisions, against a stand-in for the swarm manager's API.

The real swarm (three Docker engines, a worker stopped mid-test) is the molecule `swarm`
scenario; here each decision is checked alone: mounts per storage mode, the pin and its
refusals, where the hub connects, and when a server counts as stopped.
"""

import asyncio
import os
import threading
from types import SimpleNamespace

import docker.errors
import pytest

from formspawner import FormSwarmSpawner, PolicyError
from formspawner.swarm import UnavailableNode


class StandIn:
    """The few manager calls the spawner makes: inspect_node, inspect_service, tasks, create_service."""

    def __init__(self, nodes=None, tasks=None):
        self.nodes = nodes or {}
        self.tasks = tasks or []
        self.created = None

    def call(self, method, *args, **kwargs):
        if method == "inspect_node":
            if args[0] not in self.nodes:
                raise docker.errors.NotFound("no such node")
            return self.nodes[args[0]]
        if method == "inspect_service":
            return {"ID": "svc1", "Endpoint": {}}
        if method == "tasks":
            wanted = kwargs["filters"].get("desired-state")
            return [t for t in self.tasks if wanted is None or t["DesiredState"] == wanted]
        if method == "create_service":
            self.created = kwargs
            return {"ID": "svc1"}
        raise AssertionError(f"unexpected call {method}")


def node(node_id, host, state="ready", availability="active", addr="10.0.0.5"):
    return {
        "ID": node_id,
        "Description": {"Hostname": host},
        "Status": {"State": state, "Addr": addr},
        "Spec": {"Availability": availability},
    }


def task(task_id, node_id, desired="running", state="running", port=31000):
    ports = [{"TargetPort": 8888, "PublishedPort": port, "PublishMode": "host"}]
    return {
        "ID": task_id,
        "NodeID": node_id,
        "DesiredState": desired,
        "Status": {"State": state, "PortStatus": {"Ports": ports}},
    }


def spawner(standin, **config):
    s = FormSwarmSpawner(**config)
    s.user = SimpleNamespace(name="alice", groups=[], url="/user/alice/")
    s.object_id = "svc1"

    async def docker_call(method, *args, **kwargs):
        return standin.call(method, *args, **kwargs)

    s.docker = docker_call
    return s


def run(coro):
    return asyncio.run(coro)


def test_pin_mode_keeps_named_volumes_as_swarm_volumes_and_paths_as_binds():
    s = spawner(
        StandIn(),
        volumes={"jupyterhub-user-{username}": "/home/jovyan/work", "/srv/data": {"bind": "/data", "mode": "ro"}},
    )
    mounts = {m["Target"]: m for m in s.mounts}
    assert mounts["/home/jovyan/work"]["Type"] == "volume"
    assert mounts["/home/jovyan/work"]["Source"] == "jupyterhub-user-alice"
    assert mounts["/data"]["Type"] == "bind" and mounts["/data"]["ReadOnly"] is True


def test_shared_mode_mounts_the_users_directory_under_the_shared_root(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    s = spawner(
        StandIn(),
        storage="shared",
        shared_home_root=str(root),
        shared_volume="jupyterhub-user-{username}",
        home_gid=os.getgid(),
        volumes={"jupyterhub-user-{username}": "/home/jovyan/work", "/srv/data": {"bind": "/data", "mode": "ro"}},
    )
    mounts = {m["Target"]: m for m in s.mounts}
    assert mounts["/home/jovyan/work"] == {
        **mounts["/home/jovyan/work"],
        "Type": "bind",
        "Source": f"{root}/alice",
    }
    assert mounts["/data"]["Source"] == "/srv/data"
    s._ensure_home()
    made = root / "alice"
    assert made.is_dir() and oct(made.stat().st_mode & 0o7777) == "0o770"
    s._ensure_home()  # a second start finds it


def test_shared_mode_without_the_filesystem_mounted_names_the_directory(tmp_path):
    s = spawner(StandIn(), storage="shared", shared_home_root=str(tmp_path / "absent"), shared_volume="v-{username}")
    with pytest.raises(RuntimeError, match="absent is missing on the hub's host"):
        s._ensure_home()


def create_service(s, image="jhtest/singleuser:minimal"):
    """create_object, with what JupyterHub would give it (the command, the environment) stood in for."""

    async def command():
        return ["start-notebook.py"]

    s.get_command, s.get_env = command, dict
    s.image = image
    run(s.create_object())


def test_the_service_is_placed_by_constraints_never_restarted_and_publishes_in_host_mode():
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    s = spawner(standin, extra_placement_spec={"constraints": ["node.role == worker"]}, pids_limit=256, mem_limit="1G")
    create_service(s)
    spec = standin.created["task_template"]
    assert spec["Placement"]["Constraints"] == ["node.role == worker"]
    assert spec["RestartPolicy"]["Condition"] == "none"
    assert spec["Resources"]["Limits"]["Pids"] == 256
    assert spec["Resources"]["Limits"]["MemoryBytes"] == 1024**3
    endpoint = standin.created["endpoint_spec"]
    assert endpoint["Mode"] == "dnsrr"
    assert endpoint["Ports"] == [{"Protocol": "tcp", "PublishedPort": None, "TargetPort": 8888, "PublishMode": "host"}]
    assert spec["ContainerSpec"]["Labels"]["org.formspawner.user"] == "alice"
    assert standin.created["labels"]["org.formspawner.user"] == "alice"
    assert s.extra_placement_spec == {"constraints": ["node.role == worker"]}  # configured value untouched
    # The image's HEALTHCHECK is off: a failing check would kill a task that is never restarted.
    assert spec["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}


def test_an_admin_may_keep_the_images_health_check_on_swarm():
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    create_service(spawner(standin, image_healthcheck=True))
    assert "Healthcheck" not in standin.created["task_template"]["ContainerSpec"]


def test_the_hub_connects_to_the_node_that_runs_the_task():
    s = spawner(StandIn(nodes={"n1": node("n1", "worker1", addr="10.0.0.7")}, tasks=[task("t1", "n1", port=30123)]))
    assert run(s.get_ip_and_port()) == ("10.0.0.7", 30123)


def test_starting_pins_the_user_to_the_node_and_the_pin_survives_a_stop():
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    s = spawner(standin)
    run(s.start_object())
    assert (s.pinned_node, s.pinned_hostname, s.task_id) == ("n1", "worker1", "t1")
    s.clear_state()
    s.object_id = ""
    state = s.get_state()
    assert state["pinned_node"] == "n1" and "task_id" not in state
    again = spawner(standin)
    again.load_state(state)
    assert run(again._pin_constraint()) == ["node.id == n1"]


def test_a_pinned_user_whose_node_is_down_is_refused_with_the_nodes_name():
    s = spawner(StandIn(nodes={"n1": node("n1", "worker1", state="down")}))
    s.pinned_node, s.pinned_hostname = "n1", "worker1"
    with pytest.raises(UnavailableNode, match="Your files are on the node worker1, which is down"):
        run(s._pin_constraint())
    drained = spawner(StandIn(nodes={"n1": node("n1", "worker1", availability="drain")}))
    drained.pinned_node, drained.pinned_hostname = "n1", "worker1"
    with pytest.raises(UnavailableNode, match="which is ready and drain"):
        run(drained._pin_constraint())


def test_a_pin_to_a_node_that_left_the_swarm_is_released():
    s = spawner(StandIn())
    s.pinned_node, s.pinned_hostname = "gone", "worker9"
    assert run(s._pin_constraint()) == []
    assert s.pinned_node == "" and "worker9" in s._progress_events[-1]["message"]


def test_shared_storage_never_pins():
    s = spawner(StandIn(), storage="shared")
    s.pinned_node = "n1"
    assert run(s._pin_constraint()) == []


@pytest.mark.parametrize(
    ("nodes", "tasks", "expect_running"),
    [
        ({"n1": node("n1", "w1")}, [task("t1", "n1")], True),
        ({"n1": node("n1", "w1", state="down")}, [task("t1", "n1")], False),  # node down, task still "running"
        ({"n1": node("n1", "w1")}, [task("t1", "n1", desired="shutdown")], False),
        ({"n1": node("n1", "w1")}, [task("t2", "n1")], False),  # a replacement is not the server we started
        ({}, [task("t1", "n1")], False),  # node removed
        ({"n1": node("n1", "w1")}, [task("t1", "n1", state="failed")], False),
    ],
)
def test_poll_counts_a_server_as_running_only_on_a_ready_node(nodes, tasks, expect_running):
    s = spawner(StandIn(nodes=nodes, tasks=tasks))
    s.task_id = "t1"
    assert (run(s.poll()) is None) is expect_running


class Registry:
    """The manager's engine as the push sees it: tags and a push, recording their threads."""

    def __init__(self):
        self.calls = []

    def tag(self, image, repository, tag):
        self.calls.append(("tag", f"{repository}:{tag}", threading.current_thread().name))

    def push(self, repository, tag, stream, decode, auth_config):
        self.calls.append(("push", f"{repository}:{tag}", threading.current_thread().name))
        self.login = auth_config
        return iter([{"status": "Pushed"}, {"aux": {"Tag": tag, "Digest": "sha256:d"}}])


def test_a_push_does_not_wait_for_dockerspawners_one_thread_and_the_service_runs_its_digest(monkeypatch):
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    s = spawner(standin, registry_push="127.0.0.1:5000", registry_pull="10.0.0.5:5000")
    registry = Registry()
    monkeypatch.setattr(FormSwarmSpawner, "_client", registry)  # DockerSpawner's client, per class
    gate = threading.Event()
    # Every other user's Docker call goes through this one thread: keep it busy.
    busy = s.executor.submit(gate.wait, 10)
    try:
        reference = run(asyncio.wait_for(s._publish_image("formspawner-repo/lab:abc-def"), 5))
    finally:
        gate.set()
        busy.result()
    assert reference == "10.0.0.5:5000/formspawner-repo/lab:abc-def"
    assert [call[:2] for call in registry.calls] == [
        ("tag", "10.0.0.5:5000/formspawner-repo/lab:abc-def"),
        ("tag", "127.0.0.1:5000/formspawner-repo/lab:abc-def"),
        ("push", "127.0.0.1:5000/formspawner-repo/lab:abc-def"),
    ]
    assert all(thread.startswith("formspawner-push") for *_, thread in registry.calls)

    # The service runs exactly the pushed image, by digest; the manager reads its command by tag.
    create_service(s, reference)
    assert standin.created["task_template"]["ContainerSpec"]["Image"] == f"{reference}@sha256:d"
    create_service(s)  # a later plain start: no digest of another image
    assert standin.created["task_template"]["ContainerSpec"]["Image"] == "jhtest/singleuser:minimal"


def test_a_push_the_registry_does_not_confirm_with_a_digest_fails(monkeypatch):
    s = spawner(StandIn(), registry_push="127.0.0.1:5000", registry_pull="10.0.0.5:5000")
    registry = Registry()
    registry.push = lambda *args, **kwargs: iter([{"status": "Pushed"}])
    monkeypatch.setattr(FormSwarmSpawner, "_client", registry)
    with pytest.raises(RuntimeError, match="did not confirm the push of formspawner-repo/lab:abc-def"):
        run(s._publish_image("formspawner-repo/lab:abc-def"))


def test_a_push_logs_in_with_the_credentials_file_read_at_each_push(monkeypatch, tmp_path):
    login = tmp_path / "registry-push-login"
    s = spawner(StandIn(), registry_push="127.0.0.1:5001", registry_pull="10.0.0.5:5000",
                registry_push_credentials=str(login))
    registry = Registry()
    monkeypatch.setattr(FormSwarmSpawner, "_client", registry)
    login.write_text("hub:s3cret:with-colon\n")
    run(s._publish_image("formspawner-repo/lab:abc-def"))
    assert registry.login == {"username": "hub", "password": "s3cret:with-colon"}
    login.write_text("hub:rotated\n")  # a new password needs no restart
    run(s._publish_image("formspawner-repo/lab:abc-def"))
    assert registry.login == {"username": "hub", "password": "rotated"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Cannot read the registry's push login from .*registry-push-login: No such file"),
        ("hub\n", "does not hold the registry's push login as USER:PASSWORD"),
        ("hub:\n", "does not hold the registry's push login as USER:PASSWORD"),
        (":pw\n", "does not hold the registry's push login as USER:PASSWORD"),
    ],
)
def test_a_missing_or_malformed_login_fails_the_push_before_anything_is_sent(monkeypatch, tmp_path, content, message):
    login = tmp_path / "registry-push-login"
    if content is not None:
        login.write_text(content)
    s = spawner(StandIn(), registry_push="127.0.0.1:5001", registry_pull="10.0.0.5:5000",
                registry_push_credentials=str(login))
    registry = Registry()
    monkeypatch.setattr(FormSwarmSpawner, "_client", registry)
    with pytest.raises(RuntimeError, match=message):
        run(s._publish_image("formspawner-repo/lab:abc-def"))
    assert registry.calls == []


def test_without_a_credentials_file_the_push_sends_no_login(monkeypatch):
    s = spawner(StandIn(), registry_push="127.0.0.1:5001", registry_pull="10.0.0.5:5000")
    registry = Registry()
    monkeypatch.setattr(FormSwarmSpawner, "_client", registry)
    run(s._publish_image("formspawner-repo/lab:abc-def"))
    assert registry.login is None


def test_a_choices_resources_go_into_the_service_and_the_configured_ones_come_back():
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    images = [
        {"name": "plain", "image": "jhtest/singleuser:minimal"},
        {"name": "big", "image": "jhtest/singleuser:scipy", "resources": {
            "mem_limit": "2G", "mem_guarantee": "1G", "cpu_limit": 2, "pids_limit": 512, "shm_size": "256M"}},
    ]  # fmt: skip
    s = spawner(standin, images=images, pids_limit=256, mem_limit="1G", cpu_limit=1.0)
    s.option_set.apply(s, s.option_set.check({"image": "big"}, []))
    create_service(s, image=s.image)
    spec = standin.created["task_template"]
    assert spec["Resources"]["Limits"] == {"MemoryBytes": 2 * 1024**3, "NanoCPUs": 2 * 10**9, "Pids": 512}
    assert spec["Resources"]["Reservations"]["MemoryBytes"] == 1024**3
    shm = [m for m in spec["ContainerSpec"]["Mounts"] if m["Target"] == "/dev/shm"]
    assert shm == [{"Target": "/dev/shm", "Source": None, "Type": "tmpfs", "ReadOnly": False,
                    "TmpfsOptions": {"SizeBytes": 256 * 1024**2}}]  # fmt: skip
    assert (s.mem_limit, s.cpu_limit, s.pids_limit) == (1024**3, 1.0, 256)  # configured values back
    # The next start with a choice without resources gets the hub's settings.
    s.option_set.apply(s, s.option_set.check({"image": "plain"}, []))
    create_service(s, image=s.image)
    spec = standin.created["task_template"]
    assert spec["Resources"]["Limits"] == {"MemoryBytes": 1024**3, "NanoCPUs": 10**9, "Pids": 256}
    assert not [m for m in spec["ContainerSpec"].get("Mounts", []) if m["Target"] == "/dev/shm"]


def test_a_gpu_choice_on_swarm_reserves_that_many_of_the_workers_generic_gpu_resources():
    """Swarm places the task on a worker declaring that many NVIDIA-GPU resources free
    (the task's Reservations.GenericResources, as `docker service create --generic-resource`
    sends them); the worker's NVIDIA runtime then hands over the GPUs assigned."""
    images = [{"name": "ml", "image": "jhtest/singleuser:scipy", "resources": {"gpus": 2, "mem_limit": "8G"}},
              {"name": "plain", "image": "jhtest/singleuser:minimal"}]  # fmt: skip
    standin = StandIn(nodes={"n1": node("n1", "worker1")}, tasks=[task("t1", "n1")])
    s = spawner(standin, images=images)
    s.option_set.apply(s, s.option_set.check({"image": "ml"}, []))
    create_service(s, image=s.image)
    reservations = standin.created["task_template"]["Resources"]["Reservations"]
    assert reservations["GenericResources"] == [{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}]
    s.option_set.apply(s, s.option_set.check({"image": "plain"}, []))
    create_service(s, image=s.image)
    assert "GenericResources" not in standin.created["task_template"].get("Resources", {}).get("Reservations", {})


@pytest.mark.parametrize("gpus", ["all", {"device_ids": ["0"]}])
def test_gpus_by_device_or_all_are_refused_on_swarm_when_the_config_loads(gpus):
    with pytest.raises(PolicyError, match="'ml' asks for .*GPU.*on a swarm a server asks for a number of GPUs"):
        FormSwarmSpawner(images=[{"name": "ml", "image": "x", "resources": {"gpus": gpus}}])


def test_distinct_user_ids_are_refused_on_a_swarm_with_a_message():
    with pytest.raises(PolicyError, match="'distinct' is not available on a swarm yet"):
        FormSwarmSpawner.check_config({"user_ids": "distinct"})
    FormSwarmSpawner.check_config({"user_ids": "image"})
    with pytest.raises(PolicyError, match="'distinct' is not available on a swarm yet"):
        FormSwarmSpawner(user_ids="distinct")
