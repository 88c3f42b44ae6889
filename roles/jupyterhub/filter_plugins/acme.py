"""acme_failure: certbot's failed output, as a message that says what to fix.

certbot prints the CA's verdict (RFC 8555 problem types: dns, connection, unauthorized,
rateLimited) in its own words; the admin needs to know which of "the name does not
resolve here", "port 80 is blocked", "the name points elsewhere", "rate limit" or "the CA
itself is unreachable" happened. Unit-tested with certbot's and the CAs' real texts
(tests/unit/test_acme_filter.py).
"""

from __future__ import annotations

import re

# (pattern over certbot's output, what happened, what to do), first match wins. certbot's
# own connection to the CA fails before any challenge (python-requests' words), so it is
# told apart first from the CA's verdicts on the challenge.
CAUSES = [
    (r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLError",
     "the ACME directory's own HTTPS certificate is not trusted",
     "a CA that is not public needs its CA certificate in jupyterhub_tls_acme.ca_file"),
    (r"HTTPSConnectionPool|Max retries exceeded|Failed to establish a new connection|Requesting \S+: ",
     "the ACME directory could not be reached from this host",
     "check jupyterhub_tls_acme.directory and this host's way out to it (proxy, firewall)"),
    (r"rateLimited|too many (certificates|failed authori[sz]ations|new orders|registrations|requests)|rate limit",
     "the CA's rate limit was reached",
     "wait until the limit's window has passed (certbot's text below says which limit); while testing,"
     " use the staging directory https://acme-staging-v02.api.letsencrypt.org/directory"),
    (r"Type:\s*dns\b|DNS problem|NXDOMAIN|no such host|no valid (A|AAAA) records|SERVFAIL",
     "a domain does not resolve (DNS) for the CA",
     "give each name in jupyterhub_tls_acme.domains an A/AAAA record pointing at this host"),
    (r"Timeout during connect|[Cc]onnection refused|i/o timeout|Type:\s*connection\b|firewall",
     "the CA could not reach port 80 of a domain",
     "open port 80 of this host to the internet (firewall, security group); nginx answers the"
     " challenge there and redirects everything else to https"),
    (r"Type:\s*unauthorized\b|Invalid response from",
     "port 80 of a domain answered, but not with this host's challenge",
     "the name points at another machine, or a proxy in front of this host does not pass"
     " /.well-known/acme-challenge/ through"),
]
UNKNOWN = (None, "certbot could not obtain the certificate", "read certbot's text below")


def acme_failure(output: str, domains=None, directory: str = "") -> str:
    """One paragraph: what happened, what to do, then certbot's own lines about it."""
    text = output or ""
    names = ", ".join(domains or [])
    _, what, todo = next((cause for cause in CAUSES if re.search(cause[0], text)), UNKNOWN)
    detail = [line.strip() for line in text.splitlines()
              if re.match(r"\s*(Domain|Type|Detail|Error|An unexpected error|Hint)\b", line)]
    return (f"No certificate for {names} from {directory}: {what}. To fix: {todo}."
            f" Nothing else was changed; the hub serves what it served before."
            f" certbot said: {' | '.join(detail) or text.strip()[-800:]}")


class FilterModule:
    def filters(self):
        return {"acme_failure": acme_failure}
