"""The network policy's program (roles/jupyterhub/files/jupyterhub-egress, static) with its
policy (templates/jupyterhub-egress.json.j2, rendered by Ansible from the role's defaults),
run for real, with the real iptables, inside a network (and mount) namespace of its own:
the rules it leaves, that a second run leaves the same, that `remove` takes everything
away, which resolvers it opens, and that a broken policy changes nothing. The rules it
builds from each kind of policy, in-process: tests/unit/test_egress_policy.py.

The traffic side (what a user's server and a build can reach, before and after a Docker
restart and a reboot) is the jupyterhub molecule scenario's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# In the integration tier, after testenv installed Docker (and with it iptables); as root,
# as the whole tier runs. Nothing here touches this machine's own firewall.


PROGRAM = ROOT / "roles/jupyterhub/files/jupyterhub-egress"


def render(tmp_path: Path, **variables) -> str:
    """The command that runs the program on the policy the role writes for these variables
    over the role's defaults."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    policy = tmp_path / "jupyterhub-egress.json"
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [str(ROOT / "roles/jupyterhub/defaults/main.yml"), str(ROOT / "roles/jupyterhub/vars/main.yml")],
        "tasks": [{"ansible.builtin.template": {
            "src": str(ROOT / "roles/jupyterhub/templates/jupyterhub-egress.json.j2"), "dest": str(policy),
            "mode": "0644", "validate": f"env JUPYTERHUB_EGRESS_POLICY=%s {PROGRAM} check",
        }}],
    }]  # fmt: skip
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, **variables}), str(tmp_path / "play.yml")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    return f"env JUPYTERHUB_EGRESS_POLICY={policy} {PROGRAM}"


def run_in_namespace(tmp_path: Path, commands: str, resolv: str = "nameserver 127.0.0.11\n") -> str:
    """`commands` in a fresh network namespace (its own, empty iptables) with Docker's
    DOCKER-USER chain and `resolv` as /etc/resolv.conf; iptables -S after them."""
    (tmp_path / "resolv.conf").write_text(resolv)
    inner = (
        f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf && iptables -w 10 -N DOCKER-USER && "
        f"{commands} && iptables -w 10 -S"
    )
    result = subprocess.run(["unshare", "--net", "--mount", "sh", "-c", inner], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def chain(rules: str, name: str) -> list[str]:
    return [line for line in rules.splitlines() if line.startswith(f"-A {name} ")]


def test_deny_private_rules_link_both_subnets_once_and_a_second_run_changes_nothing(tmp_path):
    script = render(tmp_path, jupyterhub_egress_allow=[{"to": "10.99.0.2", "ports": [5432, 5433]}])
    once = run_in_namespace(tmp_path, f"{script}")
    twice = run_in_namespace(tmp_path, f"{script} && {script}")
    assert once == twice
    assert chain(once, "DOCKER-USER") == [
        "-A DOCKER-USER -s 10.211.1.0/24 -j JUPYTERHUB-EGRESS",
        "-A DOCKER-USER -s 10.211.0.0/24 -j JUPYTERHUB-EGRESS",
    ]
    assert chain(once, "INPUT") == [
        "-A INPUT -s 10.211.1.0/24 -j JUPYTERHUB-INPUT",
        "-A INPUT -s 10.211.0.0/24 -j JUPYTERHUB-INPUT",
    ]
    egress = chain(once, "JUPYTERHUB-EGRESS")
    assert egress[0] == "-A JUPYTERHUB-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    # The exception comes before any refusal; every denied range is refused, TCP with a reset.
    assert egress[1:3] == [
        "-A JUPYTERHUB-EGRESS -d 10.99.0.2/32 -p tcp -m multiport --dports 5432,5433 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.99.0.2/32 -p udp -m multiport --dports 5432,5433 -j RETURN",
    ]
    for denied in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert f"-A JUPYTERHUB-EGRESS -d {denied} -p tcp -j REJECT --reject-with tcp-reset" in egress
        assert f"-A JUPYTERHUB-EGRESS -d {denied} -j REJECT --reject-with icmp-admin-prohibited" in egress
    assert len(egress) == 3 + 10  # the public internet is not refused
    # To this host: the hub's API from the users' subnet; nothing else (the exception is
    # for another host: it says no host: true).
    assert chain(once, "JUPYTERHUB-INPUT") == [
        "-A JUPYTERHUB-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A JUPYTERHUB-INPUT -s 10.211.0.0/24 -d 10.211.0.1/32 -p tcp -m tcp --dport 8081 -j RETURN",
        "-A JUPYTERHUB-INPUT -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-INPUT -j REJECT --reject-with icmp-admin-prohibited",
    ]


def test_an_exception_opens_this_hosts_own_services_only_when_it_says_host(tmp_path):
    """A campus subnet that holds the hub's host, allowed for users, must not open every
    port of the host (sshd, a database listening on all interfaces): only host: true does."""
    script = render(tmp_path, jupyterhub_egress_allow=[
        {"to": "10.0.0.0/16"}, {"to": "10.0.0.7", "ports": [3128], "host": True},
    ])  # fmt: skip
    rules = run_in_namespace(tmp_path, f"{script}")
    assert "-A JUPYTERHUB-EGRESS -d 10.0.0.0/16 -j RETURN" in chain(rules, "JUPYTERHUB-EGRESS")
    assert "-A JUPYTERHUB-EGRESS -d 10.0.0.7/32 -p tcp -m multiport --dports 3128 -j RETURN" in chain(
        rules, "JUPYTERHUB-EGRESS"
    )
    assert [rule for rule in chain(rules, "JUPYTERHUB-INPUT") if "10.0.0." in rule] == [
        "-A JUPYTERHUB-INPUT -d 10.0.0.7/32 -p tcp -m multiport --dports 3128 -j RETURN",
        "-A JUPYTERHUB-INPUT -d 10.0.0.7/32 -p udp -m multiport --dports 3128 -j RETURN",
    ]


def test_allowlist_refuses_everything_else_and_remove_takes_every_rule_away(tmp_path):
    script = render(tmp_path, jupyterhub_egress_policy="allowlist", jupyterhub_egress_allow=[{"to": "10.30.0.0/16"}])
    rules = run_in_namespace(tmp_path, f"{script}")
    egress = chain(rules, "JUPYTERHUB-EGRESS")
    assert egress[1] == "-A JUPYTERHUB-EGRESS -d 10.30.0.0/16 -j RETURN"
    assert egress[-2:] == [
        "-A JUPYTERHUB-EGRESS -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -j REJECT --reject-with icmp-admin-prohibited",
    ]
    removed = run_in_namespace(tmp_path, f"{script} && {script} remove")
    assert "JUPYTERHUB" not in removed
    assert "JUPYTERHUB-INBOUND" not in rules  # only a swarm worker's servers take connections
    assert "-N DOCKER-USER" in removed  # Docker's chain is Docker's


def test_dns_is_open_to_the_hosts_resolvers_only_and_only_on_port_53(tmp_path):
    script = render(tmp_path)
    resolv = "nameserver 127.0.0.53\nnameserver 10.9.8.7\nnameserver fd00::53\nsearch example.edu\n"
    rules = run_in_namespace(tmp_path, f"{script}", resolv=resolv)
    for name in ("JUPYTERHUB-EGRESS", "JUPYTERHUB-INPUT"):
        dns = [line for line in chain(rules, name) if "--dport 53" in line]
        assert dns == [
            f"-A {name} -d 10.9.8.7/32 -p udp -m udp --dport 53 -j RETURN",
            f"-A {name} -d 10.9.8.7/32 -p tcp -m tcp --dport 53 -j RETURN",
        ]


# A swarm worker's script, as tasks/swarm.yml renders it: the worker's default bridge, the
# manager's API, the swarm's nodes (a public one among them), connections in from the
# manager only.
WORKER = {
    "subnets": ["10.213.0.0/24"],
    "hub": {"chain": "JUPYTERHUB-EGRESS", "from": "10.213.0.0/24", "to": "172.18.0.2"},
    "inbound_from": "172.18.0.2",
    "nodes": ["172.18.0.2", "198.51.100.20"],
}


def test_on_a_worker_the_managers_api_is_open_the_nodes_are_not_and_only_the_manager_connects_in(tmp_path):
    script = render(tmp_path, _egress_rules=WORKER)
    rules = run_in_namespace(tmp_path, f"{script} && {script}")
    assert chain(rules, "DOCKER-USER") == [
        "-A DOCKER-USER -d 10.213.0.0/24 -j JUPYTERHUB-INBOUND",
        "-A DOCKER-USER -s 10.213.0.0/24 -j JUPYTERHUB-EGRESS",
    ]
    assert chain(rules, "INPUT") == ["-A INPUT -s 10.213.0.0/24 -j JUPYTERHUB-INPUT"]
    egress = chain(rules, "JUPYTERHUB-EGRESS")
    assert egress[1:6] == [
        "-A JUPYTERHUB-EGRESS -s 10.213.0.0/24 -d 172.18.0.2/32 -p tcp -m tcp --dport 8081 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 172.18.0.2/32 -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -d 172.18.0.2/32 -j REJECT --reject-with icmp-admin-prohibited",
        "-A JUPYTERHUB-EGRESS -d 198.51.100.20/32 -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -d 198.51.100.20/32 -j REJECT --reject-with icmp-admin-prohibited",
    ]
    # Nothing on the worker itself.
    assert chain(rules, "JUPYTERHUB-INPUT")[1:] == [
        "-A JUPYTERHUB-INPUT -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-INPUT -j REJECT --reject-with icmp-admin-prohibited",
    ]
    assert chain(rules, "JUPYTERHUB-INBOUND") == [
        "-A JUPYTERHUB-INBOUND -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A JUPYTERHUB-INBOUND -s 172.18.0.2/32 -p tcp -j RETURN",
        "-A JUPYTERHUB-INBOUND -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-INBOUND -j REJECT --reject-with icmp-admin-prohibited",
    ]
    removed = run_in_namespace(tmp_path, f"{script} && {script} remove")
    assert "JUPYTERHUB" not in removed


def test_a_new_subnet_replaces_the_old_ones_links(tmp_path):
    old = render(tmp_path / "old", _egress_rules=WORKER)
    new = render(tmp_path / "new", _egress_rules={**WORKER, "subnets": ["10.214.0.0/24"]})
    rules = run_in_namespace(tmp_path, f"{old} && {new}")
    links = chain(rules, "DOCKER-USER") + chain(rules, "INPUT")
    assert links and all("10.214.0.0/24" in link for link in links), links


def test_dns_can_be_closed_for_an_exam(tmp_path):
    """jupyterhub_egress_dns: false (an exam with allowlist): no rule opens port 53 to the
    host's resolvers, from either chain; the exceptions stay open by address."""
    script = render(tmp_path, jupyterhub_egress_policy="allowlist", jupyterhub_egress_dns=False,
                    jupyterhub_egress_allow=[{"to": "10.30.0.5", "ports": [443]}])
    rules = run_in_namespace(tmp_path, f"{script}", resolv="nameserver 10.0.0.53\n")
    assert "--dport 53" not in rules
    assert "-A JUPYTERHUB-EGRESS -d 10.30.0.5/32 -p tcp -m multiport --dports 443 -j RETURN" in rules
    opened = run_in_namespace(tmp_path, f"{render(tmp_path / 'open', jupyterhub_egress_policy='allowlist')}",
                              resolv="nameserver 10.0.0.53\n")
    assert "-A JUPYTERHUB-EGRESS -d 10.0.0.53/32 -p udp -m udp --dport 53 -j RETURN" in opened


def test_a_broken_policy_file_changes_nothing_and_says_what_is_wrong(tmp_path):
    """A policy file edited by hand into something else: the rules in force stay, the
    unit fails with the reason (the role's template is validated by the same check)."""
    script = render(tmp_path)
    policy = tmp_path / "jupyterhub-egress.json"
    good = run_in_namespace(tmp_path, script)
    broken = json.loads(policy.read_text())
    broken["allow"] = [{"to": "10.0.0.1; iptables -F"}]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    command = f"{script} && JUPYTERHUB_EGRESS_POLICY={tmp_path}/broken.json {PROGRAM} 2>{tmp_path}/err; true"
    assert run_in_namespace(tmp_path, command) == good
    assert (tmp_path / "err").read_text() == (
        "jupyterhub-egress: allow[0].to is not an IPv4 address or network: '10.0.0.1; iptables -F'; "
        "nothing was changed\n"
    )
