"""A repository launch, as on Binder: resolve (done before, in prepare_options), build or
reuse the environment's image, record the files in the hub's copy, merge them into the
user's storage; and the short helper containers a launch runs.

The spawner drives a `RepoLaunch` through a narrow interface (`LaunchContext`: progress,
Docker calls, pulls, publishing an image, the settings a launch needs) and reads back a
`Plan` (what the server runs and where it opens). Nothing here reaches into the spawner.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import posixpath
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import docker.errors

from . import build, cache, content, contentsync, helpers, resources, schedule
from .labels import USER_LABEL
from .outbound import Outbound
from .repo import BaseImage, RepoPolicy, RepoRequest, cache_key, image_tag

# Seconds the image probe may take, and a cache eviction may wait for a thread.
PROBE_SECONDS = 60
CACHE_SECONDS = 120
# The helpers' Python, isolated (-I): no PYTHON* variable, no user site-packages. Its home
# may be the student's volume (whole-home storage), whose ~/.local could otherwise hold a
# usercustomize.py or .pth file that Python runs at start, as root in the owner helper.
HELPER_PYTHON = ["python3", "-I"]
# What the short containers (the merge, the whole-home move) take from extra_host_config.
HELPER_CONFINEMENT = ("cap_drop", "cap_add", "security_opt")
_STEP_RE = re.compile(r"Step (\d+)/(\d+)")
# Seconds between two build-log lines shown as progress on the spawn page (steps always).
PROGRESS_INTERVAL = 0.1


@dataclass
class LaunchContext:
    """What a launch needs from the spawner that drives it."""

    user: str  # whose launch (helpers' and builds' owner)
    log_name: str  # how the hub's log names the server
    log: logging.Logger
    client: Any  # docker.APIClient
    emit_progress: Callable[[int, str], None]
    docker: Callable[..., Awaitable[Any]]  # a Docker API call on the spawner's executor
    pull_image: Callable[[str], Awaitable[None]]
    publish_image: Callable[[str], Awaitable[str]]  # a built image's reference for the server
    work_dir: str  # repo_work_dir
    cache_file: str  # repo_cache_file
    helper_timeout: int
    build_network: str
    outbound: Outbound
    host_config: dict = field(default_factory=dict)  # the servers' extra_host_config
    run_as: str = ""  # "uid:gid" the user's server runs as; "" = the image's user

    @property
    def confinement(self) -> dict:
        """Helpers are confined as servers are (the role: every capability dropped, no
        privilege gain through setuid programs), and more: no network, their own limits;
        a helper run as the user's own id gets the server's groups too."""
        confined = {key: value for key, value in self.host_config.items() if key in HELPER_CONFINEMENT}
        if self.run_as:
            confined.update(resources.identity_groups(self.host_config))
        return confined

    def helper_user(self, base: BaseImage) -> str:
        """Who a helper that writes the user's files runs as: the server's own user."""
        return self.run_as or base.user

    @property
    def content_root(self) -> str:
        return os.path.abspath(os.path.join(self.work_dir, "content"))

    def copies(self, policy: RepoPolicy) -> content.Copies:
        """The hub's copies, for the cache's eviction: one launched within a launch's longest
        time (fetch and build, then the merge) may still be in use."""
        return content.Copies(self.content_root, busy_seconds=policy.build_timeout + self.helper_timeout + 60)


@dataclass
class Plan:
    """What the server runs for a launch, and where it opens."""

    image: str
    notebook_dir: str
    default_url: str


async def run_helper(ctx: LaunchContext, what: str, image, user, command, binds, percent, confinement=None) -> dict:
    """A short container of `image` running `python3 -I command` as `user`, with no network,
    on the hub's helper threads, within helper_timeout (confined as ctx.confinement says,
    or as `confinement`); its output lines are progress (but for the result line); the
    result it printed, or BuildError "`what` failed: why"."""
    if confinement is None:
        confinement = ctx.confinement
    loop = asyncio.get_running_loop()

    def on_line(line: str) -> None:
        if not line.startswith(contentsync.RESULT) and not line.startswith("$ "):
            loop.call_soon_threadsafe(ctx.emit_progress, percent, line[:500])

    try:
        helper = functools.partial(
            helpers.run, entrypoint=HELPER_PYTHON, user=user, labels={USER_LABEL: ctx.user},
            host_config=helpers.host_config_kwargs(confinement, binds), on_line=on_line,
        )  # fmt: skip
        code, lines = await schedule.helpers.run(ctx.user, ctx.helper_timeout, helper, ctx.client, image, command)
    except (helpers.HelperTimeout, schedule.Busy) as error:
        why = f" ({error})" if str(error) else ""
        raise build.BuildError(
            f"{what} did not finish within {ctx.helper_timeout} s{why}, and was stopped. "
            "Start your server again to finish it; if this happens again, tell the hub's admins."
        ) from None
    except docker.errors.APIError as error:
        raise build.BuildError(f"{what} failed: {error}") from None
    results = [line for line in lines if line.startswith(contentsync.RESULT)]
    result = json.loads(results[-1].removeprefix(contentsync.RESULT)) if results else {}
    if code != 0 or not result or "error" in result:
        why = result.get("error") or "\n".join(lines[-10:]) or f"exit status {code}"
        raise build.BuildError(f"{what} failed: {why}")
    return result


class RepoLaunch:
    """One start's launch of a repository at a resolved commit."""

    def __init__(self, ctx: LaunchContext, request: RepoRequest, commit: str, ref_name: str | None,
                 policy: RepoPolicy):  # fmt: skip
        self.ctx = ctx
        self.request = request
        self.commit = commit
        self.ref_name = ref_name
        self.policy = policy
        self.tag: str | None = None  # the built image's tag, while the launch holds it
        self.sync: asyncio.Future | None = None  # the merge into storage, when there is one
        self._place: tuple[str, str] | None = None  # (storage, home) of the merge

    async def prepare(self, base_reference: str, storage: str | None, volume_binds: dict) -> Plan:
        """Point this start at the repository: its files in the user's storage (merged by
        nbgitpuller's rules) when there is `storage` and the image can run the merge, and
        its environment built into an image when it declares one. The merge starts here
        and runs while the server's container starts (`sync`)."""
        ctx, request, policy = self.ctx, self.request, self.policy
        await ctx.pull_image(base_reference)
        try:
            base = BaseImage.from_inspect(await ctx.docker("inspect_image", base_reference))
        except ValueError as error:
            raise build.BuildError(f"The image {base_reference} cannot take a repository: {error}.") from None
        if storage is not None:
            facts = build.known_facts(base) or await schedule.helpers.run(
                ctx.user, PROBE_SECONDS, build.image_facts, ctx.client, base, "probe"
            )
            if "git" not in facts or not any(fact.startswith("python-") for fact in facts):
                ctx.emit_progress(
                    5,
                    f"{base_reference} has no git or Python: the repository's files live in the server only "
                    "and are not kept when it stops (an image with git keeps them in your storage)",
                )
                storage = None
        if storage is None:
            # The repository's files in the image, as on Binder: not kept.
            folder = _free_folder(base, request.name, volume_binds)
            image = await self._built_image(base, folder)
            return Plan(image, base.home, _lab_url(folder, request.path))
        # The fetch and the hub's copy take disk where the hub keeps them: room first, as for a build.
        await self._make_room()
        ctx.emit_progress(4, f"Fetching {request.url} at {self.commit[:12]}")
        copy, view, files, notes = await schedule.launch_io.run(
            ctx.user, policy.build_timeout + PROBE_SECONDS, lambda deadline: content.fetch_and_record(
                request, self.commit, self.ref_name, policy, ctx.work_dir, ctx.content_root,
                lambda: build.image_facts(min(deadline, time.monotonic() + PROBE_SECONDS), ctx.client, base, "probe"),
            ),
        )  # fmt: skip
        for note in notes:
            ctx.emit_progress(6, note)
        image = base_reference
        if files.present:
            # The build's own copy (REPO_DIR, for pip install . and postBuild) stays in the image.
            image = await self._built_image(base, _free_folder(base, request.name, volume_binds))
        else:
            ctx.emit_progress(50, f"Nothing to build in {request.url}: starting {base_reference} as it is")
        # The folder is the repository's name unless that name holds something else.
        self.sync = asyncio.ensure_future(self._merge(copy, view, storage, volume_binds, image, base))
        self._place = (storage, base.home)
        return self.opened_in(request.name, image)

    def opened_in(self, folder: str, image: str) -> Plan:
        """Where the server opens when the merge used `folder` of the storage."""
        storage, home = self._place
        inside_home = storage == home or storage.startswith(home.rstrip("/") + "/")
        notebook_dir = home if inside_home else storage
        return Plan(image, notebook_dir, _lab_url(posixpath.relpath(f"{storage}/{folder}", notebook_dir),
                                                  self.request.path))  # fmt: skip

    def end(self) -> None:
        """The start is over (started or failed): the built image may be evicted again."""
        cache.launch_ended(self.tag)
        self.tag = None
        if self.sync is not None and not self.sync.done():
            # The start failed first: the merge's container ends and is removed on its own.
            self.sync.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _merge(self, copy, view, storage, volume_binds, image, base) -> str:
        """Merge the repository into the user's folder in a short container of the server's
        image, as its user, with no network; the folder's name."""
        ctx, request = self.ctx, self.request
        extra_binds, command = content.sync_command(copy, view, storage, request, self.commit)
        binds = {**volume_binds, **extra_binds}
        what = f"Synchronising {request.name} into your storage"
        ctx.emit_progress(62, what)
        try:
            result = await run_helper(ctx, what, image, ctx.helper_user(base), command, binds, 64)
        finally:
            shutil.rmtree(os.path.dirname(view), ignore_errors=True)  # a few small files
        ctx.log.info("Synchronised %s at %s into %s for %s", request.url, self.commit, result["folder"], ctx.log_name)
        for path, copy_path in result["conflicts"]:
            ctx.emit_progress(
                66,
                f"Kept your changes to {path}: the instructor changed it too; their version is "
                f"{copy_path} (see {contentsync.REPORT} in {result['folder']})",
            )
        for path in result["restored"]:
            ctx.emit_progress(66, f"Brought back {path}, which you had deleted")
        return result["folder"]

    async def _make_room(self) -> None:
        """Old builds and copies evicted while the disk is short; BuildError if it stays short."""
        ctx, policy = self.ctx, self.policy
        record = cache.launch_record(ctx.cache_file)
        await schedule.launch_io.run(
            ctx.user, CACHE_SECONDS,
            lambda _: cache.make_room(ctx.client, policy, record, cache.in_launch(), ctx.log, ctx.copies(policy)),
        )  # fmt: skip

    # -- the environment's image -------------------------------------------------

    async def _built_image(self, base: BaseImage, folder: str) -> str:
        """The reference of the repository's image, built unless it exists."""
        ctx, request, policy = self.ctx, self.request, self.policy
        key = cache_key(request, self.commit, policy.builder_fingerprint(base.id) + folder)
        tag = image_tag(request, self.commit, key)
        cache.launch_started(tag)
        self.tag = tag
        try:
            found = await ctx.docker("inspect_image", tag)
        except docker.errors.NotFound:
            found = None
        if cache.is_build_of(found, key):
            ctx.emit_progress(50, f"Using the existing build of {request.url} at {self.commit[:12]}")
        else:
            # Not built yet, or the tag holds another build whose key shares its first digits.
            if tag not in cache.builds:
                await self._make_room()
            await self._build(key, tag, base, folder)
        await schedule.launch_io.run(ctx.user, CACHE_SECONDS, lambda _: cache.launch_record(ctx.cache_file).touch(tag))
        return await ctx.publish_image(tag)

    async def _build(self, key, tag, base, folder) -> None:
        ctx, request = self.ctx, self.request
        job = cache.builds.get(tag)
        if job is not None and job.stopping:
            await asyncio.wait([job.task])  # a stopped build of the same image: build anew
            job = None
        if job is None:
            job = start_build(ctx, request, self.commit, self.ref_name, key, tag, base, self.policy, folder)
        else:
            ctx.emit_progress(
                10, f"{request.url} at {self.commit[:12]} is being built for another user: following that build"
            )
        # The spawn page gets each step and otherwise at most one line per PROGRESS_INTERVAL:
        # a build printing thousands of lines a second must not become as many events.
        percent, shown = 10, -PROGRESS_INTERVAL
        loop = asyncio.get_running_loop()
        job.join()
        try:
            async for line in job.follow():
                step = _STEP_RE.match(line)
                if step:
                    percent = 10 + 45 * int(step.group(1)) // max(1, int(step.group(2)))
                always = line.startswith((schedule.WAITING, *build.ALWAYS_SHOWN))
                if step or always or loop.time() - shown >= PROGRESS_INTERVAL:
                    ctx.emit_progress(percent, line)
                    shown = loop.time()
            await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if job.task.cancelled() and not asyncio.current_task().cancelling():
                raise build.BuildError(build.STOPPED) from None  # the build's, not this start's
            raise
        except build.BuildError as error:
            ctx.log.warning("Build of %s at %s failed for %s", request.url, self.commit, ctx.log_name)
            raise type(error)(str(error)) from None  # a refusal stays one (errors.RepoRefused)
        finally:
            if job.leave(ctx.client):
                ctx.log.warning("Stopping the build of %s: no launch waits for it any more", job.what)


def start_build(ctx: LaunchContext, request, commit, ref_name, key, tag, base, policy, folder) -> build.BuildJob:
    """A new build, in line for a slot: at most one at a time started by each user."""
    mine = next((job for job in cache.builds.values() if job.owner == ctx.user and not job.stopping), None)
    if mine is not None:
        raise build.BuildError(
            f"You already have a repository build in progress ({mine.what}). Launch this one "
            "when that build has finished, or stop the server it is for."
        )
    job = build.BuildJob(tag, key=key, owner=ctx.user, what=f"{request.url} at {commit[:12]}")
    log = job.threadsafe_writer(asyncio.get_running_loop())
    ctx.log.info("Building %s at %s for %s", request.url, commit, ctx.log_name)
    schedule.slots.set_limit(policy.max_concurrent_builds)
    job.task = asyncio.ensure_future(
        schedule.slots.run(
            job, build.run_build, ctx.client, request, commit, ref_name, key, tag, base, policy, folder, log,
            job.stop, ctx.work_dir, ctx.outbound, ctx.build_network,
        )
    )  # fmt: skip
    cache.builds[tag] = job
    job.task.add_done_callback(lambda _: cache.builds.pop(tag, None) if cache.builds.get(tag) is job else None)
    job.task.add_done_callback(lambda task: _after_build(ctx, task, policy))
    return job


def _after_build(ctx: LaunchContext, task, policy) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    record = cache.launch_record(ctx.cache_file)
    future = asyncio.ensure_future(
        schedule.launch_io.run(
            ctx.user,
            CACHE_SECONDS,
            lambda _: cache.evict(ctx.client, policy, record, cache.in_launch(), ctx.log, ctx.copies(policy)),
        )
    )
    future.add_done_callback(lambda f: f.exception() and ctx.log.error("Cache eviction failed: %s", f.exception()))


def _free_folder(base: BaseImage, name: str, volume_binds: dict) -> str:
    """The repository's folder in the image's home: its name, unless a volume is mounted there."""
    taken = {bind.get("bind", "").rstrip("/") for bind in volume_binds.values()}
    folder = name
    while f"{base.home}/{folder}" in taken:
        folder += "-repo"
    return folder


def _lab_url(folder: str, path: str) -> str:
    return f"/lab/tree/{quote(folder)}" + (f"/{quote(path)}" if path else "")

