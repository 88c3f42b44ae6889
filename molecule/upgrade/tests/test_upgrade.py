"""After the upgrade from the previous release through the installed collection: what an
admin and a user must find (molecule/upgrade/side_effect.yml ran it twice)."""

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from hubapi import api, wait_ready  # noqa: E402

WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


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


def test_the_users_server_kept_running_with_its_options_and_files(host):
    server = wait_ready(host, "keeper")
    assert server["user_options"] == {"image": "minimal", "env": {"BEFORE_UPGRADE": "yes"}}
    before = host.file("/root/keeper-container-before").content_string.strip()
    now = host.check_output("docker inspect -f '{{.Id}}' jupyter-keeper")
    assert now == before, "the user's container was replaced by the upgrade"
    assert host.check_output("docker exec jupyter-keeper cat /home/jovyan/work/kept.txt") == "kept"
    env = host.check_output("docker exec jupyter-keeper printenv BEFORE_UPGRADE")
    assert env == "yes"
    status = host.check_output(
        "curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: token 0123456789abcdef0123456789abcdef' "
        "https://localhost/user/keeper/api/status"
    )
    assert status == "200"


def test_the_database_was_kept_and_the_hub_restarted_at_most_once(host):
    status, users = api(host, "GET", "/users")
    assert status == 200 and "keeper" in {user["name"] for user in users}
    since = host.file("/root/upgrade-started").content_string.strip()
    starts = host.run(f"journalctl -u jupyterhub --no-pager --since=@{since} -o cat | grep -c '^Started'").stdout
    assert int(starts.strip() or 0) <= 1, host.run(f"journalctl -u jupyterhub --no-pager --since=@{since}").stdout
