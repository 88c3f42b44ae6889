"""What a server gets (formspawner.resources): the grant (a choice's resources over the
hub's settings) and the pure builders of a container's host config, a Swarm task's
resources and mounts, and the server's environment, without a Docker engine; then as
FormDockerSpawner hands them to Docker: the container's host config (docker-py's own
create_host_config, for the API version Debian 12's engine speaks), and the hub's settings
unchanged for the next start. Seen from inside a real
container (cgroup files, /dev/shm) in tests/integration/test_formdockerspawner.py; GPUs only
here, since no GPU or NVIDIA runtime exists on this machine."""

import asyncio
import socket
import threading
from types import SimpleNamespace

import docker
import pytest

from formspawner import FormDockerSpawner, resources
from formspawner.errors import PolicyError
from formspawner.images import Gpus, Resources

IMAGES = [
    {"name": "plain", "image": "jhtest/singleuser:minimal"},
    {"name": "ml", "image": "jhtest/singleuser:scipy", "resources": {
        "mem_limit": "8G", "mem_guarantee": "4G", "cpu_limit": 4, "pids_limit": 2048, "shm_size": "1G",
        "gpus": {"device_ids": ["0", "1"], "capabilities": ["gpu", "compute"]}}},
]  # fmt: skip


GIB = 1024**3
HUB = {"mem_limit": 2 * GIB, "mem_guarantee": None, "cpu_limit": 1.0, "cpu_guarantee": 0, "pids_limit": 1024}
ML = Resources(mem_limit=8 * GIB, cpu_limit=4.0, shm_size=GIB, gpus=Gpus(count=2))


# -- the grant and its builders (pure) --------------------------------------------------


def test_a_grant_is_the_choices_resources_over_the_hubs_settings():
    assert resources.grant(Resources(), **HUB) == resources.Grant(2 * GIB, None, 1.0, None, 1024)
    granted = resources.grant(Resources(pids_limit=2048, mem_guarantee=GIB), **HUB)
    assert (granted.mem_limit, granted.mem_guarantee, granted.cpu_limit, granted.pids_limit) == (
        2 * GIB, GIB, 1.0, 2048,
    )  # fmt: skip
    assert resources.grant(ML) == resources.Grant(mem_limit=8 * GIB, cpu_limit=4.0, shm_size=GIB, gpus=Gpus(2))
    with pytest.raises(TypeError, match="not a resource: mem_limt"):
        resources.grant(ML, mem_limt=1)


def test_the_environment_says_the_granted_limits_and_void_gpus_without_a_gpu():
    assert resources.environment(resources.grant(Resources(), **HUB)) == {
        "MEM_LIMIT": str(2 * GIB), "CPU_LIMIT": "1.0", "NVIDIA_VISIBLE_DEVICES": "void",
    }  # fmt: skip
    assert resources.environment(resources.grant(ML, **HUB)) == {"MEM_LIMIT": str(8 * GIB), "CPU_LIMIT": "4.0"}


def test_a_host_config_has_each_granted_resource_and_nothing_else():
    assert resources.host_config(resources.Grant()) == {}
    config = resources.host_config(resources.grant(ML, **HUB), cpu_period=50_000)
    assert config == {
        "mem_limit": 8 * GIB, "cpu_period": 50_000, "cpu_quota": 200_000, "pids_limit": 1024, "shm_size": GIB,
        "device_requests": [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}],
    }  # fmt: skip
    assert resources.host_config(resources.Grant(mem_guarantee=GIB)) == {"mem_reservation": GIB}


def test_the_admins_extra_host_config_is_over_the_hubs_settings_and_the_choice_over_both():
    extra = {"pids_limit": 50, "mem_limit": "3g", "cap_drop": ["ALL"]}
    plain = resources.over_extra(extra, resources.grant(Resources(), **HUB), Resources())
    assert plain == {"pids_limit": 50, "mem_limit": "3g", "cap_drop": ["ALL"], "cpu_period": 100_000,
                     "cpu_quota": 100_000}  # fmt: skip
    chosen = Resources(pids_limit=2048, mem_limit=8 * GIB)
    assert resources.over_extra(extra, resources.grant(chosen, **HUB), chosen) == {**plain, "pids_limit": 2048,
                                                                                   "mem_limit": 8 * GIB}
    assert extra == {"pids_limit": 50, "mem_limit": "3g", "cap_drop": ["ALL"]}  # the admin's, unchanged
    # The spawner's CPU period reaches both layers: the hub's limit and the choice's.
    assert resources.over_extra({}, resources.grant(Resources(), **HUB), Resources(), cpu_period=50_000) == {
        "mem_limit": 2 * GIB, "cpu_period": 50_000, "cpu_quota": 50_000, "pids_limit": 1024}
    fast = Resources(cpu_limit=4.0)
    extra = {"cpu_period": 1, "cpu_quota": 1}
    over = resources.over_extra(extra, resources.grant(fast, **HUB), fast, cpu_period=50_000)
    assert (over["cpu_period"], over["cpu_quota"]) == (50_000, 200_000)


def test_a_swarm_task_gets_the_grant_as_limits_reservations_and_generic_gpus():
    granted = resources.grant(Resources(gpus=Gpus(count=2), mem_guarantee=GIB), **{**HUB, "cpu_guarantee": 0.5})
    task = resources.swarm_resources(granted, "NVIDIA-GPU")
    assert task == {
        "Limits": {"MemoryBytes": 2 * GIB, "NanoCPUs": 1_000_000_000, "Pids": 1024},
        "Reservations": {"MemoryBytes": GIB, "NanoCPUs": 500_000_000,
                         "GenericResources": [{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}]},
    }  # fmt: skip
    over = resources.swarm_resources(granted, "gpu", {"mem_limit": 3 * GIB})
    assert over["Limits"]["MemoryBytes"] == 3 * GIB  # the admin's extra_resources_spec over the grant
    assert resources.swarm_resources(resources.Grant(), "gpu") == {}
    assert resources.swarm_mounts(resources.Grant()) == []
    (shm,) = resources.swarm_mounts(resources.Grant(shm_size=GIB))
    assert (shm["Target"], shm["Type"], shm["TmpfsOptions"]) == ("/dev/shm", "tmpfs", {"SizeBytes": GIB})


# -- through FormDockerSpawner ----------------------------------------------------------


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


def test_the_hubs_process_limit_is_the_traits_unless_extra_host_config_names_one(monkeypatch):
    """FormDockerSpawner.pids_limit (the role's jupyterhub_user_pids_limit) is every
    server's; an admin's extra_host_config pids_limit is over it, a choice's over both."""
    s = FormDockerSpawner(images=IMAGES, pids_limit=1024)
    s.user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", id=1)
    assert created(monkeypatch, s, "plain")["host_config"]["PidsLimit"] == 1024
    s.extra_host_config = {"pids_limit": 50}
    assert created(monkeypatch, s, "plain")["host_config"]["PidsLimit"] == 50
    assert created(monkeypatch, s, "ml")["host_config"]["PidsLimit"] == 2048
    assert (s.pids_limit, s.extra_host_config) == (1024, {"pids_limit": 50})


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


# -- storage quotas (formspawner.quota; the service's own tests: test_quotad.py) ---------


def test_storage_quotas_are_sizes_a_choice_names_over_the_hubs_and_the_layer_reaches_docker():
    chosen = Resources.from_config({"storage_quota": "5G", "layer_quota": "512M"}, "images[0].resources")
    assert (chosen.storage_quota, chosen.layer_quota) == (5 * GIB, 512 * 1024**2)
    assert chosen.summary() == "5 GB storage, 512 MB outside the storage"
    with pytest.raises(PolicyError, match=r"images\[0\].resources.storage_quota must be a size"):
        Resources.from_config({"storage_quota": "lots"}, "images[0].resources")
    granted = resources.grant(chosen, storage_quota=GIB, layer_quota=0)
    assert (granted.storage_quota, granted.layer_quota) == (5 * GIB, 512 * 1024**2)
    assert resources.grant(Resources(), storage_quota=GIB, layer_quota=0).layer_quota is None
    # The layer is the storage driver's size option; the volume's quota is not Docker's.
    assert resources.host_config(granted) == {"storage_opt": {"size": str(512 * 1024**2)}}
    assert resources.host_config(resources.Grant(storage_quota=GIB)) == {}


def quota_spawner(monkeypatch, driver, **traits):
    monkeypatch.setattr(FormDockerSpawner, "_client", docker.APIClient(base_url="unix:///nonexistent", version="1.41"))
    monkeypatch.setattr(FormDockerSpawner, "_storage_driver", None)
    s = FormDockerSpawner(images=IMAGES, **traits)
    s.user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", id=1)
    calls = []

    async def docker_call(method, *args, **kwargs):
        calls.append((method, args, kwargs))
        return {"info": {"Driver": driver}, "inspect_image": {"Size": 700 * 1024**2}}.get(method, {"Id": "c1"})

    async def command():
        return ["start-notebook.py"]

    s.docker, s.get_command, s.get_env = docker_call, command, dict
    s.option_set.apply(s, s.option_set.check({"image": "plain"}, []))
    return s, calls


@pytest.mark.parametrize("driver, size", [("btrfs", 800 * 1024**2), ("overlay2", 100 * 1024**2)])
def test_the_layer_quota_is_what_the_server_writes_the_images_size_added_on_btrfs(monkeypatch, driver, size):
    """Docker's btrfs driver limits the container's whole snapshot, the image included (the
    molecule backup scenario measured it): there the spawner adds the image's size."""
    s, calls = quota_spawner(monkeypatch, driver, layer_quota=100 * 1024**2)
    asyncio.run(s.create_object())
    created = next(kwargs for method, _, kwargs in calls if method == "create_container")
    assert created["host_config"]["StorageOpt"] == {"size": str(size)}
    s.layer_quota = 0
    asyncio.run(s.create_object())
    created = [kwargs for method, _, kwargs in calls if method == "create_container"][-1]
    assert "StorageOpt" not in created["host_config"]


def serve_quotas(tmp_path, backend) -> str:
    """The real quota service over `backend`, for the volumes under tmp_path/volumes, on a
    Unix socket served by a thread; returns the socket's path."""
    from formspawner import quotad

    service = quotad.Service(backend, str(tmp_path / "volumes"), "jupyterhub-user-")
    path = str(tmp_path / "quota.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    threading.Thread(target=service.serve, args=(listener,), daemon=True).start()
    return path


def test_a_start_puts_the_volume_under_its_quota_first_and_stops_when_it_cannot(monkeypatch, tmp_path):
    from formspawner import quotad
    from formspawner.errors import UserFacingError

    asked = []

    class Backend:
        busy = False

        def limit(self, volume, data, size):
            asked.append((volume, size))
            if self.busy:
                raise quotad.VolumeInUse("used by jupyter-alice")
            return 59 * 1024**2, size

    (tmp_path / "volumes" / "jupyterhub-user-alice" / "_data").mkdir(parents=True)
    path = serve_quotas(tmp_path, Backend())
    s, calls = quota_spawner(monkeypatch, "btrfs", storage_quota=60 * 1024**2, quota_socket=path,
                             volumes={"jupyterhub-user-{username}": "/home/jovyan/work"},
                             home_volume="jupyterhub-user-{username}")  # fmt: skip
    asyncio.run(s._storage_under_quota())
    assert calls[0] == ("create_volume", (), {"name": "jupyterhub-user-alice"})
    assert asked == [("jupyterhub-user-alice", 60 * 1024**2)] and s.storage_usage == (59 * 1024**2, 60 * 1024**2)
    assert "Your storage is almost full: 59 MB of 60 MB used (98%)" in [e["message"] for e in s._progress_events]
    # No quota, no request; a refused one stops the start with a message for the user.
    s.storage_quota = 0
    asyncio.run(s._storage_under_quota())
    assert len(asked) == 1
    s.storage_quota, s.quota_socket = GIB, str(tmp_path / "absent.sock")
    with pytest.raises(UserFacingError, match="could not be put under its quota, so your server was not started"):
        asyncio.run(s._storage_under_quota())
    # A volume made before quotas that a container still mounts: started without it, for now.
    Backend.busy = True
    s.quota_socket, s.storage_usage = path, None
    asyncio.run(s._storage_under_quota())
    assert s.storage_usage is None


@pytest.mark.parametrize("server_storage, volume", [("server", "jupyterhub-user-alice--lab"),
                                                    ("user", "jupyterhub-user-alice")])  # fmt: skip
def test_a_named_servers_own_storage_gets_its_own_quota(monkeypatch, tmp_path, server_storage, volume):
    """Named servers with storage `server`: each server's volume is asked for the quota
    (a user with 3 servers holds up to 3 times it); with `user`, their one volume."""

    asked = []

    class Backend:
        def limit(self, name, data, size):
            asked.append((name, size))
            return 0, size

    for name in ("jupyterhub-user-alice", "jupyterhub-user-alice--lab"):
        (tmp_path / "volumes" / name / "_data").mkdir(parents=True)
    path = serve_quotas(tmp_path, Backend())
    s, calls = quota_spawner(monkeypatch, "btrfs", storage_quota=GIB, quota_socket=path, server_storage=server_storage,
                             volumes={"jupyterhub-user-{username}": "/home/jovyan/work"},
                             home_volume="jupyterhub-user-{username}")  # fmt: skip
    s.orm_spawner = SimpleNamespace(name="lab", display_name="lab", user_options={}, state=None, server=None,
                                    last_activity=None)  # fmt: skip
    asyncio.run(s._storage_under_quota())
    assert asked == [(volume, GIB)]
    assert ("create_volume", (), {"name": volume}) in calls
