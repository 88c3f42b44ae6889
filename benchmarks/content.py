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
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from benchmarks.common import emit  # noqa: E402
from benchmarks.spawn import summary, timed_spawn  # noqa: E402
from tests.integration.gitserver import GitServer  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    Hub,
    network_gateway,
    remove_user_containers,
)

VOLUME = "fstest-benchcontent-{username}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()

    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="bench-content-"))
    git = GitServer(workdir / "git")
    hub = Hub(workdir, network_gateway(client))
    hub.start(
        "formspawner.FormDockerSpawner",
        {
            "images": IMAGES,
            "env_policy": ENV_POLICY,
            "form_options": ["image", "env", "repo"],
            "repo_policy": {"allowed_hosts": [git.host], "allow_private_hosts": True},
            "home_volume": VOLUME,
        },
        {**DOCKER_SETTINGS, "prefix": "fstest-bench", "volumes": {VOLUME: "/home/jovyan/work"}},
        env={"GIT_SSL_CAINFO": str(git.cert)},
    )
    plain = {"image": "minimal"}
    repo = {"image": "minimal", "repo": {"url": git.url("fstest-benchcourse"), "ref": "main"}}
    notebooks = {f"lab{n}/week{n}.ipynb": f"week {n}\n" * 200 for n in range(10)}
    samples: dict = {"plain": [], "first": [], "relaunch": []}
    try:
        git.commit("fstest-benchcourse", {**notebooks, "round.txt": "start"})
        # Every user has a volume already (a student's second week): plain and first
        # launches differ by the repository only. The first launch of all warms the image.
        for round_number in range(args.rounds):
            for kind in samples:
                user = f"{kind}{round_number}"
                assert timed_spawn(hub, user, plain, timeout=300) is not None
                hub.stop_server(user)
        for round_number in range(args.rounds):
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
        results = {name: summary(values) for name, values in samples.items()}
        base = results["plain"]["median_s"]
        for name in ("first", "relaunch"):
            median = results[name]["median_s"]
            results[name]["ratio_median_over_plain"] = round(median / base, 3) if base and median else None
        results["target"] = "first and relaunch <= 1.1 x plain"
        results["cpus"] = os.cpu_count()
    finally:
        hub.stop()
        git.close()
        remove_user_containers(client)
        for volume in client.volumes.list(filters={"name": "fstest-benchcontent-"}):
            volume.remove(force=True)
        shutil.rmtree(workdir, ignore_errors=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
