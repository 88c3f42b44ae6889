"""Serve a course repository over https on localhost:8443 inside the molecule target.

The same Git server as the integration tests (tests/integration/gitserver.py, copied
beside this file): git's smart HTTP over TLS, with a certificate the role installed into
the target's trust store (jupyterhub_ca_certificates).
Usage: python3 serve_course_repo.py WORKDIR CERT KEY
"""

import sys
import time
from pathlib import Path

from gitserver import GitServer, make_wheel

workdir, cert, key = (Path(arg) for arg in sys.argv[1:4])
server = GitServer(workdir, cert, key, port=8443)
wheel, data = make_wheel("fsdemo", "from-molecule")
server.commit(
    "course",
    {
        "README.md": "# course\n",
        f"wheels/{wheel}": data,
        "requirements.txt": f"./wheels/{wheel}\n",
        "postBuild": "#!/bin/sh\necho postBuild > built-by-postbuild\n",
    },
    executable={"postBuild"},
)
# The network policy's probe from inside a build (the jupyterhub scenario copies it beside
# this file): postBuild connects to the verifier's stand-in addresses and keeps the result.
probe = Path(__file__).with_name("egress_probe.py")
if probe.exists():
    targets = Path(__file__).with_name("egress_targets.txt").read_text().split()
    server.commit(
        "egress",
        {
            "egress_probe.py": probe.read_text(),
            "postBuild": f"#!/bin/sh\npython3 egress_probe.py {' '.join(targets)} > egress-from-build.json\n",
        },
        executable={"postBuild"},
    )
print("serving https://localhost:8443/course.git", flush=True)
while True:
    time.sleep(3600)
