"""The quota service (formspawner.quotad) and the hub's client of it (formspawner.quota).

btrfs is real here: a file holding a btrfs filesystem, loop-mounted, with quotas on (as
root; the project's machines and CI run the tiers as root, and the kernel has btrfs and
loop devices). XFS is not: these kernels have no XFS quota support (CONFIG_QUOTA off), so
its backend's decisions and the exact commands it runs are checked with a recording runner,
and the molecule backup scenario proves btrfs through a real hub.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from formspawner import quota, quotad

MiB = 1 << 20
# Skipped only off CI, for a developer without root: in CI (`make unit` installs
# btrfs-progs) a missing part fails the test instead of hiding it.
needs_root = pytest.mark.skipif(
    not os.environ.get("CI")
    and (os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None or not os.path.exists("/dev/loop-control")),
    reason="needs root, btrfs-progs and loop devices (the CI machine has them)",
)


# -- XFS: the commands, recorded ------------------------------------------------------------


class Recorder:
    def __init__(self, report: str = ""):
        self.commands, self.report = [], report

    def __call__(self, command):
        self.commands.append(list(command))
        return self.report if "report" in command[3] else ""


REPORT = """#0                 0          0          0     00 [--------]
#1000000        10240      51200      51200     00 [--------]
#1000001            4          0          0     00 [--------]
"""


def test_xfs_gives_each_volume_a_project_of_its_own_and_limits_it(tmp_path):
    runner = Recorder(REPORT)
    xfs = quotad.Xfs("/var/lib/docker/volumes", "/var/lib/docker", str(tmp_path / "projects.json"), runner)
    data = "/var/lib/docker/volumes/jupyterhub-user-ada/_data"
    assert xfs.limit("jupyterhub-user-ada", data, 50 * MiB) == (10 * MiB, 50 * MiB)
    assert runner.commands == [
        ["xfs_quota", "-x", "-c", f"project -s -p {data} 1000000", "/var/lib/docker"],
        ["xfs_quota", "-x", "-c", f"limit -p bhard={50 * MiB} 1000000", "/var/lib/docker"],
        ["xfs_quota", "-x", "-c", "report -p -b -N -n", "/var/lib/docker"],
    ]
    # A second volume gets the next id; the first keeps its own at every start (recorded).
    xfs.limit("jupyterhub-user-bob", data.replace("ada", "bob"), MiB)
    xfs.limit("jupyterhub-user-ada", data, 2 * MiB)
    assert json.loads((tmp_path / "projects.json").read_text()) == {
        "jupyterhub-user-ada": 1000000,
        "jupyterhub-user-bob": 1000001,
    }
    assert runner.commands[-2][3] == f"limit -p bhard={2 * MiB} 1000000"
    # Usage: a project with no hard limit reads as none; a volume never limited as unknown.
    assert xfs.usage(["jupyterhub-user-ada", "jupyterhub-user-bob", "jupyterhub-user-cy"]) == {
        "jupyterhub-user-ada": (10 * MiB, 50 * MiB),
        "jupyterhub-user-bob": (4096, None),
        "jupyterhub-user-cy": (None, None),
    }


def test_a_failed_command_is_refused_with_what_it_said():
    with pytest.raises(quotad.QuotaRefused, match="^sh -c echo .* failed: xfs_quota: not mounted with prjquota$"):
        quotad.run(["sh", "-c", "echo 'xfs_quota: not mounted with prjquota' >&2; exit 1"])
    with pytest.raises(quotad.QuotaRefused, match="^false failed"):
        quotad.run(["false"])


# -- btrfs: real, on a loop-mounted file ------------------------------------------------------


@pytest.fixture
def btrfs(tmp_path):
    image, mount = tmp_path / "fs.btrfs", tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "300M", image], check=True)
    subprocess.run(["mkfs.btrfs", "-q", image], check=True)
    subprocess.run(["mount", "-o", "loop", image, mount], check=True)
    try:
        subprocess.run(["btrfs", "quota", "enable", mount], check=True)
        (mount / "volumes").mkdir()
        yield mount
    finally:
        subprocess.run(["umount", mount], check=True)


def plain_volume(mount: Path, name: str) -> Path:
    """A volume as Docker makes it (a plain folder), holding a student's files."""
    data = mount / "volumes" / name / "_data"
    (data / "work").mkdir(parents=True)
    (data / "work" / "thesis.txt").write_text("chapter one\n")
    (data / "work" / "big").write_bytes(os.urandom(3 * MiB))
    os.link(data / "work" / "thesis.txt", data / "work" / "hardlink.txt")
    os.symlink("/etc/shadow", data / "work" / "shadow")  # a student's link: never followed
    os.mkfifo(data / "work" / "fifo")  # a FIFO: never opened (cp would block on it)
    for path in [data, *data.rglob("*")]:
        os.lchown(path, 1000, 100)
    os.chmod(data, 0o755)
    return data


def write(path: Path, size: int) -> int:
    """Bytes written before the filesystem refused (or size)."""
    written = 0
    try:
        with open(path, "wb") as f:
            while written < size:
                written += f.write(os.urandom(MiB))
                f.flush()
                os.fsync(f.fileno())
    except OSError as error:
        assert error.errno == errno.EDQUOT, error
    return written


@needs_root
def test_a_volume_made_before_becomes_a_subvolume_under_its_quota_with_every_file_kept(btrfs):
    data = plain_volume(btrfs, "jupyterhub-user-ada")
    backend = quotad.Btrfs(str(btrfs / "volumes"), in_use=lambda volume: [])
    used, limit = backend.limit("jupyterhub-user-ada", str(data), 20 * MiB)
    assert limit == 20 * MiB and 3 * MiB <= used < 5 * MiB
    assert data.stat().st_ino == quotad.BTRFS_SUBVOLUME_INO
    work = data / "work"
    assert (work / "thesis.txt").read_text() == "chapter one\n"
    assert os.path.samefile(work / "thesis.txt", work / "hardlink.txt")
    assert os.readlink(work / "shadow") == "/etc/shadow" and (work / "fifo").is_fifo()
    assert (data.stat().st_uid, data.stat().st_gid, oct(data.stat().st_mode & 0o777)) == (1000, 100, "0o755")
    assert (work / "big").stat().st_uid == 1000
    assert not (data.parent / ("_data" + quotad.NEW_SUFFIX)).exists()
    # The quota holds: writes stop at it with "Disk quota exceeded"; the rest stays writable.
    assert write(work / "fill", 40 * MiB) < 20 * MiB
    (btrfs / "outside").write_bytes(b"x" * MiB)
    # A lowered quota below what is held deletes nothing; the student can still delete.
    backend.limit("jupyterhub-user-ada", str(data), 2 * MiB)
    assert (work / "thesis.txt").read_text() == "chapter one\n"
    (work / "fill").unlink()
    assert backend.usage(["jupyterhub-user-ada", "jupyterhub-user-none"])["jupyterhub-user-none"] == (None, None)
    # The subvolume's id through the ioctl is the one btrfs-progs reports.
    rootid = subprocess.run(["btrfs", "inspect-internal", "rootid", data], capture_output=True, text=True, check=True)
    assert quotad.Btrfs.subvolume_id(str(data)) == int(rootid.stdout) >= 256  # the top level is 5


@needs_root
def test_a_volume_in_use_is_not_moved_and_an_interrupted_move_is_made_again(btrfs):
    data = plain_volume(btrfs, "jupyterhub-user-bob")
    busy = quotad.Btrfs(str(btrfs / "volumes"), in_use=lambda volume: ["jupyter-bob"])
    with pytest.raises(quotad.VolumeInUse, match="jupyterhub-user-bob is used by jupyter-bob"):
        busy.limit("jupyterhub-user-bob", str(data), 20 * MiB)
    # The hub hears it as "in use" (it starts the server and tries again at the next start).
    service = quotad.Service(busy, str(btrfs / "volumes"), "jupyterhub-user-")
    answer = json.loads(service.answer(b'{"op": "limit", "volume": "jupyterhub-user-bob", "bytes": 1048576}'))
    assert answer == {"error": "jupyterhub-user-bob is used by jupyter-bob: its quota is set at a start when no "
                      "container uses it", "in_use": True}  # fmt: skip
    assert data.stat().st_ino != quotad.BTRFS_SUBVOLUME_INO and (data / "work/thesis.txt").exists()
    # A move that died half-way left a partial copy: thrown away, made again.
    leftover = data.parent / ("_data" + quotad.NEW_SUFFIX)
    subprocess.run(["btrfs", "subvolume", "create", leftover], check=True, capture_output=True)
    (leftover / "half").write_text("half a copy")
    free = quotad.Btrfs(str(btrfs / "volumes"), in_use=lambda volume: [])
    free.limit("jupyterhub-user-bob", str(data), 20 * MiB)
    assert sorted(p.name for p in data.iterdir()) == ["work"] and not leftover.exists()


@needs_root
def test_the_service_touches_only_users_volumes_and_follows_no_link(btrfs, tmp_path):
    volumes = btrfs / "volumes"
    plain_volume(btrfs, "jupyterhub-user-ada")
    (volumes / "other-volume" / "_data").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    (outside / "_data").mkdir(parents=True)
    os.symlink(outside, volumes / "jupyterhub-user-link")
    service = quotad.Service(quotad.Btrfs(str(volumes), in_use=lambda v: []), str(volumes), "jupyterhub-user-")

    def refused(request):
        answer = json.loads(service.answer(json.dumps(request).encode()))
        assert set(answer) == {"error"}, answer
        return answer["error"]

    assert "not a user's volume: 'other-volume'" in refused({"op": "limit", "volume": "other-volume", "bytes": MiB})
    assert "not a user's volume" in refused({"op": "limit", "volume": "jupyterhub-user-../x", "bytes": MiB})
    assert "no volume jupyterhub-user-link" in refused({"op": "limit", "volume": "jupyterhub-user-link", "bytes": MiB})
    assert "no volume jupyterhub-user-cy" in refused({"op": "limit", "volume": "jupyterhub-user-cy", "bytes": MiB})
    for size in (0, -1, True, "1G", 1 << 61):
        request = {"op": "limit", "volume": "jupyterhub-user-ada", "bytes": size}
        assert "bytes must be a positive whole number" in refused(request)
    assert "unknown op 'delete'" in refused({"op": "delete"})
    assert "a request is a JSON object" in refused([1])
    assert "JSONDecodeError" in json.loads(service.answer(b"{"))["error"]
    answer = json.loads(service.answer(b'{"op": "limit", "volume": "jupyterhub-user-ada", "bytes": 10485760}'))
    assert answer["limit"] == 10 * MiB
    usage = json.loads(service.answer(b'{"op": "usage"}'))["volumes"]
    # Listed: users' volumes only (a link is listed by name but never read through).
    assert sorted(usage) == ["jupyterhub-user-ada", "jupyterhub-user-link"]
    assert usage["jupyterhub-user-ada"][1] == 10 * MiB and usage["jupyterhub-user-link"] == [None, None]
    assert not (outside / "_data").stat().st_ino == quotad.BTRFS_SUBVOLUME_INO


# -- the hub's client, over a real Unix socket ----------------------------------------------


class StandIn:
    """A backend that records what it was asked (the socket and protocol are real)."""

    def __init__(self):
        self.asked = []

    def limit(self, volume, data, size):
        self.asked.append((volume, size))
        return 7 * MiB, size

    def usage(self, names):
        return {name: (MiB, None) for name in names}


def test_the_hub_asks_over_the_socket_and_hears_refusals(tmp_path):
    volumes = tmp_path / "volumes"
    (volumes / "jupyterhub-user-ada" / "_data").mkdir(parents=True)
    backend = StandIn()
    service = quotad.Service(backend, str(volumes), "jupyterhub-user-")
    path = str(tmp_path / "quota.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    threading.Thread(target=service.serve, args=(listener,), daemon=True).start()

    async def scenario():
        assert await quota.limit(path, "jupyterhub-user-ada", 50 * MiB) == (7 * MiB, 50 * MiB)
        assert await quota.usage(path) == {"jupyterhub-user-ada": (MiB, None)}
        with pytest.raises(quota.QuotaUnavailable, match="no volume jupyterhub-user-bob"):
            await quota.limit(path, "jupyterhub-user-bob", MiB)
        with pytest.raises(quota.QuotaUnavailable, match="does not answer"):
            await quota.limit(str(tmp_path / "absent.sock"), "jupyterhub-user-ada", MiB)

    asyncio.run(scenario())
    assert backend.asked == [("jupyterhub-user-ada", 50 * MiB)]
    assert quota.describe(5 * MiB // 4 * 1024, 5 << 30) == "1.25 GB of 5 GB used (25%)"
    assert quota.describe(None, 5 << 30) == quota.describe(MiB, None) == ""


def test_a_start_is_refused_while_the_disk_is_almost_full(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    quota.check_free_space(str(tmp_path), free // 2, "starting a server")
    quota.check_free_space(str(tmp_path), 0, "starting a server")
    with pytest.raises(quota.UserFacingError, match=r"almost full \(.* free, the hub keeps .*\): starting a server is"):
        quota.check_free_space(str(tmp_path), free * 2, "starting a server")


@needs_root
def test_limits_lost_with_the_filesystems_quotas_are_set_again_from_the_record(btrfs, tmp_path):
    """Docker 20.10 turns btrfs quotas off at each stop (moby#34593), every limit with them:
    jupyterhub-quota-reapply.service runs `quotad --reapply` after each start of Docker."""
    data = plain_volume(btrfs, "jupyterhub-user-ada")
    volumes = str(btrfs / "volumes")
    record = str(tmp_path / "quota-limits.json")
    service = quotad.Service(quotad.Btrfs(volumes, in_use=lambda v: []), volumes, "jupyterhub-user-", record)
    service.answer(json.dumps({"op": "limit", "volume": "jupyterhub-user-ada", "bytes": 20 * MiB}).encode())
    assert json.loads(Path(record).read_text()) == {"jupyterhub-user-ada": 20 * MiB}
    subprocess.run(["btrfs", "quota", "disable", btrfs], check=True)
    assert write(data / "work" / "free", 30 * MiB) == 30 * MiB, "no quota: the write goes through"
    (data / "work" / "free").unlink()
    subprocess.run(["btrfs", "quota", "enable", btrfs], check=True)
    assert service.reapply() == ([], [])
    assert write(data / "work" / "fill", 40 * MiB) < 20 * MiB
    # A recorded volume that is gone (removed, or not restored yet) is left, not failed:
    # the restore's converge runs the reapply before the volumes are back.
    service.remember("jupyterhub-user-gone", MiB)
    assert service.reapply() == ([], [f"jupyterhub-user-gone: no volume jupyterhub-user-gone in {volumes}"])
    # So is one made before quotas that a container mounts; its limit waits for its next start.
    plain_volume(btrfs, "jupyterhub-user-busy")
    service.remember("jupyterhub-user-busy", MiB)
    busy = quotad.Service(quotad.Btrfs(volumes, in_use=lambda v: ["jupyter-busy"]), volumes, "jupyterhub-user-", record)
    failed, left = busy.reapply()
    assert failed == [] and any(line.startswith("jupyterhub-user-busy: ") and "jupyter-busy" in line for line in left)
    # A limit the filesystem refuses is a failure (quotas off: btrfs says so).
    subprocess.run(["btrfs", "quota", "disable", btrfs], check=True)
    failed, _ = service.reapply()
    assert [line.split(":")[0] for line in failed] == ["jupyterhub-user-ada", "jupyterhub-user-busy"], failed


@needs_root
def test_the_reapply_command_turns_quotas_on_and_sets_the_recorded_limits(btrfs, tmp_path):
    """`python -m formspawner.quotad --reapply CONFIG`, as jupyterhub-quota-reapply.service
    runs it: the records are in the settings' state_dir, never beside the settings."""
    data = plain_volume(btrfs, "jupyterhub-user-ada")
    state, etc = tmp_path / "state", tmp_path / "etc"
    state.mkdir()
    etc.mkdir()
    config = etc / "quota.json"
    config.write_text(json.dumps({"backend": "btrfs", "mount": str(btrfs), "volumes": str(btrfs / "volumes"),
                                  "prefix": "jupyterhub-user-", "state_dir": str(state)}))  # fmt: skip
    volumes = str(btrfs / "volumes")
    service = quotad.Service(quotad.Btrfs(volumes, in_use=lambda v: []), volumes, "jupyterhub-user-",
                             str(state / "limits.json"))  # fmt: skip
    service.answer(b'{"op": "limit", "volume": "jupyterhub-user-ada", "bytes": 20971520}')
    subprocess.run(["btrfs", "quota", "disable", btrfs], check=True)
    with pytest.raises(SystemExit) as ended:
        quotad.main(["--reapply", str(config)])
    assert ended.value.code == 0
    assert write(data / "work" / "fill", 40 * MiB) < 20 * MiB
    assert [p.name for p in etc.iterdir()] == ["quota.json"] and [p.name for p in state.iterdir()] == ["limits.json"]
