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

Each burst and each floor also says where the CPU went while it ran (`cpu_s`, CPU seconds):
the whole machine (/proc/stat), the users' servers (the Docker containers' cpuacct cgroup,
which keeps the time of removed containers), and the hub with its proxy and services (the
hub's process tree, /proc/PID/stat). `per_server_s` is the servers' share divided by their
number: what one server costs to start, through the hub or without it.
Usage:
    python benchmarks/lecture.py [--sizes 10,20,30] [--start-timeout 60] [--image TAG] [--start-slots N]
                                 [--out FILE]
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

from benchmarks.common import emit, process_tree  # noqa: E402
from benchmarks.spawn import FORM_BODY, burst, percentile  # noqa: E402
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
CONTAINERS_CPU = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1, dockerd's default parent
TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root: int) -> float:
    """CPU seconds of a process and its descendants (their own and their reaped children's)."""
    total = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime
    return total


def cpu_now(hub_pid: int | None) -> dict:
    busy = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    figures = {"machine": (sum(busy) - busy[3] - busy[4]) / TICKS}  # all but idle and iowait
    figures["user_servers"] = int(CONTAINERS_CPU.read_text()) / 1e9 if CONTAINERS_CPU.exists() else None
    figures["hub_and_proxy"] = process_tree_cpu(hub_pid) if hub_pid else None
    return figures


def cpu_since(before: dict, hub_pid: int | None, servers: int) -> dict:
    after = cpu_now(hub_pid)
    spent = {k: round(after[k] - before[k], 1) for k in after if after[k] is not None and before[k] is not None}
    if "user_servers" in spent:
        spent["per_server_s"] = round(spent["user_servers"] / servers, 2)
    return spent


def floor_start(client, image: str, name: str, timeout: float, network: str = NETWORK) -> float | None:
    """One server without a hub: the create call until its Jupyter server answers /api."""
    start = time.perf_counter()
    container = client.containers.run(
        image, detach=True, name=name, network=network, healthcheck={"Test": ["NONE"]},
    )  # fmt: skip
    container.reload()
    address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    while time.perf_counter() - start < timeout:
        try:
            if requests.get(f"http://{address}:8888/api", timeout=1).status_code == 200:
                return time.perf_counter() - start
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return None


def floor(client, image: str, size: int, timeout: float) -> dict:
    names = [f"fstest-floor-{i}" for i in range(size)]
    try:
        with ThreadPoolExecutor(size) as pool:
            before = cpu_now(None)
            wall = time.perf_counter()
            samples = list(pool.map(lambda n: floor_start(client, image, n, timeout), names))
            wall = time.perf_counter() - wall
            cpu = cpu_since(before, None, size)
    finally:
        for container in client.containers.list(all=True, filters={"name": "fstest-floor-"}):
            container.remove(force=True)
    ok = sorted(s for s in samples if s is not None)
    return {
        "ready": len(ok),
        "median_s": round(ok[len(ok) // 2], 3) if ok else None,
        "max_s": round(ok[-1], 3) if ok else None,
        "wall_s": round(wall, 3),
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,20,30")
    parser.add_argument("--start-timeout", type=int, default=60)
    parser.add_argument(
        "--wait", choices=("progress", "poll"), default="progress",
        help="how readiness is learnt: the progress stream as a browser (default), or REST polls every 50 ms",
    )  # fmt: skip
    parser.add_argument(
        "--image", default=FLOOR_IMAGE,
        help="the image the students' default choice starts, and the floor: jhtest/singleuser:vanilla is the "
        "docker-stacks-faithful stand-in without the campus image's start-time fix (rfc3987)",
    )  # fmt: skip
    parser.add_argument(
        "--start-slots", type=int, default=0,
        help="FormDockerSpawner.start_slots: how many servers start at once, the rest in line (0: all at once)",
    )  # fmt: skip
    parser.add_argument("--out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    client = docker.from_env()
    gateway = network_gateway(client)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lecture-"))
    hub = Hub(workdir, gateway)
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": [{**IMAGES[0], "image": args.image}, *IMAGES[1:]], "env_policy": ENV_POLICY,
         "start_timeout": args.start_timeout, "start_slots": args.start_slots},
        {**DOCKER_SETTINGS, "prefix": "fstest-lecture"},
        # No limit from JupyterHub here: the benchmark finds the machine's.
        extra="c.JupyterHub.concurrent_spawn_limit = 0\n",
    )
    results: dict = {"start_timeout_s": args.start_timeout, "cpus": os.cpu_count(), "wait": args.wait,
                     "image": args.image, "start_slots": args.start_slots, "bursts": []}  # fmt: skip
    try:
        for size in sizes:
            users = [f"student{i}" for i in range(size)]
            for user in users:
                hub.ensure_user(user)
            before = cpu_now(hub.process.pid)
            samples, wall = burst(hub, users, FORM_BODY, timeout=args.start_timeout + 30, wait=args.wait)
            cpu = cpu_since(before, hub.process.pid, size)
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
                    "cpu_s": cpu,
                }
            )
            if len(ok) < size:  # why, on stderr (the JSON stays on stdout)
                errors = [line for line in hub.log_text().splitlines() if " E " in line[:40] or "[E " in line]
                print(f"{size - len(ok)} of {size} failed; the hub's errors:", *errors[-20:], sep="\n", file=sys.stderr)
            with ThreadPoolExecutor(size) as pool:
                list(pool.map(hub.stop_server, [u for u, s in zip(users, samples, strict=True) if s is not None]))
            remove_user_containers(client)
            measured = results["bursts"][-1]
            measured["floor"] = floor(client, args.image, size, args.start_timeout + 30)
            if measured["median_s"] and measured["floor"]["median_s"]:
                measured["ratio_median_over_floor"] = round(measured["median_s"] / measured["floor"]["median_s"], 3)
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
