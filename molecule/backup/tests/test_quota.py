"""Storage quotas for real: Docker's data (/srv/docker) on a loop-mounted btrfs file (docker_data_loop_size),
a 60M quota on each user's volume and a 100M writable layer per server (molecule.yml).

Runs after test_backup.py on the same target (one worker per target, files in order):
keeper's volume was restored onto the wiped server as a plain folder, a volume made before
its quota, and keeper's start in test_backup.py put it under the quota; Docker has since
been restarted (test_the_network_policy_holds_on_the_restored_server).
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
import scenario  # noqa: E402  (molecule/shared, beside the scenarios)
from hubapi import api, launch_course_repo, metrics, user_id, wait_ready  # noqa: E402

MIB = 1024 * 1024
KEEPER = "/srv/docker/volumes/jupyterhub-user-keeper/_data"


def qgroup_of(host, data: str) -> tuple[int, int]:
    """Referenced bytes and limit of the subvolume at `data`, as btrfs reports them."""
    rootid = host.check_output(f"btrfs inspect-internal rootid {data}")
    for line in host.check_output("btrfs qgroup show -re --raw --sync /srv/docker").splitlines():
        fields = line.split()
        if fields and fields[0] == f"0/{rootid}":
            return int(fields[1]), int(fields[3]) if fields[3] != "none" else None
    raise AssertionError(f"no qgroup 0/{rootid}")


def test_dockers_data_is_on_the_loop_mounted_btrfs_with_quotas_on(host):
    fstype, source = host.check_output("findmnt -n -o FSTYPE,SOURCE --mountpoint /srv/docker").split()
    assert fstype == "btrfs" and source.startswith("/dev/loop"), source
    assert host.check_output("losetup -n -O BACK-FILE %s", source) == "/var/lib/docker/data.btrfs"
    assert host.check_output("docker info -f '{{.Driver}}'") == "btrfs"
    assert host.run("btrfs qgroup show /srv/docker").rc == 0
    assert host.service("srv-docker.mount").is_enabled
    assert host.service("jupyterhub-quota.socket").is_enabled
    socket = host.file("/run/jupyterhub-quota.sock")
    assert socket.is_socket and socket.mode == 0o660 and socket.group == "jupyterhub"
    # The limits set are recorded for the reapply after each start of Docker, in the
    # service's own state directory: not beside the hub's settings, whose change would
    # restart the hub at the role's next run.
    record = host.file("/var/lib/jupyterhub-quota/limits.json")
    assert record.exists and record.user == "root" and host.file("/var/lib/jupyterhub-quota").mode == 0o700
    assert not host.file("/etc/jupyterhub/quota-limits.json").exists


def test_the_restored_volume_got_its_quota_at_its_users_start_and_kept_its_files(host):
    assert host.check_output(f"stat -c %i {KEEPER}") == "256"  # a subvolume's root
    used, limit = qgroup_of(host, KEEPER)
    assert limit == 60 * MIB and used < 10 * MIB
    assert host.check_output(f"cat {KEEPER}/thesis.txt") == "chapter one"
    assert host.check_output(f"stat -c %u {KEEPER}/thesis.txt") == user_id(host, "keeper")
    assert not host.file(KEEPER + ".quota-new").exists


def test_a_full_storage_says_disk_quota_exceeded_and_another_student_and_the_hub_keep_working(host):
    wait_ready(host, "keeper")
    fill = host.run("docker exec jupyter-keeper dd if=/dev/zero of=/home/jovyan/work/fill bs=1M count=100")
    assert fill.rc != 0 and "Disk quota exceeded" in fill.stderr, fill.stderr
    written = int(host.check_output("docker exec jupyter-keeper stat -c %s /home/jovyan/work/fill"))
    assert 40 * MIB < written <= 60 * MIB
    # The disk is not full: another student's server is built from a repository (the Git
    # server the side effect runs) and starts, the student writes, and the hub answers.
    assert api(host, "POST", "/users/second")[0] in (201, 409)
    run = launch_course_repo(host, "second")
    assert host.check_output(f"{run} sh -c 'echo fine > work/note && cat work/note'") == "fine"
    status, users = api(host, "GET", "/users")
    assert status == 200 and {"keeper", "second"} <= {u["name"] for u in users}
    # The second student's new volume is under its own quota from its first start.
    assert qgroup_of(host, "/srv/docker/volumes/jupyterhub-user-second/_data")[1] == 60 * MIB
    # keeper's home page says what the storage held at the server's last start (logged in
    # by test_backup.py, cookies in /tmp/jar).
    home = host.check_output("curl -sk -b /tmp/jar https://localhost/hub/home")
    assert re.search("Your storage at your server(&#39;|')s last start:", home), home[-2000:]
    assert "of 60 MB used" in home, home[-2000:]
    # keeper deletes the file (a full quota still lets a student delete) and writes again.
    host.check_output("docker exec jupyter-keeper rm /home/jovyan/work/fill")
    host.check_output("docker exec jupyter-keeper sh -c 'echo two > /home/jovyan/work/chapter2.txt'")


def test_what_a_server_writes_outside_its_storage_is_bounded_too(host):
    """/tmp, pip install, conda: the container's writable layer (layer_quota 100M; on btrfs
    the spawner adds the image's size, which Docker's btrfs driver counts too). Checked
    after Docker's restart (test_backup.py), which Docker 20.10 ends by turning quotas off."""
    fill = host.run("docker exec jupyter-keeper dd if=/dev/zero of=/tmp/fill bs=1M count=300")
    assert fill.rc != 0 and "Disk quota exceeded" in fill.stderr, fill.stderr
    written = int(host.check_output("docker exec jupyter-keeper stat -c %s /tmp/fill"))
    # Less than the 100M: the image takes a little more on btrfs (its metadata) than the
    # size Docker reports and the spawner adds, and the server has written its own files.
    assert 20 * MIB < written <= 100 * MIB
    host.check_output("docker exec jupyter-keeper rm /tmp/fill")
    size = host.check_output("docker inspect -f '{{.HostConfig.StorageOpt.size}}' jupyter-keeper")
    image = host.check_output("docker image inspect -f '{{.Size}}' jhtest-registry:5000/jhtest/singleuser:minimal")
    assert int(size) == 100 * MIB + int(image)


def test_the_metrics_show_the_users_storage_from_the_quotas(host):
    """Read by the real quota service from the filesystem's qgroups (no file walked)."""
    values = metrics(host, "formspawner_storage_committed_bytes", ("formspawner_storage_",))
    assert values["formspawner_storage_volumes_with_quota"] == 2  # keeper's and second's
    assert values["formspawner_storage_volumes_without_quota"] == 0
    assert values["formspawner_storage_committed_bytes"] == 2 * 60 * MIB
    assert 0 < values["formspawner_storage_used_bytes"] < 2 * 60 * MIB
    assert sum(v for k, v in values.items() if k.startswith("formspawner_storage_volumes_by_fill")) == 2


def test_a_rerun_of_the_site_keeps_the_quotas_and_the_running_servers(host):
    container = host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper")
    result = scenario.run_playbook(host, "converge.yml", __file__)
    assert result.returncode == 0, result.stdout[-3000:]
    assert host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper") == container
    assert qgroup_of(host, KEEPER)[1] == 60 * MIB
    fill = host.run("docker exec jupyter-keeper dd if=/dev/zero of=/home/jovyan/work/fill bs=1M count=100")
    assert fill.rc != 0 and "Disk quota exceeded" in fill.stderr, fill.stderr
    host.check_output("docker exec jupyter-keeper rm /home/jovyan/work/fill")
