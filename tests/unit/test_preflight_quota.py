"""The preflight's refusal of storage quotas a server's filesystem cannot hold: the role's
real task (roles/jupyterhub/tasks/preflight.yml), run by Ansible on the controller with
what `findmnt` and the state probe would have found on the server. Each refusal names what
to change; a filesystem that can hold the quotas passes."""

import json

import pytest
from test_jupyterhub_config import role_tasks, run_role_tasks

BOTH = {"jupyterhub_user_storage_quota": "5G", "jupyterhub_user_layer_quota": "2G"}
REFUSAL = "Refuse storage quotas the server's filesystem cannot hold, before anything changes"


def refusal_task() -> dict:
    return role_tasks("preflight.yml", REFUSAL)[0]


def preflight(tmp_path, fstype, options="rw", qgroups="on", driver="overlay2", **inventory):
    found = {
        "_jupyterhub_data_findmnt": {
            "stdout": json.dumps({"filesystems": [{"fstype": fstype, "options": options, "target": "/srv/data"}]})
        },
        "_jupyterhub_data_quota_state": {
            "stdout_lines": [*([f"qgroups={qgroups}"] if fstype == "btrfs" else []), f"driver={driver}",
                             "volumes=3", "size=107374182400"]
        },
    }
    succeed = inventory.pop("succeed")
    return " ".join(run_role_tasks(tmp_path, [refusal_task()], {**found, **inventory}, succeed=succeed).split())


@pytest.mark.parametrize(
    "fs, inventory, says",
    [
        ({"fstype": "ext4"}, {"jupyterhub_user_storage_quota": "5G"},
         ["Docker's data (/var/lib/docker) is on ext4 at /srv/data, whose quotas this deployment cannot set",
          "docker_data_loop_size"]),
        ({"fstype": "btrfs", "qgroups": "off (btrfs says: ERROR: can't list qgroups: quotas not enabled)"},
         {"jupyterhub_user_storage_quota": "5G"},
         ["Quotas are off in the btrfs filesystem at /srv/data", "run `btrfs quota enable /srv/data`",
          "Docker 20.10, Debian 12's, turns them off each time it stops"]),
        ({"fstype": "xfs", "options": "rw,noatime"}, {"jupyterhub_user_storage_quota": "5G"},
         ["The XFS filesystem at /srv/data is not mounted with project quotas: add prjquota", "rootflags=pquota"]),
        ({"fstype": "btrfs", "driver": "overlay2"}, {"jupyterhub_user_layer_quota": "2G"},
         ["jupyterhub_user_layer_quota (or an image's resources.layer_quota) needs Docker's btrfs storage driver",
          "Docker uses overlay2 on btrfs", "Set docker_storage_driver: btrfs"]),
    ],
)
def test_a_filesystem_whose_quotas_cannot_work_is_refused_with_what_to_change(tmp_path, fs, inventory, says):
    output = preflight(tmp_path, **fs, **inventory, succeed=False)
    for text in says:
        assert text in output, output[-1500:]


@pytest.mark.parametrize(
    "fs, inventory",
    [
        ({"fstype": "btrfs", "driver": "btrfs"}, BOTH),
        ({"fstype": "xfs", "options": "rw,prjquota"}, BOTH),
        ({"fstype": "btrfs", "driver": "overlay2"}, {"jupyterhub_user_storage_quota": "5G"}),
    ],
)
def test_a_filesystem_that_holds_the_quotas_passes(tmp_path, fs, inventory):
    output = preflight(tmp_path, **fs, **inventory, succeed=True)
    assert "skipping: [localhost]" in output, output[-1500:]
