"""Check the jupyterhub_* spawn options on the controller with formspawner's own rules.

Run by the role before any change, so a typo in inventory fails naming the setting.
formspawner's rules are plain Python: nothing beyond the standard library is needed.
Usage: python3 check_options.py FORMSPAWNER_DIR JSON
"""

import json
import sys

sys.path.insert(0, sys.argv[1])
from formspawner.errors import PolicyError  # noqa: E402
from formspawner.hubconfig import check_extra_config  # noqa: E402
from formspawner.options import OptionSet  # noqa: E402

settings = json.loads(sys.argv[2])
try:
    OptionSet.from_config(
        settings["form_options"], settings["images"], settings["env_policy"], settings["repo_policy"]
    )
    check_extra_config(settings["extra_config"])
except PolicyError as error:
    sys.exit(f"Inventory error in jupyterhub_{error}")
