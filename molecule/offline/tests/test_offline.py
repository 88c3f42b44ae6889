"""The site converged on a target cut off from package indexes and registries."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from hubapi import api, wait_ready  # noqa: E402  (molecule/shared, beside the scenarios)

# The role's pin, written once (roles/jupyterhub/defaults/main.yml).
HUB_VERSION = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "roles/jupyterhub/defaults/main.yml").read_text()
)["jupyterhub_version"]


def test_the_target_really_is_cut_off(host):
    assert host.run("curl -sS -m 10 -o /dev/null https://pypi.org/simple/").rc != 0
    assert host.run("/opt/jupyterhub/bin/pip download --no-deps -d /tmp/x six").rc != 0
    assert host.run("docker pull jhtest-registry:5000/jhtest/singleuser:minimal").rc != 0


def test_the_venv_came_from_the_wheelhouse(host):
    assert host.file("/opt/jupyterhub-wheels").is_directory
    assert host.run("ls /opt/jupyterhub-wheels/jupyterhub-*.whl").rc == 0
    assert host.check_output("/opt/jupyterhub/bin/jupyterhub --version").strip() == HUB_VERSION
    assert host.run("/opt/jupyterhub/bin/pip show --quiet formspawner").rc == 0
    # The admin's extra package (jupyterhub_extra_packages), from the bundle as well.
    assert host.run("ls /opt/jupyterhub-wheels/jupyterhub_tmpauthenticator-1.0.0-*.whl").rc == 0
    assert host.check_output("/opt/jupyterhub/bin/python -c 'import tmpauthenticator; print(1)'") == "1"
    # Given with its hash: installed in pip's hash-checking mode from that file.
    assert "--hash=sha256:d5358d6a" in host.file("/opt/jupyterhub-src/extra-hashed.txt").content_string
    wheel = host.check_output("sha256sum /opt/jupyterhub-wheels/jupyterhub_tmpauthenticator-1.0.0-*.whl")
    assert wheel.startswith("d5358d6a25b9d500a77720ae798d63669d02ac83bd5f563da485032c8d56d164")


def test_the_image_came_from_its_archive_and_a_user_spawns_from_it(host):
    assert host.run("docker image inspect jhtest/singleuser:minimal").rc == 0
    assert api(host, "POST", "/users/offline")[0] in (201, 409)
    assert api(host, "POST", "/users/offline/server", {"image": "minimal", "env": {"WHERE": "air-gapped"}})[0] in (
        201,
        202,
    )
    wait_ready(host, "offline", timeout=180)
    environ = host.check_output("docker exec jupyter-offline cat /proc/1/environ")
    assert "WHERE=air-gapped" in environ.split("\0")
