"""The curated images users choose from. Users send an entry's `name`, never an image reference."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import OptionError, PolicyError, describe, refuse_unknown_keys

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
ENTRY_KEYS = {"name", "display_name", "image", "description", "default", "groups", "resources"}
RESOURCE_KEYS = {
    "mem_limit", "mem_guarantee", "cpu_limit", "pids_limit", "shm_size", "gpus", "storage_quota", "layer_quota",
}  # fmt: skip
SIZE_KEYS = ("mem_limit", "mem_guarantee", "shm_size", "storage_quota", "layer_quota")
GPU_KEYS = {"count", "device_ids", "capabilities"}
# JupyterHub's units for sizes (its ByteSpecification): binary multiples.
UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SIZE_RE = re.compile(r"([0-9]+(?:[.][0-9]+)?)([KMGT])")
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,99}")
CAPABILITY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _size(value: object, where: str) -> int:
    """Bytes from an int or a size such as 512M or 8G (as jupyterhub_user_mem_limit)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if not match or float(match[1]) <= 0:
        raise PolicyError(f"{where} must be a size such as 512M or 8G, not {value!r}")
    return int(float(match[1]) * UNITS[match[2]])


def _human(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:g} {unit}B"
    return f"{size} bytes"


@dataclass(frozen=True)
class Gpus:
    """GPUs through Docker's device requests (what `docker run --gpus` sends): `count`
    GPUs (-1: all) or the listed `device_ids`, with `capabilities` (default gpu)."""

    count: int = 0
    device_ids: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ("gpu",)

    @classmethod
    def from_config(cls, value: object, where: str) -> Gpus:
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"count": value}
        if value == "all":
            value = {"count": "all"}
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where} must be a number of GPUs, 'all', or a mapping with count or device_ids")
        refuse_unknown_keys(value, GPU_KEYS, where)
        count = value.get("count", 0)
        count = -1 if count == "all" else count
        ids = value.get("device_ids") or []
        if not isinstance(count, int) or isinstance(count, bool) or count < -1:
            raise PolicyError(f"{where}.count must be a number of GPUs or 'all', not {count!r}")
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) and DEVICE_ID_RE.fullmatch(i) for i in ids):
            raise PolicyError(f"{where}.device_ids must be a list of GPU indexes or UUIDs as strings ('0', 'GPU-...')")
        if bool(count) == bool(ids):
            raise PolicyError(f"{where}: give either count or device_ids (one of them, not both)")
        capabilities = value.get("capabilities", ["gpu"])
        if (
            not isinstance(capabilities, (list, tuple))
            or not capabilities
            or not all(isinstance(c, str) and CAPABILITY_RE.fullmatch(c) for c in capabilities)
        ):
            raise PolicyError(f"{where}.capabilities must be a list of driver capabilities such as [gpu, compute]")
        return cls(count, tuple(ids), tuple(capabilities))

    def device_request(self) -> dict:
        """Docker's DeviceRequest, as the engine's API names its fields."""
        request = {"Driver": "", "Capabilities": [list(self.capabilities)]}
        if self.device_ids:
            request["DeviceIDs"] = list(self.device_ids)
        else:
            request["Count"] = self.count
        return request

    def summary(self) -> str:
        if self.device_ids:
            return f"GPU {', '.join(self.device_ids)}"
        if self.count == -1:
            return "all GPUs"
        return f"{self.count} GPU" + ("s" if self.count > 1 else "")


@dataclass(frozen=True)
class Resources:
    """What a server of this choice gets; None: the hub's setting for every server."""

    mem_limit: int | None = None
    mem_guarantee: int | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None
    shm_size: int | None = None
    gpus: Gpus | None = None
    # The user's storage (the volume) and the container's writable layer (formspawner.quotad).
    storage_quota: int | None = None
    layer_quota: int | None = None

    @classmethod
    def from_config(cls, value: object, where: str) -> Resources:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where} must be a mapping such as {{mem_limit: 8G, cpu_limit: 4}}")
        refuse_unknown_keys(value, RESOURCE_KEYS, where)
        sizes = {key: _size(value[key], f"{where}.{key}") for key in SIZE_KEYS if value.get(key) is not None}
        if "mem_guarantee" in sizes and sizes["mem_guarantee"] > sizes.get("mem_limit", sizes["mem_guarantee"]):
            raise PolicyError(f"{where}.mem_guarantee is more than its mem_limit")
        cpu = value.get("cpu_limit")
        if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 < cpu <= 1024):
            raise PolicyError(f"{where}.cpu_limit must be a number of CPUs such as 0.5 or 4, not {cpu!r}")
        pids = value.get("pids_limit")
        if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int) or pids < 16):
            raise PolicyError(f"{where}.pids_limit must be a whole number of at least 16, not {pids!r}")
        gpus = value.get("gpus")
        return cls(
            sizes.get("mem_limit"),
            sizes.get("mem_guarantee"),
            float(cpu) if cpu is not None else None,
            pids,
            sizes.get("shm_size"),
            Gpus.from_config(gpus, f"{where}.gpus") if gpus is not None else None,
            sizes.get("storage_quota"),
            sizes.get("layer_quota"),
        )

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__dataclass_fields__)

    def summary(self) -> str:
        """For the form: "8 GB memory (4 GB guaranteed), 4 CPUs, 1 GPU"."""
        parts = []
        if self.mem_limit is not None:
            guaranteed = f" ({_human(self.mem_guarantee)} guaranteed)" if self.mem_guarantee else ""
            parts.append(f"{_human(self.mem_limit)} memory{guaranteed}")
        elif self.mem_guarantee is not None:
            parts.append(f"{_human(self.mem_guarantee)} memory guaranteed")
        if self.cpu_limit is not None:
            parts.append(f"{self.cpu_limit:g} CPU" + ("" if self.cpu_limit == 1 else "s"))
        if self.gpus is not None:
            parts.append(self.gpus.summary())
        if self.shm_size is not None:
            parts.append(f"{_human(self.shm_size)} shared memory")
        if self.pids_limit is not None:
            parts.append(f"{self.pids_limit} processes")
        if self.storage_quota is not None:
            parts.append(f"{_human(self.storage_quota)} storage")
        if self.layer_quota is not None:
            parts.append(f"{_human(self.layer_quota)} outside the storage")
        return ", ".join(parts)


@dataclass(frozen=True)
class ImageChoice:
    name: str
    image: str
    display_name: str
    description: str = ""
    groups: tuple[str, ...] = ()
    resources: Resources = Resources()

    def visible_to(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))


@dataclass(frozen=True)
class ImageCatalog:
    """The `images` trait, checked. An empty catalog offers no choice at all."""

    choices: tuple[ImageChoice, ...] = ()
    default_name: str | None = None

    @classmethod
    def from_config(cls, entries: Sequence | None, setting: str = "images") -> ImageCatalog:
        if entries is None:
            return cls()
        if not isinstance(entries, (list, tuple)):
            raise PolicyError(f"{setting} must be a list of image entries")
        choices, defaults = [], []
        for index, entry in enumerate(entries):
            where = f"{setting}[{index}]"
            if not isinstance(entry, Mapping):
                raise PolicyError(f"{where} must be a mapping with at least 'name' and 'image'")
            refuse_unknown_keys(entry, ENTRY_KEYS, where)
            name = entry.get("name")
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                raise PolicyError(
                    f"{where}.name must be a short slug (lower-case letters, digits, '.', '_', '-'), not {name!r}"
                )
            where = f"{setting}[{index}] ({name})"
            image = entry.get("image")
            if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
                raise PolicyError(
                    f"{where}.image must be an image reference such as quay.io/jupyter/minimal-notebook:TAG"
                )
            display_name = entry.get("display_name", name)
            description = entry.get("description", "")
            for key, value in (("display_name", display_name), ("description", description)):
                if not isinstance(value, str):
                    raise PolicyError(f"{where}.{key} must be a string")
            groups = entry.get("groups") or []
            if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) and g for g in groups):
                raise PolicyError(f"{where}.groups must be a list of JupyterHub group names")
            is_default = entry.get("default", False)
            if not isinstance(is_default, bool):
                raise PolicyError(f"{where}.default must be true or false")
            if name in {c.name for c in choices}:
                raise PolicyError(f"{setting}: the name {name!r} is used by more than one entry")
            resources = Resources.from_config(entry.get("resources"), f"{where}.resources")
            choice = ImageChoice(name, image, display_name, description, tuple(groups), resources)
            choices.append(choice)
            if is_default:
                defaults.append(choice)
        if len(defaults) > 1:
            raise PolicyError(
                f"{setting}: more than one entry is marked default ({', '.join(c.name for c in defaults)})"
            )
        if defaults:
            default = defaults[0]
            if default.groups:
                raise PolicyError(
                    f"{setting}: the default image {default.name!r} is limited to groups; "
                    "the default must be available to every user"
                )
        else:
            default = next((c for c in choices if not c.groups), None)
            if choices and default is None:
                raise PolicyError(
                    f"{setting}: no default image: every entry is limited to groups, so some users "
                    "would have none. Add an entry without groups or mark one default."
                )
        return cls(tuple(choices), default.name if default else None)

    def __bool__(self) -> bool:
        return bool(self.choices)

    def check_fits(
        self, memory: int | None, cpus: float | None, mem_limit: object = None, setting: str = "images"
    ) -> None:
        """Refuse a choice this host could never give (the role's preflight, with the host's
        memory in bytes and its CPUs): Docker refuses a container with more CPUs than the
        host has, and a memory guarantee or limit beyond its memory can never be met. A
        guarantee above the limit every server gets (`mem_limit`, when the choice sets
        none) is refused too: Docker would refuse every start."""
        for choice in self.choices:
            r = choice.resources
            if r.mem_guarantee is not None and r.mem_limit is None and mem_limit:
                limit = _size(mem_limit, "mem_limit")
                if r.mem_guarantee > limit:
                    raise PolicyError(
                        f"{setting}: {choice.name!r} asks for mem_guarantee {_human(r.mem_guarantee)}, more "
                        f"than the mem_limit every server gets ({_human(limit)}): give it a mem_limit too"
                    )
            if cpus and r.cpu_limit is not None and r.cpu_limit > cpus:
                raise PolicyError(
                    f"{setting}: {choice.name!r} asks for cpu_limit {r.cpu_limit:g} but this host has "
                    f"{cpus:g} CPUs (Docker refuses to start a server with more)"
                )
            for key in ("mem_guarantee", "mem_limit"):
                wanted = getattr(r, key)
                if memory and wanted is not None and wanted > memory:
                    raise PolicyError(
                        f"{setting}: {choice.name!r} asks for {key} {_human(wanted)} but this host has "
                        f"{_human(memory)} of memory"
                    )

    def check_total(self, memory: int | None, servers: int, setting: str = "images") -> None:
        """Refuse guarantees the host cannot keep all at once: `servers` (the hub's
        active_server_limit) servers of the choice guaranteeing the most memory. Without
        a limit on servers there is no total to check (0: unlimited)."""
        guaranteed = [c for c in self.choices if c.resources.mem_guarantee]
        if not (memory and servers and guaranteed):
            return
        most = max(guaranteed, key=lambda c: c.resources.mem_guarantee)
        total = servers * most.resources.mem_guarantee
        if total > memory:
            raise PolicyError(
                f"{setting}: {servers} servers at once (active_server_limit) of {most.name!r}, which "
                f"guarantees {_human(most.resources.mem_guarantee)} each, need {_human(total)} but this "
                f"host has {_human(memory)} of memory: lower the limit or the guarantee"
            )

    def visible_to(self, groups: Iterable[str]) -> list[ImageChoice]:
        groups = list(groups)
        return [c for c in self.choices if c.visible_to(groups)]

    @property
    def default(self) -> ImageChoice | None:
        return next((c for c in self.choices if c.name == self.default_name), None)

    def choose(self, requested: object, groups: Iterable[str]) -> ImageChoice | None:
        """The entry the user asked for (None: the default), if this user may have it."""
        if not self.choices:
            if requested is None:
                return None
            raise OptionError("This hub does not offer a choice of image.")
        if requested is None:
            return self.default
        if not isinstance(requested, str):
            raise OptionError(f"'image' must be the name of an image, not {type(requested).__name__}.")
        visible = self.visible_to(groups)
        for choice in visible:
            if choice.name == requested:
                return choice
        # The same answer for an unknown name and a group-limited one: the message
        # does not tell a user which images exist beyond their own.
        names = ", ".join(c.name for c in visible)
        raise OptionError(f"Unknown image {describe(requested)}. Choose one of: {names}.")
