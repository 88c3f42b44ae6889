"""A chosen image's resources as FormDockerSpawner hands them to Docker: the container's
host config (docker-py's own create_host_config, for the API version Debian 12's engine
speaks), and the hub's settings back for the next start. Seen from inside a real
container (cgroup files, /dev/shm) in tests/integration/test_formdockerspawner.py; GPUs only
here, since no GPU or NVIDIA runtime exists on this machine."""

import asyncio
from types import SimpleNamespace

import docker

from formspawner import FormDockerSpawner

IMAGES = [
    {"name": "plain", "image": "jhtest/singleuser:minimal"},
    {"name": "ml", "image": "jhtest/singleuser:scipy", "resources": {
        "mem_limit": "8G", "mem_guarantee": "4G", "cpu_limit": 4, "pids_limit": 2048, "shm_size": "1G",
        "gpus": {"device_ids": ["0", "1"], "capabilities": ["gpu", "compute"]}}},
]  # fmt: skip


def created(monkeypatch, spawner, image):
    """The create_container call the spawner makes for `image` (a choice's name)."""
    monkeypatch.setattr(FormDockerSpawner, "_client", docker.APIClient(base_url="unix:///nonexistent", version="1.41"))
    calls = []

    async def docker_call(method, *args, **kwargs):
        assert method == "create_container", method
        calls.append(kwargs)
        return {"Id": "c1"}

    async def command():
        return ["start-notebook.py"]

    spawner.docker, spawner.get_command, spawner.get_env = docker_call, command, dict
    spawner.option_set.apply(spawner, spawner.option_set.check({"image": image}, []))
    asyncio.run(spawner.create_object())
    return calls[-1]


def spawner():
    s = FormDockerSpawner(images=IMAGES, mem_limit="2G", cpu_limit=1.0, extra_host_config={"pids_limit": 256})
    s.user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", id=1)
    return s


def test_a_choices_resources_are_the_containers_and_the_hubs_come_back_for_the_next(monkeypatch):
    s = spawner()
    host = created(monkeypatch, s, "ml")["host_config"]
    assert host["Memory"] == 8 * 1024**3
    assert host["MemoryReservation"] == 4 * 1024**3
    assert (host["CpuQuota"], host["CpuPeriod"]) == (400_000, 100_000)
    assert host["PidsLimit"] == 2048
    assert host["ShmSize"] == 1024**3
    assert host["DeviceRequests"] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu", "compute"]], "Options": {}}
    ]
    assert (s.mem_limit, s.cpu_limit, s.extra_host_config) == (2 * 1024**3, 1.0, {"pids_limit": 256})
    host = created(monkeypatch, s, "plain")["host_config"]
    assert (host["Memory"], host["CpuQuota"], host["PidsLimit"]) == (2 * 1024**3, 100_000, 256)
    for absent in ("MemoryReservation", "ShmSize", "DeviceRequests"):
        assert absent not in host, absent


def test_a_kept_container_is_recreated_when_its_choices_resources_differ():
    """remove=False reuses a stopped container only with the same fingerprint."""
    s = FormDockerSpawner(images=[
        {"name": "small", "image": "jhtest/singleuser:minimal"},
        {"name": "large", "image": "jhtest/singleuser:minimal", "resources": {"mem_limit": "4G"}},
    ])  # fmt: skip
    s.user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", id=1)
    s.option_set.apply(s, s.option_set.check({"image": "large"}, []))
    large = s._options_fingerprint()
    s.option_set.apply(s, s.option_set.check({"image": "small"}, []))
    assert s._options_fingerprint() != large


def test_a_choice_without_gpus_tells_the_nvidia_runtime_none_and_one_with_gpus_keeps_them(monkeypatch):
    """With nvidia as the host's default runtime (docker_nvidia), NVIDIA's toolkit gives every
    GPU to a container whose image sets CUDA_VERSION without NVIDIA_REQUIRE_CUDA unless its
    environment says NVIDIA_VISIBLE_DEVICES=void. No GPU or NVIDIA runtime exists on this
    machine: the container's spec is what is checked."""
    from dockerspawner import DockerSpawner

    # The environment DockerSpawner and JupyterHub add (a hub's token, its URLs) is theirs.
    monkeypatch.setattr(DockerSpawner, "get_env", lambda self: {"JUPYTERHUB_API_TOKEN": "t"})
    s = spawner()
    env_of = {}
    for image in ("plain", "ml"):
        s.option_set.apply(s, s.option_set.check({"image": image}, []))
        env_of[image] = FormDockerSpawner.get_env(s)
    assert env_of["plain"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of["ml"]
    assert env_of["ml"]["JUPYTERHUB_API_TOKEN"] == "t"
