"""Repository launches of repo2docker's own test repositories (binder-examples/README.md),
through a real hub: each builds and its upstream `verify` passes inside the user's server,
or the launch is refused naming the file, before anything is built.

These builds install from the package index (PyPI, through this machine's network), as
the repositories do on Binder: pipenv itself and the packages their Pipfiles name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .test_repo_launches import (
    BUILD_LABEL,
    assert_launch_refused,
    repo_body,
    run_as_user,
    running_builds,
    stand_in_python,
)

EXAMPLES = Path(__file__).parent / "binder-examples"


def upstream(git_server, name: str) -> str:
    """Commit an upstream example as repository `fstest-<its folder>`; the repository's name."""
    root = EXAMPLES / name
    files, executable = {}, set()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            relative = str(path.relative_to(root))
            data = path.read_bytes()
            if path.name.startswith("Pipfile"):
                # No address here for pypi.python.org (README.md); pypi.org is where it leads.
                data = data.replace(b"https://pypi.python.org/simple", b"https://pypi.org/simple")
            files[relative] = data
            if os.access(path, os.X_OK):
                executable.add(relative)
    repository = "fstest-" + root.name
    git_server.commit(repository, files, executable=executable)
    return repository


@pytest.mark.parametrize(
    ("example", "building", "outranked"),
    [
        # Pipfile.lock comes before Pipfile: numpy (in the Pipfile only) must not be installed.
        ("pipfile/pipfile-lock", "Building with Pipfile, Pipfile.lock", None),
        # Pipfile comes before requirements.txt (numpy again).
        (
            "pipfile/requirements-txt",
            "Building with Pipfile",
            "Not used by this hub: requirements.txt (Pipfile comes first, as on Binder)",
        ),
        # .binder/Pipfile installs the package at the top ({path=".."}) and its dependency.
        (
            "pipfile/setup-py-explicit-in-binder-dir",
            "Building with .binder/Pipfile",
            None,
        ),
    ],
)
def test_pipfile_repositories_build_and_pass_their_upstream_verify(
    repo_hub, git_server, docker_client, example, building, outranked
):
    hub = repo_hub(build_timeout=600)
    repository = upstream(git_server, example)
    user = repository.removeprefix("fstest-").replace("-", "")[:20]
    assert hub.spawn(user, repo_body(git_server, repository)).status_code in (201, 202)
    events = hub.progress_events(user, timeout=660)
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), messages[-15:]
    assert building in messages, messages
    if outranked:
        assert outranked in messages, messages
    # repo2docker runs verify in the built image; here it runs in the user's server.
    folder = f"/home/jovyan/{repository}"
    assert run_as_user(docker_client, user, f"cd {folder} && python verify && echo verified").endswith("verified")
    # pipenv was a tool of the build, not a package of the user's environment.
    assert run_as_user(docker_client, user, "python -c 'import pipenv' 2>&1 || echo absent").endswith("absent")
    hub.stop_server(user)


def test_upstream_repositories_this_image_cannot_build_are_refused_naming_the_file(
    repo_hub, git_server, docker_client
):
    """environment-yml: conda comes before pipenv (the stand-in has no conda); py36: the
    Pipfile.lock's Python (runtime.txt is ignored by a Pipfile build, as upstream's README says)."""
    hub = repo_hub()
    python = stand_in_python(docker_client)
    cases = {
        "pipfile/environment-yml": "The repository's environment.yml needs conda or mamba",
        "pipfile/py36": f"The repository's Pipfile.lock asks for Python 3.6; the chosen image has Python {python}.",
    }
    for number, (example, message) in enumerate(cases.items()):
        repository = upstream(git_server, example)
        assert_launch_refused(hub, git_server, f"refused{number}", repository, message)
        url = git_server.url(repository)[:-4]
        assert not docker_client.images.list(filters={"label": f"org.formspawner.repo.url={url}"})
    assert not running_builds(docker_client)
    assert not docker_client.containers.list(all=True, filters={"label": BUILD_LABEL})
