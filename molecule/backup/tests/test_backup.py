"""The restored target: same secrets, same users and tokens, the user's files back."""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
import egress  # noqa: E402
from hubapi import api, user_id, wait_ready  # noqa: E402  (molecule/shared, beside the scenarios)


def before(host):
    name = host.backend.get_hostname()
    return json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / f"before-{name}.json").read_text())


def test_the_target_was_really_wiped_before_the_restore(host):
    # The hub's unit and venv exist again only because restore.yml converged the site.
    assert host.service("jupyterhub").is_running
    assert host.file("/var/backups/jupyterhub").is_directory
    assert not host.file("/var/backups/jupyterhub/restore").exists


def test_the_fetched_archive_is_private_on_the_controller(host):
    folder = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "backups" / host.backend.get_hostname()
    archives = list(folder.glob("jupyterhub-*.tar"))
    assert len(archives) == 1 and archives[0].stat().st_mode & 0o777 == 0o600
    # The folder was private before the archive arrived in it.
    assert folder.stat().st_mode & 0o777 == 0o700


def test_the_backups_on_the_server_are_in_private_folders(host):
    assert host.file("/var/backups/jupyterhub").mode == 0o700


def test_secrets_are_the_backups(host):
    recorded = before(host)
    cookie = host.file("/var/lib/jupyterhub/jupyterhub_cookie_secret")
    assert hashlib.sha256(cookie.content).hexdigest() == recorded["cookie_secret"]
    assert cookie.mode == 0o600 and cookie.user == "jupyterhub"
    env = host.file("/etc/jupyterhub/secrets.env")
    assert hashlib.sha256(env.content).hexdigest() == recorded["secrets_env"]


def test_the_restore_keeps_todays_policy_not_the_backups(host):
    # side_effect.yml renamed the image in the restore's inventory: the backup's rendered
    # settings (with the old name) must not replace it.
    settings = json.loads(host.file("/etc/jupyterhub/settings.json").content_string)
    images = settings["images"]
    assert [image["display_name"] for image in images] == ["Minimal Python (after the backup)"], images


def test_the_user_their_token_and_their_files_are_back(host):
    status, model = api(host, "GET", "/users/keeper")
    assert status == 200 and model["name"] == "keeper"
    # The token keeper had before the backup still identifies keeper.
    status, me = api(host, "GET", "/user", token=before(host)["token"])
    assert status == 200 and me["name"] == "keeper"
    # Logging in works, and the server keeper starts finds the file in the work volume.
    login = host.run(
        "curl -sk -c /tmp/jar -b /tmp/jar -o /dev/null https://localhost/hub/login && "
        "curl -sk -c /tmp/jar -b /tmp/jar -o /dev/null -w '%{http_code}' "
        "--data-urlencode username=keeper --data-urlencode password=backup-demo-password "
        "--data-urlencode _xsrf=$(awk '/_xsrf/ {print $7}' /tmp/jar) https://localhost/hub/login"
    )
    assert login.stdout == "302", login.stdout + login.stderr
    status, _ = api(host, "POST", "/users/keeper/server", {"image": "minimal"})
    assert status in (201, 202)
    # Ready means the hub reached it (a bridge left on the users' subnet made it time out).
    wait_ready(host, "keeper", timeout=150)
    out = host.check_output("docker exec jupyter-keeper cat /home/jovyan/work/thesis.txt")
    assert out == "chapter one"
    # Keeper's own id came back with the hub's files: the restored volume is still theirs.
    owner = host.check_output("docker exec jupyter-keeper stat -c %u /home/jovyan/work /home/jovyan/work/thesis.txt")
    assert owner.split() == [user_id(host, "keeper")] * 2
    assert host.check_output("docker exec jupyter-keeper id -u") == user_id(host, "keeper")


def test_the_network_policy_holds_on_the_restored_server(host):
    """On bookworm (the jupyterhub scenario probes on trixie): the restore converged the
    site, and keeper's server meets the default policy (this scenario lists no exception)."""
    assert host.service("jupyterhub-egress").is_enabled
    wait_ready(host, "keeper")
    egress.check_server(host, "keeper")
    # And after a restart of Docker (20.10 here, 26 on trixie), which keeps keeper's server
    # (live-restore) and redoes its own firewall rules: the policy's unit follows it.
    host.check_output("systemctl restart docker")
    deadline = time.monotonic() + 60
    while host.run("systemctl is-active jupyterhub-egress").stdout.strip() != "active":
        assert time.monotonic() < deadline, host.run("systemctl status jupyterhub-egress").stdout
        time.sleep(1)
    egress.check_server(host, "keeper")
