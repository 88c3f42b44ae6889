"""Check the jupyterhub_* spawn options on the controller with formspawner's own rules.

Run by the role before any change, so a typo in inventory fails naming the setting.
formspawner's rules are plain Python: nothing beyond the standard library is needed.
Usage: python3 check_options.py FORMSPAWNER_DIR JSON
(JSON's "host": the target's memory in bytes, its CPUs and whether it is a swarm manager,
whose users' servers run on workers, null where the facts were not gathered; the users'
limits and the hub's active_server_limit.)
"""

import json
import sys

sys.path.insert(0, sys.argv[1])
from formspawner.errors import PolicyError  # noqa: E402
from formspawner.hubconfig import check_extra_config  # noqa: E402
from formspawner.images import ImageCatalog  # noqa: E402
from formspawner.options import OptionSet  # noqa: E402

settings = json.loads(sys.argv[2])
host = settings.get("host") or {}
try:
    OptionSet.from_config(
        settings["form_options"],
        settings["images"],
        settings["env_policy"],
        settings["repo_policy"],
        gpus="count" if host.get("swarm") else "devices",
    )
    if not host.get("swarm"):  # on a swarm, servers run on the workers, whatever their size
        catalog = ImageCatalog.from_config(settings["images"])
        catalog.check_fits(host.get("memory"), host.get("cpus"), host.get("user_mem_limit"))
        catalog.check_total(host.get("memory"), int(host.get("active_server_limit") or 0))
        cpus, limit = host.get("cpus"), host.get("user_cpu_limit")
        if cpus and limit and float(limit) > cpus:
            raise PolicyError(
                f"user_cpu_limit: {float(limit):g} is more than this host's {cpus:g} CPUs "
                "(Docker refuses to start a server with more)"
            )
    check_extra_config(settings["extra_config"])
except PolicyError as error:
    sys.exit(f"Inventory error in jupyterhub_{error}")
