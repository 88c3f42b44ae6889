"""The network policy's program (roles/jupyterhub/files/jupyterhub-egress), in-process: the
checks every value passes before it reaches a rule, the rules each kind of policy makes,
and the resolvers it reads. Run for real with iptables in a namespace of its own:
tests/integration/test_egress_script.py; the traffic it lets through or not: the
jupyterhub molecule scenario."""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parents[2] / "roles/jupyterhub/files/jupyterhub-egress"
_loader = importlib.machinery.SourceFileLoader("jupyterhub_egress", str(PROGRAM))
egress = importlib.util.module_from_spec(importlib.util.spec_from_loader("jupyterhub_egress", _loader))
_loader.exec_module(egress)

POLICY = {
    "policy": "deny-private",
    "subnets": ["10.211.0.0/24", "10.211.1.0/24"],
    "hub": {"chain": "JUPYTERHUB-INPUT", "from": "10.211.0.0/24", "to": "10.211.0.1", "port": 8081},
    "inbound_from": "",
    "nodes": [],
    "allow": [{"to": "10.99.0.2", "ports": [5432]}, {"to": "10.0.0.7", "host": True}],
    "denied": ["169.254.0.0/16", "10.0.0.0/8"],
    "dns": True,
}


def policy(**changes) -> dict:
    return {**copy.deepcopy(POLICY), **changes}


def added(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def test_deny_private_opens_the_hub_dns_and_the_exceptions_then_refuses_the_private_ranges():
    text = egress.rules(policy(), ["10.9.8.7"])
    assert text.startswith("*filter\n:JUPYTERHUB-EGRESS - [0:0]\n:JUPYTERHUB-INPUT - [0:0]\n") and text.endswith(
        "COMMIT\n"
    )
    assert ":JUPYTERHUB-INBOUND" not in text
    assert added(text, "JUPYTERHUB-EGRESS") == [
        "-A JUPYTERHUB-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.9.8.7/32 -p udp --dport 53 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.9.8.7/32 -p tcp --dport 53 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.99.0.2 -p tcp -m multiport --dports 5432 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.99.0.2 -p udp -m multiport --dports 5432 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 10.0.0.7 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 169.254.0.0/16 -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
        "-A JUPYTERHUB-EGRESS -d 10.0.0.0/8 -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited",
    ]
    assert added(text, "JUPYTERHUB-INPUT") == [
        "-A JUPYTERHUB-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A JUPYTERHUB-INPUT -d 10.9.8.7/32 -p udp --dport 53 -j RETURN",
        "-A JUPYTERHUB-INPUT -d 10.9.8.7/32 -p tcp --dport 53 -j RETURN",
        "-A JUPYTERHUB-INPUT -s 10.211.0.0/24 -d 10.211.0.1 -p tcp --dport 8081 -j RETURN",
        "-A JUPYTERHUB-INPUT -d 10.0.0.7 -j RETURN",  # host: true only
        "-A JUPYTERHUB-INPUT -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-INPUT -j REJECT --reject-with icmp-admin-prohibited",
    ]


def test_allowlist_refuses_the_rest_and_dns_off_opens_no_resolver():
    text = egress.rules(policy(policy="allowlist", dns=False), ["10.9.8.7"])
    assert "--dport 53" not in text
    assert added(text, "JUPYTERHUB-EGRESS")[-2:] == [
        "-A JUPYTERHUB-EGRESS -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -j REJECT --reject-with icmp-admin-prohibited",
    ]


def test_a_worker_refuses_the_swarms_nodes_first_and_lets_only_the_manager_in():
    worker = policy(inbound_from="172.18.0.2", nodes=["172.18.0.2"], allow=[], denied=[], subnets=["10.213.0.0/24"],
                    hub={"chain": "JUPYTERHUB-EGRESS", "from": "10.213.0.0/24", "to": "172.18.0.2", "port": 8081})
    text = egress.rules(worker, [])
    assert added(text, "JUPYTERHUB-EGRESS")[1:] == [
        "-A JUPYTERHUB-EGRESS -s 10.213.0.0/24 -d 172.18.0.2 -p tcp --dport 8081 -j RETURN",
        "-A JUPYTERHUB-EGRESS -d 172.18.0.2 -p tcp -j REJECT --reject-with tcp-reset",
        "-A JUPYTERHUB-EGRESS -d 172.18.0.2 -j REJECT --reject-with icmp-admin-prohibited",
    ]
    assert added(text, "JUPYTERHUB-INBOUND")[1] == "-A JUPYTERHUB-INBOUND -s 172.18.0.2 -p tcp -j RETURN"
    assert egress.links(worker) == [
        ["DOCKER-USER", "-s", "10.213.0.0/24", "-j", "JUPYTERHUB-EGRESS"],
        ["INPUT", "-s", "10.213.0.0/24", "-j", "JUPYTERHUB-INPUT"],
        ["DOCKER-USER", "-d", "10.213.0.0/24", "-j", "JUPYTERHUB-INBOUND"],
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy": "off"}, "policy must be deny-private or allowlist, not 'off'"),
        ({"subnets": []}, "subnets must be a list"),
        ({"subnets": ["10.211.0.0/24", "eth0"]}, r"subnets\[1\] is not an IPv4 address or network: 'eth0'"),
        ({"hub": {**POLICY["hub"], "chain": "INPUT"}}, "hub must say chain"),
        ({"hub": {**POLICY["hub"], "port": "8081"}}, "hub.port must be a port number, not '8081'"),
        ({"allow": [{"to": "10.0.0.1 -j ACCEPT"}]}, r"allow\[0\].to is not an IPv4 address or network"),
        ({"allow": [{"to": "fd00::1"}]}, r"allow\[0\].to is not an IPv4 address"),
        ({"allow": [{"to": "10.0.0.1", "ports": list(range(1, 17))}]}, "at most 15 port numbers"),
        ({"allow": [{"to": "10.0.0.1", "ports": [0]}]}, r"allow\[0\].ports must be a port number, not 0"),
        ({"allow": [{"to": "10.0.0.1", "host": "yes"}]}, r"allow\[0\].host must be true or false"),
        ({"nodes": ["node1"]}, r"nodes\[0\] is not an IPv4"),
        ({"inbound_from": "manager"}, "inbound_from is not an IPv4"),
    ],
)
def test_a_policy_that_is_not_what_the_role_writes_is_refused_naming_the_value(change, message):
    with pytest.raises(egress.PolicyError, match=message):
        egress.check(policy(**change), "/etc/jupyterhub-egress.json")


def test_subnets_are_compared_as_iptables_prints_them():
    checked = policy(subnets=["10.211.0.7/24"])
    egress.check(checked, "p")
    assert checked["subnets"] == ["10.211.0.0/24"]


def test_the_resolvers_are_the_hosts_ipv4_non_loopback_ones_once_each(tmp_path):
    (tmp_path / "a").write_text("nameserver 127.0.0.53\nnameserver 10.9.8.7\nnameserver fd00::53\nsearch x\n")
    (tmp_path / "b").write_text("# systemd-resolved's upstream\nnameserver 10.9.8.7\nnameserver 192.0.2.53\n")
    assert egress.resolvers([tmp_path / "a", tmp_path / "b", tmp_path / "missing"]) == ["10.9.8.7", "192.0.2.53"]


def test_check_and_show_change_nothing_and_a_wrong_command_is_a_usage_error(tmp_path, monkeypatch, capsys):
    import json

    (tmp_path / "p.json").write_text(json.dumps(POLICY))
    monkeypatch.setenv("JUPYTERHUB_EGRESS_POLICY", str(tmp_path / "p.json"))
    monkeypatch.setattr(egress, "iptables", lambda *a, **k: pytest.fail("iptables called"))
    monkeypatch.setattr(egress, "resolvers", lambda: [])
    assert egress.main(["check"]) == 0
    assert egress.main(["show"]) == 0
    assert capsys.readouterr().out == egress.rules(POLICY, [])
    assert egress.main(["flush"]) == 2
    assert capsys.readouterr().err == "usage: jupyterhub-egress [apply | check | show | remove]\n"
    (tmp_path / "p.json").write_text("{")
    assert egress.main(["check"]) == 1
    assert "cannot read the policy" in capsys.readouterr().err
