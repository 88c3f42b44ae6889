"""Each role's meta/argument_specs.yml refuses bad inventory before any task runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def run_role(role: str, tmp_path: Path, extra_vars: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"name": "argument spec check", "hosts": "localhost", "gather_facts": True, "roles": [role]}]
        )
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", "localhost,", "-c", "local", "--check",
            "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}), str(playbook),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "role, extra_vars, message",
    [
        ("docker", {"docker_users": {"alice": True}}, "docker_users"),
        ("docker", {"docker_install_source": "snap"}, "docker_install_source"),
        ("docker", {"docker_live_restore": "perhaps"}, "docker_live_restore"),
        ("docker", {"docker_default_address_pools": [{"base": "10.0.0.0/8"}]}, "size"),
        ("images", {"images_prepull": {"image": "quay.io/jupyter/minimal-notebook"}}, "images_prepull"),
        ("images", {"images_pull_retries": "many"}, "images_pull_retries"),
        ("images", {"images_archives": [{"path": "/tmp/x.tar"}]}, "name"),
        ("jupyterhub", {"jupyterhub_port": "https"}, "jupyterhub_port"),
        ("jupyterhub", {"jupyterhub_authenticator": "oauth"}, "jupyterhub_authenticator"),
        ("jupyterhub", {"jupyterhub_form_options": ["image", "cmd"]}, "jupyterhub_form_options"),
        # Choices are said in the argument specs only (check_inventory.py does not repeat them).
        ("jupyterhub", {"jupyterhub_egress_policy": "open"}, "jupyterhub_egress_policy"),
    ],
)
def test_wrong_types_are_refused_naming_the_variable(tmp_path, role, extra_vars, message):
    result = run_role(role, tmp_path, extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Validating arguments against arg spec" in output
    assert message in output
    # The refusal came before any of the role's own tasks ran.
    assert "TASK [" + role + " : " not in output.replace("TASK [" + role + " : Validating arguments", "")


@pytest.mark.parametrize(
    "extra_vars, message",
    [
        ({"jupyterhub_authenticator": "dummy"}, "It is\nfor demos and tests only"),
        (
            {"jupyterhub_images": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]},
            "Inventory error in jupyterhub_images: the name 'a' is used by more than one entry",
        ),
        ({"jupyterhub_env_policy": {"deny_patterns": ["("]}}, "jupyterhub_env_policy.deny_patterns[0] is not a valid"),
        ({"jupyterhub_tls_cert_src": "/tmp/cert.pem"}, "Set both jupyterhub_tls_cert_src and jupyterhub_tls_key_src"),
        (
            {"jupyterhub_extra_config": {"jupyterhub": {"concurrent_spawn_limit": 20}}},
            "Inventory error in jupyterhub_extra_config: 'jupyterhub' is not a configurable class name",
        ),
        (
            {"jupyterhub_extra_config": {"JupyterHub": 20}},
            "Inventory error in jupyterhub_extra_config.JupyterHub must be a mapping of trait names to values",
        ),
        ({"jupyterhub_extra_config_files": ["/srv/hub/limits.yml"]}, "/srv/hub/limits.yml do not end in .py"),
        # What this host (the test machine: its facts) can never give.
        (
            {"jupyterhub_images": [{"name": "big", "image": "x", "resources": {"cpu_limit": 512}}]},
            "Inventory error in jupyterhub_images: 'big' asks for cpu_limit 512 but this host has",
        ),
        (
            {"jupyterhub_images": [{"name": "big", "image": "x", "resources": {"mem_guarantee": "64T",
                                                                                  "mem_limit": "80T"}}]},
            "Inventory error in jupyterhub_images: 'big' asks for mem_guarantee 64 TB but this host has",
        ),
        (
            {"jupyterhub_active_server_limit": 100,
             "jupyterhub_images": [{"name": "ml", "image": "x",
                                    "resources": {"mem_guarantee": "4G", "mem_limit": "8G"}}]},
            "Inventory error in jupyterhub_images: 100 servers at once (active_server_limit) of 'ml', which "
            "guarantees 4 GB each, need 400 GB but this host has",
        ),
        (
            {"jupyterhub_user_cpu_limit": 512},
            "Inventory error in jupyterhub_user_cpu_limit: 512 is more than this host's",
        ),
        (
            {"jupyterhub_images": [{"name": "ml", "image": "x", "resources": {"gpus": "two"}}]},
            "Inventory error in jupyterhub_images[0] (ml).resources.gpus must be a number of GPUs, 'all', or a mapping",
        ),
    ],
)
def test_jupyterhub_preflight_refuses_bad_inventory_before_any_change(tmp_path, extra_vars, message):
    result = run_role("jupyterhub", tmp_path, extra_vars)
    output = (result.stdout + result.stderr).replace("\\n", "\n")
    assert result.returncode != 0
    assert " ".join(message.split()) in " ".join(output.split()), output[-2000:]
    assert "jupyterhub : Ensure" not in output  # nothing was installed or written


def test_every_role_has_an_argument_spec():
    assert {"backup", "docker", "images", "jupyterhub"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_and_defaults_list_the_same_variables(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    # Every entry point's settings (the backup role's restore has one of its own); one spec
    # per name across them.
    options = {}
    for entry in specs["argument_specs"].values():
        for name, spec in entry["options"].items():
            assert options.setdefault(name, spec) == spec, f"{name} is described twice, differently"
    # A renamed setting keeps its old name in the spec (type-checked) for one release.
    deprecated = {name for name, spec in options.items() if spec["description"].startswith("Deprecated name of ")}
    assert set(defaults) == set(options) - deprecated
    for name in deprecated:
        new_name = options[name]["description"].split()[3]
        assert options[name]["type"] == options[new_name]["type"], name
        assert "{{ " + name + " | default(" in defaults[new_name], f"{new_name} does not fall back to {name}"
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value:
            # Computed from facts or other roles' variables: a spec default would be
            # templated before facts exist, so the spec leaves it out.
            assert "default" not in options[name], name
            continue
        assert options[name].get("default") == value, name


def test_a_renamed_setting_still_works_with_a_deprecation_message(tmp_path):
    result = run_role("jupyterhub", tmp_path, {"jupyterhub_pids_limit": 300})
    output = " ".join((result.stdout + result.stderr).split())
    assert "DEPRECATED: jupyterhub_pids_limit is now jupyterhub_user_pids_limit" in output, output[-3000:]
    assert "DEPRECATED: jupyterhub_mem_limit" not in output


def test_a_renamed_settings_old_name_is_still_type_checked(tmp_path):
    result = run_role("jupyterhub", tmp_path, {"jupyterhub_pids_limit": "lots"})
    assert result.returncode != 0
    assert "jupyterhub_pids_limit" in result.stdout + result.stderr
