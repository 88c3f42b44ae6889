"""Storage quotas on users' volumes: the one part of the hub that runs as root.

The hub runs unprivileged (its systemd unit: no capabilities, NoNewPrivileges) and cannot
set a filesystem quota; Docker's local volume driver sets one only when it creates a
volume, and only on XFS mounted with project quotas (its `size` option). This small
service does it for the hub, on the volumes the hub names, for every volume whenever it
starts (new ones, ones made before quotas were switched on, a changed size):

- `btrfs` (proven in molecule's backup scenario, a loop-mounted btrfs): a volume's `_data`
  becomes a subvolume with a qgroup limit on what it references. A volume that is a plain
  folder (made by Docker before) is copied into a new subvolume with reflinks (no data
  copied, only metadata), swapped in atomically (renameat2 RENAME_EXCHANGE) and the old
  folder removed: resumable (a half copy is thrown away and made again) and refused while
  any container uses the volume.
- `xfs` (its decisions and commands tested in tests/unit/test_quotad.py; the kernels of
  the project's machines have no XFS quota support): a project id of the volume's own,
  kept in `projects.json` in the service's state directory, set on the folder and all it holds
  (`xfs_quota project -s`), and a hard block limit on that project.

A lowered quota below what a volume holds deletes nothing: further writes fail with
"Disk quota exceeded" until the student removes files.

The protocol: one JSON line in, one JSON line out, over a Unix socket that only the hub's
group may open (systemd's jupyterhub-quota.socket). Requests:
  {"op": "limit", "volume": NAME, "bytes": N}  ->  {"used": U, "limit": N}
  {"op": "usage"}                               ->  {"volumes": {NAME: [U, LIMIT or null]}}
and {"error": "..."} when refused. Only volumes whose name starts with the configured
prefix and that exist under the configured volumes folder are touched; nothing a student
wrote is followed (no symlink of theirs is ever resolved by this program).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http.client import HTTPConnection

VOLUME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
MAX_BYTES = 1 << 60
# A subvolume's root directory has this inode number on btrfs (BTRFS_FIRST_FREE_OBJECTID).
BTRFS_SUBVOLUME_INO = 256
NEW_SUFFIX = ".quota-new"
# XFS project ids of users' volumes start here, far above the ids Docker's own quota
# control hands out (it counts up from the project id of its data root, usually 0).
XFS_FIRST_PROJECT = 1_000_000
RENAME_EXCHANGE = 2
# BTRFS_IOC_INO_LOOKUP (_IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args), 4096 bytes):
# with objectid 256 it answers the subvolume's id, without privileges (btrfs inspect-internal rootid).
BTRFS_IOC_INO_LOOKUP = (3 << 30) | (4096 << 16) | (0x94 << 8) | 18

Runner = Callable[[Sequence[str]], str]


class QuotaRefused(Exception):
    """A request this service will not carry out; its text goes back to the hub."""


class VolumeInUse(QuotaRefused):
    """A volume made before quotas that a container still mounts: left as it is for now."""


def run(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise QuotaRefused(f"{' '.join(command[:3])} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


def volumes_in_use(volume: str, docker_socket: str = "/run/docker.sock") -> list[str]:
    """The containers (running or not) that mount this volume, from Docker's API."""
    filters = json.dumps({"volume": [volume]})
    conn = HTTPConnection("localhost", timeout=30)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(30)
    conn.sock.connect(docker_socket)
    from urllib.parse import quote

    conn.request("GET", f"/containers/json?all=1&filters={quote(filters)}")
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise QuotaRefused(f"Docker did not say which containers use {volume}: {answer.status}")
    return [(c.get("Names") or ["?"])[0].lstrip("/") for c in json.loads(body)]


def exchange(a: str, b: str) -> None:
    """Swap two paths atomically (renameat2 with RENAME_EXCHANGE, Linux 3.15)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, a.encode(), at_fdcwd, b.encode(), RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), a)


class Btrfs:
    """Quotas as btrfs qgroups: each volume's _data a subvolume with a referenced-size limit."""

    name = "btrfs"

    def __init__(self, volumes: str, runner: Runner = run, in_use: Callable[[str], list[str]] = volumes_in_use):
        self.volumes, self.run, self.in_use = volumes, runner, in_use

    def is_subvolume(self, path: str) -> bool:
        return os.lstat(path).st_ino == BTRFS_SUBVOLUME_INO

    def remove(self, path: str) -> None:
        """A leftover of an interrupted move: a subvolume, or a folder."""
        if not os.path.lexists(path):
            return
        if not os.path.islink(path) and os.path.isdir(path) and self.is_subvolume(path):
            # Deleting a subvolume needs it empty of nested subvolumes: there are none
            # (a student cannot make one: that needs CAP_SYS_ADMIN).
            self.run(["btrfs", "subvolume", "delete", path])
        else:
            self.run(["rm", "-rf", "--one-file-system", "--", path])

    def make_subvolume(self, volume: str, data: str) -> None:
        """Turn the volume's plain folder into a subvolume with the same files."""
        users = self.in_use(volume)
        if users:
            raise VolumeInUse(
                f"{volume} is used by {', '.join(users)}: its quota is set at a start when no container uses it"
            )
        new = data + NEW_SUFFIX
        self.remove(new)
        self.run(["btrfs", "subvolume", "create", new])
        info = os.lstat(data)
        os.chown(new, info.st_uid, info.st_gid)
        os.chmod(new, stat.S_IMODE(info.st_mode))
        # -a keeps owners, modes, times and links as links; --reflink shares the data's
        # extents (a copy of metadata only); -T copies what the folder holds into the new one.
        self.run(["cp", "-a", "-T", "--reflink=always", "--", data, new])
        exchange(data, new)
        self.remove(new)  # the old folder, now at the new one's name

    def limit(self, volume: str, data: str, size: int) -> tuple[int, int | None]:
        if not self.is_subvolume(data):
            self.make_subvolume(volume, data)
        else:
            self.remove(data + NEW_SUFFIX)
        self.run(["btrfs", "qgroup", "limit", str(size), data])
        return self.usage_of(data, sync=True)

    def qgroups(self, path: str, sync: bool = False) -> dict[str, tuple[int, int | None]]:
        """Referenced bytes and limit of each qgroup level-0 id ('0/257'); sync: after the
        filesystem has committed what was just written (a transaction: only at a start)."""
        found = {}
        show = ["btrfs", "qgroup", "show", "-re", "--raw", *(["--sync"] if sync else []), path]
        for line in self.run(show).splitlines():
            fields = line.split()
            if len(fields) >= 4 and re.fullmatch(r"0/[0-9]+", fields[0]):
                found[fields[0]] = (int(fields[1]), None if fields[3] == "none" else int(fields[3]))
        return found

    @staticmethod
    def subvolume_id(path: str) -> int:
        """The id of the subvolume `path` is in (its qgroup is 0/id)."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            args = bytearray((0).to_bytes(8, "little") + BTRFS_SUBVOLUME_INO.to_bytes(8, "little") + bytes(4080))
            fcntl.ioctl(fd, BTRFS_IOC_INO_LOOKUP, args)
            return int.from_bytes(args[:8], "little")
        finally:
            os.close(fd)

    def usage_of(self, data: str, sync: bool = False) -> tuple[int, int | None]:
        return self.qgroups(data, sync).get(f"0/{self.subvolume_id(data)}", (0, None))

    def usage(self, names: list[str]) -> dict[str, tuple[int, int | None]]:
        """Every volume's usage from one listing of the filesystem's qgroups (a thousand
        users: one command, not a thousand)."""
        found, listed = {}, None
        for name in names:
            data = os.path.join(self.volumes, name, "_data")
            linked = os.path.islink(data) or os.path.islink(os.path.dirname(data))
            if not linked and os.path.isdir(data) and self.is_subvolume(data):
                if listed is None:
                    listed = self.qgroups(self.volumes)
                found[name] = listed.get(f"0/{self.subvolume_id(data)}", (0, None))
            else:
                found[name] = (None, None)
        return found


class Xfs:
    """Quotas as XFS project quotas: a project id per volume, a hard block limit on it."""

    name = "xfs"

    def __init__(self, volumes: str, mount: str, record: str, runner: Runner = run):
        self.volumes, self.mount, self.record, self.run = volumes, mount, record, runner
        self._record_lock = threading.Lock()  # the service serves volumes side by side

    def projects(self) -> dict[str, int]:
        try:
            with open(self.record) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def project_of(self, volume: str) -> int:
        """The volume's project id, the same at every start (recorded, never reused)."""
        with self._record_lock:
            return self._project_of(volume)

    def _project_of(self, volume: str) -> int:
        projects = self.projects()
        if volume not in projects:
            projects[volume] = max(projects.values(), default=XFS_FIRST_PROJECT - 1) + 1
            temporary = self.record + ".tmp"
            with open(temporary, "w") as f:
                json.dump(projects, f, indent=1, sort_keys=True)
            os.replace(temporary, self.record)
        return projects[volume]

    def quota(self, command: str) -> str:
        return self.run(["xfs_quota", "-x", "-c", command, self.mount])

    def limit(self, volume: str, data: str, size: int) -> tuple[int, int | None]:
        project = self.project_of(volume)
        # -s sets the id (and the inherit flag) on the folder and everything in it; it does
        # not follow symbolic links. Run every time: a file moved in from elsewhere keeps
        # its old project until then.
        self.quota(f"project -s -p {data} {project}")
        self.quota(f"limit -p bhard={size} {project}")
        return self.usage_of(project)

    def report(self) -> dict[int, tuple[int, int | None]]:
        """Used bytes and hard limit per project id (xfs_quota reports 1 KiB blocks)."""
        found = {}
        for line in self.quota("report -p -b -N -n").splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0].startswith("#") and fields[0][1:].isdigit():
                hard = int(fields[3]) * 1024
                found[int(fields[0][1:])] = (int(fields[1]) * 1024, hard or None)
        return found

    def usage_of(self, project: int) -> tuple[int, int | None]:
        return self.report().get(project, (0, None))

    def usage(self, names: list[str]) -> dict[str, tuple[int, int | None]]:
        projects, report = self.projects(), self.report()
        return {name: report.get(projects[name], (0, None)) if name in projects else (None, None) for name in names}


class Service:
    """Checks each request and hands it to the backend; records each volume's limit in
    `record` (JSON), so that `reapply` can set them all again."""

    def __init__(self, backend, volumes: str, prefix: str, record: str | None = None):
        self.backend, self.volumes, self.prefix, self.record = backend, volumes, prefix, record
        # One request at a time per volume (a burst's second start of the same volume waits
        # for the first's move), never one for all: a student whose old volume holds a
        # million files must not hold up everyone else's start.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._record_lock = threading.Lock()

    def lock(self, volume: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(volume, threading.Lock())

    def limits(self) -> dict[str, int]:
        try:
            with open(self.record) as f:
                return json.load(f)
        except (TypeError, FileNotFoundError):
            return {}

    def remember(self, volume: str, size: int) -> None:
        if self.record is None:
            return
        with self._record_lock:
            limits = {**self.limits(), volume: size}
            temporary = self.record + ".tmp"
            with open(temporary, "w") as f:
                json.dump(limits, f, indent=1, sort_keys=True)
            os.replace(temporary, self.record)

    def reapply(self) -> tuple[list[str], list[str]]:
        """Every recorded limit set again (Docker 20.10's btrfs driver turns the filesystem's
        quotas off, and with them every limit, each time dockerd stops: moby#34593, fixed in
        Docker 23). Returns (what failed, what was left): a recorded volume that is gone
        (removed, or not restored yet) and one made before quotas that a container still
        mounts are left, not failed: the hub asks for the limit again at its next start."""
        failed, left = [], []
        for volume, size in sorted(self.limits().items()):
            try:
                data = self.data_folder(volume)
            except QuotaRefused as error:
                left.append(f"{volume}: {error}")
                continue
            try:
                with self.lock(volume):
                    self.backend.limit(volume, data, size)
            except VolumeInUse as error:
                left.append(f"{volume}: {error}")
            except (QuotaRefused, OSError) as error:
                failed.append(f"{volume}: {error}")
        return failed, left

    def data_folder(self, volume: object) -> str:
        if not isinstance(volume, str) or not VOLUME_RE.fullmatch(volume) or not volume.startswith(self.prefix):
            raise QuotaRefused(f"not a user's volume: {volume!r} (names start with {self.prefix!r})")
        data = os.path.join(self.volumes, volume, "_data")
        if os.path.islink(data) or os.path.islink(os.path.dirname(data)) or not os.path.isdir(data):
            raise QuotaRefused(f"no volume {volume} in {self.volumes}")
        return data

    def names(self) -> list[str]:
        return sorted(
            name for name in os.listdir(self.volumes) if name.startswith(self.prefix) and VOLUME_RE.fullmatch(name)
        )

    def handle(self, request: object) -> dict:
        if not isinstance(request, dict):
            raise QuotaRefused("a request is a JSON object")
        op = request.get("op")
        if op == "limit":
            size = request.get("bytes")
            if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_BYTES:
                raise QuotaRefused(f"bytes must be a positive whole number, not {size!r}")
            data = self.data_folder(request.get("volume"))
            with self.lock(request["volume"]):
                used, limit = self.backend.limit(request["volume"], data, size)
            self.remember(request["volume"], size)
            return {"used": used, "limit": limit}
        if op == "usage":
            return {"volumes": {name: list(value) for name, value in self.backend.usage(self.names()).items()}}
        raise QuotaRefused(f"unknown op {op!r}")

    def answer(self, line: bytes) -> bytes:
        try:
            reply = self.handle(json.loads(line))
        except VolumeInUse as error:
            reply = {"error": str(error), "in_use": True}
        except QuotaRefused as error:
            reply = {"error": str(error)}
        except (ValueError, OSError) as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        return json.dumps(reply).encode() + b"\n"

    def serve_connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            line = lines.readline(65536)
            if line:
                conn.sendall(self.answer(line))

    def serve(self, listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=self.serve_connection, args=(conn,), daemon=True).start()


def backend_from(config: dict):
    if config["backend"] == "btrfs":
        return Btrfs(config["volumes"])
    if config["backend"] == "xfs":
        return Xfs(config["volumes"], config["mount"], os.path.join(config["state_dir"], "projects.json"))
    raise SystemExit(f"unknown quota backend {config['backend']!r}")


def main(argv: list[str] | None = None) -> None:
    """quotad CONFIG [SOCKET]: serve (systemd's socket, or SOCKET); quotad --reapply CONFIG:
    set every recorded limit again, once (docker.service's ExecStartPost)."""
    argv = sys.argv[1:] if argv is None else argv
    reapply = argv[:1] == ["--reapply"]
    argv = argv[1:] if reapply else argv
    config_path = argv[0] if argv else "/etc/jupyterhub/quota.json"
    with open(config_path) as f:
        config = json.load(f)
    # The records live in a state directory of their own (systemd's StateDirectory), not
    # beside the settings: a file written there would make the hub's configuration look
    # changed to the role's next run (service_stale) and restart the hub.
    record = os.path.join(config["state_dir"], "limits.json")
    service = Service(backend_from(config), config["volumes"], config["prefix"], record)
    if reapply:
        if config["backend"] == "btrfs":
            run(["btrfs", "quota", "enable", config["mount"]])
        failed, left = service.reapply()
        for line in left:
            print(f"quota left for the volume's next start: {line}", file=sys.stderr)
        for line in failed:
            print(f"quota not set again: {line}", file=sys.stderr)
        sys.exit(1 if failed else 0)
    if os.environ.get("LISTEN_FDS") == "1":  # systemd's socket (jupyterhub-quota.socket)
        listener = socket.socket(fileno=3)
    else:
        path = argv[1]
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
    service.serve(listener)


if __name__ == "__main__":
    main()
