"""The image build of a repository launch: read what the repository declares, build it
on top of the chosen image under the policy's limits, stream its redacted log.

Fetching the commit is git.py's; keeping and evicting builds is cache.py's. Everything
here is blocking; the spawner runs it in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

from . import helpers
from .errors import BuildError, RepoRefused
from .events import EventLog
from .git import STOPPED, fetch_commit
from .labels import REPO_LABEL
from .outbound import Outbound
from .repo import (
    COMPANIONS,
    CONDA_PYTHONS,
    CONFIG_FILES,
    OTHER_BINDER_FILES,
    PACKAGE_FILES,
    PIPFILES,
    RepoPolicy,
    RepoRequest,
    read_apt_packages,
    recipe,
    redact,
)
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


# Lines about the repository's files, always on the spawn page (build output is thinned):
# what the build uses, what the image was checked for, what it does not use.
BUILDING_WITH = "Building with"
CHECKED = "Checked against the image"
NOT_USED = "Not used by this hub"
WARNING = "Warning"
PROVIDED = "Provided"
ALWAYS_SHOWN = (BUILDING_WITH, CHECKED, NOT_USED, WARNING, PROVIDED)


class Checked(NamedTuple):
    """What check_against_image found: {path: what the log and the spawn page say of it},
    and the Python version the build is to install with conda or mamba ("" none)."""

    notes: dict[str, str]
    python: str = ""


# repo2docker's builds for the Python side, first match wins: conda, pipenv, pip.
OUTRANKS = {
    "environment.yml": frozenset({"Pipfile", "requirements.txt", *PACKAGE_FILES}),
    "Pipfile": frozenset({"requirements.txt", *PACKAGE_FILES}),
}


class RepoFiles(NamedTuple):
    present: set[str]  # honoured files to act on
    config_dir: str  # "binder/", ".binder/" or ""
    packages: list[str]  # apt.txt's packages
    unused: list[str]  # files Binder would act on that this build does not (paths in the checkout)
    # Honoured files another one outranks (as on Binder): (the winner, the files it outranks).
    outranked: tuple[str, tuple[str, ...]] = ("", ())


# The build files the hub itself reads (pyproject.toml, runtime.txt, apt.txt) are read on
# a thread that cannot be interrupted, into the hub's memory: at most this much of each.
MAX_READ = 1024**2


def _read_small(path: Path, name: str) -> str:
    with open(path, "rb") as file:
        data = file.read(MAX_READ + 1)
    if len(data) > MAX_READ:
        limit = MAX_READ // 1024**2
        raise RepoRefused(f"The repository's {name} is larger than {limit} MB; this hub does not read it.")
    return data.decode(errors="replace")


def _regular_file(path: Path) -> bool:
    # A symlink could point anywhere on the build host: only regular files count.
    return path.is_file() and not path.is_symlink()


def _is_python_package(checkout: Path) -> str:
    """Which file makes the top of the repository a Python package, as repo2docker decides:
    setup.py, or a pyproject.toml with both [project] and [build-system]; "" if none."""
    if _regular_file(checkout / "setup.py"):
        return "setup.py"
    pyproject = checkout / "pyproject.toml"
    if not _regular_file(pyproject):
        return ""
    try:
        table = tomllib.loads(_read_small(pyproject, "pyproject.toml"))
    except tomllib.TOMLDecodeError as error:
        raise RepoRefused(f"The repository's pyproject.toml is not valid TOML: {error}.") from None
    return "pyproject.toml" if "project" in table and "build-system" in table else ""


# What a base image has that a repository's files may need, asked once per image (an
# image id never changes) by a short container: no network, the image's user, sh.
PROBE = (
    "for tool in mamba conda R julia git; do command -v $tool >/dev/null 2>&1 && echo $tool; done; "
    "for python in python3 python; do command -v $python >/dev/null 2>&1 && "
    "exec $python -c 'import sys; print(\"python-%d.%d\" % sys.version_info[:2])'; done; true"
)
_image_facts: dict[str, frozenset[str]] = {}
# Files that need a language the image may lack: (file, what `command -v` finds, its name).
NEEDS_LANGUAGE = (
    ("install.R", "R", "R"),
    ("DESCRIPTION", "R", "R"),
    ("Project.toml", "julia", "Julia"),
    ("JuliaProject.toml", "julia", "Julia"),
    ("REQUIRE", "julia", "Julia"),
)
_RUNTIME_RE = re.compile(r"python-(\d+)(?:\.(\d+))?(?:\.\d+)?|(r)-.*")
_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")


def known_facts(base) -> frozenset[str] | None:
    """image_facts already found for `base` (an image id never changes), or None."""
    return _image_facts.get(base.id)


def image_facts(deadline: float, client, base, key: str) -> frozenset[str]:
    """{"mamba", "conda", "R", "julia", "git", "python-3.11"}: what the base image has, of these,
    found by a short container that must answer by `deadline` (time.monotonic())."""
    if base.id in _image_facts:
        return _image_facts[base.id]
    try:
        _, lines = helpers.run(
            deadline, client, base.id, ["-c", PROBE], entrypoint=["sh"], user=base.user,
            labels={f"{REPO_LABEL}.build": key},  # a stopped build kills it too
            host_config=helpers.host_config_kwargs({}, mem_limit=256 * 1024**2),
        )  # fmt: skip
    except helpers.HelperTimeout:
        raise BuildError(f"Looking into the image {base.id[:19]} did not finish in time.") from None
    facts = frozenset(line.strip() for line in lines if line.strip())
    _image_facts[base.id] = facts
    return facts


def _runtime(checkout: Path, files: RepoFiles) -> re.Match | None:
    """runtime.txt's first line, matched (python-X.Y or r-...), when the repository has one."""
    path = files.config_dir + "runtime.txt"
    if path not in files.unused:
        return None
    text = _read_small(checkout / path, path).strip()
    return _RUNTIME_RE.fullmatch(text.splitlines()[0].strip() if text else "")


def _wanted_python(checkout: Path, files: RepoFiles, runtime: re.Match | None) -> tuple[str, str] | None:
    """(file, the Python version it asks for), as repo2docker reads them: for a pipenv
    build the first of Pipfile.lock's and Pipfile's `requires` (python_full_version, then
    python_version; major.minor), runtime.txt being ignored (its tests/pipfile/py36);
    otherwise runtime.txt's python-X.Y."""
    where = files.config_dir
    if not files.present & set(PIPFILES):
        if runtime and runtime.group(1):
            return where + "runtime.txt", runtime.group(1) + (f".{runtime.group(2)}" if runtime.group(2) else "")
        return None
    for name in PIPFILES[::-1]:
        if name not in files.present:
            continue
        text = _read_small(checkout / where / name, where + name)
        try:
            table = json.loads(text) if name.endswith(".lock") else tomllib.loads(text)
        except ValueError as error:  # JSON's and TOML's decode errors both are
            kind = "JSON" if name.endswith(".lock") else "TOML"
            raise RepoRefused(f"The repository's {where}{name} is not valid {kind}: {error}.") from None
        if not isinstance(table, dict):
            raise RepoRefused(f"The repository's {where}{name} does not hold a table of settings.")
        meta = table.get("_meta") if name.endswith(".lock") else table
        requires = meta.get("requires") if isinstance(meta, dict) else None
        for key in ("python_full_version", "python_version"):
            match = _VERSION_RE.match(str(requires.get(key) or "")) if isinstance(requires, dict) else None
            if match:
                return where + name, ".".join(match.group().split(".")[:2])
    return None


def check_against_image(
    checkout: Path,
    files: RepoFiles,
    facts_of_image: Callable[[], frozenset[str]],
    python_mismatch: str = "warn",
    conda_prefix: str = "",
) -> Checked:
    """Refuse, before building, what the image cannot do. The image is asked
    (`facts_of_image`, a probe container) only when a file has needs. A repository asking
    for another Python 3 version than the image has (runtime.txt, a Pipfile's
    python_version; environment.yml decides its own, as on Binder) gets it installed by
    the build where the image has conda or mamba and `conda_prefix` (a build follows, and
    the image's CONDA_DIR is known), as repo2docker provides it; otherwise a warning, or a
    refusal where `python_mismatch` says "refuse" or the file is Pipfile.lock. Python 2, or
    no Python, is refused."""
    where = files.config_dir
    languages = [(name, tool, language) for name, tool, language in NEEDS_LANGUAGE if where + name in files.unused]
    has_runtime = where + "runtime.txt" in files.unused
    runtime = _runtime(checkout, files)
    wanted = None if "environment.yml" in files.present else _wanted_python(checkout, files, runtime)
    if not ("environment.yml" in files.present or languages or wanted or has_runtime):
        return Checked({})
    facts = facts_of_image()
    conda = next((tool for tool in ("mamba", "conda") if tool in facts), "")
    if "environment.yml" in files.present and not conda:
        raise RepoRefused(
            f"The repository's {where}environment.yml needs conda or mamba, which the chosen image does not have. "
            "Choose an image with conda (the docker-stacks images have it), or list the packages in requirements.txt."
        )
    for name, tool, language in languages:
        if tool not in facts:
            raise RepoRefused(
                f"The repository's {where}{name} needs {language}, which the chosen image does not have. "
                f"Choose an image with {language}."
            )
    if runtime and runtime.group(3) and "R" not in facts:
        raise RepoRefused(
            f"The repository's {where}runtime.txt asks for R ({runtime.group(0)!r}), "
            "which the chosen image does not have. Choose an image with R."
        )
    if "environment.yml" in files.present and runtime and runtime.group(1):
        path = where + "runtime.txt"
        return Checked({path: f"{NOT_USED}: {path} (environment.yml decides the Python, as on Binder)"})
    if not wanted:
        return Checked({})
    path, version = wanted
    have = next((fact.removeprefix("python-") for fact in facts if fact.startswith("python-")), "")
    if have == version or have.startswith(version + "."):
        return Checked({path: f"{CHECKED}: {path} asks for Python {version}, which it has"})
    refusal = RepoRefused(
        f"The repository's {path} asks for Python {version}; the chosen image has "
        f"{'Python ' + have if have else 'no Python'}. Choose an image with Python {version}, "
        f"or change {path.rpartition('/')[2]}."
    )
    if not have.startswith("3.") or not version.startswith("3"):
        raise refusal  # Python 2, or an image without Python: nothing to continue with
    if conda and conda_prefix and version in CONDA_PYTHONS:
        return Checked(
            {path: f"{PROVIDED}: {path} asks for Python {version}; this image has {have}: the build installs "
                   f"Python {version} with {conda} for the notebooks and the terminal (the server stays on {have})"},
            python=version,
        )  # fmt: skip
    if python_mismatch == "refuse" or path.endswith("Pipfile.lock"):
        raise refusal  # a lock file's exact pins are for its Python: they may have no build for this one
    warning = f"{WARNING}: {path} asks for Python {version}; this image has {have}; continuing with {have}"
    return Checked({path: warning})


def checked_notes(
    checkout: Path,
    files: RepoFiles,
    policy: RepoPolicy,
    facts_of_image: Callable[[], frozenset[str]],
    conda_prefix: str = "",
) -> tuple[list[str], str]:
    """check_against_image, then what the log and the spawn page say of the repository's
    files (those the image satisfies or was checked for, those this hub does not use), and
    the Python version the build installs ("" none)."""
    notes = []
    checked = check_against_image(checkout, files, facts_of_image, policy.python_mismatch, conda_prefix)
    for path, note in checked.notes.items():
        notes.append(note)
        if path in files.unused:
            files.unused.remove(path)
    winner, outranked = files.outranked
    if outranked:
        notes.append(f"{NOT_USED}: {', '.join(outranked)} ({winner} comes first, as on Binder)")
    if files.unused:
        notes.append(
            f"{NOT_USED}: {', '.join(files.unused)} (it uses only "
            f"{', '.join(policy.config_files) or 'the repository itself'}; see the launch page)"
        )
    return notes, checked.python


def read_repository(checkout: Path, policy: RepoPolicy) -> RepoFiles:
    """Which honoured files the repository declares, where (binder/ or .binder/, never both,
    as on Binder), its apt packages, and the files Binder would use that this build does not."""
    folders = [f for f in (".binder", "binder") if (checkout / f).is_dir() and not (checkout / f).is_symlink()]
    if len(folders) > 1:
        raise RepoRefused(
            "The repository has both a binder/ and a .binder/ folder; Binder refuses that too. Keep one of them."
        )
    config_dir = folders[0] + "/" if folders else ""
    found = [config_dir + name for name in CONFIG_FILES if name not in PACKAGE_FILES] + [
        config_dir + name for name in COMPANIONS
    ]
    found = [path for path in found if _regular_file(checkout / path)]
    package = "" if config_dir else _is_python_package(checkout)
    if package:
        found.append(package)

    def honoured_as(path: str) -> str:
        name = path.rpartition("/")[2]
        return COMPANIONS.get(name, name)

    honoured = set(policy.config_files)
    # repo2docker picks one build for the Python side: conda (environment.yml), else
    # pipenv (Pipfile or Pipfile.lock), else pip (requirements.txt, then the package).
    # What the chosen one leaves alone is named as not used.
    # (found lists environment.yml before Pipfile, and Pipfile before Pipfile.lock.)
    winner = next((path for path in found if honoured_as(path) in OUTRANKS and honoured_as(path) in honoured), "")
    beaten = honoured & OUTRANKS[honoured_as(winner)] if winner else set()
    outranked = (winner, tuple(path for path in found if honoured_as(path) in beaten))
    honoured -= beaten
    present = {path.rpartition("/")[2] for path in found if honoured_as(path) in honoured}
    unused = [path for path in found if honoured_as(path) not in honoured and path not in outranked[1]]
    if config_dir:
        # Binder installs no package from a repository with a binder folder either.
        unused += [name for name in PACKAGE_FILES if _regular_file(checkout / name)]
    unused += [config_dir + name for name in OTHER_BINDER_FILES if _regular_file(checkout / config_dir / name)]
    packages = []
    if "apt.txt" in present:
        try:
            packages = read_apt_packages(_read_small(checkout / config_dir / "apt.txt", config_dir + "apt.txt"))
        except ValueError as error:
            raise RepoRefused(f"The repository's {config_dir}{error}.") from None
    return RepoFiles(present, config_dir, packages, unused, outranked)


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
    outbound: Outbound | None = None,
    network: str = "",
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
        files = read_repository(checkout, policy)
        say(
            f"{BUILDING_WITH} "
            + (
                ", ".join(("" if f in PACKAGE_FILES else files.config_dir) + f for f in sorted(files.present))
                or "no build files (repository only)"
            )
        )
        probe = lambda: image_facts(time.monotonic() + 60, client, base, key)  # noqa: E731
        notes, python = checked_notes(checkout, files, policy, probe, base.python_prefix)
        for line in notes:
            say(line)
        share_with_group(checkout)
        outbound = outbound or Outbound()
        outbound.add_to_context(workdir)
        Path(workdir, "Dockerfile").write_text(
            recipe(base, folder, files.present, files.config_dir, files.packages, outbound.recipe_lines(), python)
        )
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
            buildargs={"FORMSPAWNER_DEADLINE": str(int(deadline)), "FORMSPAWNER_BUILD": key, **outbound.build_args()},
            container_limits=limits,
            # The steps' network ("" = Docker's default bridge).
            network_mode=network or None,
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


def share_with_group(checkout: Path) -> None:
    """Group read-write (and execute where the owner may) on everything the build copies:
    COPY keeps these modes, so the repository in the image is as docker-stacks'
    fix-permissions leaves the images' own files (the hub's umask would otherwise leave
    them private to the user). The folders' setgid bit is set by the recipe, inside the
    build: the hub's unit may not set it (RestrictSUIDSGID)."""
    for top, folders, files in os.walk(checkout):
        for name in folders:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o070)
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode & 0o7777
                os.chmod(path, mode | 0o060 | (0o010 if mode & 0o100 else 0))
    os.chmod(checkout, os.stat(checkout).st_mode & 0o7777 | 0o070)


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
