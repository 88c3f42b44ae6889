"""Extra hub packages given with hashes (jupyterhub_extra_packages: "name==version
--hash=sha256:..."): the role's real install tasks (roles/jupyterhub/tasks/install.yml),
run by Ansible on the controller into a fresh venv, offline from a wheelhouse as on an
air-gapped server. A file whose hash is the one given is installed; a file that is not
(a tampered bundle, a re-published release) stops the run before anything is installed."""

import base64
import hashlib
import subprocess
import zipfile

from test_jupyterhub_config import role_tasks, run_role_tasks

HASHED = "Ensure the hashed extra packages are installed from files with their hashes"


def wheel(directory, name: str = "campus_auth", version: str = "1.0", body: str = "LOGIN = 'campus'\n"):
    """A real, minimal wheel (what `pip wheel` makes for a one-module package)."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": body,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(c.encode())}" for n, c in files.items()]  # fmt: skip
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in files.items():
            archive.writestr(member, content)
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def install(tmp_path, entry: str, succeed: bool) -> str:
    [block] = role_tasks("install.yml", HASHED)
    venv = tmp_path / "venv"
    (tmp_path / "venv-src").mkdir(exist_ok=True)
    inventory = {"jupyterhub_venv": str(venv), "jupyterhub_wheelhouse": str(tmp_path / "bundle"),
                 "jupyterhub_extra_packages": [entry]}  # fmt: skip
    handler = {"name": "Restart JupyterHub", "ansible.builtin.debug": {"msg": "restart"}}
    return run_role_tasks(tmp_path, [block, {"meta": "flush_handlers"}], inventory, succeed=succeed, handlers=[handler])


def test_a_hashed_extra_package_is_installed_only_from_the_file_with_that_hash(tmp_path):
    wheels = tmp_path / "venv-wheels"  # where the role puts the offline bundle's wheels
    wheels.mkdir()
    good = wheel(wheels)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    install(tmp_path, f"campus-auth==1.0 --hash=sha256:{digest}", succeed=True)
    python = tmp_path / "venv" / "bin" / "python"
    imported = subprocess.check_output([python, "-c", "import campus_auth; print(campus_auth.LOGIN)"], text=True)
    assert imported == "campus\n"

    # The same name and version, another file (re-published, or a tampered bundle): refused.
    wheels.joinpath(good.name).unlink()
    wheel(wheels, version="1.0", body="LOGIN = 'someone else'\n")
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "campus-auth"], check=True)
    output = install(tmp_path, f"campus-auth==1.0 --hash=sha256:{digest}", succeed=False)
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in output, output[-2000:]
    gone = subprocess.run([python, "-c", "import campus_auth"], capture_output=True)
    assert gone.returncode != 0, "the file with another hash was installed"
