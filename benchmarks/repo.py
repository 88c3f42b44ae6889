"""Repository launches: time from the REST call to a ready server, in one run, for
(a) the plain image, (b) a repository's first launch (a build), (c) the same commit again.

Prints JSON with medians, p95 and the ratios to (a); the target is (c) <= 1.1 x (a).
Uses the test environment (`make testenv`) and a Git server on loopback (the one the
integration tests use); the repository installs a wheel it carries, so no build reaches
PyPI. Usage:
    python benchmarks/repo.py [--rounds 12] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, ratios_over, repo_hub  # noqa: E402
from benchmarks.spawn import summary, timed_spawn  # noqa: E402
from tests.integration.gitserver import make_wheel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--out")
    args = parser.parse_args()

    with repo_hub("repo") as (_, git, hub):
        plain = {"image": "minimal"}
        repo = {"image": "minimal", "repo": {"url": git.url("fstest-bench"), "ref": "main"}}
        samples: dict = {"plain": [], "first_launch": [], "cached": []}
        for round_number in range(args.rounds):
            wheel, data = make_wheel("fsbench", f"round {round_number}")
            # A new commit each round: its first launch builds, the second finds the image.
            git.commit(
                "fstest-bench",
                {f"wheels/{wheel}": data, "requirements.txt": f"./wheels/{wheel}\n", "round.txt": str(round_number)},
            )
            runs = [("first_launch", repo), ("cached", repo), ("plain", plain)]
            if round_number % 2:
                runs = [runs[0], runs[2], runs[1]]  # alternate plain and cached order
            for name, body in runs:
                user = f"{name.replace('_', '')}{round_number}"
                samples[name].append(timed_spawn(hub, user, body, timeout=400))
                hub.stop_server(user)
    results = {name: summary(values) for name, values in samples.items()}
    ratios_over(results, "plain", ("first_launch", "cached"))
    results["target"] = "cached <= 1.1 x plain"
    results["cpus"] = os.cpu_count()
    emit(results, args.out)


if __name__ == "__main__":
    main()
