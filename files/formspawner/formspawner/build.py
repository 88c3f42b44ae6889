"""The image build of a repository launch: read what the repository declares, build it
on top of the chosen image under the policy's limits, stream its redacted log.

Fetching the commit is git.py's; keeping and evicting builds is cache.py's. Everything
here is blocking; the spawner runs it in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .errors import BuildError
from .events import EventLog
from .git import STOPPED, fetch_commit
from .labels import REPO_LABEL
from .repo import RepoPolicy, RepoRequest, read_apt_packages, recipe, redact
from .schedule import WAITING

__all__ = ["BuildError", "BuildJob", "read_repository", "run_build"]

# A build prints what its repository wants: however much that is, the hub keeps at most
# MAX_LINE characters of each line (the rest is counted, never joined) and the newest
# MAX_LOG_LINES lines for the users following the build.
MAX_LINE = 2000
MAX_LOG_LINES = 1000
# Reading and redacting a build's output hold the GIL in the build's thread; the hub's
# event loop waits for it up to the interpreter's switch interval (5 ms by default) each
# time. A hub that builds switches every 0.5 ms (process-wide, from its first build): a
# build printing 20 MB in short lines then costs the API's p99 ~50 ms instead of ~120 ms
# (benchmarks/build_flood.py).
SWITCH_INTERVAL = 0.0005


class _Lines:
    """A build's output stream as lines, in time linear in its length: the pieces of the
    line being read are kept in a list, at most MAX_LINE characters of them."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.parts: list[str] = []
        self.size = 0
        self.cut = 0

    def feed(self, text: str) -> None:
        *complete, rest = text.split("\n")
        for piece in complete:
            self._add(piece)
            self.flush()
        self._add(rest)

    def _add(self, piece: str) -> None:
        room = MAX_LINE - self.size
        if room > 0 and piece:
            self.parts.append(piece[:room])
            self.size += min(len(piece), room)
        self.cut += max(0, len(piece) - max(room, 0))

    def flush(self) -> None:
        """The line read so far, if any, as a log line."""
        if not self.parts and not self.cut:
            return
        line = "".join(self.parts)
        if self.cut:
            line += f" [... {self.cut} more characters]"
        self.parts, self.size, self.cut = [], 0, 0
        self.say(line)


def read_repository(checkout: Path, policy: RepoPolicy) -> tuple[set[str], str, list[str]]:
    """Which honoured files the repository declares, where (binder/ first, as on Binder), and
    its apt packages."""
    config_dir = ""
    for candidate in (".binder", "binder"):
        if (checkout / candidate).is_dir() and not (checkout / candidate).is_symlink():
            config_dir = candidate + "/"
            break
    present = set()
    for name in policy.config_files:
        path = checkout / config_dir / name
        # A symlink could point anywhere on the build host: only regular files count.
        if path.is_file() and not path.is_symlink():
            present.add(name)
    packages = []
    if "apt.txt" in present:
        try:
            packages = read_apt_packages((checkout / config_dir / "apt.txt").read_text(errors="replace"))
        except ValueError as error:
            raise BuildError(f"The repository's {config_dir}{error}.") from None
    return present, config_dir, packages


class BuildJob:
    """One build in flight, shared by every spawn that wants the same image; each waiter
    follows the same log from its first line. The user whose launch started it is its
    `owner`; `waiters` counts the launches following it, and when the last one leaves
    (its spawn was stopped or timed out) the build is stopped."""

    def __init__(self, tag: str, *, key: str, owner: str, what: str):
        self.tag = tag
        self.key = key
        self.owner = owner
        self.what = what  # "URL at COMMIT", for messages
        self.log = EventLog(maxlen=MAX_LOG_LINES)
        self.task: asyncio.Task | None = None
        self.waiters = 0
        self.started = False  # out of the line, on a build thread
        self.stop = threading.Event()

    def join(self) -> None:
        """A launch follows this build."""
        self.waiters += 1

    def leave(self, client) -> bool:
        """A launch stops following (it started, failed or was stopped); when it is the
        last one and the build still runs, the build is stopped. Whether it was."""
        self.waiters -= 1
        if self.waiters > 0 or self.task.done():
            return False
        self.stop_building(client)
        return True

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def waiting(self, place: int, limit: int) -> None:
        """Its place in the line of builds waiting for a slot."""
        self.add_line(f"{WAITING}: number {place} in line (this hub builds {limit} at a time)")

    def stop_building(self, client) -> asyncio.Future | None:
        """Stop the build: out of the line if it waits there; else its build containers
        are killed until its thread ends (the engine fails the step; run_build removes
        what the build left). The future, if any, ends with the build."""
        if self.stop.is_set() or self.task is None or self.task.done():
            return None
        self.stop.set()
        if not self.started:
            self.task.cancel()
            return None
        return asyncio.ensure_future(self._kill_until_done(client))

    async def _kill_until_done(self, client) -> None:
        # Again each second: the build may be between two steps when first asked.
        while not self.task.done():
            await asyncio.to_thread(kill_build_containers, client, self.key)
            await asyncio.wait([self.task], timeout=1)

    def add_line(self, line: str) -> None:
        self.log.append(line)

    def add_lines(self, lines: list[str]) -> None:
        for line in lines:
            self.log.append(line)

    def threadsafe_writer(self, loop: asyncio.AbstractEventLoop) -> Callable[[str], None]:
        """What the build's thread calls for each line: lines are handed to the event loop
        in batches (one callback scheduled at a time, not one per line), and while the loop
        is busy at most MAX_LOG_LINES wait, the oldest giving way with a count."""
        lock = threading.Lock()
        waiting: collections.deque[str] = collections.deque(maxlen=MAX_LOG_LINES)
        state = {"scheduled": False, "dropped": 0}

        def flush() -> None:
            with lock:
                lines, dropped = list(waiting), state["dropped"]
                waiting.clear()
                state.update(scheduled=False, dropped=0)
            if dropped:
                self.add_line(f"[... {dropped} lines of the build's log not shown]")
            self.add_lines(lines)

        def write(line: str) -> None:
            with lock:
                if len(waiting) == waiting.maxlen:
                    state["dropped"] += 1
                waiting.append(line)
                if state["scheduled"]:
                    return
                state["scheduled"] = True
            loop.call_soon_threadsafe(flush)

        return write

    def follow(self) -> AsyncIterator[str]:
        return self.log.follow(until=self.task, gap=lambda count: f"[... {count} lines of the build's log not shown]")


def run_build(
    client,
    request: RepoRequest,
    commit: str,
    ref_name: str | None,
    key: str,
    tag: str,
    base,
    policy: RepoPolicy,
    folder: str,
    log: Callable[[str], None],
    stop: threading.Event | None = None,
    workroot: str | None = None,
) -> None:
    """Fetch and build; on any failure remove what the build left and raise BuildError.
    Once `stop` is set, the build ends at its next step with STOPPED. The checkout and
    build context go in a directory of their own under `workroot` (made private if new)."""
    stop = stop or threading.Event()
    deadline = time.time() + policy.build_timeout
    tail: list[str] = []

    def say(line: str) -> None:
        line = redact(line.rstrip())
        if line:
            tail.append(line)
            del tail[:-10]
            log(line)

    if workroot:
        os.makedirs(workroot, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="formspawner-build-", dir=workroot)
    try:
        checkout = Path(workdir, "repo")
        say(f"Fetching {request.url} at {commit[:12]}")
        fetch_commit(request, commit, ref_name, str(checkout), policy, time.monotonic() + policy.build_timeout, stop)
        present, config_dir, packages = read_repository(checkout, policy)
        say(
            "Building with "
            + (", ".join(config_dir + f for f in sorted(present)) or "no build files (repository only)")
        )
        Path(workdir, "Dockerfile").write_text(recipe(base, folder, present, config_dir, packages))
        if stop.is_set():
            raise BuildError(STOPPED)
        limits = {"memory": policy.build_memory, "memswap": policy.build_memory}
        if policy.build_cpus:
            cpus = os.cpu_count() or 1
            first = max(0, cpus - policy.build_cpus)
            limits["cpusetcpus"] = f"{first}-{cpus - 1}"
        labels = {
            f"{REPO_LABEL}": "1",
            f"{REPO_LABEL}.url": request.cache_url,
            f"{REPO_LABEL}.commit": commit,
            f"{REPO_LABEL}.base": base.id,
            f"{REPO_LABEL}.key": key,
        }
        stream = client.build(
            path=workdir,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels=labels,
            buildargs={"FORMSPAWNER_DEADLINE": str(int(deadline)), "FORMSPAWNER_BUILD": key},
            container_limits=limits,
            # A step may print nothing for a long time (compiling); the deadline bounds it.
            timeout=policy.build_timeout + 60,
        )
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        lines = _Lines(say)
        for event in stream:
            if "error" in event:
                lines.feed(str(event["error"]))
                lines.flush()
                if stop.is_set():
                    raise BuildError(STOPPED)
                if time.time() >= deadline:
                    raise BuildError(f"The build took longer than this hub allows ({policy.build_timeout} s).")
                raise BuildError("The build failed. Last lines of its log:\n" + "\n".join(tail))
            lines.feed(str(event.get("stream", "")))
        lines.flush()
        say(f"Built {tag}")
    except BuildError:
        _remove_leftovers(client, key, tag)
        raise
    except Exception as error:
        _remove_leftovers(client, key, tag)
        raise BuildError(f"The build failed: {redact(str(error))}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def kill_build_containers(client, key: str) -> None:
    """Kill the running steps of a build (each step's container carries the build's label)."""
    for container in client.containers(filters={"label": f"{REPO_LABEL}.build={key}"}):
        try:
            client.kill(container["Id"])
        except Exception:
            pass  # ended meanwhile


def _remove_leftovers(client, key: str, tag: str) -> None:
    """A failed build leaves no image behind, intermediate or tagged."""
    try:
        client.remove_image(tag, force=True)
    except Exception:
        pass
    for image in client.images(filters={"label": f"{REPO_LABEL}.build={key}"}, all=True):
        try:
            client.remove_image(image["Id"], force=True)
        except Exception:
            pass
