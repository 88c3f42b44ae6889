"""formspawner.repolaunch without a hub: the helper containers' deadline and refusals, a
build's failure reaching the launch, an image that cannot take a repository. The Docker
engine is a stand-in here (its calls are what is checked: a container left running past
its deadline must be removed); the real engine and hub show the same in
tests/integration/test_course_content.py (a merge stuck in a student's folder)."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import docker.errors
import pytest

from formspawner import build, cache, contentsync, helpers, repolaunch
from formspawner.errors import BuildError
from formspawner.outbound import Outbound
from formspawner.repo import RepoPolicy


class Engine:
    """A Docker engine whose helper container runs `seconds` (None: forever) and prints `lines`."""

    def __init__(self, lines=(), seconds=None, code=0, fail_create=False):
        self.lines, self.seconds, self.code, self.fail_create = list(lines), seconds, code, fail_create
        self.started_at = None
        self.removed = []
        self.created = []

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, image, **kwargs):
        if self.fail_create:
            raise docker.errors.APIError("no such image: " + image)
        self.created.append((image, kwargs))
        return {"Id": "helper1"}

    def start(self, container):
        self.started_at = time.monotonic()

    def inspect_container(self, container):
        running = self.seconds is None or time.monotonic() - self.started_at < self.seconds
        return {"State": {"Running": running, "ExitCode": 0 if running else self.code}}

    def logs(self, container, stdout, stderr, tail):
        return "\n".join(self.lines).encode()

    def remove_container(self, container, force):
        self.removed.append((container["Id"], force))


def context(engine, helper_timeout=5, events=None):
    return repolaunch.LaunchContext(
        user="ada", log_name="ada", log=logging.getLogger("test"), client=engine,
        emit_progress=lambda percent, message: (events if events is not None else []).append(message),
        docker=None, pull_image=None, publish_image=None, work_dir="/nonexistent", cache_file="/nonexistent",
        helper_timeout=helper_timeout, build_network="", outbound=Outbound(),
        host_config={"cap_drop": ["ALL"], "pids_limit": 99, "security_opt": ["no-new-privileges"]},
    )  # fmt: skip


def helper(ctx, what="Synchronising lab into your storage"):
    return asyncio.run(repolaunch.run_helper(ctx, what, "img", "1000", ["script.py"], {}, 64))


def test_a_helper_past_its_deadline_is_removed_and_the_user_told_it_did_not_finish():
    engine = Engine(seconds=None)
    started = time.monotonic()
    with pytest.raises(BuildError) as stopped:
        helper(context(engine, helper_timeout=1))
    assert time.monotonic() - started < 5
    assert str(stopped.value) == (
        "Synchronising lab into your storage did not finish within 1 s, and was stopped. "
        "Start your server again to finish it; if this happens again, tell the hub's admins."
    )
    assert engine.removed == [("helper1", True)]


def test_a_helper_is_confined_as_servers_are_and_bounded_more():
    engine = Engine(lines=[contentsync.RESULT + '{"folder": "lab"}'], seconds=0)
    assert helper(context(engine)) == {"folder": "lab"}
    image, kwargs = engine.created[0]
    config = kwargs["host_config"]
    assert (config["cap_drop"], config["security_opt"]) == (["ALL"], ["no-new-privileges"])
    # Its own limits, not the servers' (pids_limit 99 there).
    assert (config["pids_limit"], config["nano_cpus"], config["network_mode"]) == (
        helpers.PIDS_LIMIT, helpers.NANO_CPUS, "none"
    )
    assert kwargs["network_disabled"] is True and kwargs["user"] == "1000"


def test_an_engine_error_and_a_failed_result_are_refusals_naming_what_failed():
    with pytest.raises(BuildError, match=r"^Synchronising lab into your storage failed: .*no such image: img"):
        helper(context(Engine(fail_create=True)))
    failed = Engine(lines=["git: bad", contentsync.RESULT + '{"error": "the merge failed (x)"}'], seconds=0, code=1)
    with pytest.raises(BuildError, match=r"^Synchronising lab into your storage failed: the merge failed \(x\)$"):
        helper(context(failed))
    silent = Engine(lines=["Traceback", "boom"], seconds=0, code=2)
    with pytest.raises(BuildError, match=r"failed: Traceback\nboom$"):
        helper(context(silent))


def test_a_builds_failure_reaches_every_launch_following_it(monkeypatch):
    """A launch following a build (its own or another user's) fails with the build's message."""
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})

    async def scenario():
        job = build.BuildJob("formspawner-repo/lab:1", key="k", owner="bob", what="lab at 1")

        async def fails():
            raise BuildError("The repository's requirements.txt did not install: no such package")

        job.task = asyncio.ensure_future(fails())
        monkeypatch.setitem(cache.builds, "formspawner-repo/lab:1", job)
        launch = repolaunch.RepoLaunch(context(Engine()), request, "c" * 40, None, policy)
        await launch._build("k", "formspawner-repo/lab:1", None, "lab")

    with pytest.raises(BuildError, match="^The repository's requirements.txt did not install: no such package$"):
        asyncio.run(scenario())


def test_an_image_that_cannot_take_a_repository_is_refused_naming_why():
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})

    async def pull(image):
        pass

    async def inspect(method, reference):
        # A user name no Dockerfile line could hold.
        return {"Id": "sha256:x", "Config": {"User": "1000; RUN rm -rf /", "Env": [], "WorkingDir": "/"}}

    ctx = context(Engine())
    ctx.pull_image, ctx.docker = pull, inspect
    launch = repolaunch.RepoLaunch(ctx, request, "c" * 40, None, policy)
    with pytest.raises(BuildError, match=r"^The image minimal cannot take a repository: .+\.$"):
        asyncio.run(launch.prepare("minimal", None, {}))


def test_a_user_with_a_build_in_flight_is_refused_another(monkeypatch):
    monkeypatch.setitem(cache.builds, "t", SimpleNamespace(owner="ada", stopping=False, what="lab at 1"))
    with pytest.raises(BuildError, match=r"^You already have a repository build in progress \(lab at 1\)"):
        repolaunch.start_build(context(Engine()), None, "c", None, "k", "t2", None, None, "lab")


def test_a_launch_following_a_build_that_was_stopped_is_told_so(monkeypatch):
    """Another user's launch stopped the build this one followed (the last to leave): this
    launch fails with the build's own reason, not as if it had been stopped itself."""
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})

    async def scenario():
        job = build.BuildJob("formspawner-repo/lab:2", key="k", owner="bob", what="lab at 2")
        job.task = asyncio.ensure_future(asyncio.sleep(60))
        monkeypatch.setitem(cache.builds, "formspawner-repo/lab:2", job)
        launch = repolaunch.RepoLaunch(context(Engine()), request, "c" * 40, None, policy)
        following = asyncio.ensure_future(launch._build("k", "formspawner-repo/lab:2", None, "lab"))
        await asyncio.sleep(0.05)
        job.task.cancel()
        await following

    with pytest.raises(BuildError) as stopped:
        asyncio.run(scenario())
    assert str(stopped.value) == build.STOPPED
