"""Does a choice with resources, or a named server, slow a burst? One hub, four kinds of burst.

One FormDockerSpawner hub with named servers allowed and the catalogue of `spawn.py
--profiles`. Each round runs a burst of N concurrent spawns of each kind, in an order that is
reversed every other round, each burst only after the previous one's servers have stopped:
`plain` (the minimal image, default server), `resources` (the `course` choice: 512M, 1 CPU,
512 processes, 128M /dev/shm), `named` (the minimal image in a named server `lab`) and
`both`. Prints JSON: per kind the median and p95 seconds from the REST call to `ready`, each
round's median (the spread between rounds of one kind is the noise any difference between
kinds must exceed), and each kind's median over `plain`'s.
Needs the test environment (`make testenv`). Usage:
    python benchmarks/profiles.py [--rounds 2] [--burst 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from benchmarks.common import emit  # noqa: E402
from benchmarks.spawn import FORM_BODY, NAMED, PROFILE, burst, stop_all, summary  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    Hub,
    network_gateway,
    remove_user_containers,
)

KINDS = {
    "plain": (FORM_BODY, ""),
    "resources": ({**FORM_BODY, "image": "course"}, ""),
    "named": (FORM_BODY, "lab"),
    "both": ({**FORM_BODY, "image": "course"}, "lab"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    client = docker.from_env()
    hub = Hub(Path(tempfile.mkdtemp(prefix="bench-profiles-")), network_gateway(client))
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": [*IMAGES, PROFILE], "env_policy": ENV_POLICY},
        {**DOCKER_SETTINGS, "prefix": "fstest-form"},
        extra=NAMED,
    )
    samples: dict = {kind: [] for kind in KINDS}
    rounds: dict = {kind: [] for kind in KINDS}
    users = [f"burst{i}" for i in range(args.burst)]
    try:
        for user in users:
            hub.ensure_user(user)
        for round_number in range(args.rounds):
            for kind in list(KINDS) if round_number % 2 == 0 else list(reversed(KINDS)):
                body, server = KINDS[kind]
                got, _ = burst(hub, users, body, server)
                samples[kind] += got
                rounds[kind].append(summary(got)["median_s"])
                stop_all(hub, users, server)
    finally:
        hub.stop()
        shutil.rmtree(hub.workdir, ignore_errors=True)
        remove_user_containers(client)
    results: dict = {"image": PROFILE["image"], "concurrent": args.burst, "rounds": args.rounds}
    plain = summary(samples["plain"])["median_s"]
    for kind in KINDS:
        median = summary(samples[kind])["median_s"]
        results[kind] = {
            **summary(samples[kind]),
            "round_medians_s": rounds[kind],
            "ratio_median_over_plain": round(median / plain, 3) if median and plain else None,
        }
    emit(results, args.out)


if __name__ == "__main__":
    main()
