"""What each user's own id costs a start (FormDockerSpawner.user_ids 'distinct') against the
previous release's one id for all ('image'), in the same run, on the same machine.

A class of new students presses Start at once (their volumes do not exist yet), then again
after their servers stopped; the second burst again with volumes the previous release made
(owned by the image's user, holding FILES small files each), which are given to each
student's id at that start. With 'distinct' a first start on a volume runs one short
container (owner.py) before the server; later starts only read the hub's record.

Prints JSON: per mode and burst the median and p95 seconds to ready, the wall time, and
each 'distinct' burst's ratio over the 'image' burst of the same kind; `volumes_given`, how
many volumes the short container gave to their users' ids (2 x users with 'distinct').

Usage:
    python benchmarks/user_ids.py [--users 10] [--files 2000] [--out FILE]
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

from benchmarks.common import emit, ratios_over  # noqa: E402
from benchmarks.spawn import burst, stop_all, summary  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    Hub,
    network_gateway,
    remove_user_containers,
)

VOLUME = "fstest-ids-{username}"
WORK = "/home/jovyan/work"
BODY = {"image": "minimal"}
SETTINGS = {
    **DOCKER_SETTINGS,
    "volumes": {VOLUME: WORK},
    "extra_host_config": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]},
}


def remove_volumes(client) -> None:
    for volume in client.volumes.list(filters={"name": "fstest-ids-"}):
        volume.remove(force=True)


def old_volumes(client, users: list[str], files: int) -> None:
    """Volumes as the previous release left them: the image's user's files."""
    script = f"mkdir -p lab && for i in $(seq {files}); do echo $i > lab/f$i; done"
    for user in users:
        client.containers.run(
            "jhtest/singleuser:minimal", ["sh", "-c", script], entrypoint=[], user="1000", working_dir=WORK,
            volumes={f"fstest-ids-{user}": {"bind": WORK, "mode": "rw"}}, remove=True,
        )  # fmt: skip


def run_mode(client, gateway: str, mode: str, users: list[str], files: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="fstest-hub-"))
    hub = Hub(workdir, gateway)
    results = {}
    try:
        spawner = {"images": IMAGES, "env_policy": ENV_POLICY, "home_volume": VOLUME, "user_ids": mode}
        hub.start("formspawner.FormDockerSpawner", spawner, SETTINGS)
        for user in users:
            hub.ensure_user(user)
        for kind in ("new_volumes", "again"):
            samples, wall = burst(hub, users, BODY)
            results[kind] = {**summary(samples), "wall_s": round(wall, 3)}
            stop_all(hub, users)
        remove_user_containers(client)
        remove_volumes(client)
        old_volumes(client, users, files)
        # Volumes made again outside the hub: forgotten as the restore playbook forgets them.
        (workdir / "formspawner-volume-owners.txt").unlink(missing_ok=True)
        samples, wall = burst(hub, users, BODY)
        results["volumes_of_the_previous_release"] = {**summary(samples), "wall_s": round(wall, 3)}
        stop_all(hub, users)
        # How many volumes the short container gave to their users' ids (all three bursts).
        results["volumes_given"] = hub.log_text().count(" belongs to ")
    finally:
        hub.stop()
        remove_user_containers(client)
        remove_volumes(client)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--out")
    args = parser.parse_args()
    client = docker.from_env()
    gateway = network_gateway(client)
    users = [f"idbench{i}" for i in range(args.users)]
    remove_volumes(client)
    results = {"users": args.users, "files_per_old_volume": args.files}
    for mode in ("image", "distinct"):
        results[mode] = run_mode(client, gateway, mode, users, args.files)
    for kind in ("new_volumes", "again", "volumes_of_the_previous_release"):
        pair: dict = {"image": results["image"][kind], "distinct": results["distinct"][kind]}
        ratios_over(pair, "image", ("distinct",))
    emit(results, args.out)


if __name__ == "__main__":
    main()
