"""The repository image cache: builds in flight, when each build was last launched, and
eviction by count, size and free disk (never an image in use or about to start).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

from .build import BuildJob
from .errors import BuildError
from .labels import REPO_LABEL
from .repo import RepoPolicy

# Shared by every spawner in the hub: builds in flight (two users launching one commit
# follow one build), and images being launched, which eviction must not remove between
# the lookup and the container's creation.
builds: dict[str, BuildJob] = {}
# How many launches of each tag are in progress: a count, not a set, so that the first of
# two launches of one image to finish does not leave the other's image unprotected.
launching: Counter[str] = Counter()
_records: dict[str, LaunchRecord] = {}


def launch_started(tag: str) -> None:
    launching[tag] += 1


def launch_ended(tag: str | None) -> None:
    if tag is None:
        return
    launching[tag] -= 1
    if launching[tag] <= 0:
        del launching[tag]


def in_launch() -> set[str]:
    """The tags eviction must keep: those with a launch in progress (a tag leaves the
    count when its last launch ends)."""
    return set(launching)


def is_build_of(info: dict | None, key: str) -> bool:
    """Whether an image found under a build's tag is that build (tags carry 12 of the
    key's 64 digits; the image's label carries all of them)."""
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(f"{REPO_LABEL}.key") == key


def launch_record(path: str) -> LaunchRecord:
    """The one LaunchRecord of a file, shared by every spawner (its lock serializes writes)."""
    if path not in _records:
        _records[path] = LaunchRecord(path)
    return _records[path]


class LaunchRecord:
    """When each built image was last launched, so the cache evicts the least recently used.

    Kept in a small JSON file beside the hub's database; if it is lost, images fall back
    to their build time.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def touch(self, tag: str) -> None:
        with self._lock:
            data = self._read()
            data[tag] = time.time()
            self._write(data)

    def forget(self, tags: set[str]) -> None:
        with self._lock:
            data = {k: v for k, v in self._read().items() if k not in tags}
            self._write(data)

    def last_launched(self) -> dict[str, float]:
        with self._lock:
            return self._read()

    def _write(self, data: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)


def docker_root(client) -> str:
    """Where the engine keeps its data (asked once; the answer does not change)."""
    return client.info().get("DockerRootDir") or "/var/lib/docker"


def disk_usage(root: str) -> tuple[int, int] | None:
    """(free, size) in bytes of the file system at `root`, or None when it is not on this machine."""
    try:
        stat = os.statvfs(root)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def free_disk(root: str) -> int | None:
    """Bytes free where the engine keeps images, or None when that is not on this machine."""
    usage = disk_usage(root)
    return usage[0] if usage else None


def disk_roots(client, copies=None) -> list[str]:
    """Where min_free_disk must hold: the engine's data, and the hub's copies (content.Copies)."""
    return [docker_root(client)] + ([copies.root] if copies is not None else [])


def least_free(roots: list[str]) -> int | None:
    """The fewest bytes free among the file systems at `roots` (those seen from here)."""
    free = [value for value in map(free_disk, roots) if value is not None]
    return min(free) if free else None


def built_sizes(client, images: list[dict]) -> dict[str, int]:
    """Each built image's own bytes: its size less its base image's (the build's label
    names the base). From the engine's image list, not `docker system df`, which also
    walks every volume (every user's files) and took tens of seconds on a busy host."""
    everything = {image["Id"]: image.get("Size", 0) for image in client.images()}

    def base_size(image) -> int:
        return everything.get((image.get("Labels") or {}).get(f"{REPO_LABEL}.base"), 0)

    return {image["Id"]: max(0, image.get("Size", 0) - base_size(image)) for image in images}


def own_sizes(df_images: list[dict] | None) -> dict[str, int]:
    """Each built image's own bytes, from `docker system df`'s images: its size less the
    layers it shares (its base image's)."""
    return {
        image["Id"]: max(0, image.get("Size", 0) - max(0, image.get("SharedSize", 0)))
        for image in df_images or []
        if (image.get("Labels") or {}).get(REPO_LABEL) == "1"
    }


def evict(client, policy: RepoPolicy, record: LaunchRecord, protected: set[str], log, copies=None) -> list[str]:
    """Remove the least recently launched builds, never one in use or about to start, until
    at most cache_max_images remain, they take at most cache_max_size, and at least
    min_free_disk is free where the engine keeps images (when that can be seen from here).
    With `copies` (content.Copies), the hub's copies of launched repositories count in
    cache_max_size too, go by the same order, and min_free_disk holds where they are."""
    images = client.images(filters={"label": f"{REPO_LABEL}=1"})
    sizes = built_sizes(client, images)
    copy_list = copies.listing() if copies is not None else []
    count = len(images)
    total = sum(sizes.get(image["Id"], 0) for image in images) + sum(size for _, size, _ in copy_list)
    roots = disk_roots(client, copies)
    free = least_free(roots)

    def over() -> bool:
        short = free is not None and free < policy.min_free_disk
        return count > policy.cache_max_images or total > policy.cache_max_size or short

    if not over():
        return []
    launched = record.last_launched()
    in_use = {c["ImageID"] for c in client.containers(all=True)}

    def last_use(image) -> float:
        return max([launched.get(t, 0.0) for t in image.get("RepoTags") or []] + [float(image.get("Created", 0))])

    candidates = [(last_use(image), "image", image) for image in images]
    candidates += [(last, "copy", (size, path)) for last, size, path in copy_list]
    removed = []
    for _, kind, item in sorted(candidates, key=lambda candidate: candidate[0]):
        if not over():
            break
        if kind == "copy":
            size, path = item
            if copies.remove(path):
                log.info("Removed the hub's copy %s (%d bytes)", os.path.basename(path), size)
                total -= size
                free = least_free(roots)
            continue
        image = item
        tags = set(image.get("RepoTags") or [])
        if image["Id"] in in_use or tags & protected:
            continue
        try:
            # Tag by tag: on a swarm manager a build also carries its registry names, and
            # removing by ID would refuse an image with several names. The last name goes
            # with the image; a container using it still stops the removal.
            for name in sorted(tags) or [image["Id"]]:
                client.remove_image(name, force=False)
        except Exception as error:  # e.g. a container created meanwhile
            log.warning("Not removing repository image %s: %s", ", ".join(tags), error)
            continue
        removed.extend(tags)
        count -= 1
        total -= sizes.get(image["Id"], 0)
        free = least_free(roots)
    record.forget(set(removed))
    return removed


def make_room(client, policy: RepoPolicy, record: LaunchRecord, protected: set[str], log, copies=None) -> None:
    """Before a build or a launch's fetch: evict old builds (and copies) if the disk is short
    where the engine keeps images or where the copies are; refuse if still short."""
    roots = disk_roots(client, copies)
    free = least_free(roots)
    if free is None or free >= policy.min_free_disk:
        return
    removed = evict(client, policy, record, protected, log, copies)
    if removed:
        log.info("Removed %d repository images to keep %d bytes free", len(removed), policy.min_free_disk)
    free = least_free(roots)
    if free is not None and free < policy.min_free_disk:
        log.warning("Refusing a build: %d bytes free, the policy keeps %d free", free, policy.min_free_disk)
        raise BuildError(
            f"The server is short of disk space ({free / 2**30:.1f} GB free; it keeps "
            f"{policy.min_free_disk / 2**30:.1f} GB free), so repositories cannot be built now. "
            "Servers without a repository still start. Please tell the hub's admins."
        )
