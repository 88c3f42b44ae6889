"""Keep a launched repository in the user's storage, merged as nbgitpuller merges it.

Runs inside the user's image, never in the hub: the hub starts a short container of the
image the server will run (as the image's user, no network) with the user's storage
mounted where the server has it, the hub's copy of the repository (a bare repository,
read-only, see content.py) and nbgitpuller's pull.py (vendor/, unchanged). It needs git
and the image's Python with traitlets (every Jupyter image has it); standard library
otherwise, and nothing from formspawner.

nbgitpuller's rules: the first launch clones; later ones update files the student did not
change, bring back files the student deleted, keep the student's changes (`merge
-Xours`), and rename a file the student made where the instructor now adds one of that
name. What nbgitpuller does silently is reported here: files both changed get the
instructor's version saved beside them and a report file in the folder.

The student's folder is input, not configuration: git obeys a repository's `.git/config`
(hooks, fsmonitor, filters, merge and diff drivers, signing, upload-pack), so every such
setting is overridden for the git this script and nbgitpuller run (GIT_CONFIG_PARAMETERS,
the level of `git -c`, which wins over every file); files this script writes there are
opened without following a symbolic link on the way (a repository can ship one).

Output: progress lines on stdout, then one line `FORMSPAWNER-RESULT {json}`. Exit 0 when
the folder is up to date, 1 when the merge failed (the folder is left as it was before
the merge), 2 when the image cannot do it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import types

RESULT = "FORMSPAWNER-RESULT "
REPORT = "CONFLICTS-FROM-UPDATE.txt"
REPORT_HEADER = "Changes kept from your copy of this folder"
MAX_OTHER_FOLDERS = 9


# Settings that make git run a program, wait, sign or talk to anything but the hub's copy,
# whatever the student's .git/config says. Aliases need none: git never lets an alias
# replace a built-in command, and only built-in commands run here.
FIXED_SETTINGS = {
    "core.fsmonitor": "false",
    "core.pager": "cat",
    "core.editor": "true",
    "sequence.editor": "true",
    "core.askpass": "",
    "core.sshcommand": "false",
    "core.alternaterefscommand": "",
    "credential.helper": "",
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
    "merge.verifysignatures": "false",
    "gpg.program": "false",
    "gc.auto": "0",
    "maintenance.auto": "false",
}
# Per-driver settings the folder may name (filter=, diff=, merge= in .gitattributes), and
# what each becomes: no filter, no external diff, and a merge that keeps the student's
# lines as -Xours does for the built-in driver (nbdime's driver is the common one).
DRIVER_SETTINGS = (
    (re.compile(r"filter\.(.+)\.(clean|smudge|process)"), ""),
    (re.compile(r"filter\.(.+)\.required"), "false"),
    (re.compile(r"diff\.(.+)\.(command|textconv)"), ""),
    (re.compile(r"merge\.(.+)\.driver"), "git merge-file --ours --marker-size=%L %A %O %B"),
    (re.compile(r"merge\.(.+)\.recursive"), "binary"),
)
# Settings git reads first-one-wins (remote.c: "more than one uploadpack given, using the
# first"), so the folder's value would beat any override: a merge is refused while they are set.
REFUSED_SETTINGS = re.compile(r"remote\.(.+)\.(uploadpack|receivepack)")
_SAFE_KEY = re.compile(r"[A-Za-z0-9.\-_][^=\0\n']*")


def git_overrides(folder: str | None, hooks: str) -> str:
    """GIT_CONFIG_PARAMETERS for every git run in `folder` (None: not cloned yet): the fixed
    settings, an empty hooks folder, and each driver setting its config defines, neutralised.
    ValueError names a setting that cannot be overridden this way."""
    settings = dict(FIXED_SETTINGS, **{"core.hookspath": hooks})
    if folder is not None and os.path.isdir(os.path.join(folder, ".git")):
        env = {key: value for key, value in os.environ.items() if key != "GIT_CONFIG_PARAMETERS"}
        listed = subprocess.run(
            ["git", "config", "--list", "--name-only", "-z"], cwd=folder, capture_output=True, env=env, check=False
        )
        for key in names(listed.stdout):
            if REFUSED_SETTINGS.fullmatch(key):
                raise ValueError(
                    f"your folder's git settings set {key}, which runs a program of its choice: "
                    f"remove it (git config --unset {key})"
                )
            for pattern, value in DRIVER_SETTINGS:
                if pattern.fullmatch(key):
                    if not _SAFE_KEY.fullmatch(key):
                        raise ValueError(f"your folder's git settings name {key!r}, which the update cannot switch off")
                    settings[key] = value
    return " ".join(_sq(f"{key}={value}") for key, value in settings.items())


def _sq(word: str) -> str:
    """A word quoted as git's sq_dequote reads it (GIT_CONFIG_PARAMETERS)."""
    return "'" + word.replace("'", "'\\''") + "'"


def printable(name: str) -> str:
    """A file name as one line of text: control characters as \\xNN escapes."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in name)


def open_inside(folder: str, path: str, flags: int) -> int:
    """A file descriptor for `path` under `folder`, no component of which may be a symbolic
    link; the file must be a regular file (a FIFO or a device is refused without waiting)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(f"{path!r} is not a path inside the folder")
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=directory)
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path!r} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def write_inside(folder: str, path: str, data: bytes) -> None:
    """Write `path` under `folder` without following a symbolic link (open_inside)."""
    fd = open_inside(folder, path, os.O_WRONLY | os.O_CREAT)
    with os.fdopen(fd, "wb") as out:
        out.truncate(0)
        out.write(data)


def same_content(folder: str, path: str, data: bytes) -> bool:
    """Whether `path` under `folder` is a regular file holding exactly `data`."""
    try:
        fd = open_inside(folder, path, os.O_RDONLY)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as mine:
        return mine.read(len(data) + 1) == data


def say(line: str) -> None:
    print(line, flush=True)


def git(*args: str, cwd: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=check)


def names(output: bytes) -> set[str]:
    return {name.decode("utf-8", "surrogateescape") for name in output.split(b"\0") if name}


def revision(folder: str, ref: str) -> str:
    done = git("rev-parse", "--verify", "-q", ref + "^{commit}", cwd=folder, check=False)
    return done.stdout.decode().strip() if done.returncode == 0 else ""


def is_this_repository(folder: str, source: str) -> bool:
    if not os.path.isdir(os.path.join(folder, ".git")):
        return False
    done = git("config", "--get", "remote.origin.url", cwd=folder, check=False)
    return done.returncode == 0 and done.stdout.decode().strip() == source


def choose_folder(storage: str, name: str, source: str) -> str:
    """The folder named after the repository, or NAME-2 ... when that name holds something else."""
    for number in range(1, MAX_OTHER_FOLDERS + 1):
        candidate = name if number == 1 else f"{name}-{number}"
        path = os.path.join(storage, candidate)
        if not os.path.lexists(path) or is_this_repository(path, source):
            if number > 1:
                say(f"{name} in your storage is not this repository's folder: using {candidate}")
            return candidate
    raise SystemExit(fail(f"{name} and {name}-2 to -{MAX_OTHER_FOLDERS} in your storage all hold other files", 2))


def fail(message: str, code: int) -> int:
    say(RESULT + json.dumps({"error": message}))
    return code


def instructor_copy(path: str) -> str:
    head, tail = os.path.split(path)
    stem, ext = os.path.splitext(tail)
    return os.path.join(head, f"{stem}.from-instructor{ext}")


def load_puller(vendor: str):
    """nbgitpuller's GitPuller from pull.py, without the package's __init__ (which loads
    its Jupyter server extension)."""
    package = types.ModuleType("nbgitpuller")
    package.__path__ = [os.path.join(vendor, "nbgitpuller")]
    sys.modules["nbgitpuller"] = package
    from nbgitpuller.pull import GitPuller  # noqa: PLC0415

    return GitPuller


def changes_before(folder: str, branch: str) -> tuple[str, set[str], set[str]]:
    """Before the merge: the commit last synchronised, the files the student changed since
    (committed by an earlier merge or not) and the files they deleted."""
    old = revision(folder, f"refs/remotes/origin/{branch}")
    if not old:
        return "", set(), set()
    changed = names(git("diff", "--name-only", "-z", "--diff-filter=M", old, cwd=folder).stdout)
    deleted = names(git("ls-files", "--deleted", "-z", cwd=folder).stdout)
    return old, changed, deleted


def connect_histories(folder: str, branch: str, old: str) -> None:
    """When the hub's copy was made anew (lost, or restored without it), its versions do
    not descend from the one this folder last had, and git would find no base to merge
    from. Graft the new chain's first version onto the old one, in this folder only
    (refs/replace): the merge then compares with what the student last received, as
    nbgitpuller's rules need."""
    fetched = git("fetch", "-q", "origin", cwd=folder, check=False)
    new = revision(folder, f"refs/remotes/origin/{branch}")
    if fetched.returncode != 0 or not new or old == new:
        return
    if git("merge-base", "--is-ancestor", old, new, cwd=folder, check=False).returncode == 0:
        return
    roots = git("rev-list", "--max-parents=0", new, cwd=folder).stdout.decode().split()
    for root in roots:
        git("replace", "-f", "--graft", root, old, cwd=folder)
    say("The hub's copy of the repository was made anew: merging from the version you last had")


def write_report(folder: str, conflicts: list[tuple[str, str]], renamed: list[str], commit_note: str) -> None:
    # An earlier report stays until a later update has something to report (it names its version).
    if not conflicts and not renamed:
        return
    lines = [f"{REPORT_HEADER} ({commit_note})", ""]
    if conflicts:
        lines += [
            "You and the instructor both changed these files. Your version is kept (where you changed",
            "the same lines, your lines win; the instructor's other changes are merged in).",
            "The instructor's new version is saved beside each one:",
            "",
            *(f"  {printable(path)}  ->  instructor's version: {printable(copy)}" for path, copy in conflicts),
            "",
        ]
    if renamed:
        lines += ["The instructor added files with the names of files you had made; yours were renamed:", ""]
        lines += [f"  {printable(line)}" for line in renamed] + [""]
    try:
        write_inside(folder, REPORT, "\n".join(lines).encode("utf-8", "surrogateescape"))
    except OSError as error:
        say(f"Not writing {REPORT}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the hub's copy, a file:// URL")
    parser.add_argument("--branch", required=True)
    parser.add_argument("--storage", required=True, help="where the user's storage is mounted")
    parser.add_argument("--name", required=True, help="the folder's name (the repository's)")
    parser.add_argument("--vendor", required=True, help="the folder holding nbgitpuller/pull.py")
    parser.add_argument("--note", default="", help="what is being synchronised, for the report")
    args = parser.parse_args(argv)

    if shutil.which("git") is None:
        return fail("this image has no git", 2)
    try:
        GitPuller = load_puller(args.vendor)
    except ImportError as error:
        return fail(f"this image's Python cannot run nbgitpuller ({error})", 2)
    # The hub's copy belongs to the hub's user: trust it (and only it) for git's ownership
    # check, which reads safe.directory from the global config only (git 2.39).
    config_dir = tempfile.mkdtemp(prefix="formspawner-git-")
    global_config = os.path.join(config_dir, "gitconfig")
    with open(global_config, "w", encoding="utf-8") as out:
        out.write(f"[safe]\n\tdirectory = {args.source.removeprefix('file://')}\n")
    hooks = os.path.join(config_dir, "no-hooks")
    os.mkdir(hooks)
    os.environ.update(GIT_CONFIG_GLOBAL=global_config, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    os.environ.update(GIT_EDITOR="true", GIT_PAGER="cat", GIT_ASKPASS="", GIT_SSH_COMMAND="false")
    # Only the hub's copy, over file://, whatever protocol.*.allow or remote.*.vcs say
    # (this variable overrides them all).
    os.environ["GIT_ALLOW_PROTOCOL"] = "file"
    os.environ.pop("GIT_CONFIG_PARAMETERS", None)
    os.environ["GIT_CONFIG_PARAMETERS"] = git_overrides(None, hooks)
    name = choose_folder(args.storage, args.name, args.source)
    folder = os.path.join(args.storage, name)
    try:
        os.environ["GIT_CONFIG_PARAMETERS"] = git_overrides(folder, hooks)
    except ValueError as error:
        return fail(f"{error}; your files are as they were", 1)
    result: dict = {"folder": name, "cloned": not os.path.exists(folder)}
    result.update(conflicts=[], renamed=[], restored=[])
    old = ""
    changed: set[str] = set()
    if not result["cloned"]:
        old, changed, deleted = changes_before(folder, args.branch)
        result["restored"] = sorted(deleted)
        if old:
            connect_histories(folder, args.branch, old)
        say(f"Bringing the repository's changes into {name}, keeping yours")
    else:
        say(f"Copying the repository into {name}")
    before_merge = revision(folder, "HEAD") if not result["cloned"] else ""
    try:
        # depth 0: the folder keeps the hub's whole chain of launched versions, so a later
        # merge always finds the version it last had.
        for line in GitPuller(args.source, folder, branch=args.branch, depth=0).pull():
            line = line.rstrip()
            if line.startswith("Renamed "):
                result["renamed"].append(line.replace(folder + "/", ""))
            if line:
                say(line)
    except Exception as error:  # git's CalledProcessError, and nbgitpuller's bare Exceptions
        if before_merge and os.path.isdir(os.path.join(folder, ".git")):
            git("merge", "--abort", cwd=folder, check=False)
        said = getattr(error, "stderr", None) or ""
        said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        detail = f"{error}" + (f": {said.strip().splitlines()[-1]}" if said.strip() else "")
        return fail(f"the merge failed ({detail}); your files are as they were before it", 1)
    new = revision(folder, f"refs/remotes/origin/{args.branch}")
    if old and new and old != new:
        theirs = names(git("diff", "--name-only", "-z", "--diff-filter=M", old, new, cwd=folder).stdout)
        for path in sorted(changed & theirs):
            instructor = git("show", f"{new}:{path}", cwd=folder).stdout
            if same_content(folder, path, instructor):
                continue  # the same change on both sides: nothing to tell
            copy = instructor_copy(path)
            try:
                write_inside(folder, copy, instructor)
            except OSError as error:
                say(f"Not saving the instructor's version of {printable(path)}: {error}")
                continue
            result["conflicts"].append([path, copy])
    write_report(folder, [tuple(pair) for pair in result["conflicts"]], result["renamed"], args.note)
    say(RESULT + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
