"""The campus's CA bundle and proxy, for users' servers and repository builds."""

import os
from types import SimpleNamespace

import pytest
from dockerspawner import DockerSpawner
from traitlets.config import Config

from formspawner import FormDockerSpawner, PolicyError
from formspawner.outbound import CA_PATH, CA_VARIABLES, CONTEXT_NAME, Outbound
from formspawner.repo import BaseImage, recipe


def test_nothing_configured_changes_nothing():
    none = Outbound.from_config("", {})
    assert (none.server_env(), none.server_binds(), none.build_args(), none.recipe_lines()) == ({}, {}, {}, [])


def test_servers_get_the_bundle_read_only_and_every_tool_pointed_at_it():
    outbound = Outbound.from_config("/etc/ssl/certs/ca-certificates.crt", {})
    assert outbound.server_binds() == {"/etc/ssl/certs/ca-certificates.crt": {"bind": CA_PATH, "mode": "ro"}}
    assert outbound.server_env() == dict.fromkeys(CA_VARIABLES, CA_PATH)
    assert {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO"} <= set(CA_VARIABLES)


def test_proxies_are_set_in_both_cases_for_servers_and_builds():
    proxy = {"HTTPS_PROXY": "http://proxy.example.edu:3128", "no_proxy": "localhost,.example.edu"}
    outbound = Outbound.from_config("", proxy)
    expected = {
        "https_proxy": "http://proxy.example.edu:3128",
        "HTTPS_PROXY": "http://proxy.example.edu:3128",
        "no_proxy": "localhost,.example.edu",
        "NO_PROXY": "localhost,.example.edu",
    }
    assert outbound.server_env() == expected
    assert outbound.build_args() == expected  # Docker's predefined arguments: not stored in the image
    assert Outbound.from_config("", {"http_proxy": ""}).proxy == ()  # empty = not set


@pytest.mark.parametrize(
    "proxy, message",
    [
        ({"ftp_proxy": "http://p:1"}, "unknown key 'ftp_proxy'"),
        ({"http_proxy": "proxy:3128"}, "http_proxy must be an http:// or https:// URL"),
        ({"https_proxy": "http://p:1/path?x"}, "https_proxy must be an http:// or https:// URL"),
        ({"https_proxy": "http://p:1\nX=1"}, "https_proxy must be"),
        ({"no_proxy": "a b"}, "no_proxy must be a comma-separated list"),
    ],
)
def test_bad_proxy_settings_fail_when_the_spawner_is_configured(proxy, message):
    with pytest.raises(PolicyError, match=message):
        FormDockerSpawner(proxy_env=proxy)


def test_a_proxy_setting_that_is_not_a_mapping_is_refused_naming_it():
    with pytest.raises(PolicyError, match="FormSwarmSpawner.proxy_env must be a mapping"):
        Outbound.from_config("", "http://p:1", "FormSwarmSpawner")


def test_the_bundle_must_be_an_absolute_path_and_exist_when_the_hub_starts(tmp_path):
    with pytest.raises(PolicyError, match="ca_bundle must be an absolute path"):
        FormDockerSpawner(ca_bundle="certs.pem")
    c = Config()
    c.FormDockerSpawner.ca_bundle = str(tmp_path / "absent.pem")
    with pytest.raises(PolicyError, match="absent.pem is not a file on this host"):
        FormDockerSpawner.check_config(c.FormDockerSpawner)
    (tmp_path / "absent.pem").write_text("pem")
    FormDockerSpawner.check_config(c.FormDockerSpawner)


def test_the_spawner_adds_them_over_the_users_values_and_beside_its_volumes(monkeypatch):
    spawner = FormDockerSpawner(
        ca_bundle="/etc/ssl/certs/ca-certificates.crt",
        proxy_env={"https_proxy": "http://proxy:3128"},
        volumes={"/srv/data": "/home/jovyan/data"},
    )
    spawner.user = SimpleNamespace(name="alice")
    assert spawner.volume_binds == {
        "/srv/data": {"bind": "/home/jovyan/data", "mode": "rw"},
        "/etc/ssl/certs/ca-certificates.crt": {"bind": CA_PATH, "mode": "ro"},
    }
    # JupyterHub's own variables (DockerSpawner's get_env needs a running hub: stood in for).
    monkeypatch.setattr(DockerSpawner, "get_env", lambda self: {"JUPYTERHUB_API_TOKEN": "t"})
    spawner.form_env = {"PIP_CERT": "/home/jovyan/mine.pem", "https_proxy": "http://elsewhere:1", "KEPT": "1"}
    env = spawner.get_env()
    assert env["PIP_CERT"] == CA_PATH and env["https_proxy"] == "http://proxy:3128"
    assert env["KEPT"] == "1" and env["JUPYTERHUB_API_TOKEN"] == "t"


def test_builds_copy_the_bundle_readable_and_point_their_steps_at_it(tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    bundle.chmod(0o600)
    outbound = Outbound.from_config(str(bundle), {})
    context = tmp_path / "context"
    context.mkdir()
    outbound.add_to_context(str(context))
    copied = context / CONTEXT_NAME
    assert copied.read_text() == bundle.read_text() and oct(os.stat(copied).st_mode & 0o777) == "0o644"
    base = BaseImage(id="sha256:b", user="1000", home="/home/jovyan", workdir="/home/jovyan", group="100")
    lines = recipe(base, "lab", {"apt.txt", "requirements.txt"}, "", ["vim"], outbound.recipe_lines()).splitlines()
    assert lines[4] == f"COPY {CONTEXT_NAME} {CA_PATH}"
    assert lines[5 : 5 + len(CA_VARIABLES)] == [f"ARG {name}={CA_PATH}" for name in CA_VARIABLES]
    first_download = next(i for i, line in enumerate(lines) if "apt-get" in line or "pip install" in line)
    assert first_download > 5 + len(CA_VARIABLES) - 1
    assert not any(line.startswith("ENV") and "CERT" in line for line in lines)  # ARG: not kept in the image


def test_an_unreadable_bundle_fails_the_build_naming_it(tmp_path):
    with pytest.raises(RuntimeError, match="Cannot read the hub's CA bundle /nonexistent/ca.pem"):
        Outbound.from_config("/nonexistent/ca.pem", {}).add_to_context(str(tmp_path))
