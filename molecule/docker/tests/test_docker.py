"""The docker role's real state inside each target."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from scenario import run_playbook  # noqa: E402

IMAGE = "jhtest/debian:bookworm"


@pytest.fixture(scope="module")
def image_in_target(host):
    """Nothing can be pulled from outside: load an image from the test machine's engine."""
    name = host.backend.get_hostname()
    subprocess.run(
        f"docker save {IMAGE} | docker exec -i {name} docker load",
        shell=True,
        check=True,
        capture_output=True,
    )
    return IMAGE


def test_docker_is_active_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json_holds_the_inventory_settings(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["live-restore"] is True
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["insecure-registries"] == ["jhtest-registry:5000"]
    assert config["max-concurrent-downloads"] == 4


def test_docker_info_shows_live_restore_and_log_driver(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "jhtest-registry:5000" in json.dumps(info["RegistryConfig"])


def test_containers_run_inside_the_target_with_rotated_logs(host, image_in_target):
    out = host.check_output(f"docker run --rm {image_in_target} echo inner-ok")
    assert out.strip() == "inner-ok"
    cid = host.check_output(f"docker create {image_in_target} true").strip()
    try:
        log_config = json.loads(
            host.check_output(f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {cid}")
        )
    finally:
        host.run(f"docker rm {cid}")
    assert log_config == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}


def test_new_networks_come_from_the_configured_pool(host):
    host.run("docker network rm pooltest")
    host.check_output("docker network create pooltest")
    try:
        subnet = host.check_output("docker network inspect pooltest --format '{{(index .IPAM.Config 0).Subnet}}'")
    finally:
        host.run("docker network rm pooltest")
    assert subnet.startswith("10.214.")


def test_docker_users_reach_the_socket(host):
    assert "docker" in host.user("student").groups
    result = host.run("sudo -u student docker version --format '{{.Server.Version}}'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip()


def test_python_docker_library_is_there_for_ansible(host):
    assert host.run("python3 -c 'import docker, requests'").rc == 0


def test_docker_ce_path_passes_a_check_mode_run(host):
    """The docker_ce option, planned with ansible-playbook --check against this target."""
    result = run_playbook(host, "check_docker_ce.yml", __file__, "--check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Ensure Docker's apt repository is configured" in result.stdout
    assert "failed=0" in result.stdout
    # A plan only: the repository file was not written.
    assert not host.file("/etc/apt/sources.list.d/docker.sources").exists
    # docker_nvidia: NVIDIA's repository and the toolkit, planned the same way, and its
    # runtime in daemon.json (changed in the plan, not on disk).
    assert "TASK [docker : Ensure NVIDIA's container toolkit repository is configured]" in result.stdout
    assert "TASK [docker : Ensure the NVIDIA container toolkit is installed]" in result.stdout
    assert "TASK [docker : Ensure the NVIDIA runtime gives swarm tasks the GPUs the swarm assigned]" in result.stdout
    assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists
    assert "nvidia" not in host.file("/etc/docker/daemon.json").content_string


def test_a_tagged_run_executes_the_tasks_inside_the_roles_task_files(host):
    """--tags docker_install reaches the tasks of setup-<source>.yml (a dynamic include),
    --tags docker_configure those of main.yml; nothing else runs and nothing changes."""
    result = run_playbook(host, "converge.yml", __file__, "--tags", "docker_install,docker_configure")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "TASK [docker : Ensure the distribution's Docker engine is installed]" in result.stdout
    assert "TASK [docker : Ensure daemon.json matches the inventory]" in result.stdout
    assert "TASK [docker : Ensure Docker is started and enabled]" not in result.stdout  # docker_service
    assert "changed=0" in result.stdout and "failed=0" in result.stdout
