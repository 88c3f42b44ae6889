"""What a storage quota costs a start (#42): the quota service's step before each server's
container, on a real btrfs (a loop-mounted file, quotas on), next to the starts themselves.

The spawner asks formspawner.quotad to put the user's volume under its quota before it
creates the container; the service serves different volumes side by side (one request at a
time per volume).
Measured, for a burst of N at once through the real service and its real Unix socket:
- `new`: N volumes Docker just made (empty): each becomes a subvolume with its limit;
- `again`: the same N at their users' next start (already under quota: the limit is set
  again and the usage read, a transaction commit);
- `legacy`: N volumes made before quotas, each holding FILES small files and 20 MB: moved
  into a subvolume with reflinks at their users' first start with quotas;
- `floor`: N servers of the stand-in image started at once without a hub or quota (the
  create call until Jupyter answers /api), in the same run: what a start costs anyway.
`ratio_median_over_floor` is (floor + quota step) / floor for each: what the quota adds to
a start's median in a burst (the step runs before the container, so it adds in line).

Needs root, btrfs-progs, loop devices and the test environment's Docker (make testenv).
Usage:
    python benchmarks/quota.py [--size 20] [--files 2000] [--image TAG] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "files/formspawner"))

import docker  # noqa: E402

from benchmarks.common import emit  # noqa: E402
from benchmarks.lecture import floor_start  # noqa: E402
from formspawner import quota, quotad  # noqa: E402

MiB = 1 << 20


def summary(samples: list[float], wall: float) -> dict:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_s": round(ordered[len(ordered) // 2], 3),
        "max_s": round(ordered[-1], 3),
        "wall_s": round(wall, 3),
    }


async def burst(path: str, names: list[str], size: int) -> tuple[list[float], float]:
    async def one(name):
        start = time.perf_counter()
        await quota.limit(path, name, size)
        return time.perf_counter() - start

    wall = time.perf_counter()
    samples = await asyncio.gather(*(one(name) for name in names))
    return list(samples), time.perf_counter() - wall


def floor(image: str, size: int, timeout: float = 120) -> dict:
    client = docker.from_env()
    names = [f"fstest-quota-floor-{i}" for i in range(size)]
    try:
        with ThreadPoolExecutor(size) as pool:
            wall = time.perf_counter()
            samples = list(pool.map(lambda n: floor_start(client, image, n, timeout, network="bridge"), names))
            wall = time.perf_counter() - wall
    finally:
        for container in client.containers.list(all=True, filters={"name": "fstest-quota-floor-"}):
            container.remove(force=True)
    return summary([s for s in samples if s is not None], wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--image", default="jhtest/singleuser:minimal")
    parser.add_argument("--out")
    args = parser.parse_args()
    results: dict = {"burst": args.size, "files_per_legacy_volume": args.files}
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        tmp = Path(tmp)
        image, mount = tmp / "fs.btrfs", tmp / "mnt"
        mount.mkdir()
        subprocess.run(["truncate", "-s", "4G", image], check=True)
        subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", image, mount], check=True)
        try:
            subprocess.run(["btrfs", "quota", "enable", mount], check=True)
            volumes = mount / "volumes"
            new = [f"jupyterhub-user-new{i}" for i in range(args.size)]
            legacy = [f"jupyterhub-user-old{i}" for i in range(args.size)]
            for name in new:
                (volumes / name / "_data").mkdir(parents=True)
            payload = os.urandom(20 * MiB // args.files or 1)
            for name in legacy:
                data = volumes / name / "_data" / "work"
                data.mkdir(parents=True)
                for i in range(args.files):
                    (data / f"f{i}").write_bytes(payload)
            # The real service (the Docker check of volumes in use included), on a real socket.
            path = str(tmp / "quota.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(64)
            service = quotad.Service(quotad.Btrfs(str(volumes)), str(volumes), "jupyterhub-user-")
            threading.Thread(target=service.serve, args=(listener,), daemon=True).start()
            for label, names in (("new", new), ("again", new), ("legacy", legacy)):
                samples, wall = asyncio.run(burst(path, names, 100 * MiB))
                results[label] = summary(samples, wall)
        finally:
            subprocess.run(["umount", mount], check=True)
    results["floor"] = floor(args.image, args.size)
    base = results["floor"]["median_s"]
    for label in ("new", "again", "legacy"):
        results[label]["ratio_median_over_floor"] = round((base + results[label]["median_s"]) / base, 3)
    emit(results, args.out)


if __name__ == "__main__":
    main()
