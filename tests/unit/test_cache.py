"""The repository image cache's limits: count, size and free disk (formspawner.cache.evict).

The engine is a stand-in here (a few dicts shaped like docker-py's low-level answers), and
so is the free space, which grows by an image's own size when it is removed. The real
engine and disk are exercised by tests/integration/test_repo_launches.py.
"""

from __future__ import annotations

import logging

import pytest

from formspawner import cache
from formspawner.cache import LaunchRecord, evict, make_room
from formspawner.errors import BuildError
from formspawner.labels import REPO_LABEL
from formspawner.repo import RepoPolicy

GB = 2**30
LOG = logging.getLogger("test")


class Engine:
    def __init__(self, images, in_use=(), free=100 * GB):
        # images: (tag, own size, created); the base image (shared layers) is 1 GB.
        self.images_ = {f"sha256:{tag}": ([tag], size, created) for tag, size, created in images}
        self.in_use = {f"sha256:{tag}" for tag in in_use}
        self.free = free
        self.removed = []

    def images(self, filters=None):
        """As the engine lists them: each with its size, whole (its base's layers too)."""
        built = [
            {"Id": i, "RepoTags": list(t), "Created": c, "Size": GB + size,
             "Labels": {REPO_LABEL: "1", f"{REPO_LABEL}.base": "sha256:base"}}
            for i, (t, size, c) in self.images_.items()
        ]  # fmt: skip
        if filters is None:
            return [{"Id": "sha256:base", "RepoTags": ["base:1"], "Created": 0, "Size": GB, "Labels": {}}, *built]
        assert filters == {"label": f"{REPO_LABEL}=1"}
        return built

    def df(self):
        raise AssertionError("docker system df walks every volume: the cache must not ask it")

    def containers(self, all):
        return [{"ImageID": i} for i in self.in_use]

    def info(self):
        return {"DockerRootDir": "/stand-in"}

    def remove_image(self, name, force):
        """As Docker does: a name goes; the image goes with its last name (or by ID)."""
        image_id = next(i for i, (tags, _, _) in self.images_.items() if name in (i, *tags))
        tags, size, _ = self.images_[image_id]
        if name in tags and len(tags) > 1:
            tags.remove(name)
            return
        if name == image_id and len(tags) > 1 and not force:
            raise RuntimeError("conflict: image is referenced in multiple repositories")
        self.images_.pop(image_id)
        self.free += size
        self.removed.append(image_id)


@pytest.fixture
def record(tmp_path):
    return LaunchRecord(tmp_path / "launches.json")


def policy(**limits):
    return RepoPolicy.from_config(limits)


def use(engine, monkeypatch):
    monkeypatch.setattr(cache, "free_disk", lambda root: engine.free)
    return engine


def test_within_every_limit_nothing_is_removed(record, monkeypatch):
    engine = use(Engine([("a", GB, 1), ("b", GB, 2)]), monkeypatch)
    assert evict(engine, policy(cache_max_images=2, cache_max_size="2g"), record, set(), LOG) == []


def test_over_the_size_budget_the_least_recently_launched_go_first(record, monkeypatch):
    engine = use(Engine([("old", 3 * GB, 1), ("mid", 3 * GB, 2), ("new", 3 * GB, 3)]), monkeypatch)
    record.touch("mid")  # launched just now: more recent than its creation
    # Own layers only count (the shared 1 GB base is not the cache's): 9 GB > 5 GB.
    removed = evict(engine, policy(cache_max_size="5g"), record, set(), LOG)
    assert removed == ["old", "new"]
    assert list(engine.images_) == ["sha256:mid"]


def test_images_in_use_or_about_to_start_stay_even_over_the_budget(record, monkeypatch):
    engine = use(Engine([("a", 4 * GB, 1), ("b", 4 * GB, 2), ("c", 4 * GB, 3)], in_use=["a"]), monkeypatch)
    removed = evict(engine, policy(cache_max_size="1g"), record, {"b"}, LOG)
    assert removed == ["c"]


def test_short_of_free_disk_old_builds_go_until_there_is_room(record, monkeypatch):
    engine = use(Engine([("a", 2 * GB, 1), ("b", 2 * GB, 2), ("c", 2 * GB, 3)], free=7 * GB), monkeypatch)
    make_room(engine, policy(min_free_disk="10g"), record, set(), LOG)
    assert engine.removed == ["sha256:a", "sha256:b"] and engine.free == 11 * GB


def test_a_build_is_refused_when_no_room_can_be_made(record, monkeypatch):
    engine = use(Engine([("a", GB, 1)], in_use=["a"], free=2 * GB), monkeypatch)
    with pytest.raises(BuildError, match=r"short of disk space \(2\.0 GB free; it keeps 10\.0 GB free\)"):
        make_room(engine, policy(), record, set(), LOG)
    assert engine.removed == []


def test_enough_free_disk_removes_nothing_before_a_build(record, monkeypatch):
    engine = use(Engine([("a", GB, 1)], free=50 * GB), monkeypatch)
    make_room(engine, policy(), record, set(), LOG)
    assert engine.removed == []


def test_free_disk_reads_the_engines_data_directory(tmp_path):
    class Info:
        def info(self):
            return {"DockerRootDir": str(tmp_path)}

    assert cache.docker_root(Info()) == str(tmp_path)
    assert cache.free_disk(cache.docker_root(Info())) > 0

    class Elsewhere:
        def info(self):
            return {"DockerRootDir": str(tmp_path / "not-on-this-machine")}

    assert cache.free_disk(cache.docker_root(Elsewhere())) is None


def test_a_build_with_its_registry_names_too_is_evicted_whole(record):
    """On a swarm manager a build is also tagged with its registry names (FormSwarmSpawner)."""
    engine = Engine([("old", GB, 1), ("new", GB, 2)])
    engine.images_["sha256:old"][0].extend(["10.0.0.1:5000/old", "127.0.0.1:5001/old"])
    removed = evict(engine, RepoPolicy.from_config({"cache_max_images": 1}), record, set(), logging.getLogger())
    assert engine.removed == ["sha256:old"]
    assert set(removed) == {"old", "10.0.0.1:5000/old", "127.0.0.1:5001/old"}


def test_an_image_two_launches_wait_for_stays_protected_until_both_end():
    cache.launch_started("repo:a")
    cache.launch_started("repo:a")
    cache.launch_started("repo:b")
    try:
        cache.launch_ended("repo:a")
        assert cache.in_launch() == {"repo:a", "repo:b"}
        cache.launch_ended("repo:a")
        cache.launch_ended(None)  # a start without a repository
        assert cache.in_launch() == {"repo:b"}
        cache.launch_ended("repo:a")  # ended twice: never negative
        assert cache.in_launch() == {"repo:b"}
    finally:
        cache.launching.clear()


def test_an_image_found_under_a_builds_tag_is_used_only_when_its_key_is_the_builds():
    key = "k" * 64
    assert cache.is_build_of({"Config": {"Labels": {f"{REPO_LABEL}.key": key}}}, key)
    assert not cache.is_build_of({"Config": {"Labels": {f"{REPO_LABEL}.key": "k" * 12 + "x" * 52}}}, key)
    assert not cache.is_build_of({"Config": {"Labels": None}}, key)
    assert not cache.is_build_of(None, key)


# -- the hub's copies of launched repositories (content.Copies) share the budget --------------


def copies_on_disk(tmp_path, ages_and_sizes: dict[str, tuple[float, int]]):
    """Copies under tmp_path/content, each `size` bytes, last launched `age` seconds ago."""
    import os
    import time

    from formspawner.content import Copies

    root = tmp_path / "content"
    for name, (age, size) in ages_and_sizes.items():
        copy = root / f"{name}.git"
        (copy / "objects").mkdir(parents=True)
        (copy / "objects" / "pack").write_bytes(os.urandom(size))
        os.utime(copy, (time.time() - age, time.time() - age))
    return Copies(str(root), busy_seconds=3600)


def test_the_hubs_copies_count_in_the_size_budget_and_the_oldest_go_first(record, monkeypatch, tmp_path):
    """Copies were never removed: now they count in cache_max_size with the images, the
    least recently launched going first, and one launched within busy_seconds (perhaps in
    a launch now) stays whatever the budget."""
    engine = use(Engine([("img", 0, time_ago(10_000))]), monkeypatch)
    copies = copies_on_disk(tmp_path, {"old": (86_400, 600_000), "mid": (7_200, 600_000), "busy": (60, 600_000)})
    evict(engine, policy(cache_max_size=1_500_000), record, set(), LOG, copies)
    assert sorted(p.name for p in (tmp_path / "content").iterdir()) == ["busy.git", "mid.git"]
    evict(engine, policy(cache_max_size=1), record, set(), LOG, copies)
    assert sorted(p.name for p in (tmp_path / "content").iterdir()) == ["busy.git"]
    assert engine.removed == ["sha256:img"]


def test_a_launch_is_refused_when_the_copies_disk_stays_short(record, monkeypatch, tmp_path):
    """min_free_disk holds where the hub keeps its copies too (the hub's own disk, which
    may not be Docker's): old copies go first; a launch that still finds the disk short is
    refused with the usual message, so the hub's database and logs keep their room."""
    engine = Engine([])
    copies = copies_on_disk(tmp_path, {"old": (86_400, 4096), "busy": (60, 4096)})
    monkeypatch.setattr(cache, "free_disk", lambda root: 100 * GB if root == "/stand-in" else 2 * GB)
    with pytest.raises(BuildError, match=r"short of disk space \(2\.0 GB free; it keeps 10\.0 GB free\)"):
        make_room(engine, policy(), record, set(), LOG, copies)
    assert sorted(p.name for p in (tmp_path / "content").iterdir()) == ["busy.git"]


def time_ago(seconds: float) -> float:
    import time

    return time.time() - seconds
