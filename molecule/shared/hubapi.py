"""The hub's REST API as the molecule verifiers call it: curl inside the target (testinfra's
`host`), against the hub's TLS port on the target's loopback."""

import json

API = "https://localhost/hub/api"
# The molecule-tester service's token (the scenarios' jupyterhub_services).
TOKEN = "0123456789abcdef0123456789abcdef"


def api(host, method, path, body=None, token=TOKEN):
    """Returns (HTTP status, the parsed JSON body, or the text when it is not JSON)."""
    data = f"-d {json.dumps(json.dumps(body))}" if body is not None else ""
    status = host.check_output(
        f"curl -sk -o /tmp/api-body -w '%{{http_code}}' -X {method} -H 'Authorization: token {token}' "
        f"-H 'Content-Type: application/json' {data} {API}{path}"
    )
    text = host.file("/tmp/api-body").content_string
    return int(status), (json.loads(text) if text.startswith(("{", "[")) else text)
