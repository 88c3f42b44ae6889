"""The jupyterhub role's offline install puts the bundle's wheels on the server as one
archive, only when they changed (roles/jupyterhub/tasks/wheelhouse.yml).

Run for real by Ansible on the controller (local connection: the controller is the
"server" here, its python3 picks the wheel folder); the wheels are stand-in files, since
only their names and contents matter to this step. pip installing from them is the
offline molecule scenario's job.
"""

import re
import subprocess
from pathlib import Path

from test_jupyterhub_config import ROLE, run_role_tasks

PYTHON = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                        capture_output=True, text=True, check=True).stdout.strip()


def run(tmp_path: Path, wheelhouse: Path, venv: Path, succeed: bool = True) -> str:
    return run_role_tasks(tmp_path, [{"name": "wheelhouse",
                                      "ansible.builtin.include_tasks": str(ROLE / "tasks" / "wheelhouse.yml")}],
                          {"jupyterhub_wheelhouse": str(wheelhouse), "jupyterhub_venv": str(venv)}, succeed)


def put(tmp_path: Path, wheelhouse: Path, venv: Path) -> dict:
    out = run(tmp_path, wheelhouse, venv)
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", out)
    assert recap, out[-2000:]
    return {"changed": int(recap.group(2)), "out": out}


def test_the_wheels_go_over_once_and_again_only_when_they_change_or_a_copy_was_cut_short(tmp_path, monkeypatch):
    # A temporary directory of this test's own: the offline scenario (beside the quick tier
    # in make test) and other runs make such archives in /tmp too.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    wheelhouse, venv = tmp_path / "bundle" / "wheels", tmp_path / "opt" / "jupyterhub"
    here = wheelhouse / f"py{PYTHON}"
    here.mkdir(parents=True)
    (here / "a-1.0-py3-none-any.whl").write_bytes(b"a one")
    (here / "b-1.0-py3-none-any.whl").write_bytes(b"b one")
    there = Path(f"{venv}-wheels")

    first = put(tmp_path, wheelhouse, venv)
    assert first["changed"] > 0
    assert sorted(p.name for p in there.iterdir()) == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    assert (there / "a-1.0-py3-none-any.whl").read_bytes() == b"a one"
    assert oct((there / "a-1.0-py3-none-any.whl").stat().st_mode & 0o777) == "0o644"

    assert put(tmp_path, wheelhouse, venv)["changed"] == 0, "nothing changed, nothing copied"

    # As after a run that died between unpacking and recording: a wheel missing, no record.
    (there / "a-1.0-py3-none-any.whl").unlink()
    Path(f"{venv}-wheels.sha256").unlink()
    assert put(tmp_path, wheelhouse, venv)["changed"] > 0
    assert (there / "a-1.0-py3-none-any.whl").read_bytes() == b"a one", "the next run finishes the copy"

    # A new version of b, and a's content changed under the same name (a rebuilt local wheel).
    (here / "b-1.0-py3-none-any.whl").unlink()
    (here / "b-2.0-py3-none-any.whl").write_bytes(b"b two")
    (here / "a-1.0-py3-none-any.whl").write_bytes(b"a rebuilt")
    assert put(tmp_path, wheelhouse, venv)["changed"] > 0
    assert sorted(p.name for p in there.iterdir()) == ["a-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"]
    assert (there / "a-1.0-py3-none-any.whl").read_bytes() == b"a rebuilt"
    # The archive is made in the controller's temporary directory (ansible's tempfile).
    assert not list(private.glob("**/*wheels.tar")), "the archive does not stay behind"


def test_a_bundle_without_wheels_for_the_servers_python_is_refused_naming_it(tmp_path):
    wheelhouse, venv = tmp_path / "bundle" / "wheels", tmp_path / "opt" / "jupyterhub"
    (wheelhouse / "py2.7").mkdir(parents=True)
    out = run(tmp_path, wheelhouse, venv, succeed=False)
    assert f"has no py{PYTHON}/" in out
    assert not Path(f"{venv}-wheels").exists()
