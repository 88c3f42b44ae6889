"""The repository builds as an Ansible collection that an admin installs into a directory of
their own and runs from there (the upgrade scenario converges a real target that way)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def admin_dir(tmp_path_factory):
    """An admin's own repository: the built collection installed into ./collections, an
    inventory copied from the example, an ansible.cfg of their own, nothing of ours."""
    work = tmp_path_factory.mktemp("admin")
    dist = work / "dist"
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT), cwd=work)
    (artifact,) = dist.glob("jupyterhub_deploy-hub-*.tar.gz")
    admin = work / "campus-ops"
    admin.mkdir()
    (admin / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    # The `ansible` package already ships the collections the roles use (no index here).
    # --force: a copy found in another configured path must not stop this install.
    run(str(BIN / "ansible-galaxy"), "collection", "install", "--force", "--no-deps", "-p", "collections",
        str(artifact), cwd=admin, env=admin_env(admin))
    shutil.copytree(ROOT / "inventory" / "example", admin / "inventory")
    return admin


def admin_env(admin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # ansible's own collections (community.docker, ...) live in the venv's site-packages.
    return dict(env, ANSIBLE_CONFIG=str(admin / "ansible.cfg"), PATH=f"{BIN}:{env.get('PATH', '')}")


def test_the_collection_carries_roles_playbooks_modules_and_formspawner(admin_dir):
    installed = admin_dir / "collections" / "ansible_collections" / "jupyterhub_deploy" / "hub"
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert yaml.safe_load((installed / "MANIFEST.json").read_text())["collection_info"]["version"] == version
    for path in ("roles/jupyterhub/tasks/main.yml", "roles/docker/meta/argument_specs.yml",
                 "playbooks/site.yml", "plugins/modules/service_stale.py",
                 "files/formspawner/pyproject.toml", "files/formspawner/formspawner/hubconfig.py"):
        assert (installed / path).is_file(), path
    for path in ("tests", "molecule", ".venv", "playbooks/demo.yml"):
        assert not (installed / path).exists(), path


def test_an_admins_directory_runs_the_collections_site_playbook(admin_dir):
    listed = run(str(BIN / "ansible-playbook"), "-i", "inventory", "jupyterhub_deploy.hub.site", "--list-tasks",
                 cwd=admin_dir, env=admin_env(admin_dir)).stdout
    # Roles, their inner task files and the collection's own module all resolve.
    assert "jupyterhub : Ensure the hub's settings match the inventory" in listed
    assert "docker : Ensure daemon.json matches the inventory" in listed
    run(str(BIN / "ansible-playbook"), "-i", "inventory", "jupyterhub_deploy.hub.site", "--syntax-check",
        cwd=admin_dir, env=admin_env(admin_dir))


def test_the_collections_version_is_formspawners_and_in_the_changelog():
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    pyproject = (ROOT / "files/formspawner/pyproject.toml").read_text()
    assert f'version = "{version}"' in pyproject
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
