"""Try a TCP connection to each HOST:PORT given; print {"HOST:PORT": "open" | "refused" |
"timeout" | the error} as JSON. Run inside a user's server and inside a repository build
by the jupyterhub scenario's verifier (the addresses are its stand-ins: see
tests/test_jupyterhub.py)."""

import json
import socket
import sys

results = {}
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        results[target] = "open"
    except ConnectionRefusedError:
        results[target] = "refused"
    except TimeoutError:
        results[target] = "timeout"
    except OSError as error:
        results[target] = type(error).__name__ + ": " + str(error)
print(json.dumps(results, sort_keys=True))
