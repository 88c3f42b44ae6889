"""After the upgrade from the previous release (with JupyterHub 5.5.4) through the installed
collection: what an admin and a user must find. molecule/upgrade/side_effect.yml ran it three
times: killed half-way, then to the end, then once more."""

import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from hubapi import TOKEN, api, user_id, wait_ready  # noqa: E402

WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PINNED_VERSION = yaml.safe_load((PROJECT / "roles/jupyterhub/defaults/main.yml").read_text())["jupyterhub_version"]
DB = "/var/lib/jupyterhub/jupyterhub.sqlite"
MIB = 1024 * 1024
# keeper's volume, made by the previous release on the campus's btrfs partition (converge.yml).
KEEPER = "/srv/docker/volumes/jupyterhub-user-keeper/_data"


def quota_of(host, data: str):
    """The btrfs qgroup limit of the subvolume at `data` (None: no limit), or False when
    `data` is a plain folder, not a subvolume of its own."""
    if host.check_output(f"stat -c %i {data}") != "256":  # a subvolume's root
        return False
    rootid = host.check_output(f"btrfs inspect-internal rootid {data}")
    for line in host.check_output("btrfs qgroup show -re --raw /srv/docker").splitlines():
        fields = line.split()
        if fields and fields[0] == f"0/{rootid}":
            return None if fields[3] == "none" else int(fields[3])
    raise AssertionError(f"no qgroup 0/{rootid}")


def read_log(name: str) -> str:
    """A run's output without terminal colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", (WORK / name).read_text())


def recap(log: str) -> dict[str, int]:
    line = next(line for line in log.splitlines() if line.startswith("jhupgrade") and "ok=" in line)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def test_the_previous_release_really_ran_first():
    previous = read_log("previous-run.log")
    assert recap(previous)["failed"] == 0
    # Its hub config was the rendered template this release replaced.
    assert "TASK [jupyterhub : Ensure jupyterhub_config.py matches the inventory]" in previous


def schema_revision(host, db):
    """The alembic revision a hub database file has, read without writing to it."""
    return host.check_output(
        "python3 -c \"import sqlite3, sys; print(sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)"
        f".execute('SELECT version_num FROM alembic_version').fetchone()[0])\" {db}"
    )


def test_the_first_run_was_killed_before_the_migration():
    """killed_run.py killed it once the new JupyterHub was in the venv, and checked that no
    database backup existed yet (the kill came before the migration and any handler)."""
    killed = read_log("upgrade-run-killed.log")
    assert "TASK [" in killed and "PLAY RECAP" not in killed, killed[-3000:]


def test_the_next_run_migrated_the_database_after_backing_up_the_old_one(host):
    """The run after the kill found the new JupyterHub already installed (pip had nothing to
    do) and still backed up the database, migrated it and restarted the hub."""
    backups = host.check_output(f"ls {DB}.*.bak").split()
    assert len(backups) == 1, backups
    backup = host.file(backups[0])
    assert backup.mode == 0o600 and backup.user == "jupyterhub" and backup.size > 0
    # Named after the schema it holds, which is the old one: the copy was made before the migration.
    old = schema_revision(host, backups[0])
    assert backups[0] == f"{DB}.{old}.bak"
    assert schema_revision(host, DB) != old
    # The hub that answers is the new release, not the old process left running on new files.
    status, info = api(host, "GET", "/")
    assert status == 200 and info["version"] == PINNED_VERSION


def test_the_upgrade_ran_from_the_admins_directory_with_deprecation_messages():
    first = read_log("upgrade-run-1.log")
    assert recap(first)["failed"] == 0, first[-3000:]
    flat = " ".join(first.split())
    assert "DEPRECATED: jupyterhub_mem_limit is now jupyterhub_user_mem_limit" in flat
    assert "DEPRECATED: jupyterhub_pids_limit is now jupyterhub_user_pids_limit" in flat
    installed = WORK / "campus-ops/collections/ansible_collections/jupyterhub_deploy/hub"
    assert (installed / "MANIFEST.json").is_file()
    assert "TASK [jupyterhub_deploy.hub.jupyterhub : " in first or "TASK [jupyterhub : " in first


def test_a_second_run_changes_nothing():
    second = read_log("upgrade-run-2.log")
    result = recap(second)
    assert result["failed"] == 0 and result["changed"] == 0, second[-3000:]


def test_the_old_setting_names_still_configure_users_servers(host):
    settings = json.loads(host.file("/etc/jupyterhub/settings.json").content_string)
    assert settings["user"]["mem_limit"] == "1G" and settings["user"]["pids_limit"] == 300
    assert host.file("/etc/jupyterhub/jupyterhub_config.py").content_string == (
        PROJECT / "roles/jupyterhub/files/jupyterhub_config.py"
    ).read_text()


def test_the_users_server_kept_running_with_its_options_and_files_and_restarts_with_them(host):
    server = wait_ready(host, "keeper")
    assert server["user_options"] == {"image": "minimal", "env": {"BEFORE_UPGRADE": "yes"}}
    before = host.file("/root/keeper-container-before").content_string.strip()
    now = host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper")
    assert now == before, "the user's container was replaced by the upgrade"
    assert host.check_output("docker exec jupyter-keeper cat /home/jovyan/work/kept.txt") == "kept"
    env = host.check_output("docker exec jupyter-keeper printenv BEFORE_UPGRADE")
    assert env == "yes"
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' "
        "https://localhost/user/keeper/api/status"
    )
    assert status == "200"
    # Quotas came with the upgrade; the running server's volume is left as the previous
    # release made it (a plain folder) until its next start.
    assert quota_of(host, KEEPER) is False
    # Its stored options are valid for the new hub: a restart brings back the same choices.
    assert api(host, "DELETE", "/users/keeper/server")[0] in (202, 204)
    for _ in range(60):
        if not api(host, "GET", "/users/keeper")[1]["servers"]:
            break
        time.sleep(1)
    assert api(host, "POST", "/users/keeper/server")[0] in (201, 202)
    wait_ready(host, "keeper")
    assert host.check_output("docker exec jupyter-keeper printenv BEFORE_UPGRADE") == "yes"
    assert host.check_output("docker exec jupyter-keeper cat /home/jovyan/work/kept.txt") == "kept"
    # ... and at that start the volume was put under its quota, its files kept.
    assert quota_of(host, KEEPER) == 60 * MIB
    # ... and given to keeper's own id (the previous release ran every server as the image's
    # user, 1000): the server runs as it, the files are its.
    uid = user_id(host, "keeper")
    assert host.check_output(f"stat -c %u {KEEPER} {KEEPER}/kept.txt").split() == [uid, uid]
    assert host.check_output("docker exec jupyter-keeper id -u") == uid
    host.check_output("docker exec jupyter-keeper sh -c 'echo mine > /home/jovyan/work/after-upgrade.txt'")
    assert host.check_output(f"stat -c %u {KEEPER}/after-upgrade.txt") == uid


def test_the_database_was_kept_and_the_hub_restarted_at_most_once(host):
    status, users = api(host, "GET", "/users")
    assert status == 200 and "keeper" in {user["name"] for user in users}
    since = host.file("/root/upgrade-started").content_string.strip()
    starts = host.run(f"journalctl -u jupyterhub --no-pager --since=@{since} -o cat | grep -c '^Started'").stdout
    assert int(starts.strip() or 0) <= 1, host.run(f"journalctl -u jupyterhub --no-pager --since=@{since}").stdout


def test_the_volume_from_before_the_upgrade_is_held_to_its_quota_across_a_restart_of_docker(host):
    """Debian 12's Docker 20.10 turns btrfs quotas off, and every limit with them, when it
    stops (moby#34593): jupyterhub-quota-reapply.service sets them again after its start.
    Here on the admin's own btrfs partition (no docker_data_loop_size)."""
    fill = "docker exec jupyter-keeper dd if=/dev/zero of=/home/jovyan/work/fill bs=1M count=100"
    result = host.run(fill)
    assert result.rc != 0 and "Disk quota exceeded" in result.stderr, result.stderr
    host.check_output("docker exec jupyter-keeper rm /home/jovyan/work/fill")
    container = host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper")
    host.check_output("systemctl restart docker")
    # Restarted with docker.service (PartOf=), after its start (After=): a oneshot that stays
    # active once every limit is set again.
    for _ in range(60):
        state = host.run("systemctl is-active jupyterhub-quota-reapply.service").stdout.strip()
        if state != "activating":
            break
        time.sleep(1)
    assert state == "active", host.run("journalctl -u jupyterhub-quota-reapply --no-pager -n 20").stdout
    assert quota_of(host, KEEPER) == 60 * MIB
    assert host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper") == container  # live restore
    result = host.run(fill)
    assert result.rc != 0 and "Disk quota exceeded" in result.stderr, result.stderr
    assert host.check_output("docker exec jupyter-keeper cat /home/jovyan/work/kept.txt") == "kept"
