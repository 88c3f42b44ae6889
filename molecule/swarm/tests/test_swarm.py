"""The hub on a Docker Swarm of three targets: spawns land on workers, options hold there,
repository images travel through the registry, and a worker stopped mid-test leaves the
hub working while its user starts again on the other worker, with their files.

`host` is the manager (the hub's host). The workers are reached from this machine with
`docker exec` into their targets; the last test stops one of them with `docker stop`.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from egress import SERVER_REACHES, TARGETS, campus, run_probe  # noqa: E402
from hubapi import TOKEN, api, wait_ready  # noqa: E402  (molecule/shared, beside the scenarios)

WORKERS = ("jhswarm-worker1", "jhswarm-worker2")
# A line of the certificate in jupyterhub_ca_certificates (molecule.yml).
CA_LINE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "git-tls", "cert.pem").read_text().splitlines()[1]


def on(target, command, check=True):
    """Run a shell command inside a target (a node), from this machine."""
    result = subprocess.run(
        ["docker", "exec", target, "bash", "-c", command], capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{target}: {command}: {result.stderr}")
    return result.stdout.strip()


def start(host, user, body):
    assert api(host, "POST", f"/users/{user}")[0] in (201, 409)
    status, answer = api(host, "POST", f"/users/{user}/server", body)
    assert status in (201, 202), answer
    return wait_ready(host, user, timeout=300)


def placement(host, user):
    """The node running the user's service (from the manager) and the container there."""
    node = host.check_output(
        f"docker service ps --filter desired-state=running --format '{{{{.Node}}}}' jupyter-{user}"
    ).strip()
    container = on(node, f"docker ps -q --filter label=org.formspawner.user={user}")
    return node, container


def environ(node, container):
    return on(node, f"docker exec {container} cat /proc/1/environ").split("\0")


@pytest.fixture(scope="module", autouse=True)
def _only_the_manager(host):
    assert host.backend.get_hostname() == "jhswarm-manager"


def test_three_nodes_are_ready_including_the_one_that_rejoined(host):
    nodes = host.check_output("docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")
    assert sorted(line.split() for line in nodes.splitlines()) == [
        ["jhswarm-manager", "Ready", "Leader"],
        ["jhswarm-worker1", "Ready"],
        ["jhswarm-worker2", "Ready"],
    ]
    # Swarm mode refuses live-restore; the role switched it off on every node.
    for node in ("jhswarm-manager", *WORKERS):
        assert on(node, "docker info --format '{{.LiveRestoreEnabled}}'") == "false"


def test_every_node_has_the_images_pre_pulled(host):
    for node in ("jhswarm-manager", *WORKERS):
        for image in ("minimal", "scipy"):
            on(node, f"docker image inspect jhtest-registry:5000/jhtest/singleuser:{image} >/dev/null")


def test_the_registry_takes_pushes_on_loopback_only_with_the_hubs_login_and_serves_nodes_over_tls(host):
    addr = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    # Pull endpoint: TLS with the certificate the workers trust; read-only.
    for worker in WORKERS:
        assert on(worker, f"curl -sS --cacert /etc/docker/certs.d/{addr}:5000/ca.crt https://{addr}:5000/v2/") == "{}"
    upload = on(
        "jhswarm-worker1",
        f"curl -s -o /dev/null -w '%{{http_code}}' -X POST "
        f"--cacert /etc/docker/certs.d/{addr}:5000/ca.crt https://{addr}:5000/v2/x/blobs/uploads/",
    )
    assert upload in ("405", "503"), upload  # the read-only store refuses uploads
    # Push endpoint: the manager's loopback only, and only with the hub's login.
    assert on("jhswarm-worker1", f"curl -sS -m 5 http://{addr}:5001/v2/", check=False) == ""
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5001/v2/") == "401"
    login = host.file("/etc/jupyterhub/registry-push-login")  # the hub's copy
    assert (login.user, login.mode) == ("jupyterhub", 0o600)
    assert login.content_string == host.file("/etc/docker/registry/push-login").content_string
    assert host.file("/etc/docker/registry/push-login").mode == 0o600
    for path in ("/etc/docker/registry/push-login", "/etc/jupyterhub/registry-push-login"):
        assert host.run(f"runuser -u nobody -- cat {path}").rc != 0, path
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' -u hub:wrong http://127.0.0.1:5001/v2/") == "401"
    assert host.check_output(
        "printf 'user = %s\\n' \"$(cat /etc/docker/registry/push-login)\" "
        "| curl -s -o /dev/null -w '%{http_code}' -K- http://127.0.0.1:5001/v2/"
    ) == "200"
    # Through the engine, as a local account with the docker group could try it.
    host.check_output("docker tag jhtest-registry:5000/jhtest/singleuser:minimal 127.0.0.1:5001/intruder/x:1")
    try:
        pushed = host.run("docker push 127.0.0.1:5001/intruder/x:1")
        assert pushed.rc != 0 and "no basic auth credentials" in pushed.stdout + pushed.stderr, pushed
    finally:
        host.run("docker rmi 127.0.0.1:5001/intruder/x:1")


def test_users_land_on_workers_with_their_image_and_variables(host):
    start(host, "alice", {"image": "minimal", "env": {"COURSE": "physics-101"}})
    start(host, "bob", {"image": "scipy", "env": {"COURSE": "chem-201"}})
    nodes = {}
    for user, course, image in (("alice", "physics-101", "minimal"), ("bob", "chem-201", "scipy")):
        node, container = placement(host, user)
        assert node in WORKERS, f"{user}'s server runs on {node}"
        nodes[user] = node
        env = environ(node, container)
        assert f"COURSE={course}" in env and "TZ=Europe/Berlin" in env
        assert on(node, f"docker inspect -f '{{{{.Config.Image}}}}' {container}").startswith(
            f"jhtest-registry:5000/jhtest/singleuser:{image}"
        )
        # Confinement holds on the swarm too: no capabilities, the process limit.
        status = on(node, f"docker exec {container} cat /proc/1/status")
        assert "CapBnd:\t0000000000000000" in status
        # bob's image has resources of its own (molecule.yml): the service's limits, /dev/shm.
        own = image == "scipy"
        pids, memory, shm = ("300", str(768 * 2**20), str(96 * 2**20)) if own else ("256", str(2**30), None)
        assert on(node, f"docker inspect -f '{{{{.HostConfig.PidsLimit}}}}' {container}") == pids
        assert on(node, f"docker inspect -f '{{{{.HostConfig.Memory}}}}' {container}") == memory
        if shm:
            statvfs = "import os; s = os.statvfs('/dev/shm'); print(s.f_blocks * s.f_frsize)"
            assert on(node, f'docker exec {container} python3 -c "{statvfs}"') == shm
        # The image's start chain runs (tini, start.sh, start-notebook.py handing over to
        # start-singleuser.py); its every-3-seconds health check, which would kill the task
        # when it times out on a busy worker, does not.
        assert on(node, f"docker exec {container} cat /proc/1/comm") == "tini"
        assert "Executing: jupyterhub-singleuser" in on(node, f"docker logs {container} 2>&1")
        assert on(node, f"docker inspect -f '{{{{json .Config.Healthcheck.Test}}}}' {container}") == '["NONE"]'
        assert on(node, f"docker inspect -f '{{{{.State.Health}}}}' {container}") == "<nil>"
        # The hub's extra CA (the Git server's here) is in the bundle the server reads on its
        # worker: the docker role put it into every node's system bundle.
        assert "SSL_CERT_FILE=/etc/formspawner/ca-certificates.crt" in env
        assert CA_LINE in on(node, f"docker exec {container} cat /etc/formspawner/ca-certificates.crt")
    # The swarm spreads the two services over the two workers.
    assert nodes["alice"] != nodes["bob"], nodes
    # The hub reaches each server through the port it published on its worker.
    for user in ("alice", "bob"):
        code = host.check_output(
            f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' "
            f"https://localhost/user/{user}/api/status"
        )
        assert code == "200", (user, code)


def test_a_repository_built_on_the_manager_runs_on_a_worker_from_the_registry(host):
    start(host, "carol", {"image": "minimal", "repo": {"url": "https://localhost:8443/course.git", "ref": "main"}})
    node, container = placement(host, "carol")
    assert node in WORKERS
    image = on(node, f"docker inspect -f '{{{{.Config.Image}}}}' {container}")
    addr = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    assert image.startswith(f"{addr}:5000/formspawner-repo/"), image
    # By digest: what the hub pushed, whatever the registry's tag says later.
    assert re.search(r":[0-9a-f]{12}-[0-9a-f]{12}@sha256:[0-9a-f]{64}$", image), image
    assert on(node, f"docker exec {container} cat /home/jovyan/course/built-by-postbuild") == "postBuild"
    assert on(node, f"docker exec {container} python3 -c 'import fsdemo; print(fsdemo.VALUE)'") == "from-molecule"
    assert api(host, "DELETE", "/users/carol/server")[0] in (202, 204)
    # The worker's refresh drops the pulled build once no container uses it; the manager
    # keeps its cache, and the curated images stay.
    deadline = time.monotonic() + 180
    while on(node, "docker ps -aq --filter label=org.formspawner.user=carol"):
        assert time.monotonic() < deadline, "carol's container is still on the worker 180 s after her server stopped"
        time.sleep(1)
    on(node, "/usr/local/sbin/jupyterhub-images-refresh")
    assert on(node, "docker images -q --filter label=org.formspawner.repo=1") == ""
    on(node, "docker image inspect jhtest-registry:5000/jhtest/singleuser:minimal >/dev/null")
    assert host.check_output("docker images -q --filter label=org.formspawner.repo=1").strip()


def check_policy_on_worker(host, user):
    """The network policy as `user`'s server meets it on its worker (molecule/shared/egress.py:
    the stand-in campus is made inside the worker; the hub's users' and builds' subnets
    exist only on the manager, so they are not probed from here). Returns where it runs."""
    node, container = placement(host, user)
    worker = testinfra.get_host(f"docker://{node}")
    own = campus(worker)
    manager = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    targets = [target for target in TARGETS if not target.startswith("10.211.")]
    seen = run_probe(worker, [*targets, f"{own}:2222", f"{manager}:8081", f"{manager}:5000"], container=container)
    listed = "nameserver 10.99.0.53" in worker.file("/etc/resolv.conf").content_string
    expected = {target: SERVER_REACHES[target] for target in targets}
    expected.update({
        "10.99.0.53:53": "open" if listed else "refused",
        f"{own}:2222": "refused",  # the worker's own services
        f"{manager}:8081": "open",  # the hub's API
        f"{manager}:5000": "refused",  # the rest of the manager (here its registry)
    })  # fmt: skip
    assert seen == expected, (node, seen)
    return node, container, worker


def test_servers_on_workers_meet_the_network_policy_and_only_the_manager_reaches_them(host):
    start(host, "dave", {"image": "minimal"})
    node, container, worker = check_policy_on_worker(host, "dave")
    # Inter-container traffic is off on the worker's default bridge (docker_icc), and a
    # container started there by anyone else does not reach dave's server.
    icc = "docker network inspect bridge -f '{{index .Options \"com.docker.network.bridge.enable_icc\"}}'"
    assert on(node, icc) == "false"
    address = on(node, f"docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {container}")
    image = on(node, f"docker inspect -f '{{{{.Config.Image}}}}' {container}")
    neighbour = run_probe(worker, [f"{address}:8888"], image=image)
    assert neighbour[f"{address}:8888"] != "open", neighbour
    # Its published port answers the manager (the hub's path to it), not another node.
    port = on(node, f"docker port {container} 8888/tcp").splitlines()[0].rsplit(":", 1)[1]
    node_address = on(node, "docker info --format '{{.Swarm.NodeAddr}}'")
    other = testinfra.get_host(f"docker://{next(w for w in WORKERS if w != node)}")
    assert run_probe(other, [f"{node_address}:{port}"]) == {f"{node_address}:{port}": "refused"}
    assert run_probe(host, [f"{node_address}:{port}"]) == {f"{node_address}:{port}": "open"}
    assert api(host, "DELETE", "/users/dave/server")[0] in (202, 204)


def test_servers_on_workers_survive_a_restart_of_the_hub(host):
    before = {user: placement(host, user) for user in ("alice", "bob")}
    host.check_output("systemctl restart jupyterhub")
    # Until the hub answers its API: -f, as the proxy alone answers 503 meanwhile.
    deadline = time.monotonic() + 180
    while host.run("curl -skf -o /dev/null https://localhost/hub/api/").rc != 0:
        assert time.monotonic() < deadline, "the hub did not answer its API within 180 s of its restart"
        time.sleep(1)
    for user in ("alice", "bob"):
        assert api(host, "GET", f"/users/{user}")[1]["servers"][""]["ready"]
        assert placement(host, user) == before[user]  # the same container, found again
        code = host.check_output(
            f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' "
            f"https://localhost/user/{user}/api/status"
        )
        assert code == "200", (user, code)


def test_a_stopped_worker_leaves_the_hub_working_and_its_user_starts_on_the_other(host):
    node, container = placement(host, "alice")
    on(node, f"docker exec {container} bash -c 'echo kept > /home/jovyan/work/notes.txt'")
    other = next(worker for worker in WORKERS if worker != node)
    subprocess.run(["docker", "stop", node], check=True, capture_output=True, timeout=120)
    try:
        # The hub forgets alice's server once it sees her node is down (its periodic poll).
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline:
            if api(host, "GET", "/users/alice")[1]["servers"].get("") is None:
                break
            time.sleep(3)
        else:
            raise AssertionError(host.run("journalctl -u jupyterhub --no-pager -n 60").stdout)
        # Meanwhile the hub answers and a server on the other worker keeps working.
        assert api(host, "GET", "/users")[0] == 200
        bob_node, _ = placement(host, "bob")
        if bob_node == other:
            code = host.check_output(
                f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' "
                "https://localhost/user/bob/api/status"
            )
            assert code == "200"
        # alice starts again: on the other worker, with her stored options and her files.
        start(host, "alice", {"image": "minimal", "env": {"COURSE": "physics-101"}})
        new_node, new_container = placement(host, "alice")
        assert new_node == other
        assert "COURSE=physics-101" in environ(new_node, new_container)
        assert on(new_node, f"docker exec {new_container} cat /home/jovyan/work/notes.txt") == "kept"
    finally:
        subprocess.run(["docker", "start", node], capture_output=True, timeout=120)


def node_state(host, node):
    return host.check_output(f"docker node inspect -f '{{{{.Status.State}}}}' {node}").strip()


def wait_node(host, node, state, timeout=300):
    deadline = time.monotonic() + timeout
    while node_state(host, node) != state:
        assert time.monotonic() < deadline, f"{node} is not {state}"
        time.sleep(2)


def test_with_pin_storage_a_user_waits_for_the_node_that_holds_her_files(host):
    """The same hub reconfigured with jupyterhub_swarm_storage=pin (the role rerun from here)."""
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    rerun = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            *("-i", os.environ["MOLECULE_INVENTORY_FILE"], str(project / "playbooks" / "jupyterhub.yml")),
            *("-e", "jupyterhub_swarm_storage=pin"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg")),
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    for worker in WORKERS:  # the worker stopped above is back in the swarm
        wait_node(host, worker, "ready")
    start(host, "dora", {"image": "minimal"})
    node, container = placement(host, "dora")
    on(node, f"docker exec {container} bash -c 'echo pinned > /home/jovyan/work/notes.txt'")
    assert api(host, "DELETE", "/users/dora/server")[0] in (202, 204)
    subprocess.run(["docker", "stop", node], check=True, capture_output=True, timeout=120)
    try:
        wait_node(host, node, "down")
        status, answer = api(host, "POST", "/users/dora/server", {"image": "minimal"})
        assert status == 400, answer
        assert f"Your files are on the node {node}, which is down" in answer["message"]
        assert host.run("docker service inspect jupyter-dora").rc != 0  # nothing was started elsewhere
    finally:
        subprocess.run(["docker", "start", node], capture_output=True, timeout=120)
    wait_node(host, node, "ready")
    start(host, "dora", {"image": "minimal"})
    again, container = placement(host, "dora")
    assert again == node
    assert on(node, f"docker exec {container} cat /home/jovyan/work/notes.txt") == "pinned"
    # The worker was stopped and started (its boot): the policy is back in force there.
    check_policy_on_worker(host, "dora")
