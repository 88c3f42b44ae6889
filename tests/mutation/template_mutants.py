"""Mutants of the rendered hub configuration's confinement settings, which mutmut cannot
make (they live in the role's Jinja template and defaults, not in Python).

Each mutant is one line of roles/jupyterhub changed as a careless edit would change it (a
capability list emptied, no-new-privileges switched off, the process limit or the users'
network lost); the fast tests that render the real template with Ansible and load it as
the hub does (tests/unit/test_jupyterhub_config.py) must fail for every one of them.

Run by tests/mutation/run.sh inside the mutation workspace, on its copy of the role:
    python template_mutants.py WORKSPACE
Prints one line per mutant and a JSON summary; exits 1 if any mutant survived.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = "roles/jupyterhub/templates/settings.json.j2"
DEFAULTS = "roles/jupyterhub/defaults/main.yml"
# (file, text, replacement, what a careless edit did)
MUTANTS = [
    (TEMPLATE, "'cap_drop': jupyterhub_user_cap_drop,", "'cap_drop': [],", "no capability dropped"),
    (TEMPLATE, "'cap_add': jupyterhub_user_cap_add,", "'cap_add': ['SYS_ADMIN'],", "a capability added"),
    (TEMPLATE, "'no_new_privileges': jupyterhub_user_no_new_privileges,", "'no_new_privileges': false,",
     "no-new-privileges off"),
    (TEMPLATE, "'pids_limit': jupyterhub_user_pids_limit,", "'pids_limit': 0,", "no process limit"),
    (TEMPLATE, "'network_name': jupyterhub_network_name,", "'network_name': 'bridge',",
     "servers on Docker's default bridge"),
    (TEMPLATE, "'shared_mounts': jupyterhub_user_shared_mounts,", "'shared_mounts': {},", "shared mounts lost"),
    (TEMPLATE, "'constraints': jupyterhub_swarm_placement_constraints,", "'constraints': [],",
     "swarm servers placed anywhere, the manager included"),
    (DEFAULTS, "jupyterhub_user_cap_drop: [ALL]", "jupyterhub_user_cap_drop: []", "default drops no capability"),
    (DEFAULTS, "jupyterhub_user_no_new_privileges: true", "jupyterhub_user_no_new_privileges: false",
     "default allows privilege gain"),
    (DEFAULTS, "jupyterhub_pids_limit | default(1024)", "jupyterhub_pids_limit | default(0)",
     "default has no process limit"),
]
TESTS = [
    "tests/unit/test_jupyterhub_config.py::test_on_one_host_the_rendered_config_confines_users_containers",
    "tests/unit/test_jupyterhub_config.py::test_on_a_swarm_manager_the_hub_runs_form_swarm_spawner_configured_from_inventory",
]


def run_tests(workspace: Path) -> int:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
        cwd=workspace, capture_output=True, text=True, timeout=600,
    ).returncode


def main(workspace: Path) -> int:
    started = time.monotonic()
    if run_tests(workspace) != 0:
        print("template mutants: the tests fail without any mutant; fix them first", file=sys.stderr)
        return 2
    survived = []
    for path, text, replacement, what in MUTANTS:
        target = workspace / path
        original = target.read_text()
        if original.count(text) != 1:
            print(f"template mutants: {path} no longer holds {text!r} once; update MUTANTS", file=sys.stderr)
            return 2
        target.write_text(original.replace(text, replacement))
        try:
            killed = run_tests(workspace) != 0
        finally:
            target.write_text(original)
        print(f"    {'killed  ' if killed else 'SURVIVED'} {path}: {what}")
        if not killed:
            survived.append(what)
    summary = {"template_mutants": len(MUTANTS), "killed": len(MUTANTS) - len(survived), "survived": survived,
               "seconds": round(time.monotonic() - started)}
    print(json.dumps(summary))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
