"""The integration tests' hub harness: a real JupyterHub (with Debian's
configurable-http-proxy) spawning real containers, and helpers to look into them.

Needs the test environment (`make testenv`): a Docker engine and the jhtest/singleuser
images. The hub binds to the gateway of its own Docker network so that user containers
reach it; the tests talk to the proxy on 127.0.0.1 only. The fixtures (conftest.py), the
tests and the benchmarks (benchmarks/*.py) import from here.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import requests

from .gitserver import GitServer, make_wheel

NETWORK = "jhtest-it"


PREFIX = "fstest"


TOKEN = secrets.token_hex(24)
# Seconds a started hub has to answer its API (Hub.start).
HUB_START_TIMEOUT = 120


IMAGES = [
    {
        "name": "minimal",
        "display_name": "Minimal Python",
        "image": "jhtest/singleuser:minimal",
        "description": "Python and JupyterLab",
        "default": True,
    },
    {"name": "scipy", "display_name": "SciPy", "image": "jhtest/singleuser:scipy", "description": "Science"},
    {"name": "gpu", "display_name": "GPU", "image": "jhtest/singleuser:scipy", "groups": ["gpu-users"]},
]


ENV_POLICY = {
    "deny_patterns": ["^AWS_"],
    "max_vars": 10,
    "max_value_length": 100,
    "defaults": {"OMP_NUM_THREADS": "1"},
    "fixed": {"TZ": "Europe/Berlin"},
}


CONFIG_TEMPLATE = """
import json, sys
settings = json.loads({settings})
c = get_config()
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_bind_url = "http://%s:%d" % (settings["gateway"], settings["hub_port"])
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.auth_token = settings["proxy_token"]
c.ConfigurableHTTPProxy.command = ["/usr/bin/configurable-http-proxy"]
c.JupyterHub.cookie_secret = bytes.fromhex(settings["cookie_secret"])
c.JupyterHub.db_url = "sqlite:///" + settings["db"]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.services = [{{"name": "tester", "api_token": settings["token"]}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "admin:groups", "list:users", "read:users", "access:servers"],
    "services": ["tester"],
}}]
c.JupyterHub.spawner_class = settings["spawner_class"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
section = getattr(c, settings["spawner_class"].rsplit(".", 1)[1])
for key, value in settings["spawner"].items():
    setattr(section, key, value)
for key, value in settings.get("docker", {{}}).items():
    setattr(c.DockerSpawner, key, value)
exec(settings.get("extra", ""))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """One hub process; `restart` keeps its database, so stored options survive."""

    def __init__(self, workdir: Path, gateway: str):
        self.workdir = workdir
        self.gateway = gateway
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_hex(8)
        self.settings = {
            "port": self.port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "proxy_token": secrets.token_hex(24),
            "cookie_secret": secrets.token_hex(32),
            "gateway": gateway,
            "db": str(workdir / "jupyterhub.sqlite"),
            "password": self.password,
            "token": TOKEN,
        }
        self.process = None
        self.log_path = workdir / "hub.log"

    def start(
        self,
        spawner_class: str,
        spawner: dict,
        docker_settings: dict | None = None,
        extra: str = "",
        env: dict | None = None,
    ):
        self._started_with = (spawner_class, spawner, docker_settings, extra, env)
        self.settings.update(spawner_class=spawner_class, spawner=spawner, docker=docker_settings or {}, extra=extra)
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(CONFIG_TEMPLATE.format(settings=repr(json.dumps(self.settings))))
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs", **(env or {}))
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # Two minutes: the hub answers within seconds, but on two cores loaded far beyond a
        # Molecule lane (load average 60) it did not within one.
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"hub did not answer within {HUB_START_TIMEOUT} s:\n{self.log_text()[-3000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()
        self.process = None

    def restart(self):
        """The same hub again: its database, configuration and working directory."""
        self.stop()
        self.start(*self._started_with)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {TOKEN}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def ensure_user(self, name: str, groups: list[str] = ()):
        if self.api("GET", f"/users/{name}").status_code == 404:
            assert self.api("POST", f"/users/{name}").status_code == 201
        for group in groups:
            if self.api("GET", f"/groups/{group}").status_code == 404:
                self.api("POST", f"/groups/{group}")
            self.api("POST", f"/groups/{group}/users", json={"users": [name]})

    def spawn(self, name: str, body=None) -> requests.Response:
        self.ensure_user(name)
        kwargs = {} if body is None else {"json": body}
        return self.api("POST", f"/users/{name}/server", **kwargs)

    def wait_ready(self, name: str, timeout: float = 120, server_name: str = "") -> dict:
        """The user's server (or named server) once ready; a failed spawn fails the test."""
        deadline = time.monotonic() + timeout
        what = f"{name}/{server_name}" if server_name else name
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{name}").json()
            server = model.get("servers", {}).get(server_name)
            if server and server.get("ready"):
                return server
            if not server:
                raise AssertionError(f"spawn of {what} failed:\n{self.log_text()[-3000:]}")
            time.sleep(0.5)
        raise AssertionError(f"{what} not ready in {timeout} s:\n{self.log_text()[-3000:]}")

    def progress_events(self, name: str, timeout: float = 300, server: str = "") -> list[dict]:
        """The spawn page's progress stream of a user's server (or named `server`), read to
        its end (ready or failed)."""
        events = []
        path = f"/users/{name}/servers/{server}/progress" if server else f"/users/{name}/server/progress"
        # JupyterHub answers 400 "... is not starting" while it cleans up after a start that
        # failed at once (its stop clears the pending flag before the spawn's future ends; a
        # related upstream report: jupyterhub/jupyterhub#4244); after the cleanup it serves the
        # failure as an event.
        # Asked again a few times, so a fast refusal is read as the spawn page would after a reload.
        for _ in range(20):
            response = self.api("GET", path, stream=True)
            if response.status_code != 400 or "is not starting" not in response.text:
                break
            response.close()
            time.sleep(0.25)
        with response:
            assert response.status_code == 200, f"{response.text}\n{self.log_text()[-3000:]}"
            deadline = time.monotonic() + timeout
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
                if time.monotonic() > deadline:
                    break
        return events

    def stop_server(self, name: str):
        response = self.api("DELETE", f"/users/{name}/server")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{name}").json().get("servers", {}).get("")
            if not server:
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} did not stop")

    def login(self, name: str) -> requests.Session:
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login")
        xsrf = session.cookies.get("_xsrf") or ""
        response = session.post(
            f"{self.url}/hub/login",
            data={"username": name, "password": self.password, "_xsrf": xsrf},
            allow_redirects=False,
        )
        assert response.status_code == 302, (page.status_code, response.status_code, response.text[:500])
        return session


def network_gateway(client) -> str:
    """The gateway of the network users' containers join (the hub binds there)."""
    try:
        network = client.networks.get(NETWORK)
    except docker.errors.NotFound:
        network = client.networks.create(NETWORK, driver="bridge")
    network.reload()
    return network.attrs["IPAM"]["Config"][0]["Gateway"]


def remove_user_containers(client):
    for container in client.containers.list(all=True, filters={"name": f"{PREFIX}-"}):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # the hub removed it meanwhile (a server that failed to start)


DOCKER_SETTINGS = {
    "network_name": NETWORK,
    "use_internal_ip": True,
    "prefix": PREFIX,
    "pull_policy": "never",
}


def container_of(client, user: str):
    return client.containers.get(f"{PREFIX}-{user}")


def container_env(client, user: str) -> dict[str, str]:
    """The environment as the user's server process sees it, read from inside the container."""
    container = container_of(client, user)
    code, output = container.exec_run(["cat", "/proc/1/environ"])  # as the server's own user
    assert code == 0, output
    pairs = [item.split("=", 1) for item in output.decode().split("\0") if "=" in item]
    return dict(pairs)


# -- Repository launches: a Git server and hubs that use it ------------------------------
ANSWER_AT_ONCE = 'c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}\n'


LAUNCH_PAGE = (
    "import formspawner\n"
    "c.JupyterHub.extra_handlers = formspawner.launch_handlers()\n"
    "c.FormDockerSpawner.launch_links = True\n"
)


def package_repo(server: GitServer, name: str, value: str) -> str:
    wheel, data = make_wheel("fsdemo", value)
    return server.commit(
        name,
        {
            "README.md": f"# {name}\n",
            f"wheels/{wheel}": data,
            "requirements.txt": f"./wheels/{wheel}\n",
            "postBuild": '#!/bin/sh\nset -e\necho "postBuild ran as $(id -un)"\nid -un > postbuild-user\n'
            # repo2docker's variables, as postBuild scripts written for Binder use them.
            'echo "$REPO_DIR $NB_PYTHON_PREFIX" > "$REPO_DIR/postbuild-env"\n',
        },
        executable={"postBuild"},
    )


def start_with_login(hub: Hub, login: dict, images: list | None = None, extra: str = "") -> Hub:
    """Start `hub` with its login configured by the role's own code: hubconfig's
    apply_authenticator and apply_login_groups over `login` (the keys settings.json has on
    a server: authenticator, authenticator_class, authenticator_config, admin_users,
    allow_all, login_groups); `extra` is more hub config after it."""
    code = (
        "from formspawner import hubconfig\n"
        f"_login = {login!r}\n"
        "c.Authenticator.admin_users = set()\n"
        "hubconfig.apply_authenticator(c, _login)\n"
        "hubconfig.apply_login_groups(c, _login)\n"
    ) + extra
    spawner = {"images": images or IMAGES, "env_policy": ENV_POLICY, "form_options": ["image", "env"]}
    hub.start("formspawner.FormDockerSpawner", spawner, DOCKER_SETTINGS, extra=code)
    return hub
