"""The hub's secrets (roles/jupyterhub/tasks/configure.yml): the role's real tasks, run by
Ansible on the controller into temporary directories. Each missing secret is made once
(never again: users stay logged in across reruns) and belongs to the hub with mode 0600;
a rerun changes nothing; a metrics token from inventory is written by its own task."""

import getpass
import os
import stat

from test_jupyterhub_config import role_tasks, run_role_tasks

NAMES = ("Ensure the secrets exist and belong to the hub and no one else",
         "Ensure the metrics token is the one from inventory")  # fmt: skip


def secrets(tmp_path, **inventory) -> str:
    tasks = role_tasks("configure.yml", *NAMES)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "config").mkdir(exist_ok=True)
    return run_role_tasks(tmp_path, tasks, {"jupyterhub_data_dir": str(tmp_path / "data"),
                                            "jupyterhub_config_dir": str(tmp_path / "config"),
                                            "jupyterhub_system_user": getpass.getuser(), **inventory})  # fmt: skip


def test_secrets_are_made_once_owned_by_the_hub_and_a_rerun_changes_nothing(tmp_path):
    first = secrets(tmp_path, jupyterhub_metrics_enabled=True, jupyterhub_metrics_token="")
    files = [tmp_path / "data" / "jupyterhub_cookie_secret", tmp_path / "config" / "secrets.env",
             tmp_path / "config" / "metrics-token"]  # fmt: skip
    assert "changed=1" in first
    made = {path: path.read_text() for path in files}
    assert made[files[1]].startswith("CONFIGPROXY_AUTH_TOKEN=") and len(made[files[0]].strip()) == 64
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(files[0], 0o644)  # loosened by hand: made private again, its value kept
    assert "changed=1" in secrets(tmp_path, jupyterhub_metrics_enabled=True, jupyterhub_metrics_token="")
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert "changed=0" in secrets(tmp_path, jupyterhub_metrics_enabled=True, jupyterhub_metrics_token="")
    assert {path: path.read_text() for path in files} == made


def test_a_metrics_token_from_inventory_is_written_on_the_first_run(tmp_path):
    secrets(tmp_path, jupyterhub_metrics_enabled=True, jupyterhub_metrics_token="t" * 40)
    token = tmp_path / "config" / "metrics-token"
    assert token.read_text() == "t" * 40 + "\n" and stat.S_IMODE(token.stat().st_mode) == 0o600
