"""What the molecule verifiers share beyond the hub's API: running one of the scenario's
playbooks again, on the target under test only."""

import os
import subprocess
from pathlib import Path


def run_playbook(host, playbook, tests_file, *options):
    """ansible-playbook of `playbook` (beside the scenario's tests directory, found from
    the calling test's `tests_file`) on this target only, with the scenario's inventory
    and any further `options` (`--check`, `--tags`)."""
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            host.backend.get_hostname(),
            *options,
            str(Path(tests_file).resolve().parent.parent / playbook),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
