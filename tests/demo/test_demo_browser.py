"""The student's browser flow against the `make demo` deployment (site.yml in a local
systemd container, https://127.0.0.1:8443/, self-signed certificate).

Run with `make demo-test` (it deploys the demo first). What the form must show comes from
the demo inventory; the student's container is inspected through the demo server's own
Docker engine.
"""

import json
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from tests.studentflow import Hub, chromium_page, student_flow

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = yaml.safe_load((ROOT / "inventory/demo/group_vars/jupyterhub/main.yml").read_text())
SERVER = "jupyterhub-demo"
URL = "https://127.0.0.1:8443"


def in_demo(*argv: str) -> str:
    result = subprocess.run(["docker", "exec", SERVER, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def env_of(user: str) -> dict[str, str]:
    # As the server's own user (the demo runs each user as their own id).
    environ = in_demo("docker", "exec", f"jupyter-{user}", "cat", "/proc/1/environ")
    return dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)


def has_server(user: str) -> bool:
    return bool(in_demo("docker", "ps", "-q", "--filter", f"name=^jupyter-{user}$").strip())


def test_the_demo_answers():
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"{URL}/hub/api/", context=context, timeout=10) as response:
            assert "version" in json.load(response)
    except OSError as error:
        raise AssertionError(f"no demo at {URL} ({error}): run `make demo` first") from None


def test_a_student_uses_the_demo_deployment_in_a_browser():
    images = INVENTORY["jupyterhub_images"]
    hub = Hub(
        url=URL,
        password=INVENTORY["jupyterhub_dummy_password"],
        descriptions=[text for image in images for text in (image["display_name"], image["description"])],
        env_of=env_of,
        has_server=has_server,
        fixed=INVENTORY["jupyterhub_env_policy"]["fixed"],
        shots="demo-",
    )
    # A new student each run: the demo keeps its users, and a run that failed half-way
    # may have left a server running for the last one.
    user = f"student{int(time.time())}"
    with chromium_page(ignore_https_errors=True) as page:
        student_flow(page, hub, user=user, image=images[-1]["name"])
