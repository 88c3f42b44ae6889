"""Hostile input through the real hub: every body below is refused with a 400 that names
the problem, on the REST API and on the form, and leaves nothing behind (no container,
no volume, no image, no server in the hub's database)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from .hubharness import DOCKER_SETTINGS, ENV_POLICY, IMAGES, LAUNCH_PAGE, PREFIX, Hub, remove_user_containers

LONG = "x" * 5000
CORPUS = [
    # env: the platform's own variables, code-execution variables, shapes and sizes
    ({"env": {"JUPYTERHUB_API_TOKEN": "x"}}, "reserved by the platform"),
    ({"env": {"jupyterhub_api_url": "http://evil"}}, "reserved by the platform"),
    ({"env": {"LD_PRELOAD": "/tmp/evil.so"}}, "reserved by the platform"),
    ({"env": {"PYTHONPATH": "/tmp"}}, "reserved by the platform"),
    ({"env": {"PATH": "/tmp"}}, "reserved by the platform"),
    ({"env": {"NB_UID": "0"}}, "reserved by the platform"),
    ({"env": {"GRANT_SUDO": "yes"}}, "reserved by the platform"),
    ({"env": {"BASH_ENV": "/tmp/evil.sh"}}, "reserved by the platform"),
    ({"env": {"NOTEBOOK_ARGS": "--ServerApp.token="}}, "reserved by the platform"),
    ({"env": {"NVIDIA_VISIBLE_DEVICES": "all"}}, "reserved by the platform"),
    ({"env": {"GLIBC_TUNABLES": "glibc.malloc.check=3"}}, "reserved by the platform"),
    ({"env": {"OK": "line\u2028break"}}, "control character"),
    ({"env": {"OK": "next\x85line"}}, "control character"),
    ({"env": {"TZ": "UTC"}}, "reserved by the platform or denied"),
    ({"env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "denied"),
    ({"env": {"A B": "x"}}, "is not allowed"),
    ({"env": {"A=B": "x"}}, "is not allowed"),
    ({"env": {"": "x"}}, "must be non-empty"),
    ({"env": {"OK": "line\nbreak"}}, "control character"),
    ({"env": {"OK": LONG}}, "longer than"),
    ({"env": {"OK": 1}}, "must be text"),
    ({"env": {f"V{i}": "x" for i in range(11)}}, "Too many variables"),
    ({"env": ["A=1"]}, "must be an object"),
    ({"env": "A=1"}, "must be an object"),
    # image: only a curated name, and only one the user may see
    ({"image": "jhtest/singleuser:scipy"}, "Unknown image"),
    ({"image": "docker.io/library/alpine"}, "Unknown image"),
    ({"image": ["minimal"]}, "must be"),
    ({"image": {"name": "minimal"}}, "must be"),
    ({"image": "gpu"}, "Unknown image"),
    ({"image": "../minimal"}, "Unknown image"),
    # repo: transports, credentials, option injection, paths, shapes
    ({"repo": {"url": "file:///etc"}}, "Only https"),
    ({"repo": {"url": "ext::sh -c id"}}, "printable ASCII"),
    ({"repo": {"url": "https://github.com/o/r"}}, "not allowed here"),
    ({"repo": "https://github.com/o/r"}, "must be given as"),
    ({"repo": {"url": "https://a:b@localhost/o/r"}}, "user name or password"),
    ({"repo": {"url": "https://HOST/o/r", "ref": "-c"}}, "not a branch, tag or commit"),
    ({"repo": {"url": "https://HOST/o/r", "ref": "a..b"}}, "not a branch, tag or commit"),
    ({"repo": {"url": "https://HOST/o/r", "path": "../../etc/passwd"}}, "not a path inside the repository"),
    ({"repo": {"url": "https://HOST/o/../r"}}, "plain names"),
    ({"repo": {"url": "https://HOST/o/r?x=1"}}, "query"),
    ({"repo": {"url": "https://HOST/o/r", "build": "yes"}}, "Unknown repository field"),
    # the body itself
    ({"cmd": ["sh", "-c", "id"]}, "Unknown option"),
    ({"volumes": {"/": "/host"}}, "Unknown option"),
    ([1, 2], "must be a JSON object"),
]


@pytest.fixture(scope="module")
def shared_repo_hub(docker_client, user_network, git_server):
    """One hub for the whole corpus (each case would otherwise start its own)."""
    workdir = Path(tempfile.mkdtemp(prefix="fstest-abuse-"))
    hub = Hub(workdir, user_network)
    policy = {"allowed_hosts": [git_server.host], "allow_private_hosts": True}
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "form_options": ["image", "env", "repo"], "repo_policy": policy},
        DOCKER_SETTINGS,
        extra=LAUNCH_PAGE,
        env={"GIT_SSL_CAINFO": str(git_server.cert)},
    )
    yield hub
    hub.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    remove_user_containers(docker_client)


def _body(body, host):
    """The case with the test Git server's host in place of HOST."""
    if isinstance(body, str):
        return body.replace("HOST", host)
    if isinstance(body, dict):
        return {_body(k, host): _body(v, host) for k, v in body.items()}
    if isinstance(body, list):
        return [_body(v, host) for v in body]
    return body


@pytest.mark.parametrize(("body", "message"), CORPUS, ids=[f"case{i}" for i in range(len(CORPUS))])
def test_hostile_rest_bodies_are_refused_with_400_and_leave_nothing(
    shared_repo_hub, git_server, docker_client, body, message
):
    hub = shared_repo_hub
    response = hub.spawn("mallory", _body(body, git_server.host))
    assert response.status_code == 400, (body, response.status_code, response.text[:300])
    assert message.lower() in response.json()["message"].lower(), (message, response.json()["message"])
    assert "evil" not in response.json()["message"] and "/tmp" not in response.json()["message"]
    assert not hub.api("GET", "/users/mallory").json()["servers"]
    assert not docker_client.containers.list(all=True, filters={"name": f"{PREFIX}-mallory"})
    assert not docker_client.volumes.list(filters={"name": f"{PREFIX}-mallory"})


def test_hostile_form_submissions_come_back_with_the_message(shared_repo_hub, git_server, docker_client):
    hub = shared_repo_hub
    hub.ensure_user("eve")
    session = hub.login("eve")
    session.get(f"{hub.url}/hub/spawn")
    xsrf = session.cookies.get("_xsrf")
    forms = [
        ({"env": "LD_PRELOAD=/tmp/evil.so"}, "reserved by the platform"),
        ({"env": "NOT A LINE"}, "is not NAME=value"),
        ({"image": "jhtest/singleuser:scipy"}, "Unknown image"),
        ({"repo_url": "git://github.com/o/r"}, "Only https"),
        ({"repo_url": f"https://{git_server.host}/o/r", "repo_ref": "--upload-pack=id"}, "not a branch"),
        ({"repo_ref": "main"}, "without a repository URL"),
    ]
    for fields, message in forms:
        response = session.post(f"{hub.url}/hub/spawn", data={**fields, "_xsrf": xsrf}, allow_redirects=False)
        assert response.status_code == 400, (fields, response.status_code)
        assert re.search(re.escape(message), response.text), (message, response.text[-2000:])
        assert "Traceback" not in response.text
    assert not hub.api("GET", "/users/eve").json()["servers"]
    assert not docker_client.containers.list(all=True, filters={"name": f"{PREFIX}-eve"})
