"""ACME mode (jupyterhub_tls_acme) against pebble inside the target (molecule/shared/pebble.yml):
the certificate obtained by the converge is served by nginx and verifies against pebble's
root; http:// redirects; certbot.service (what certbot.timer runs) renews it and nginx
serves the new one to new connections without a hub restart while a user's kernel
websocket opened before stays usable; with the CA unreachable a renewal fails visibly and
the old certificate stays served. test_jupyterhub.py's full rerun (changed=0) checks that a
rerun requests nothing (the role's certbot task reports a change only when a certificate
was received);
test_jupyterhub.py's metrics test reads the certificate's days left.

Pebble issues 35-day certificates here (certificateValidityPeriod), just outside certbot's
30-day renewal window when issued; a renewal is made due the way certbot decides it,
renew_before_expiry in the certificate's renewal file set to 36 days (the clock cannot be
moved: the target shares the machine's), and put back after. "Pebble stopped" is a
rejecting firewall rule on its port: to certbot the same refused connection, while pebble
keeps the accounts and root it forgets at a restart. That is also why these tests run
before test_jupyterhub.py reboots the target."""

import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from hubapi import TOKEN, api, wait_ready  # noqa: E402
from scenario import run_playbook  # noqa: E402

FILES = Path(__file__).resolve().parents[1] / "files"
ROOT = "/tmp/pebble-root.pem"
RENEWAL = "/etc/letsencrypt/renewal/jupyterhub.conf"
SERVED = "openssl s_client -connect 127.0.0.1:443 -servername hub.acme.test </dev/null 2>/dev/null"


def pebble_root(host):
    """The running pebble's root; pebble started (it is the scenario's, not the role's)."""
    host.check_output("systemctl start jhtest-pebble && for i in $(seq 30); do "
                      "curl -sk https://127.0.0.1:15000/roots/0 -o /tmp/pebble-root.new && break; sleep 1; done")
    host.check_output(f"mv /tmp/pebble-root.new {ROOT}")
    return ROOT


def served_serial(host):
    return host.check_output(f"{SERVED} | openssl x509 -noout -serial")


def verifies(host):
    return host.run(f"curl -s --cacert {ROOT} -o /dev/null -w '%{{http_code}}' https://hub.acme.test/hub/api")


@pytest.fixture
def pebble_ca(host):
    """The file with the root of the pebble that issued the served certificate."""
    return pebble_root(host)


@pytest.fixture
def renewal_due(host):
    """renew_before_expiry beyond the 35 days pebble gives: certbot renews at its next run."""
    original = host.file(RENEWAL).content_string
    # Two commands: with the line first, one sed's `d` would also skip its `1i`.
    host.check_output(f"sed -i '/^renew_before_expiry/d' {RENEWAL}")
    host.check_output(f"sed -i '1i renew_before_expiry = 36 days' {RENEWAL}")
    yield
    host.check_output(f"cat > {RENEWAL} <<'EOF'\n{original}EOF")


def test_certificate_from_the_acme_ca_is_served_and_verifies(host, pebble_ca):
    result = verifies(host)
    assert result.stdout == "200", result.stderr
    issuer = host.check_output(f"{SERVED} | openssl x509 -noout -issuer")
    assert "Pebble" in issuer, issuer
    names = host.check_output(f"{SERVED} | openssl x509 -noout -ext subjectAltName")
    assert "DNS:hub.acme.test" in names
    # nginx holds 80 and 443; the proxy listens on loopback only, behind it.
    listeners = host.check_output("ss -Hltnp")
    assert re.search(r"127\.0\.0\.1:8000\b.*node", listeners), listeners
    assert re.search(r":443\b.*nginx", listeners) and re.search(r":80\b.*nginx", listeners), listeners
    assert host.service("certbot.timer").is_enabled and host.service("certbot.timer").is_running


def test_an_endless_upload_is_streamed_not_spooled_to_this_hosts_disk(host, pebble_ca):
    """nginx takes bodies of any size (client_max_body_size 0, for JupyterLab's uploads): it
    must pass them on as they come, not write them to /var/lib/nginx/body first, where an
    unauthenticated client's upload that never ends would fill the disk. While a chunked
    upload to the login page is under way, no nginx worker holds a body file; HSTS is sent."""
    upload = (
        f"head -c 300000000 /dev/zero | timeout 20 curl -s -o /dev/null --cacert {pebble_ca} --limit-rate 20M "
        "-H 'Transfer-Encoding: chunked' --data-binary @- https://hub.acme.test/hub/login"
    )
    held = host.check_output(
        f"({upload} &) ; sleep 4; for pid in $(pgrep -f 'nginx: worker'); do ls -l /proc/$pid/fd; done"
    )
    assert "/var/lib/nginx/body" not in held, held
    headers = host.check_output(f"curl -s -D - -o /dev/null --cacert {pebble_ca} https://hub.acme.test/hub/login")
    assert "strict-transport-security: max-age=31536000" in headers.lower(), headers


def test_http_redirects_to_https(host):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "
                            "'http://hub.acme.test/hub/login?next=%2Fhub%2Fhome'")
    assert out == "301 https://hub.acme.test/hub/login?next=%2Fhub%2Fhome"
    # The challenge path is certbot's webroot, not a redirect.
    host.check_output("echo token > /var/lib/jupyterhub-acme/.well-known/acme-challenge/jhtest || "
                      "(mkdir -p /var/lib/jupyterhub-acme/.well-known/acme-challenge && "
                      "echo token > /var/lib/jupyterhub-acme/.well-known/acme-challenge/jhtest)")
    assert host.check_output("curl -s http://hub.acme.test/.well-known/acme-challenge/jhtest") == "token"
    host.check_output("rm /var/lib/jupyterhub-acme/.well-known/acme-challenge/jhtest")


def test_renewal_is_served_without_restarts_and_an_open_websocket_stays(host, pebble_ca, renewal_due):
    if api(host, "GET", "/users/acmeuser")[0] == 404:
        assert api(host, "POST", "/users/acmeuser")[0] == 201
    if not api(host, "GET", "/users/acmeuser")[1]["servers"].get(""):
        assert api(host, "POST", "/users/acmeuser/server", {"image": "minimal"})[0] in (201, 202)
    wait_ready(host, "acmeuser")
    hub_pid = host.check_output("systemctl show -p MainPID --value jupyterhub")
    proxy_pid = host.check_output("cat /var/lib/jupyterhub/jupyterhub-proxy.pid")
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' jupyter-acmeuser")
    script = (FILES / "acme_renew_ws.py").read_text()
    host.check_output(f"mkdir -p /opt/jhtest-acme && cat > /opt/jhtest-acme/acme_renew_ws.py <<'PYEOF'\n{script}PYEOF")
    out = json.loads(host.check_output(
        f"/opt/jupyterhub/bin/python /opt/jhtest-acme/acme_renew_ws.py acmeuser {TOKEN} {ROOT}"))
    journal = host.run("journalctl -u certbot --no-pager -n 60; journalctl -t jupyterhub-acme --no-pager -n 5").stdout
    assert out["certbot_rc"] == 0, out["certbot"] + journal
    assert out["first"] == "42"
    assert out["after"] != out["before"], f"{out}\n{journal}"  # new connections: the renewed certificate
    assert out["second"] == "48", out  # the websocket opened before the renewal still works
    assert verifies(host).stdout == "200"
    assert host.check_output("systemctl show -p MainPID --value jupyterhub") == hub_pid
    assert host.check_output("cat /var/lib/jupyterhub/jupyterhub-proxy.pid") == proxy_pid
    assert host.check_output("docker inspect -f '{{.State.StartedAt}}' jupyter-acmeuser") == started
    # The deploy hook refreshed the hub's copy, which the days-left metric reads.
    assert host.check_output("openssl x509 -noout -serial -in /var/lib/jupyterhub/acme-served-cert.pem") == out["after"]
    assert "renewed certificate for hub.acme.test served" in journal


def test_failed_renewal_keeps_the_certificate_and_shows(host, pebble_ca, renewal_due):
    before = served_serial(host)
    block = "OUTPUT -p tcp -d 127.0.0.1 --dport 14000 -j REJECT --reject-with tcp-reset"
    host.check_output(f"iptables -I {block}")
    try:
        assert host.run("curl -sk https://127.0.0.1:14000/dir").rc != 0  # the CA is unreachable
        since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
        assert host.run("systemctl start certbot.service").rc != 0
        assert host.run("systemctl is-failed certbot.service").stdout.strip() == "failed"
        journal = host.check_output(f"journalctl -u certbot --no-pager --since '{since}'")
        assert "Failed to renew certificate jupyterhub" in journal, journal
        assert served_serial(host) == before and verifies(host).stdout == "200"
    finally:
        host.run(f"iptables -D {block}")
        host.run("systemctl reset-failed certbot.service")
    # The CA back: the timer's next run renews (nginx's reload takes a moment).
    assert host.run("systemctl start certbot.service").rc == 0
    for _ in range(50):
        if served_serial(host) != before:
            break
        time.sleep(0.2)
    assert served_serial(host) != before and verifies(host).stdout == "200"


def test_a_run_whose_domain_port_80_is_blocked_stops_naming_it_and_changes_nothing(host, pebble_ca):
    """blocked.acme.test points at 127.0.0.3, where a rule rejects port 80: the CA's
    validation is refused as behind a firewall. The role's ACME tasks stop with the cause;
    the certificate served and its renewal settings stay."""
    host.check_output("grep -q blocked.acme.test /etc/hosts || echo '127.0.0.3 blocked.acme.test' >> /etc/hosts")
    before, renewal = served_serial(host), host.file(RENEWAL).content_string
    rule = "INPUT -p tcp -d 127.0.0.3 --dport 80 -j REJECT --reject-with tcp-reset"
    host.check_output(f"iptables -I {rule}")
    try:
        assert host.run("curl -s -m 5 http://blocked.acme.test/").rc != 0  # the rule is in force
        result = run_playbook(host, "acme_check.yml", __file__)
    finally:
        host.run(f"iptables -D {rule}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ("No certificate for blocked.acme.test from https://localhost:14000/dir: the CA could not reach "
            "port 80 of a domain. To fix: open port 80") in " ".join(output.split()), output[-3000:]
    assert served_serial(host) == before and verifies(host).stdout == "200"
    assert host.file(RENEWAL).content_string == renewal
