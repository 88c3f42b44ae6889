"""Content-only repository launches (a repository with nothing to build, its files merged
into the user's volume) against plain spawns, through one hub, interleaved, in one run:

- plain: the image alone, with the user's volume;
- first: a user's first launch of the repository (the merge clones into their volume);
- relaunch: a user's launch after the instructor published a new commit (the merge
  brings it in, keeping the user's edit).

Prints JSON with medians, p95 and the ratios to plain; the target is first and relaunch
<= 1.1 x plain. Uses the test environment (`make testenv`) and the integration tests'
Git server on loopback. Usage:
    python benchmarks/content.py [--rounds 8] [--out FILE]
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
from tests.integration.hubharness import remove_user_containers  # noqa: E402

VOLUME = "fstest-benchcontent-{username}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()

    spawner, settings = {"home_volume": VOLUME}, {"volumes": {VOLUME: "/home/jovyan/work"}}
    with repo_hub("content", spawner, settings) as (client, git, hub):
        try:
            samples = launches(client, git, hub, args.rounds)
        finally:
            remove_user_containers(client)  # before their volumes
            for volume in client.volumes.list(filters={"name": "fstest-benchcontent-"}):
                volume.remove(force=True)
    results = {name: summary(values) for name, values in samples.items()}
    ratios_over(results, "plain", ("first", "relaunch"))
    results["target"] = "first and relaunch <= 1.1 x plain"
    results["cpus"] = os.cpu_count()
    emit(results, args.out)


def launches(client, git, hub, rounds: int) -> dict:
    plain = {"image": "minimal"}
    repo = {"image": "minimal", "repo": {"url": git.url("fstest-benchcourse"), "ref": "main"}}
    notebooks = {f"lab{n}/week{n}.ipynb": f"week {n}\n" * 200 for n in range(10)}
    samples: dict = {"plain": [], "first": [], "relaunch": []}
    git.commit("fstest-benchcourse", {**notebooks, "round.txt": "start"})
    # Every user has a volume already (a student's second week): plain and first
    # launches differ by the repository only. The first launch of all warms the image.
    for round_number in range(rounds):
        for kind in samples:
            user = f"{kind}{round_number}"
            assert timed_spawn(hub, user, plain, timeout=300) is not None
            hub.stop_server(user)
    for round_number in range(rounds):
        # The relaunching user launched last round's commit and edited a file since.
        returning = f"relaunch{round_number}"
        assert timed_spawn(hub, returning, repo, timeout=300) is not None
        client.containers.get(f"fstest-bench-{returning}").exec_run(
            ["sh", "-c", "echo mine >> /home/jovyan/work/fstest-benchcourse/lab0/week0.ipynb"], user="1000"
        )
        hub.stop_server(returning)
        git.commit("fstest-benchcourse", {"round.txt": str(round_number), "lab1/week1.ipynb": f"v{round_number}\n"})
        runs = [("plain", plain), ("first", repo), ("relaunch", repo)]
        if round_number % 2:
            runs.reverse()
        for kind, body in runs:
            user = f"{kind}{round_number}"
            samples[kind].append(timed_spawn(hub, user, body, timeout=300))
            hub.stop_server(user)
    return samples


if __name__ == "__main__":
    main()
