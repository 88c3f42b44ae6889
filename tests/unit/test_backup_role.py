"""The backup role's rotation (jupyterhub_backup_keep), run by Ansible as the role runs it,
on archives in a directory of the test's own: the newest are kept, by the time in their
names, and nothing else in the directory is touched. The whole backup and restore, with
a hub and users' volumes: the backup molecule scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROTATION = ("Find the archives on the server", "Remove archives beyond the newest {{ jupyterhub_backup_keep }}")


def rotate(directory: Path, keep: int) -> None:
    tasks = [t for t in yaml.safe_load((ROOT / "roles/backup/tasks/main.yml").read_text()) if t["name"] in ROTATION]
    assert [t["name"] for t in tasks] == list(ROTATION)
    playbook = directory.parent / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    inventory = {"ansible_python_interpreter": sys.executable, "jupyterhub_backup_dir": str(directory),
                 "jupyterhub_backup_keep": keep}  # fmt: skip
    subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", json.dumps(inventory), str(playbook)],
        capture_output=True, text=True, timeout=120, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )  # fmt: skip


def test_the_newest_archives_are_kept_and_nothing_else_is_touched(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    names = [f"jupyterhub-2026120{day}T030000Z.tar" for day in (1, 2, 3, 4, 5)]
    # Written newest first: the order on disk (and the files' times) must not decide.
    for name in reversed(names):
        (backups / name).write_text(name)
    (backups / "restore").mkdir()
    (backups / "notes.txt").write_text("the admin's own file")
    rotate(backups, keep=2)
    assert sorted(p.name for p in backups.iterdir()) == sorted(names[-2:] + ["restore", "notes.txt"])
    rotate(backups, keep=7)  # fewer than the setting: nothing goes
    assert sorted(p.name for p in backups.iterdir()) == sorted(names[-2:] + ["restore", "notes.txt"])
