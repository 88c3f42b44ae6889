"""The hub's REST API as the molecule verifiers call it: curl inside the target (testinfra's
`host`), against the hub's TLS port on the target's loopback."""

import json
import time
from pathlib import Path

import yaml

# The test service every scenario's hub runs with, declared once (vars/hubapi.yml, which each
# molecule.yml reads into jupyterhub_services).
_SHARED = yaml.safe_load((Path(__file__).parent / "vars" / "hubapi.yml").read_text())
API = _SHARED["api"]
TOKEN = _SHARED["service"]["api_token"]


def api(host, method, path, body=None, token=TOKEN):
    """Returns (HTTP status, the parsed JSON body, or the text when it is not JSON)."""
    data = f"-d {json.dumps(json.dumps(body))}" if body is not None else ""
    status = host.check_output(
        f"curl -sk -o /tmp/api-body -w '%{{http_code}}' -X {method} -H 'Authorization: token {token}' "
        f"-H 'Content-Type: application/json' {data} {API}{path}"
    )
    text = host.file("/tmp/api-body").content_string
    return int(status), (json.loads(text) if text.startswith(("{", "[")) else text)


def user_id(host, user, data_dir="/var/lib/jupyterhub") -> str:
    """The user's own id, as the hub recorded it (jupyterhub_user_ids: distinct)."""
    return str(json.loads(host.file(f"{data_dir}/formspawner-uids.json").content_string)["users"][user])


def wait_ready(host, user, timeout=180):
    """Waits until the user's default server is ready and returns its model. Fails, with the
    hub's journal, when it is not ready in time or its spawn ended (the server is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = api(host, "GET", f"/users/{user}")[1]["servers"].get("")
        if server and server.get("ready"):
            return server
        if server is None:
            break
        time.sleep(1)
    journal = host.run("journalctl -u jupyterhub --no-pager -n 60").stdout
    raise AssertionError(f"{user}'s server is not ready:\n{journal}")


def metrics(host, wait_for: str, prefixes=("formspawner_", "jupyterhub_")) -> dict[str, float]:
    """The hub's /hub/metrics with its own token, as {series: value} for the series whose
    names start with `prefixes`. The formspawner figures are read behind the first scrape,
    never during one: scrapes again until `wait_for` is among them (up to a minute)."""
    token = host.file("/etc/jupyterhub/metrics-token").content_string.strip()
    for _ in range(60):
        text = host.check_output(f"curl -sfk -H 'Authorization: token {token}' https://localhost/hub/metrics")
        if wait_for in text:
            break
        time.sleep(1)
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(tuple(prefixes))
    }


COURSE_REPO = {"url": "https://localhost:8443/course.git", "ref": "main"}  # tasks/git-server.yml's


def launch_course_repo(host, user: str, timeout: float = 400) -> str:
    """Starts the user's server from the course repository the shared Git server serves
    (built on the target), waits until it is ready and checks that the build's package is
    importable in it; returns the `docker exec` prefix for the user's container."""
    status, answer = api(host, "POST", f"/users/{user}/server", {"image": "minimal", "repo": COURSE_REPO})
    assert status in (201, 202), answer
    wait_ready(host, user, timeout=timeout)
    run = f"docker exec jupyter-{user}"  # as the server runs: the user's own id
    assert host.check_output(f"{run} python -c 'import fsdemo; print(fsdemo.VALUE)'") == "from-molecule"
    assert host.check_output(f"{run} cat /home/jovyan/work/course/README.md") == "# course"
    return run
