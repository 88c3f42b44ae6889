"""Start of a lecture: N students press Start at once. How many servers are ready within
the start timeout, how long the last ones wait, and what JupyterHub's concurrent spawn
limit (`c.JupyterHub.concurrent_spawn_limit`) should be on this machine.

Prints JSON: per burst size the successes, failures, median/p95/max seconds to ready and
the wall time, and a recommended limit: the largest burst in which every spawn was ready
within half the start timeout (headroom for image pulls and slower students' browsers).

Each burst is printed next to its floor, measured in the same run: as many containers of
the same image on the same network, without the image's health check (as users' servers
run), started at once through the Docker API with no hub, each timed from the create call
until its Jupyter server answers /api. `ratio_median_over_floor` is what the hub adds.
Usage:
    python benchmarks/lecture.py [--sizes 10,20,30] [--start-timeout 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
import requests  # noqa: E402

from benchmarks.common import emit  # noqa: E402
from benchmarks.spawn import FORM_BODY, percentile, timed_spawn  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    NETWORK,
    Hub,
    network_gateway,
    remove_user_containers,
)

FLOOR_IMAGE = "jhtest/singleuser:minimal"  # the default choice's image, as FORM_BODY asks


def floor_start(client, name: str, timeout: float) -> float | None:
    """One server without a hub: the create call until its Jupyter server answers /api."""
    start = time.perf_counter()
    container = client.containers.run(
        FLOOR_IMAGE, detach=True, name=name, network=NETWORK, healthcheck={"Test": ["NONE"]},
    )  # fmt: skip
    container.reload()
    address = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    while time.perf_counter() - start < timeout:
        try:
            if requests.get(f"http://{address}:8888/api", timeout=1).status_code == 200:
                return time.perf_counter() - start
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return None


def floor(client, size: int, timeout: float) -> dict:
    names = [f"fstest-floor-{i}" for i in range(size)]
    try:
        with ThreadPoolExecutor(size) as pool:
            wall = time.perf_counter()
            samples = list(pool.map(lambda n: floor_start(client, n, timeout), names))
            wall = time.perf_counter() - wall
    finally:
        for container in client.containers.list(all=True, filters={"name": "fstest-floor-"}):
            container.remove(force=True)
    ok = sorted(s for s in samples if s is not None)
    return {
        "ready": len(ok),
        "median_s": round(ok[len(ok) // 2], 3) if ok else None,
        "max_s": round(ok[-1], 3) if ok else None,
        "wall_s": round(wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,20,30")
    parser.add_argument("--start-timeout", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    client = docker.from_env()
    gateway = network_gateway(client)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lecture-"))
    hub = Hub(workdir, gateway)
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": IMAGES, "env_policy": ENV_POLICY, "start_timeout": args.start_timeout},
        {**DOCKER_SETTINGS, "prefix": "fstest-lecture"},
        # No limit from JupyterHub here: the benchmark finds the machine's.
        extra="c.JupyterHub.concurrent_spawn_limit = 0\n",
    )
    results: dict = {"start_timeout_s": args.start_timeout, "cpus": os.cpu_count(), "bursts": []}
    try:
        for size in sizes:
            users = [f"student{i}" for i in range(size)]
            for user in users:
                hub.ensure_user(user)
            with ThreadPoolExecutor(size) as pool:
                wall = time.perf_counter()
                wait = args.start_timeout + 30
                samples = list(pool.map(lambda u, wait=wait: timed_spawn(hub, u, FORM_BODY, timeout=wait), users))
                wall = time.perf_counter() - wall
            ok = [s for s in samples if s is not None]
            results["bursts"].append(
                {
                    "students": size,
                    "ready": len(ok),
                    "failed": size - len(ok),
                    "ready_within_start_timeout": sum(s <= args.start_timeout for s in ok),
                    "median_s": round(sorted(ok)[len(ok) // 2], 3) if ok else None,
                    "p95_s": round(percentile(ok, 0.95), 3) if ok else None,
                    "max_s": round(max(ok), 3) if ok else None,
                    "wall_s": round(wall, 3),
                }
            )
            with ThreadPoolExecutor(size) as pool:
                list(pool.map(hub.stop_server, [u for u, s in zip(users, samples, strict=True) if s is not None]))
            remove_user_containers(client)
            burst = results["bursts"][-1]
            burst["floor"] = floor(client, size, args.start_timeout + 30)
            if burst["median_s"] and burst["floor"]["median_s"]:
                burst["ratio_median_over_floor"] = round(burst["median_s"] / burst["floor"]["median_s"], 3)
        fitting = [
            b["students"]
            for b in results["bursts"]
            if b["failed"] == 0 and b["max_s"] is not None and b["max_s"] <= args.start_timeout / 2
        ]
        results["recommended_concurrent_spawn_limit"] = max(fitting) if fitting else None
        results["rule"] = "largest burst with every server ready within half the start timeout"
    finally:
        hub.stop()
        remove_user_containers(client)
        shutil.rmtree(workdir, ignore_errors=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
