"""The deployed hub inside each target: service, API, and real spawns checked in the user's container."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
import egress  # noqa: E402  (molecule/shared, beside the scenarios)
import scenario  # noqa: E402
from hubapi import API, TOKEN, api, launch_course_repo, metrics, user_id, wait_ready  # noqa: E402

PROJECT = Path(__file__).resolve().parents[3]
PINNED_VERSION = yaml.safe_load((PROJECT / "roles/jupyterhub/defaults/main.yml").read_text())["jupyterhub_version"]


def ensure_user(host, name):
    status, _ = api(host, "GET", f"/users/{name}")
    if status == 404:
        assert api(host, "POST", f"/users/{name}")[0] == 201


def container_env(host, name):
    out = host.check_output(f"docker exec jupyter-{name} cat /proc/1/environ")  # as the server's own user
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def run_playbook(host, playbook):
    return scenario.run_playbook(host, playbook, __file__)


def test_service_is_active_enabled_and_its_unit_verifies(host):
    service = host.service("jupyterhub")
    assert service.is_running and service.is_enabled
    result = host.run("systemd-analyze verify /etc/systemd/system/jupyterhub.service")
    assert result.rc == 0, result.stderr
    # The hub's share of the host: half its memory (systemd turns 50% into bytes), 4096 tasks.
    shown = host.check_output("systemctl show jupyterhub -p MemoryMax -p TasksMax")
    limits = dict(line.split("=", 1) for line in shown.splitlines())
    # kB times 1024 here: Debian 12's mawk prints large products as 2.5276e+10.
    total = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo")) * 1024
    assert limits["TasksMax"] == "4096", limits
    assert abs(int(limits["MemoryMax"]) - total // 2) < 2**20, (limits, total)


def test_unit_exposure_is_reported(host):
    out = host.run("systemd-analyze security jupyterhub.service --no-pager")
    line = [ln for ln in out.stdout.splitlines() if "Overall exposure level" in ln]
    assert line, out.stdout + out.stderr
    print(host.backend.get_hostname(), line[0])
    score = float(line[0].split("level for jupyterhub.service:")[1].split()[0])
    assert score <= 2.0  # measured 1.7 on Debian 12 and 13; see roles/jupyterhub/README.md


def test_hub_api_answers_over_tls(host):
    status, body = api(host, "GET", "")
    assert status == 200 and body["version"] == PINNED_VERSION


def test_secrets_are_private_to_the_hub(host):
    for path in (
        "/var/lib/jupyterhub/jupyterhub_cookie_secret",
        "/etc/jupyterhub/secrets.env",
        "/etc/jupyterhub/metrics-token",
    ):
        secret = host.file(path)
        assert secret.user == "jupyterhub" and secret.mode == 0o600
    assert host.file("/etc/jupyterhub/jupyterhub_config.py").mode == 0o640


def test_inventory_text_stays_data_in_the_rendered_config(host):
    # The config is the role's static file; inventory reaches the hub as data only.
    assert host.file("/etc/jupyterhub/jupyterhub_config.py").content_string == (
        PROJECT / "roles/jupyterhub/files/jupyterhub_config.py"
    ).read_text()
    settings = host.file("/etc/jupyterhub/settings.json")
    assert settings.user == "root" and settings.group == "jupyterhub" and settings.mode == 0o640
    description = json.loads(settings.content_string)["images"][0]["description"]
    assert description == "Quotes ' \" a backslash \\ and {{ braces }} stay text"
    ensure_user(host, "formviewer")
    page = host.run(
        "curl -sk -c /tmp/jar -b /tmp/jar https://localhost/hub/login -o /dev/null && "
        "xsrf=$(awk '/_xsrf/ {print $7}' /tmp/jar) && "
        "curl -sk -c /tmp/jar -b /tmp/jar -d \"username=formviewer&password=molecule-demo-password&_xsrf=$xsrf\" "
        "https://localhost/hub/login -o /dev/null && curl -sk -b /tmp/jar https://localhost/hub/spawn"
    ).stdout
    assert "Quotes &#39; &#34; a backslash \\ and {{ braces }} stay text" in page


def test_extra_config_and_the_admins_config_files_reach_the_running_hub(host):
    login = host.check_output("curl -sk -D /tmp/login-headers https://localhost/hub/login")
    assert "Set through jupyterhub_extra_config" in login
    headers = host.file("/tmp/login-headers").content_string.lower()
    assert "x-course-hub: from-jupyterhub-config-d" in headers
    assert host.file("/etc/jupyterhub/jupyterhub_config.d/50-course-headers.py").mode == 0o640


def test_rest_spawn_with_image_and_env_is_seen_inside_the_users_container(host):
    ensure_user(host, "alice")
    status, body = api(host, "POST", "/users/alice/server", {"image": "scipy", "env": {"COURSE": "ml-101"}})
    assert status in (201, 202), body
    wait_ready(host, "alice")
    image = host.check_output("docker inspect --format '{{.Config.Image}}' jupyter-alice")
    assert image == "jhtest-registry:5000/jhtest/singleuser:scipy"
    env = container_env(host, "alice")
    assert env["COURSE"] == "ml-101"
    assert env["TZ"] == "Europe/Berlin"
    assert env["JUPYTERHUB_USER"] == "alice"
    # The user's named volume holds the work directory, and the user can write to it.
    mounts = host.check_output("docker inspect --format '{{json .Mounts}}' jupyter-alice")
    assert "jupyterhub-user-alice" in mounts
    assert host.run("docker exec jupyter-alice touch /home/jovyan/work/written-by-alice").rc == 0
    # The campus CA (jupyterhub_ca_certificates) reaches the server: the host's bundle,
    # read-only, with the tools pointed at it; the image itself knows only public CAs.
    campus_ca = host.file("/usr/local/share/ca-certificates/jupyterhub-cert.crt").content_string.strip()
    bundle = host.check_output("docker exec jupyter-alice cat /etc/formspawner/ca-certificates.crt")
    assert campus_ca.splitlines()[1] in bundle
    assert env["PIP_CERT"] == env["SSL_CERT_FILE"] == "/etc/formspawner/ca-certificates.crt"
    assert host.run("docker exec jupyter-alice touch /etc/formspawner/ca-certificates.crt").rc != 0


def test_a_course_has_its_host_group_and_folder_which_its_staffs_server_writes(host):
    """The role's side of jupyterhub_courses (the spawner's: tests/integration/test_courses.py)."""
    for path in ("/srv/jupyterhub/courses", "/srv/jupyterhub/courses/.teams"):
        parent = host.file(path)
        assert (parent.user, parent.group, parent.mode) == ("root", "root", 0o755), path
    folder = host.file("/srv/jupyterhub/courses/stats-201")
    assert folder.is_directory and folder.user == "root" and folder.group == "jhcourse-stats-201"
    assert folder.mode == 0o2775
    team = host.file("/srv/jupyterhub/courses/.teams/stats-201-team-a")
    assert (team.user, team.group, team.mode) == ("root", "jhteam-stats-201-team-a", 0o3770)
    gid = int(host.check_output("getent group jhcourse-stats-201 | cut -d: -f3"))
    team_gid = int(host.check_output("getent group jhteam-stats-201-team-a | cut -d: -f3"))
    settings = json.loads(host.file("/etc/jupyterhub/settings.json").content_string)
    assert settings["courses"] == [{
        "name": "stats-201", "gid": gid, "path": "/srv/jupyterhub/courses/stats-201",
        "mount": "/home/jovyan/courses/stats-201", "staff_groups": ["stats-201-staff"], "student_groups": ["stats-201"],
        "images": [], "teams": [{"name": "stats-201-team-a", "gid": team_gid,
                                 "path": "/srv/jupyterhub/courses/.teams/stats-201-team-a",
                                 "mount": "/home/jovyan/teams/stats-201-team-a"}],
    }]  # fmt: skip
    ensure_user(host, "tutor")
    assert api(host, "POST", "/groups/stats-201-staff", {})[0] in (201, 409)
    assert api(host, "POST", "/groups/stats-201-staff/users", {"users": ["tutor"]})[0] == 200
    assert api(host, "POST", "/users/tutor/server", {"image": "minimal"})[0] in (201, 202)
    wait_ready(host, "tutor")
    host.check_output("docker exec jupyter-tutor sh -c 'echo notes > /home/jovyan/courses/stats-201/notes.md'")
    uid = user_id(host, "tutor")
    assert host.check_output("stat -c '%u %g' /srv/jupyterhub/courses/stats-201/notes.md") == f"{uid} {gid}"
    assert api(host, "DELETE", "/users/tutor/server")[0] in (202, 204)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"env": {"JUPYTERHUB_API_TOKEN": "x"}}, "reserved by the platform"),
        ({"env": {"AWS_ACCESS_KEY_ID": "x"}}, "denied"),
        ({"image": "jhtest-registry:5000/jhtest/singleuser:scipy"}, "Unknown image"),
    ],
)
def test_refused_spawns_get_400_and_leave_no_container(host, body, message):
    ensure_user(host, "mallory")
    status, answer = api(host, "POST", "/users/mallory/server", body)
    assert status == 400 and message in answer["message"]
    assert host.run("docker inspect jupyter-mallory").rc != 0


def test_a_repository_launch_builds_on_the_target_and_opens_in_the_repository(host):
    """The deployed hub (git from the role, its sandboxed unit, the CA from inventory)
    resolves, fetches and builds a repository from the Git server the side effect runs,
    and keeps its files in the user's volume (merged by nbgitpuller's rules at each launch)."""
    ensure_user(host, "carol")
    run = launch_course_repo(host, "carol")
    # postBuild's output is in the build's own copy (REPO_DIR); the user's copy is in the volume.
    assert host.check_output(f"{run} cat /home/jovyan/course/built-by-postbuild") == "postBuild"
    assert host.check_output(f"{run} git -C /home/jovyan/work/course status --short") == ""
    assert container_env(host, "carol")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/work/course"
    # The hub's copy, written by the sandboxed unit (UMask 0077) and read by the image's user.
    copies = host.check_output("ls /var/lib/jupyterhub/formspawner-builds/content")
    assert copies.endswith(".git"), copies
    assert host.file("/var/lib/jupyterhub/formspawner-repo-cache.json").exists
    # A missing branch is refused before anything starts.
    ensure_user(host, "dave")
    status, answer = api(
        host, "POST", "/users/dave/server", {"repo": {"url": "https://localhost:8443/course.git", "ref": "nope"}}
    )
    assert status == 400 and "no branch or tag named 'nope'" in answer["message"]
    assert api(host, "DELETE", "/users/carol/server")[0] in (202, 204)


def test_user_containers_cannot_reach_each_other(host):
    ensure_user(host, "bob")
    api(host, "POST", "/users/bob/server", {"image": "minimal"})
    wait_ready(host, "bob")
    wait_ready(host, "alice")
    alice_ip = host.check_output(
        "docker inspect --format '{{(index .NetworkSettings.Networks \"jupyterhub-users\").IPAddress}}' jupyter-alice"
    )
    probe = host.run(
        "docker exec jupyter-bob python3 -c "
        f"\"import socket; s=socket.create_connection(('{alice_ip}', 8888), timeout=3)\""
    )
    assert probe.rc != 0, "bob reached alice's server"
    # The hub (on the host) still reaches both: alice's server answers through the proxy.
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' https://localhost/user/alice/api/status"
    )
    assert status == "200"


# The network policy (jupyterhub_egress_policy): the probes are molecule/shared/egress.py's.
# This scenario's exception (molecule.yml): the stand-in campus database, 10.99.0.2:5432.
OPENED = ("10.99.0.2:5432",)


def test_the_network_policy_holds_from_a_users_server_and_from_a_build(host):
    assert host.service("jupyterhub-egress").is_enabled
    wait_ready(host, "alice")
    egress.check_server(host, "alice", OPENED)
    # The host starts using the "campus resolver" (listed last: the target's own lookups
    # still go to Docker's resolver; its address is routed into the namespace by now).
    # Reapplied, the policy opens port 53 to it, and only that port.
    host.check_output("echo 'nameserver 10.99.0.53' >> /etc/resolv.conf && systemctl restart jupyterhub-egress")
    try:
        egress.check_server(host, "alice", OPENED)
        # A repository whose postBuild probes the same addresses from inside the build.
        ensure_user(host, "builder")
        body = {"image": "minimal", "repo": {"url": "https://localhost:8443/egress.git", "ref": "main"}}
        assert api(host, "POST", "/users/builder/server", body)[0] in (201, 202)
        wait_ready(host, "builder", timeout=400)
        built = host.check_output("docker exec jupyter-builder cat /home/jovyan/egress/egress-from-build.json")
        seen = json.loads(built)
        assert seen == {**egress.BUILD_REACHES, **dict.fromkeys(OPENED, "open"), "10.99.0.53:53": "open"}
    finally:
        # Rewritten in place: Docker bind-mounts the file, so it cannot be replaced.
        host.check_output(
            "grep -vx 'nameserver 10.99.0.53' /etc/resolv.conf > /tmp/resolv.conf && cat /tmp/resolv.conf > "
            "/etc/resolv.conf && systemctl restart jupyterhub-egress"
        )
    assert api(host, "DELETE", "/users/builder/server")[0] in (202, 204)


def test_users_containers_are_confined_as_seen_from_inside(host):
    wait_ready(host, "alice")
    status = host.check_output("docker exec jupyter-alice cat /proc/1/status")
    fields = {k: v.strip() for k, _, v in (line.partition(":") for line in status.splitlines())}
    # Alice's own id (jupyterhub_user_ids: auto, on one host), with group 0 for start.sh's
    # passwd entry and the images' users group; her storage is hers.
    uid = user_id(host, "alice")
    assert int(uid) >= 200000
    assert fields["Uid"].split() == [uid] * 4 and fields["Gid"].split() == ["0"] * 4
    assert host.check_output("docker exec jupyter-alice id -un") == "jovyan"
    assert host.check_output("docker exec jupyter-alice stat -c %u /home/jovyan/work") == uid
    assert int(fields["CapBnd"], 16) == 0, "no capability can be gained, even by root in the container"
    assert int(fields["CapEff"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    # A root shell in the container has no capabilities either: it cannot chown another's file.
    assert host.run("docker exec --user 0 jupyter-alice chown 0 /home/jovyan/work").rc != 0
    for socket_path in ("/var/run/docker.sock", "/run/docker.sock"):
        assert host.run(f"docker exec jupyter-alice test -e {socket_path}").rc != 0
    host_config = json.loads(host.check_output("docker inspect --format '{{json .HostConfig}}' jupyter-alice"))
    assert host_config["PidsLimit"] == 256 and host_config["Memory"] == 2**30
    # A fork bomb (bounded, so the test cleans up) stops at the limit; the server lives on.
    bomb = (
        "import subprocess\n"
        "procs = []\n"
        "try:\n"
        "    for _ in range(1000): procs.append(subprocess.Popen(['sleep', '60']))\n"
        "except OSError as error: print('stopped', len(procs), error.errno)\n"
        "for p in procs: p.kill()\n"
    )
    out = host.run(f"docker exec -i jupyter-alice python3 - <<'EOF'\n{bomb}EOF").stdout
    assert out.startswith("stopped") and int(out.split()[1]) < 256, out
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' https://localhost/user/alice/api/status"
    )
    assert status == "200"
    # Shared course data is readable and read-only, for root in the container too.
    assert host.check_output("docker exec jupyter-alice cat /home/jovyan/shared/syllabus.txt") == "week 1"
    assert host.run("docker exec --user 0 jupyter-alice touch /home/jovyan/shared/x").rc != 0


def test_secrets_and_users_values_never_reach_the_journal(host):
    journal = host.check_output("journalctl --no-pager -o cat")
    assert "Spawning" in journal or "jupyterhub" in journal.lower()  # the journal holds the hub's log
    cookie_secret = host.file("/var/lib/jupyterhub/jupyterhub_cookie_secret").content_string.strip()
    tokens = [
        line.split("=", 1)[1].strip()
        for line in host.file("/etc/jupyterhub/secrets.env").content_string.splitlines()
        if "=" in line
    ]
    metrics_token = host.file("/etc/jupyterhub/metrics-token").content_string.strip()
    for secret in [cookie_secret, metrics_token, *tokens]:
        assert len(secret) >= 32 and secret not in journal
    # Values users entered (alice's COURSE) stay out of every log.
    assert "ml-101" not in journal


def test_metrics_need_their_token_and_carry_the_docker_hosts_figures(host):
    url = "https://localhost/hub/metrics"
    status = f"curl -sk -o /dev/null -w '%{{http_code}}' {url}"
    # Neither anonymous nor with another service's token (molecule-tester is an admin).
    assert host.check_output(status) == "403"
    assert host.check_output(f"{status} -H 'Authorization: token {TOKEN}'") == "403"
    # The Docker figures are read behind the first scrape, never during one.
    values = metrics(host, "formspawner_docker_disk_free_bytes", ("formspawner_", "jupyterhub_running_servers"))
    assert values["formspawner_docker_disk_free_bytes"] > 0
    assert values["formspawner_docker_images_bytes"] > 0 and values["formspawner_docker_volumes_bytes"] >= 0
    # alice's and early's servers, at least; a built repository image.
    assert values['formspawner_docker_user_containers{state="running"}'] >= 2
    assert values["formspawner_docker_user_containers_per_user_max"] >= 1
    assert values["formspawner_docker_repo_images"] >= 1
    assert values["jupyterhub_running_servers"] >= 2
    # The served certificate's days left (pebble's certificates live 35 days here).
    assert 30 < values["formspawner_tls_certificate_expiry_days"] <= 35


def test_servers_survive_a_hub_restart(host):
    wait_ready(host, "alice")
    before = host.check_output("docker inspect --format '{{.Id}}' jupyter-alice")
    host.check_output("systemctl restart jupyterhub")
    for _ in range(60):
        if host.run(f"curl -sk -o /dev/null -w '%{{http_code}}' {API}/").stdout == "200":
            break
        time.sleep(1)
    wait_ready(host, "alice")
    assert host.check_output("docker inspect --format '{{.Id}}' jupyter-alice") == before
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' https://localhost/user/alice/api/status"
    )
    assert status == "200"


def test_servers_survive_a_docker_restart_with_live_restore(host):
    wait_ready(host, "alice")
    before = host.check_output("docker inspect --format '{{.Id}} {{.State.StartedAt}}' jupyter-alice")
    host.check_output("docker exec jupyter-alice sh -c 'echo still-here > /home/jovyan/work/before-docker-restart'")
    # An engine upgrade restarts dockerd; the hub (Requires=docker.service) restarts with it.
    host.check_output("systemctl restart docker")
    for _ in range(60):
        if host.run("docker info").rc == 0 and host.run(f"curl -sfk -o /dev/null {API}/").rc == 0:
            break
        time.sleep(1)
    # The same container, never restarted, with its files; the hub still reaches it.
    assert host.check_output("docker inspect --format '{{.Id}} {{.State.StartedAt}}' jupyter-alice") == before
    assert host.check_output("docker exec jupyter-alice cat /home/jovyan/work/before-docker-restart") == "still-here"
    wait_ready(host, "alice")
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' https://localhost/user/alice/api/status"
    )
    assert status == "200"
    assert host.service("jupyterhub").is_running


def test_the_network_policy_holds_after_the_docker_restart(host):
    wait_ready(host, "alice")
    egress.check_server(host, "alice", OPENED)


def test_rerun_changes_nothing_and_keeps_secrets_and_servers(host):
    name = host.backend.get_hostname()
    def digest(path):
        return hashlib.sha256(host.file(path).content).hexdigest()

    secret_before = digest("/var/lib/jupyterhub/jupyterhub_cookie_secret")
    token_before = digest("/etc/jupyterhub/secrets.env")
    container_before = host.check_output("docker inspect --format '{{.Id}}' jupyter-alice")
    result = run_playbook(host, "converge.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{name}" in result.stdout and "changed=0" in result.stdout.split("PLAY RECAP")[-1]
    assert digest("/var/lib/jupyterhub/jupyterhub_cookie_secret") == secret_before
    assert digest("/etc/jupyterhub/secrets.env") == token_before
    assert host.check_output("docker inspect --format '{{.Id}}' jupyter-alice") == container_before


def test_a_users_subnet_another_interface_holds_is_refused(host):
    """A leftover bridge (or a VPN) with an address in the users' subnet would take the
    hub's traffic to every server: the role refuses it, naming the interface. The
    interface is created down, so the running hub's routes stay as they are."""
    host.check_output("ip link add jhclash type bridge && ip address add 10.211.0.250/24 dev jhclash")
    try:
        result = run_playbook(host, "network_check.yml")
    finally:
        host.run("ip link delete jhclash")
    assert result.returncode != 0
    # The failure's message goes to stderr or stdout, depending on ansible.cfg.
    output = result.stdout + result.stderr
    assert "jhclash already has an address in 10.211.0.0/24 (jupyterhub_network_subnet)" in output, output[-3000:]
    # The users' own bridge is not a conflict: without the extra interface the tasks pass.
    result = run_playbook(host, "network_check.yml")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_reboot_brings_back_the_hub_its_database_and_the_users_work(host):
    """A clean restart of the whole target (systemd halts, the container starts again).

    Docker's data lives on a volume, as on a real server's disk. The engine does not
    restart user containers, so the hub finds alice's server gone at its start, forgets
    it, and she starts a new one: same volume, same files, same tokens and users.
    """
    name = host.backend.get_hostname()
    wait_ready(host, "alice")
    host.check_output("docker exec jupyter-alice sh -c 'echo survived > /home/jovyan/work/reboot.txt'")
    users_before = sorted(user["name"] for user in api(host, "GET", "/users")[1])
    subprocess.run(["docker", "restart", "--time", "60", name], check=True, timeout=180)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = host.run("systemctl is-system-running").stdout.strip()
        if state in ("running", "degraded") and host.run(f"curl -sfk -o /dev/null {API}/").rc == 0:
            break
        time.sleep(2)
    else:
        journal = host.run("journalctl -b -u jupyterhub --no-pager -n 60").stdout
        raise AssertionError("the hub did not come back: " + journal)
    assert host.service("docker").is_enabled and host.service("jupyterhub").is_running
    db = "/var/lib/jupyterhub/jupyterhub.sqlite"
    check = f"sqlite3.connect('file:{db}?mode=ro', uri=True).execute('PRAGMA integrity_check').fetchone()[0]"
    assert host.check_output(f"python3 -c \"import sqlite3; print({check})\"") == "ok"
    # The service token from the database still works, and every user is still there.
    assert sorted(user["name"] for user in api(host, "GET", "/users")[1]) == users_before
    # Her container stopped with the machine (no restart policy): the hub, polling it at
    # its start, forgot the server instead of routing to a dead one.
    assert api(host, "GET", "/users/alice")[1]["servers"] == {}
    running = host.run("docker inspect --format '{{.State.Running}}' jupyter-alice").stdout.strip()
    assert running in ("false", ""), "stopped, or already removed by the hub's clean-up"
    options = {"image": "scipy", "env": {"COURSE": "ml-101"}}
    assert api(host, "POST", "/users/alice/server", options)[0] in (201, 202)
    wait_ready(host, "alice")
    assert host.check_output("docker exec jupyter-alice cat /home/jovyan/work/reboot.txt") == "survived"
    assert container_env(host, "alice")["COURSE"] == "ml-101"
    status = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: token {TOKEN}' https://localhost/user/alice/api/status"
    )
    assert status == "200"


def test_the_network_policy_holds_after_the_reboot(host):
    wait_ready(host, "alice")
    egress.check_server(host, "alice", OPENED)


def test_the_hub_starts_only_after_the_network_policy_and_users_are_on_ipv4_only(host):
    """jupyterhub.service is ordered after jupyterhub-egress.service and wants it (no server
    starts before the rules are in); a restart of the policy (at every Docker start) leaves
    the hub running; while the policy cannot be applied the hub does not start (fail
    closed), and it starts once the policy is in. The users' and builds' networks have IPv6
    off (the rules are IPv4 rules)."""
    unit = host.check_output("systemctl show jupyterhub -p After -p Wants")
    after, wants = (line.split("=", 1)[1].split() for line in sorted(unit.splitlines()))
    assert "jupyterhub-egress.service" in after and "jupyterhub-egress.service" in wants
    for network in ("jupyterhub-users", "jupyterhub-builds"):
        assert host.check_output(f"docker network inspect -f '{{{{.EnableIPv6}}}}' {network}") == "false"
    started = host.check_output("systemctl show jupyterhub -p ExecMainPID")
    host.check_output("systemctl restart jupyterhub-egress")
    assert host.check_output("systemctl show jupyterhub -p ExecMainPID") == started
    try:
        # The policy's script fails (a stand-in for a firewall that refuses the rules).
        host.check_output("chmod a-x /usr/local/sbin/jupyterhub-egress")
        host.run("systemctl restart jupyterhub-egress")  # as at a Docker start: it fails now
        assert host.run("systemctl is-active jupyterhub-egress").stdout.strip() == "failed"
        assert host.run("systemctl is-active jupyterhub").stdout.strip() == "active"  # left running
        host.run("systemctl restart jupyterhub")  # its next start: refused while the policy is not in
        time.sleep(3)
        assert host.run("systemctl is-active jupyterhub").stdout.strip() != "active"
        assert host.run("curl -sk -o /dev/null -w '%{http_code}' https://localhost/hub/api").stdout != "200"
    finally:
        host.run("chmod 0755 /usr/local/sbin/jupyterhub-egress")
        host.check_output("systemctl restart jupyterhub-egress jupyterhub")
    deadline = time.monotonic() + 120
    while host.run("curl -sk -o /dev/null -w '%{http_code}' https://localhost/hub/api").stdout != "200":
        assert time.monotonic() < deadline, "the hub did not come back once the policy was in"
        time.sleep(2)
