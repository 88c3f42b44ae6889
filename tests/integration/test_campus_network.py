"""A campus network on the real hub: TLS inspection and a mandatory proxy.

This machine is such a network: it re-signs TLS, so nothing reaches the package index
without its CA (/etc/ssl/certs/ca-certificates.crt holds it). `jhtest/singleuser:vanilla`
is the docker-stacks-faithful stand-in without that CA, as the real images come. The
proxy is a real HTTP CONNECT proxy this test starts on the users' network gateway; it
records what it was asked to reach and forwards to the package index (PyPI, which the
test machines may reach, as image builds do).
"""

import select
import socket
import threading

import pytest

from formspawner.outbound import CA_VARIABLES

from .hubharness import DOCKER_SETTINGS, ENV_POLICY, IMAGES, container_env, container_of

pytestmark = pytest.mark.integration

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
VANILLA = {"name": "vanilla", "display_name": "Vanilla", "image": "jhtest/singleuser:vanilla"}
# Fails fast when the index cannot be reached (pip retries for minutes otherwise).
PIP_DOWNLOAD = "pip download --no-deps --retries 0 --timeout 30 -d /tmp/dl six"


class ConnectProxy:
    """An HTTP CONNECT proxy on one address: records each host:port it tunnels to."""

    def __init__(self, address: str):
        self.server = socket.create_server((address, 0))
        self.url = f"http://{address}:{self.server.getsockname()[1]}"
        self.tunnels: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        with client:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            method, target = request.split(b" ", 2)[:2]
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port = target.decode().rpartition(":")
            self.tunnels.append(target.decode())
            try:
                upstream = socket.create_connection((host, int(port)), timeout=30)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(a, b):
        sockets = [a, b]
        while True:
            readable, _, _ = select.select(sockets, [], [], 60)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)

    def close(self):
        self.server.close()


@pytest.fixture
def proxy(user_network):
    server = ConnectProxy(user_network)
    yield server
    server.close()


def run_as_user(client, user, command):
    return container_of(client, user).exec_run(["sh", "-c", command], user="1000")


def test_servers_and_builds_on_an_image_without_the_campus_ca_reach_the_index_through_the_proxy(
    make_hub, git_server, docker_client, proxy
):
    hub = make_hub()
    hub.start(
        "formspawner.FormDockerSpawner",
        {
            "images": [VANILLA, *IMAGES],
            "env_policy": ENV_POLICY,
            "form_options": ["image", "env", "repo"],
            "repo_policy": {"allowed_hosts": [git_server.host], "allow_private_hosts": True, "build_timeout": 240},
            "ca_bundle": BUNDLE,
            "proxy_env": {"https_proxy": proxy.url, "no_proxy": "localhost,127.0.0.1"},
        },
        DOCKER_SETTINGS,
        env={"GIT_SSL_CAINFO": str(git_server.cert)},
    )

    # A student's terminal: pip install from the index, on an image that lacks the CA.
    hub.spawn("tina", {"image": "vanilla"})
    hub.wait_ready("tina")
    env = container_env(docker_client, "tina")
    assert env["PIP_CERT"] == env["SSL_CERT_FILE"] == "/etc/formspawner/ca-certificates.crt"
    assert env["https_proxy"] == env["HTTPS_PROXY"] == proxy.url
    with open(BUNDLE, "rb") as bundle:
        assert run_as_user(docker_client, "tina", "cat /etc/formspawner/ca-certificates.crt").output == bundle.read()
    assert run_as_user(docker_client, "tina", "touch /etc/formspawner/x").exit_code != 0  # read-only
    # The control: the image alone cannot verify the index's certificate here.
    unset = "env " + " ".join(f"-u {name}" for name in CA_VARIABLES)  # requests also reads CURL_CA_BUNDLE
    without = run_as_user(docker_client, "tina", f"{unset} {PIP_DOWNLOAD}")
    assert without.exit_code != 0, without.output.decode(errors="replace")
    assert "CERTIFICATE_VERIFY_FAILED" in without.output.decode(errors="replace")
    tunnels = len(proxy.tunnels)
    assert tunnels > 0  # even the failing attempt went through the proxy
    with_settings = run_as_user(docker_client, "tina", f"{PIP_DOWNLOAD} && ls /tmp/dl")
    assert with_settings.exit_code == 0, with_settings.output.decode(errors="replace")
    assert "six-" in with_settings.output.decode()
    assert any(t.endswith(":443") for t in proxy.tunnels[tunnels:])

    # A repository whose requirements.txt installs from the index, built on the same image
    # (termcolor: small, pure Python, and not in the image, so pip must download it).
    git_server.commit("fstest-pypi", {"requirements.txt": "termcolor\n"})
    tunnels = len(proxy.tunnels)
    response = hub.spawn("uma", {"image": "vanilla", "repo": {"url": git_server.url("fstest-pypi"), "ref": "main"}})
    assert response.status_code in (201, 202), response.text
    hub.wait_ready("uma", timeout=300)
    imported = run_as_user(docker_client, "uma", "python -c 'import termcolor; print(termcolor.__name__)'")
    assert imported.output.decode().strip() == "termcolor", imported.output.decode(errors="replace")
    assert len(proxy.tunnels) > tunnels  # the build's pip went through the proxy too
    # Neither the bundle's variables nor the proxy are stored in the built image: the
    # server gets them at start, so a changed proxy or CA needs no rebuild.
    image = container_of(docker_client, "uma").image
    stored = " ".join(image.attrs["Config"]["Env"])
    assert "PIP_CERT" not in stored and "proxy" not in stored.lower()
    history = " ".join(layer.get("CreatedBy", "") for layer in image.history())
    assert proxy.url not in history
