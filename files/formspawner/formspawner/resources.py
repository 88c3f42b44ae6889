"""What a user's server gets, decided in one place for both spawners.

`grant()` lays the chosen image's resources (`images.Resources`, from the inventory's
`jupyterhub_images[].resources`) over the hub's settings for every server; the builders turn
a grant into what Docker takes: a container's host config, a Swarm task's resources and its
/dev/shm mount, and the variables the server's environment carries about its limits. They
are pure (docker-py's types are plain dicts), so they are tested without an engine
(tests/unit/test_resources.py); the spawners hand what they build to DockerSpawner and
SwarmSpawner through the extra_* settings those already merge last, so the hub's configured
traits are never changed for a start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import docker.types

from .images import Gpus, Resources

# Docker's default CFS period (100 ms), as DockerSpawner uses it unless extra_host_config
# names another: cpu_limit 1.5 is a quota of 150 ms in every period.
CPU_PERIOD = 100_000


@dataclass(frozen=True)
class Grant:
    """One server's resources; None: no limit (or, for gpus, no GPU)."""

    mem_limit: int | None = None
    mem_guarantee: int | None = None
    cpu_limit: float | None = None
    cpu_guarantee: float | None = None
    pids_limit: int | None = None
    shm_size: int | None = None
    gpus: Gpus | None = None
    storage_quota: int | None = None
    layer_quota: int | None = None


def grant(chosen: Resources, **configured) -> Grant:
    """The hub's `configured` settings for every server (Grant's names; None or 0: not
    set), with every resource the choice names over them."""
    unknown = set(configured) - {field.name for field in dataclasses.fields(Grant)}
    if unknown:
        raise TypeError(f"not a resource: {', '.join(sorted(unknown))}")
    values = {name: value or None for name, value in configured.items()}
    for field in dataclasses.fields(Resources):
        value = getattr(chosen, field.name)
        if value is not None:
            values[field.name] = value
    return Grant(**values)


def environment(granted: Grant) -> dict[str, str]:
    """What the server is told about its limits: JupyterHub's MEM_LIMIT, MEM_GUARANTEE,
    CPU_LIMIT, CPU_GUARANTEE (as Spawner.get_env writes them, here the granted values, not
    the hub's), and NVIDIA_VISIBLE_DEVICES=void for a server without GPUs: on a host whose
    default runtime is nvidia (docker_nvidia), NVIDIA's toolkit gives every GPU to a
    container whose image sets CUDA_VERSION and no NVIDIA_REQUIRE_CUDA (the legacy images'
    rule) unless this says none. A server with GPUs gets them through its device request
    (or its Swarm resource), which this leaves alone."""
    env = {
        name.upper(): str(getattr(granted, name))
        for name in ("mem_limit", "mem_guarantee", "cpu_limit", "cpu_guarantee")
        if getattr(granted, name) is not None
    }
    if granted.gpus is None:
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    return env


def host_config(granted: Grant, cpu_period: int = CPU_PERIOD) -> dict:
    """docker-py's create_host_config arguments for a container with this grant."""
    config: dict = {}
    if granted.mem_limit is not None:
        config["mem_limit"] = granted.mem_limit
    if granted.mem_guarantee is not None:
        config["mem_reservation"] = granted.mem_guarantee
    if granted.cpu_limit is not None:
        config["cpu_period"] = cpu_period
        config["cpu_quota"] = int(granted.cpu_limit * cpu_period)
    if granted.pids_limit is not None:
        config["pids_limit"] = granted.pids_limit
    if granted.shm_size is not None:
        config["shm_size"] = granted.shm_size
    if granted.gpus is not None:
        config["device_requests"] = [docker.types.DeviceRequest(**granted.gpus.device_request())]
    if granted.layer_quota is not None:
        # What the container writes outside its volumes (/tmp, pip install, conda): the
        # storage driver's size option (btrfs; overlay2 on XFS mounted prjquota).
        config["storage_opt"] = {"size": str(granted.layer_quota)}
    return config


def over_extra(extra: dict, granted: Grant, chosen: Resources, cpu_period: int = CPU_PERIOD) -> dict:
    """An admin's extra_host_config with the grant's host config laid in: what the choice
    names over everything, the hub's own settings where extra_host_config says nothing
    (as DockerSpawner lets extra_host_config override its mem_limit and cpu_limit)."""
    from_choice = host_config(grant(chosen), cpu_period)
    merged = dict(extra)
    for key, value in host_config(granted, cpu_period).items():
        if key in from_choice or key not in extra:
            merged[key] = value
    return merged


def swarm_resources(granted: Grant, gpu_resource: str, extra: dict | None = None) -> docker.types.Resources:
    """A Swarm task's resources: the grant, then the admin's extra_resources_spec over it.
    GPUs are the nodes' generic resource `gpu_resource` (a count; the swarm picks them)."""
    limits: dict = {
        "mem_limit": granted.mem_limit,
        "mem_reservation": granted.mem_guarantee,
        "cpu_limit": int(granted.cpu_limit * 1e9) if granted.cpu_limit is not None else None,
        "cpu_reservation": int(granted.cpu_guarantee * 1e9) if granted.cpu_guarantee is not None else None,
    }
    if granted.gpus is not None:
        limits["generic_resources"] = {gpu_resource: granted.gpus.count}
    resources = docker.types.Resources(**{**limits, **(extra or {})})
    if granted.pids_limit is not None:
        # Swarm's Limits.Pids (API 1.41, Docker 20.10); docker-py has no argument for it.
        resources.setdefault("Limits", {})["Pids"] = granted.pids_limit
    return resources


def swarm_mounts(granted: Grant) -> list[docker.types.Mount]:
    """Services have no shm_size: a grant's shared memory is a tmpfs of its size on /dev/shm."""
    if granted.shm_size is None:
        return []
    return [docker.types.Mount(target="/dev/shm", source=None, type="tmpfs", tmpfs_size=granted.shm_size)]


# A server run as its user's own id (user_ids 'distinct'): group 0 as its primary group,
# which docker-stacks' start.sh needs to name the id in /etc/passwd (the images let group 0
# write it), and docker-stacks' users group, which the images' home and conda are given to.
PRIMARY_GROUP = "0"
IMAGE_GROUP = "100"
# What the helper that gives a volume to its user's id may do as root: change owners,
# and look into folders whatever their modes. Nothing else.
OWNER_CAPABILITIES = ("CHOWN", "DAC_READ_SEARCH")


def run_as(uid: int | None) -> str:
    """Docker's `user` for a server or helper run as `uid`; "" = the image's user."""
    return "" if uid is None else f"{uid}:{PRIMARY_GROUP}"


def group_add(extra: dict, added: list[str]) -> dict:
    """The host config's group_add: the groups `extra` already has (the admin's
    extra_host_config), then those of `added` it does not."""
    groups = [str(group) for group in extra.get("group_add") or []]
    return {"group_add": groups + [group for group in added if group not in groups]}


def identity_groups(extra: dict) -> dict:
    """The host config's group_add for a server run as its user's own id: the admin's
    extra_host_config groups, then the images' users group."""
    return group_add(extra, [IMAGE_GROUP])
