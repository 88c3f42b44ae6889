"""The integration tests' fixtures; the hub harness and helpers are in hubharness.py."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import docker
import pytest

from .gitserver import GitServer
from .hubharness import (
    ANSWER_AT_ONCE,
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    LAUNCH_PAGE,
    Hub,
    network_gateway,
    remove_user_containers,
)


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env()
    try:
        client.ping()
    except Exception as error:  # the engine is a hard requirement: fail, never skip
        pytest.fail(f"No Docker engine answers ({error}); run `make testenv` first")
    for image in ("jhtest/singleuser:minimal", "jhtest/singleuser:scipy"):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{image} is missing; run `make testenv` first")
    return client


@pytest.fixture(scope="session")
def user_network(docker_client):
    return network_gateway(docker_client)


@pytest.fixture
def make_hub(docker_client, user_network):
    """Start hubs on demand; everything they made is removed afterwards."""
    hubs = []

    def make():
        workdir = Path(tempfile.mkdtemp(prefix="fstest-hub-"))
        hub = Hub(workdir, user_network)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()
        shutil.rmtree(hub.workdir, ignore_errors=True)
    remove_user_containers(docker_client)


@pytest.fixture
def docker_hub(make_hub):
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "form_options": ["image", "env"]},
        DOCKER_SETTINGS,
    )
    return hub


@pytest.fixture(scope="module")
def git_server():
    workdir = Path(tempfile.mkdtemp(prefix="fstest-git-"))
    server = GitServer(workdir)
    yield server
    server.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def repo_hub(make_hub, git_server, docker_client):
    """A hub with the repo option, trusting the Git server's certificate. `images`,
    `settings` (the DockerSpawner traits) and `spawner` (more of FormDockerSpawner's
    settings) change it for a test; keyword arguments beyond those are repo_policy's."""

    def start(answer_at_once=True, extra="", images=IMAGES, settings=DOCKER_SETTINGS, spawner=None, **policy):
        hub = make_hub()
        # Git's answers get resolve_timeout's 30 s in production; 90 here, where a Molecule lane
        # shares the two cores (a CI run saw ls-remote of this loopback server pass 30 s).
        repo_policy = {
            "allowed_hosts": [git_server.host],
            "allow_private_hosts": True,
            "build_timeout": 240,
            "resolve_timeout": 90,
        }
        repo_policy.update(policy)
        hub.start(
            "formspawner.FormDockerSpawner",
            {"images": images, "env_policy": ENV_POLICY, "form_options": ["image", "env", "repo"],
             "repo_policy": repo_policy, **(spawner or {})},
            settings,
            # Answer every spawn request at once (202), so the test reads the whole progress stream.
            extra=LAUNCH_PAGE + (ANSWER_AT_ONCE if answer_at_once else "") + extra,
            env={"GIT_SSL_CAINFO": str(git_server.cert)},
        )  # fmt: skip
        return hub

    yield start
    remove_user_containers(docker_client)
    for image in docker_client.images.list(filters={"label": "org.formspawner.repo=1"}):
        if any(re.search(r"/localhost-\d+-fstest-", tag) for tag in image.tags):
            docker_client.images.remove(image.id, force=True)
