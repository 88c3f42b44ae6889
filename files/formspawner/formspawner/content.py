"""A launched repository's files in the user's storage: the hub's side.

At every launch the hub fetches the commit (git.fetch_commit: checked and bounded as for
a build) and records its files in its own copy of the repository, a bare repository per
repository URL under `repo_work_dir/content/`. That copy has one branch, BRANCH, whose
history is the sequence of versions launched on this hub: launching a commit whose files
differ from the branch's tip adds a commit holding exactly that commit's files, whose
parent is the previous tip. The user's folder is a clone of that branch, merged at each
start by nbgitpuller's rules in a short container of the server's image (contentsync.py).

A launch merges exactly the version it recorded, whatever launches of other refs add to the
chain meanwhile: the short container sees, at the copy's usual URL, a view of the copy (a
bare repository of its own, objects borrowed from the copy) whose one branch is this
launch's version (launch_view), removed after the merge.

Why not the repository's own history: the hub fetches one commit, shallow, and never the
history (unbounded in size); nbgitpuller's merge needs the version the folder last had
as an ancestor of the new one, which this chain gives whatever happened upstream (a
force-push, a link to an older tag). The commit message names the upstream commit.

Blocking; the spawner runs it in a thread.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .build import RepoFiles, checked_notes, read_repository
from .errors import BuildError
from .git import fetch_commit
from .repo import RepoPolicy, RepoRequest

BRANCH = "launched"
# Where the short container sees the hub's copy, nbgitpuller's files and the script.
SOURCE_ROOT = "/srv/formspawner/content"
OBJECTS_ROOT = "/srv/formspawner/content-objects"
VENDOR_MOUNT = "/opt/formspawner/vendor"
SCRIPT_MOUNT = "/opt/formspawner/contentsync.py"
VENDOR_DIR = str(Path(__file__).with_name("vendor"))
SCRIPT = str(Path(__file__).with_name("contentsync.py"))
# Whole-home storage from a work-folder volume (FormDockerSpawner.home_volume_moved_into).
MIGRATE_MOUNT = "/opt/formspawner/homemigrate.py"
MIGRATE = str(Path(__file__).with_name("homemigrate.py"))
OWNER_MOUNT = "/opt/formspawner/owner.py"
OWNER = str(Path(__file__).with_name("owner.py"))

# Where the views of launches are made: beside the copies (CONTENT_ROOT + this).
VIEWS_SUFFIX = "-launches"

_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)

_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    # Only the hub's own checkout is fetched from here.
    "GIT_ALLOW_PROTOCOL": "file",
    "GIT_AUTHOR_NAME": "formspawner",
    "GIT_AUTHOR_EMAIL": "formspawner@localhost",
    "GIT_COMMITTER_NAME": "formspawner",
    "GIT_COMMITTER_EMAIL": "formspawner@localhost",
    "LC_ALL": "C",
}


def copy_name(request: RepoRequest) -> str:
    """The hub's copy of a repository: one per URL (`x` and `x.git` are one repository)."""
    return hashlib.sha256(request.cache_url.encode()).hexdigest()[:32] + ".git"


def _git(*args: str, cwd: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_ENV}
    # World-readable files (the short container reads them as the image's user), whatever
    # the hub's own umask (the role's unit has UMask=0077). Not git's --shared: it sets
    # setgid on folders, which the unit's RestrictSUIDSGID refuses.
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, umask=0o022
    )
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BuildError(f"Recording the repository's files failed: git {args[0]}: {message}")
    return done.stdout.strip()


def record(checkout: Path, commit: str, request: RepoRequest, root: str) -> tuple[str, str]:
    """Add `commit`'s files (fetched in `checkout`) to the hub's copy of the repository:
    (the copy's path, the chain's version holding them). Readable by every user (its files
    come from a public fetch): the short container reads it as the image's user."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    copy = os.path.join(root, copy_name(request))
    with _locks[copy]:
        if not os.path.isdir(os.path.join(copy, "objects")):
            shutil.rmtree(copy, ignore_errors=True)
            _git("init", "-q", "--bare", copy, cwd=root)
            _git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}", cwd=copy)
        # The checkout's HEAD is the commit (fetch_commit detaches there).
        _git("fetch", "-q", "--no-tags", "--depth", "1", "--", str(checkout.resolve()), "HEAD", cwd=copy)
        if _git("rev-parse", "FETCH_HEAD", cwd=copy) != commit:
            raise BuildError(f"Recording the repository's files failed: the checkout is not at {commit}")
        tree = _git("rev-parse", f"{commit}^{{tree}}", cwd=copy)
        tip = ""
        try:
            tip = _git("rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}", cwd=copy)
        except BuildError:
            pass
        os.utime(copy)  # when it was last launched: eviction goes by it (Copies)
        if tip and _git("rev-parse", f"{tip}^{{tree}}", cwd=copy) == tree:
            return copy, tip
        parent = ["-p", tip] if tip else []
        made = _git("commit-tree", tree, *parent, "-m", f"{request.url} at {commit}", cwd=copy)
        _git("update-ref", f"refs/heads/{BRANCH}", made, *([tip] if tip else []), cwd=copy)
    return copy, made


class Copies:
    """The hub's copies under `root`, for the cache's eviction (cache.evict): each copy's
    last launch (the copy folder's mtime, set at every record) and size on disk. A copy
    launched within `busy_seconds` may be in a launch (fetched, built or merged from) and is
    never removed. A removed copy is made anew at its next launch; students' folders merge
    from it as from a copy lost (the graft, contentsync.connect_histories)."""

    def __init__(self, root: str, busy_seconds: float):
        self.root = root
        self.busy_seconds = busy_seconds

    def listing(self) -> list[tuple[float, int, str]]:
        """(last launched, bytes, path) of each copy."""
        found = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.endswith(".git") and entry.is_dir(follow_symlinks=False):
                size = 0
                for folder, _, files in os.walk(entry.path):
                    for name in files:
                        try:
                            size += os.lstat(os.path.join(folder, name)).st_blocks * 512
                        except OSError:
                            pass
                found.append((entry.stat(follow_symlinks=False).st_mtime, size, entry.path))
        return found

    def remove(self, path: str) -> bool:
        """Remove a copy not launched within busy_seconds; whether it was removed."""
        with _locks[path]:
            try:
                if time.time() - os.stat(path).st_mtime < self.busy_seconds:
                    return False
            except FileNotFoundError:
                return False
            shutil.rmtree(path, ignore_errors=True)
        return True


def launch_view(copy: str, version: str, views_root: str, objects_at: str | None = None) -> str:
    """A bare repository whose one branch is `version` of the hub's copy, named as the copy
    (its URL in the short container is the copy's), its objects the copy's (alternates at
    `objects_at`, where the short container sees the copy: OBJECTS_ROOT/NAME). Remove its
    parent folder after the merge."""
    os.makedirs(views_root, mode=0o755, exist_ok=True)
    parent = tempfile.mkdtemp(prefix="launch-", dir=views_root)
    os.chmod(parent, 0o755)
    view = os.path.join(parent, os.path.basename(copy))
    _git("init", "-q", "--bare", view, cwd=parent)
    objects_at = objects_at or f"{OBJECTS_ROOT}/{os.path.basename(copy)}"
    # Written, not made with git: the objects are where the short container sees them.
    Path(view, "objects", "info", "alternates").write_text(f"{objects_at}/objects\n")
    Path(view, "refs", "heads", BRANCH).write_text(version + "\n")
    Path(view, "HEAD").write_text(f"ref: refs/heads/{BRANCH}\n")
    for path in (Path(view, "objects", "info", "alternates"), Path(view, "refs", "heads", BRANCH)):
        path.chmod(0o644)
    return view


def fetch_and_record(
    request: RepoRequest,
    commit: str,
    ref_name: str | None,
    policy: RepoPolicy,
    workroot: str,
    root: str,
    facts_of_image: Callable[[], frozenset[str]],
) -> tuple[str, str, RepoFiles, list[str]]:
    """Fetch `commit`, read what the repository declares, record its files in the hub's
    copy: (the copy's path, a view of this launch's version in it (launch_view), its files,
    the notes for the spawn page). When it declares nothing to build, what the chosen image
    cannot do for it is refused here, as a build would refuse it."""
    os.makedirs(workroot, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="formspawner-content-", dir=workroot)
    try:
        checkout = Path(workdir, "repo")
        fetch_commit(request, commit, ref_name, str(checkout), policy, time.monotonic() + policy.build_timeout)
        files = read_repository(checkout, policy)
        # A build checks and names these itself, in its log. Without one nothing installs a
        # Python: another version than the image's is a warning (or a refusal).
        notes = [] if files.present else checked_notes(checkout, files, policy, facts_of_image)[0]
        copy, version = record(checkout, commit, request, root)
        return copy, launch_view(copy, version, root + VIEWS_SUFFIX), files, notes
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sync_command(
    copy: str, view: str, storage: str, request: RepoRequest, commit: str
) -> tuple[dict, list[str]]:
    """The short container's extra binds and command (its entry point is python3)."""
    source = f"{SOURCE_ROOT}/{os.path.basename(copy)}"
    binds = {
        view: {"bind": source, "mode": "ro"},
        copy: {"bind": f"{OBJECTS_ROOT}/{os.path.basename(copy)}", "mode": "ro"},
        VENDOR_DIR: {"bind": VENDOR_MOUNT, "mode": "ro"},
        SCRIPT: {"bind": SCRIPT_MOUNT, "mode": "ro"},
    }
    command = [
        SCRIPT_MOUNT,
        "--source", f"file://{source}",
        "--branch", BRANCH,
        "--storage", storage,
        "--name", request.name,
        "--vendor", VENDOR_MOUNT,
        "--note", f"{request.url} at {commit[:12]}",
    ]  # fmt: skip
    return binds, command
