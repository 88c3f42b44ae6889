"""The role's acme_failure filter: certbot's output when it could not get a certificate,
told as what happened and what to fix. The texts are certbot 2.x's own report format
("Certbot failed to authenticate some domains ...", Domain/Type/Detail) with the details
Let's Encrypt (Boulder) and pebble give for each cause, and python-requests' words when
the directory itself cannot be reached or trusted."""

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles/jupyterhub/filter_plugins/acme.py"
spec = importlib.util.spec_from_file_location("acme_filter", PLUGIN)
acme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(acme)

REPORT = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for hub.example.edu

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: hub.example.edu
  Type:   {type}
  Detail: {detail}

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile for more details.
"""


@pytest.mark.parametrize(
    "output, cause, fix",
    [
        (REPORT.format(type="dns", detail="DNS problem: NXDOMAIN looking up A for hub.example.edu - check that a "
                       "DNS record exists for this domain"), "does not resolve (DNS)", "A/AAAA record"),
        (REPORT.format(type="connection", detail='Fetching http://hub.example.edu/.well-known/acme-challenge/x: '
                       'Get "http://hub.example.edu/.well-known/acme-challenge/x": dial tcp: lookup '
                       'hub.example.edu: no such host'), "does not resolve (DNS)", "A/AAAA record"),
        (REPORT.format(type="connection", detail="203.0.113.5: Fetching http://hub.example.edu/.well-known/"
                       "acme-challenge/x: Timeout during connect (likely firewall problem)"),
         "could not reach port 80", "open port 80"),
        (REPORT.format(type="connection", detail='Get "http://hub.example.edu:80/.well-known/acme-challenge/x": '
                       'dial tcp 127.0.0.3:80: connect: connection refused'), "could not reach port 80", "port 80"),
        (REPORT.format(type="unauthorized", detail="198.51.100.7: Invalid response from http://hub.example.edu/"
                       '.well-known/acme-challenge/x: 404'), "not with this host's challenge", "another machine"),
        ("An unexpected error occurred:\nError creating new order :: too many certificates (5) already issued for "
         "this exact set of domains in the last 168 hours: hub.example.edu, retry after 2026-12-04T10:00:00Z: "
         "see https://letsencrypt.org/docs/duplicate-certificate-limit/", "rate limit", "staging directory"),
        ("An unexpected error occurred:\nrequests.exceptions.SSLError: HTTPSConnectionPool(host='acme.campus."
         "example.edu', port=443): Max retries exceeded with url: /directory (Caused by SSLError(SSLCertVerification"
         "Error(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
         "certificate')))", "directory's own HTTPS certificate is not trusted", "ca_file"),
        ("An unexpected error occurred:\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='localhost',"
         " port=14000): Max retries exceeded with url: /dir (Caused by NewConnectionError(': Failed to establish a "
         "new connection: [Errno 111] Connection refused'))", "directory could not be reached", "directory"),
        # certbot 2.1's words with the directory's port refusing (seen with pebble's port blocked).
        ("An unexpected error occurred:\nRequesting localhost/dir: Connection refused",
         "directory could not be reached", "directory"),
        ("Something else entirely", "certbot could not obtain the certificate", "read certbot's text"),
    ],
)
def test_each_cause_is_named_with_what_to_fix(output, cause, fix):
    message = acme.acme_failure(output, ["hub.example.edu"], "https://acme-v02.api.letsencrypt.org/directory")
    assert message.startswith("No certificate for hub.example.edu from https://acme-v02.api.letsencrypt.org/")
    assert cause in message and fix in message, message
    assert "Nothing else was changed" in message
    # certbot's own lines about the failure are kept, the noise around them is not.
    assert "Saving debug log" not in message
    if "Detail:" in output:
        assert "Detail:" in message


def test_the_filter_is_registered_for_the_role():
    assert acme.FilterModule().filters()["acme_failure"] is acme.acme_failure
