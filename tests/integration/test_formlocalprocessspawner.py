"""The env option on a plain LocalProcessSpawner (no containers involved)."""

import time
from pathlib import Path

import pytest

from .hubharness import ENV_POLICY

pytestmark = pytest.mark.integration

# The one stand-in here: servers run as the hub's own user, because the test machine
# has no per-user accounts to switch to. Everything else is the stock spawner.
SAME_USER_SPAWNER = """
from formspawner import FormLocalProcessSpawner

class HubUserLocalProcessSpawner(FormLocalProcessSpawner):
    def make_preexec_fn(self, name):
        return None

    def user_env(self, env):
        env["HOME"] = settings["home"]
        return env

c.JupyterHub.spawner_class = HubUserLocalProcessSpawner
c.Spawner.cmd = [sys.prefix + "/bin/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = settings["home"]
"""


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def server_pid(user: str) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"jupyterhub-singleuser" not in (proc / "cmdline").read_bytes():
                continue
            if process_env(int(proc.name)).get("JUPYTERHUB_USER") == user:
                return int(proc.name)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    raise AssertionError(f"no jupyterhub-singleuser process for {user}")


def test_env_option_works_on_local_process_spawner(make_hub, tmp_path):
    hub = make_hub()
    hub.settings["home"] = str(tmp_path)
    hub.start("formspawner.FormLocalProcessSpawner", {"env_policy": ENV_POLICY}, extra=SAME_USER_SPAWNER)

    refused = hub.spawn("carol", {"env": {"LD_PRELOAD": "/tmp/evil.so"}})
    assert refused.status_code == 400 and "reserved by the platform" in refused.json()["message"]
    image = hub.spawn("carol", {"image": "scipy"})
    assert image.status_code == 400 and "Unknown option 'image'" in image.json()["message"]

    response = hub.spawn("carol", {"env": {"COURSE": "ml-101", "OMP_NUM_THREADS": "2"}})
    assert response.status_code in (201, 202), response.text
    hub.wait_ready("carol")
    env = process_env(server_pid("carol"))
    assert env["COURSE"] == "ml-101"
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["TZ"] == "Europe/Berlin"
    assert env["JUPYTERHUB_USER"] == "carol"
    hub.stop_server("carol")
    time.sleep(0.5)
    with pytest.raises(AssertionError):
        server_pid("carol")
