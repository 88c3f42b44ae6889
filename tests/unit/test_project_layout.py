"""The repository's own structure: one source for each pin, tags that select tasks, one copy of a module."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#]+)\s*(?:#.*)?", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_the_hub_pins_in_requirements_txt_are_the_roles_pins():
    """The controller's tests run the versions the role installs on servers."""
    defaults = yaml.safe_load((ROOT / "roles/jupyterhub/defaults/main.yml").read_text())
    role = {
        "jupyterhub": defaults["jupyterhub_version"],
        "dockerspawner": defaults["jupyterhub_dockerspawner_version"],
        "jupyterhub-idle-culler": defaults["jupyterhub_idle_culler_version"],
        **defaults["jupyterhub_authenticator_versions"],
    }
    pins = requirement_pins()
    assert {name: pins.get(name) for name in role} == role


def test_the_jupyterhub_version_is_written_once():
    """The pin is in the jupyterhub role's defaults (and, checked above and by
    test_argument_specs, mirrored in requirements.txt for the controller's venv and in the
    argument specs for ansible-doc); every other file reads it from there."""
    pin = yaml.safe_load((ROOT / "roles/jupyterhub/defaults/main.yml").read_text())["jupyterhub_version"]
    written = subprocess.run(["git", "grep", "-l", "-F", pin, "--", ".", ":!CHANGELOG.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert sorted(written) == [
        "requirements.txt", "roles/jupyterhub/defaults/main.yml", "roles/jupyterhub/meta/argument_specs.yml",
    ]
    # The images role, alone, falls back to that file; the test images are built with it.
    images = yaml.safe_load((ROOT / "roles/images/defaults/main.yml").read_text())["images_hub_version"]
    assert "role_path ~ '/../jupyterhub/defaults/main.yml'" in images and "jupyterhub_version" in images
    assert 'JUPYTERHUB_VERSION="$hub_version"' in (ROOT / "tests/env/testenv.sh").read_text()
    assert re.search(r"^ARG JUPYTERHUB_VERSION$", (ROOT / "tests/env/images/singleuser/Dockerfile").read_text(), re.M)


def test_each_module_has_one_copy():
    modules = [
        p.name for pattern in ("**/library/*.py", "plugins/modules/*.py") for p in ROOT.glob(pattern)
        if ".venv" not in p.parts and ".cache" not in p.parts
    ]
    assert modules and len(modules) == len(set(modules)), modules


def listed_tasks(tags: str, inventory: str = "inventory/example") -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, "site.yml",
         "--list-tasks", "--tags", tags],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(
    "tag, inner_task",
    [
        # Tasks inside the task files each role's main.yml brings in: a tag on an include
        # alone selects the include and skips them.
        ("jupyterhub_install", "Ensure the hub's Python packages are installed at their pinned versions"),
        ("jupyterhub_configure", "Ensure the hub's settings match the inventory"),
        ("jupyterhub_configure", "Ensure a self-signed certificate exists (no certificate given)"),
        ("jupyterhub_service", "Ensure JupyterHub is started and enabled"),
        ("images_configure", "Ensure the refresh units are installed"),
        ("docker_configure", "Ensure daemon.json matches the inventory"),
    ],
)
def test_a_roles_tag_selects_the_tasks_inside_its_task_files(tag, inner_task):
    assert inner_task in listed_tasks(tag)


def test_a_tag_selects_no_task_of_another_concern():
    listed = listed_tasks("jupyterhub_configure")
    assert "Ensure JupyterHub is started and enabled" not in listed
    assert "Ensure daemon.json matches the inventory" not in listed


def test_the_images_role_reads_repository_builds_by_formspawners_label():
    from formspawner.labels import REPO_LABEL

    role_vars = yaml.safe_load((ROOT / "roles/images/vars/main.yml").read_text())
    assert role_vars["_images_build_label"] == REPO_LABEL


SECRET_FILES = ("settings.json", "metrics-token", "secrets.env", "jupyterhub_cookie_secret", "key.pem", ".key")


def test_no_task_that_writes_a_secret_shows_it_in_diff_output():
    """`ansible-playbook --diff` prints a changed file's content: every task that writes a
    file holding secrets (settings.json: OAuth secrets, service tokens, the demo password;
    tokens, keys) says diff: false or no_log: true."""
    checked = []
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for module in ("ansible.builtin.template", "ansible.builtin.copy"):
                args = task.get(module)
                dest = str((args or {}).get("dest", ""))
                if args and any(dest.endswith(name) or f"/{name}" in dest for name in SECRET_FILES):
                    checked.append(dest)
                    assert task.get("diff") is False or task.get("no_log") is True, f"{path.name}: {task['name']}"
    assert any(d.endswith("settings.json") for d in checked) and any("metrics-token" in d for d in checked)


def test_the_molecule_test_service_and_its_token_are_declared_once():
    """molecule/shared/vars/hubapi.yml holds the test service; each scenario's hub reads it
    into jupyterhub_services (as Ansible renders it: checked here for one scenario), the
    side effects start servers through molecule/shared/tasks/start-server.yml, the verifiers
    through hubapi.py."""
    shared = yaml.safe_load((ROOT / "molecule/shared/vars/hubapi.yml").read_text())
    token = shared["service"]["api_token"]
    written = subprocess.run(["git", "grep", "-l", "-F", token, "--", "molecule"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert written == ["molecule/shared/vars/hubapi.yml"]
    hubs = [p for p in sorted(ROOT.glob("molecule/*/molecule.yml")) if "jupyterhub_services" in p.read_text()]
    assert len(hubs) >= 5
    for scenario in hubs:
        group_vars = yaml.safe_load(scenario.read_text())["provisioner"]["inventory"]["group_vars"]
        settings = next(v for v in group_vars.values() if "jupyterhub_services" in v)
        assert settings["jupyterhub_services"] == ["{{ molecule_hub.service }}"], scenario
        assert "molecule/shared/vars/hubapi.yml" in settings["molecule_hub"], scenario
    for side_effect in ROOT.glob("molecule/*/side_effect.yml"):
        assert "/server\"" not in side_effect.read_text(), f"{side_effect}: use ../shared/tasks/start-server.yml"
    inventory = {name: settings[name] for name in ("molecule_hub", "jupyterhub_services")}
    rendered = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local", "-m", "ansible.builtin.debug",
         "-a", "var=jupyterhub_services", "-e", json.dumps(inventory),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable})],
        capture_output=True, text=True, timeout=120, check=True,
        env=dict(os.environ, MOLECULE_PROJECT_DIRECTORY=str(ROOT), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )  # fmt: skip
    assert json.loads(rendered.stdout.split("=>", 1)[1])["jupyterhub_services"] == [shared["service"]]


@pytest.mark.parametrize(
    "distribution, version, warned",
    [("Debian", "12.8", False), ("Debian", "13.1", False), ("Debian", "14.0", True), ("Ubuntu", "24.04", True)],
)  # fmt: skip
def test_the_preflight_says_when_a_release_is_accepted_but_untested(tmp_path, distribution, version, warned):
    """Issue 46: README's claim holds: Debian 12 and 13 are tested; the playbook's check
    runs here with each release's facts (the target's facts stand in for a real host)."""
    play = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())[0]
    task = next(t for t in play["tasks"] if t["name"] == "Warn about a release the project does not test")
    facts = {"distribution": distribution, "distribution_version": version,
             "distribution_major_version": version.split(".")[0]}  # fmt: skip
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": {"ansible_facts": facts},
                                         "tasks": [task]}]))  # fmt: skip
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)],
        capture_output=True, text=True, timeout=120, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )  # fmt: skip
    said = " ".join(result.stdout.split())
    assert (f"WARNING: {distribution} {version} is accepted but not tested" in said) is warned, said[-1500:]
    assert ("skipping: [localhost]" in said) is not warned
