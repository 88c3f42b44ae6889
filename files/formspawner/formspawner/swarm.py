"""FormSwarmSpawner: the same options (image, env, repo) on Docker Swarm.

Each user's server is a swarm service of one task that the swarm places (on workers,
by the placement constraints). What differs from one host:

- Addressing: the task publishes its port in host mode on the node that runs it and the
  hub connects to that node's address. Swarm's routing mesh (ingress, IPVS) is not used:
  it is not needed for one task, and not every kernel has IPVS.
- Failure: a service whose node went down still says "running" (the node cannot report).
  poll() asks for the node's state too, so the hub forgets such a server and the user
  can start again; the swarm itself never restarts a user's task elsewhere (its address
  would change behind the hub's back).
- Repository images are built on the manager (where the hub is), pushed to the registry
  on the manager and run from there by the node the swarm chose.
- Storage follows the user in one of two ways (`storage`): "shared" bind-mounts
  `shared_home_root/USER` from a filesystem every node mounts at the same path (NFS,
  CephFS, ...); "pin" keeps Docker's local volume and pins the user to the node that
  holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
from pathlib import Path
from pprint import pformat

import docker.errors
from docker.types import Mount, RestartPolicy
from dockerspawner import SwarmSpawner
from traitlets import Enum, Int, Unicode, default, validate

from . import resources, schedule
from .errors import OptionError, PolicyError, UserFacingError, as_http_error
from .labels import OPTIONS_LABEL, USER_LABEL
from .spawner import NO_HEALTHCHECK, FormDockerSpawner, traits_set

# Node states in which a task is really where it was placed.
_NODE_UP = "ready"
# Task states of a server that is up or on its way (SwarmSpawner.poll's set).
_TASK_ALIVE = {"running", "starting", "pending", "preparing"}


def _hostname(node: dict | None, default: str = "") -> str:
    return (node or {}).get("Description", {}).get("Hostname", default)


class UnavailableNode(UserFacingError):
    """The node holding a pinned user's files cannot run their server now."""


# Swarm's limit on a service's name (it must be a DNS label).
SERVICE_NAME_MAX = 63


USER_IDS_ON_SWARM = (
    "FormSwarmSpawner.user_ids: 'distinct' is not available on a swarm yet (a user's volume is given "
    "to their id by a short container on the engine that holds it, which the hub does not reach on "
    "a swarm's nodes); servers there run as the image's user"
)

COURSES_ON_SWARM = (
    "FormSwarmSpawner.courses: course folders are not available on a swarm yet (they are folders of "
    "the hub's host, which the workers do not have)"
)


class FormSwarmSpawner(FormDockerSpawner, SwarmSpawner):
    """SwarmSpawner with formspawner's options. Configure as c.FormSwarmSpawner."""

    @default("pull_policy")
    def _default_pull_policy(self):
        # The node the swarm picks pulls (the images role pre-pulls on every node).
        return "skip"

    @validate("user_ids")
    def _one_id_for_all(self, proposal):
        if proposal.value != "image":
            raise PolicyError(USER_IDS_ON_SWARM)
        return proposal.value

    @validate("courses")
    def _no_course_folders(self, proposal):
        if proposal.value:
            raise PolicyError(COURSES_ON_SWARM)
        return proposal.value

    @classmethod
    def check_config(cls, section) -> None:
        super().check_config(section)
        if section.get("user_ids", "image") != "image":
            raise PolicyError(USER_IDS_ON_SWARM)
        if section.get("courses"):
            raise PolicyError(COURSES_ON_SWARM)

    @classmethod
    def _gpus(cls) -> str:
        # A number of GPUs, as the swarm's generic resources (gpu_resource): workers declare
        # theirs (dockerd's node-generic-resources) and the swarm places the task on one
        # with that many free. Swarm services have no device requests.
        return "count"

    gpu_resource = Unicode(
        "NVIDIA-GPU",
        config=True,
        help="""The generic resource a GPU choice's count asks for: the kind GPU workers declare
        in dockerd's node-generic-resources (["NVIDIA-GPU=GPU-<uuid>", ...]). The worker's
        NVIDIA runtime hands the task the GPUs the swarm assigned (its swarm-resource setting,
        DOCKER_RESOURCE_NVIDIA-GPU; the docker role writes both).""",
    )

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        # No network of the hub's (SwarmSpawner's network_name ""): the hub reaches the
        # port the task publishes on its node (host mode), never a service's internal IP.
        return False

    registry_push = Unicode(
        "",
        config=True,
        help="""Where the hub pushes repository images it built (host:port of the registry's
        write endpoint, e.g. 127.0.0.1:5001 on the manager). Needed for the 'repo' option.""",
    )

    registry_push_credentials = Unicode(
        "",
        config=True,
        help="""A file holding USER:PASSWORD for the registry's push endpoint (its htpasswd
        login; the jupyterhub role writes it from the one the docker role made). Read at each
        push, so a new password needs no restart. Empty: push without a login.""",
    )

    registry_pull = Unicode(
        "",
        config=True,
        help="""The same registry as nodes reach it (host:port, e.g. the manager's address:5000).
        Services run repository images as REGISTRY_PULL/formspawner-repo/NAME:TAG.""",
    )

    storage = Enum(
        ["pin", "shared"],
        default_value="pin",
        config=True,
        help="""How a user's files follow them: 'pin' (Docker's local volume; the user's server
        always runs on the node that holds it, and cannot start while that node is down) or
        'shared' (each user's home is shared_home_root/USER on a filesystem every node
        mounts at the same path; the server may run on any node).""",
    )

    shared_home_root = Unicode(
        "",
        config=True,
        help="""storage='shared': the directory, mounted at this path on every node and on the
        manager, under which each user's home is created (mode 0770, group home_gid: the
        top directory should have that group and the setgid bit).""",
    )

    home_gid = Int(
        100,
        config=True,
        help="""storage='shared': the group of the users' directories; the image's user must be
        in it (docker-stacks' jovyan is in group 100, 'users').""",
    )

    shared_volume = Unicode(
        "",
        config=True,
        help="""storage='shared': the entry of `volumes` that becomes the user's shared home
        (its source is replaced by shared_home_root/USER). Defaults to home_volume.""",
    )

    @default("shared_volume")
    def _default_shared_volume(self):
        return self.home_volume

    @default("object_name")
    def _object_name_default(self):
        """The service's name: DockerSpawner's, shortened with a digest of the whole when it
        is longer than the 63 characters Swarm allows a service name (a DNS label), which a
        long user name plus a named server's name would reach."""
        name = super()._object_name_default()
        if len(name) <= SERVICE_NAME_MAX:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        return f"{name[: SERVICE_NAME_MAX - 11].rstrip('-')}-{digest}"

    pinned_node = Unicode("", help="storage='pin': the swarm node ID holding this user's volume.")
    pinned_hostname = Unicode("", help="That node's hostname, for messages.")
    task_id = Unicode("", help="The task the server was started as (a replacement is not it).")

    # -- state: the pin survives stops -------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        self.pinned_node = state.get("pinned_node", "")
        self.pinned_hostname = state.get("pinned_hostname", "")
        self.task_id = state.get("task_id", "")

    def get_state(self):
        state = super().get_state()
        if self.object_id and self.task_id:
            state["task_id"] = self.task_id
        if self.pinned_node:
            state["pinned_node"] = self.pinned_node
            state["pinned_hostname"] = self.pinned_hostname
        return state

    # -- where the user's files are ------------------------------------------------

    def home_directory(self) -> str:
        """storage='shared': this user's (or with server_storage='server', this named
        server's) directory under shared_home_root."""
        return posixpath.join(self.shared_home_root, self.escaped_name + self.storage_suffix())

    @property
    def volume_binds(self):
        binds = super().volume_binds
        if self.storage != "shared":
            return binds
        shared = self.format_volume_name(self.shared_volume, self)
        homes = {shared, shared + self.storage_suffix()}  # renamed or not by home_volume
        return {(self.home_directory() if source in homes else source): bind for source, bind in binds.items()}

    @property
    def mounts(self):
        driver = self.mount_driver_config
        mounts = []
        for source, bind in self.volume_binds.items():
            local_path = source.startswith("/")
            mounts.append(
                Mount(
                    target=bind["bind"],
                    source=source,
                    type="bind" if local_path else "volume",
                    read_only=bind["mode"] == "ro",
                    driver_config=None if local_path else driver,
                )
            )
        mounts.extend(resources.swarm_mounts(self.grant))
        return mounts

    def _ensure_home(self) -> None:
        path = self.home_directory()
        if os.path.isdir(path):
            return
        if not os.path.isdir(self.shared_home_root):
            raise RuntimeError(
                f"The shared home directory {self.shared_home_root} is missing on the hub's host: "
                "mount the shared filesystem there (and at the same path on every node)."
            )
        os.mkdir(path, 0o770)
        if os.stat(path).st_gid != self.home_gid:
            try:
                os.chown(path, -1, self.home_gid)
            except PermissionError:
                os.rmdir(path)
                raise RuntimeError(
                    f"The hub cannot give {path} the group {self.home_gid}: make {self.shared_home_root} "
                    f"belong to that group, with the setgid bit (the role does: mode 2750)."
                ) from None
        # 0770 (the hub's umask is 077); no setgid bit on it: the hub's unit may not set one
        # (RestrictSUIDSGID), and files the image's user creates get its group anyway.
        os.chmod(path, 0o770)

    # -- placement -----------------------------------------------------------------

    async def _node(self, node_id: str) -> dict | None:
        try:
            return await self.docker("inspect_node", node_id)
        except docker.errors.NotFound:
            return None

    async def _pin_constraint(self) -> list[str]:
        """storage='pin': the constraint placing this user on the node with their volume."""
        if self.storage != "pin" or not self.pinned_node:
            return []
        node = await self._node(self.pinned_node)
        if node is None:
            # An admin removed the node from the swarm (`docker node rm`): its disk is gone
            # from the swarm's point of view, so start anew elsewhere and say so.
            self.emit_progress(
                3,
                f"The node that held your files ({self.pinned_hostname}) has left the swarm: "
                "your server starts on another node with a new, empty volume.",
            )
            self.log.warning("%s: pinned node %s left the swarm; pin released", self._log_name, self.pinned_hostname)
            self.pinned_node = self.pinned_hostname = ""
            return []
        state = node.get("Status", {}).get("State", "unknown")
        availability = node.get("Spec", {}).get("Availability", "active")
        if state != _NODE_UP or availability != "active":
            raise UnavailableNode(
                f"Your files are on the node {self.pinned_hostname}, which is {state}"
                f"{'' if availability == 'active' else ' and ' + availability}: your server cannot "
                "start until it is back. Your files are kept there; ask an admin if it stays away."
            )
        return [f"node.id == {self.pinned_node}"]

    # -- the service -----------------------------------------------------------------

    async def prepare_options(self) -> None:
        """A pinned user whose node is down hears it now: a 400 on the form and the API."""
        await super().prepare_options()
        try:
            await self._pin_constraint()
        except UnavailableNode as error:
            raise as_http_error(OptionError(str(error))) from None

    _published: tuple[str, str] | None = None  # (reference, digest) of the last push

    def _content_storage(self) -> str | None:
        """Not on a swarm yet: the merge would run on the hub's engine, not on the node that
        holds the user's storage. A launched repository's files live in the server, as on Binder."""
        return None

    async def _publish_image(self, tag: str) -> str:
        """Push a repository image built here to the registry; the reference nodes pull."""
        if not (self.registry_push and self.registry_pull):
            raise RuntimeError("Repository launches on a swarm need the registry: set registry_push and registry_pull.")
        name, version = tag.rsplit(":", 1)
        pushed = f"{self.registry_push}/{name}"
        self.emit_progress(57, "Sending the built image to the swarm's registry")

        pulled = f"{self.registry_pull}/{name}"

        def push() -> str:
            login = self._push_login()
            # Tagged here under the name nodes pull too: the hub reads the image's command
            # from it (DockerSpawner.get_command) before it creates the service.
            self.client.tag(tag, pulled, version)
            self.client.tag(tag, pushed, version)
            digest = ""
            for event in self.client.push(pushed, tag=version, stream=True, decode=True, auth_config=login):
                if "error" in event:
                    raise RuntimeError(f"Pushing {tag} to the registry failed: {event['error']}")
                digest = (event.get("aux") or {}).get("Digest") or digest
            if not digest.startswith("sha256:"):
                raise RuntimeError(f"The registry did not confirm the push of {tag} with a digest.")
            return digest

        digest = await asyncio.wrap_future(schedule.pushes.submit(push))
        reference = f"{pulled}:{version}"
        # The service runs exactly what was pushed: by digest, so a tag overwritten in the
        # registry afterwards (by anyone who can reach it) changes nothing.
        self._published = (reference, digest)
        return reference

    def _push_login(self) -> dict | None:
        """The push endpoint's login (docker-py's auth_config), from registry_push_credentials."""
        if not self.registry_push_credentials:
            return None
        path = Path(self.registry_push_credentials)
        try:
            user, sep, password = path.read_text().strip().partition(":")
        except OSError as error:
            raise RuntimeError(f"Cannot read the registry's push login from {path}: {error.strerror}.") from None
        if not (user and sep and password):
            raise RuntimeError(f"{path} does not hold the registry's push login as USER:PASSWORD.")
        return {"username": user, "password": password}

    async def create_object(self):
        constraints = await self._pin_constraint()  # raises UnavailableNode (its message is shown)
        if self.storage == "shared":
            self._ensure_home()
        placement = dict(self.extra_placement_spec)
        placement["constraints"] = list(placement.get("constraints") or []) + constraints
        task = {
            # A user's task is never restarted by the swarm elsewhere: the hub would keep
            # routing to the old address. The hub notices (poll) and the user starts again.
            "restart_policy": RestartPolicy(condition="none"),
            "resources": resources.swarm_resources(self.grant, self.gpu_resource, self.extra_resources_spec),
            **self.extra_task_spec,
        }
        endpoint = {"mode": "dnsrr", "ports": {None: (self.port, "tcp", "host")}, **self.extra_endpoint_spec}
        labels = {OPTIONS_LABEL: self._options_fingerprint(), USER_LABEL: self.user.name}
        container = dict(self.extra_container_spec)
        container["labels"] = {**(container.get("labels") or {}), **labels}
        if not self.image_healthcheck:
            # On Swarm a failing check kills the task, and restart_policy none ends the server.
            container.setdefault("healthcheck", dict(NO_HEALTHCHECK))
        if self._published and self._published[0] == self.image:
            container["image"] = f"{self.image}@{self._published[1]}"
        create = dict(self.extra_create_kwargs)
        create["labels"] = {**(create.get("labels") or {}), **labels}
        with traits_set(
            self,
            extra_placement_spec=placement,
            extra_task_spec=task,
            extra_endpoint_spec=endpoint,
            extra_container_spec=container,
            extra_create_kwargs=create,
        ):
            self.emit_progress(60, f"Asking the swarm for a node to run {self.image}")
            # SwarmSpawner's, not FormDockerSpawner's: services have no host config.
            return await SwarmSpawner.create_object(self)

    async def _running_task(self) -> tuple[dict | None, dict | None]:
        task = await self.get_task()
        if task is None or not task.get("NodeID"):
            return task, None
        return task, await self._node(task["NodeID"])

    async def start_object(self):
        await super().start_object()
        task, node = await self._running_task()
        self.task_id = (task or {}).get("ID", "")
        if self.storage == "pin" and node is not None:
            self.pinned_node = node["ID"]
            self.pinned_hostname = _hostname(node, node["ID"][:12])
        if node is not None:
            self.log.info("%s runs on node %s", self._log_name, _hostname(node))

    async def get_ip_and_port(self):
        """The node the task runs on, and the port it published there."""
        task, node = await self._running_task()
        if task is None or node is None:
            raise RuntimeError(f"Service {self.service_name} has no task on a node")
        address = node.get("Status", {}).get("Addr", "")
        if address in ("", "0.0.0.0"):  # a manager may report no address of its own
            address = node.get("ManagerStatus", {}).get("Addr", "").rsplit(":", 1)[0]
        for port in task.get("Status", {}).get("PortStatus", {}).get("Ports", []):
            if port.get("TargetPort") == self.port:
                return address, port["PublishedPort"]
        raise RuntimeError(f"Service {self.service_name} published no port for {self.port}")

    async def poll(self):
        """Stopped when the task is, or when the node it ran on is no longer ready (a node
        that went down still lists its tasks as running)."""
        task, node = await self._running_task()
        if task is None:
            return 0
        if task.get("DesiredState") != "running":
            return f"task {task.get('DesiredState')}"
        if self.task_id and task.get("ID") != self.task_id:
            return "the task the server started as is gone"
        # SwarmSpawner.poll's test on the task in hand (it would fetch the task again).
        if task.get("Status", {}).get("State") not in _TASK_ALIVE:
            return pformat(task.get("Status"))
        if node is None or node.get("Status", {}).get("State") != _NODE_UP:
            hostname = _hostname(node, task.get("NodeID", "")[:12])
            self.log.warning("%s: node %s is not ready; the server is gone", self._log_name, hostname)
            return f"node {hostname} is {(node or {}).get('Status', {}).get('State', 'gone')}"
        return None
