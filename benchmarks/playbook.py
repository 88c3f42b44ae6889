"""The playbook itself: `site.yml` converged on a fresh target, then rerun.

Prints JSON: seconds and changed-task counts for the first converge and the idempotent
rerun, beside a lower bound for the rerun measured in the same run (Ansible reaching the
target and gathering facts, `ansible -m setup`, which any rerun must pay). The target is
the demo container (`make demo`), recreated from scratch: this replaces a running demo.
Usage:
    python benchmarks/playbook.py [--out FILE]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402


def run(*command: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def changed(output: str) -> int:
    recap = output.split("PLAY RECAP")[-1]
    return sum(int(n) for n in re.findall(r"changed=(\d+)", recap))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    args = parser.parse_args()
    subprocess.run(["docker", "rm", "-f", "jupyterhub-demo"], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "jupyterhub-demo-docker"], capture_output=True)
    target_s, _ = run("ansible-playbook", "playbooks/demo.yml")
    first_s, first = run("ansible-playbook", "-i", "inventory/demo", "site.yml")
    rerun_s, rerun = run("ansible-playbook", "-i", "inventory/demo", "site.yml")
    floor_s, _ = run("ansible", "-i", "inventory/demo", "all", "-m", "ansible.builtin.setup")
    results = {
        "target_container_s": round(target_s, 1),
        "first_converge": {"seconds": round(first_s, 1), "changed": changed(first)},
        "rerun": {"seconds": round(rerun_s, 1), "changed": changed(rerun)},
        "rerun_lower_bound_setup_s": round(floor_s, 1),
        "rerun_over_lower_bound": round(rerun_s / floor_s, 2),
        "target": "rerun changed == 0",
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
