"""The network policy's probes (jupyterhub_egress_policy), as the molecule verifiers run
them: jupyterhub (trixie: a user's server and a build, before and after a Docker restart
and a reboot) and backup (bookworm: the restored server).

Every address probed lives inside the target: a "campus" network namespace behind a veth
(with /32 routes to it) holds the metadata address, two private hosts, a "public" one and
a resolver, with listeners on 80, 5432 and 53; a listener on the target's port 2222 stands
in for sshd. With or without rules, nothing a probe sends can leave the target. Each
address is checked from the target itself (no policy there) before any probe.
"""

import json
import shlex
import time
from pathlib import Path

FILES = Path(__file__).resolve().parents[1] / "jupyterhub" / "files"
# Run by python3 -c in the target and in users' servers (and by the egress repository's
# postBuild in a build: the jupyterhub side effect copies it beside the Git server).
PROBE = (FILES / "egress_probe.py").read_text()
TARGETS = (FILES / "egress_targets.txt").read_text().split()
CAMPUS = ("169.254.169.254", "10.99.0.1", "192.168.99.1", "10.99.0.2", "198.51.100.7", "10.99.0.53")
CAMPUS_SETUP = f"""set -e
if ! ip netns list | grep -qw jhcampus; then
    ip netns add jhcampus
    ip link add jhcampus type veth peer name jhcampus-in
    ip link set jhcampus-in netns jhcampus
    ip address add 192.0.2.1/30 dev jhcampus
    ip link set jhcampus up
    ip -n jhcampus address add 192.0.2.2/30 dev jhcampus-in
    ip -n jhcampus link set jhcampus-in up
    ip -n jhcampus link set lo up
    ip -n jhcampus route add default via 192.0.2.1
    for address in {" ".join(CAMPUS)}; do
        ip -n jhcampus address add $address/32 dev lo
        ip route replace $address/32 via 192.0.2.2 dev jhcampus
    done
    for port in 80 5432 53; do
        systemd-run --unit=jhcampus-$port ip netns exec jhcampus python3 -m http.server --bind 0.0.0.0 $port
    done
    systemd-run --unit=jhcampus-host python3 -m http.server --bind 0.0.0.0 2222
fi
"""
# What a user's server may reach: the public stand-in and the hub's API; not metadata,
# private addresses or the host's own services. The scenario's exceptions open more.
SERVER_REACHES = {
    "169.254.169.254:80": "refused",
    "10.99.0.1:80": "refused",
    "192.168.99.1:80": "refused",
    "10.99.0.2:5432": "refused",
    "10.99.0.2:80": "refused",
    "198.51.100.7:80": "open",
    "10.211.0.1:8081": "open",
    "10.211.0.1:2222": "refused",
    "10.211.1.1:2222": "refused",
    # The "campus resolver": open to DNS only while the host uses it (the rules follow
    # resolv.conf each time they are applied); otherwise just another private address.
    "10.99.0.53:53": "refused",
}
# A build has no business with the hub's API.
BUILD_REACHES = {**SERVER_REACHES, "10.211.0.1:8081": "refused"}


def run_probe(host, targets, container="", image=""):
    """{HOST:PORT: open | refused | ...} as seen from the target, from inside `container`,
    or from a new container of `image` on the target's default bridge."""
    where = f"docker exec {container} " if container else ""
    if image:
        where = f"docker run --rm --network bridge --entrypoint python3 {image} "
    else:
        where += "python3 "
    return json.loads(host.check_output(f"{where}-c {shlex.quote(PROBE)} {' '.join(targets)}"))


def campus(host):
    """The stand-in campus, made if missing (a reboot removes it); the target's own address."""
    host.check_output(CAMPUS_SETUP)
    own = host.check_output("ip -4 -o address show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1")
    for address in CAMPUS:
        assert "dev jhcampus" in host.check_output(f"ip -o route get {address}"), address
    deadline = time.monotonic() + 30
    while True:  # the listeners take a moment to start
        seen = run_probe(host, TARGETS + [f"{own}:2222"])
        if set(seen.values()) == {"open"} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(seen.values()) == {"open"}, f"a stand-in does not answer from the target itself: {seen}"
    return own


def check_server(host, user, opened=()):
    """The policy as `user`'s server meets it; `opened`: the scenario's exceptions."""
    own = campus(host)
    seen = run_probe(host, TARGETS + [f"{own}:2222"], container=f"jupyter-{user}")
    listed = "nameserver 10.99.0.53" in host.file("/etc/resolv.conf").content_string
    expected = {**SERVER_REACHES, **dict.fromkeys(opened, "open"), f"{own}:2222": "refused"}
    expected["10.99.0.53:53"] = "open" if listed else "refused"
    assert seen == expected
