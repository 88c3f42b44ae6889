"""Spawn time: stock DockerSpawner vs FormDockerSpawner, same image, same hub config, one run.

Prints JSON: per spawner the median and p95 seconds from the REST call to `ready`, for
sequential spawns and for a burst of concurrent ones, and the ratios form/stock.
With --profiles, both hubs run named servers and spawn a named server, and formspawner's
choice carries resources (memory, CPUs, processes, /dev/shm; stock DockerSpawner gets the
same memory and CPU limits by its own settings), as a hub with #22's profiles would.
Needs the test environment (`make testenv`). Usage:
    python benchmarks/spawn.py [--rounds 5] [--burst 20] [--profiles] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    TOKEN,
    Hub,
    network_gateway,
    remove_user_containers,
)

IMAGE = "jhtest/singleuser:minimal"
FORM_BODY = {"image": "minimal", "env": {"COURSE": "bench", "OMP_NUM_THREADS": "1"}}
PROFILE = {"name": "course", "display_name": "Course", "image": IMAGE,
           "resources": {"mem_limit": "512M", "cpu_limit": 1, "pids_limit": 512, "shm_size": "128M"}}
NAMED = "c.JupyterHub.allow_named_servers = True\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_spawn(
    hub: Hub, user: str, body, timeout: float = 180, server_name: str = "", wait: str = "poll"
) -> float | None:
    """Seconds from the REST call until the server is ready, or None. `wait`: how the
    benchmark learns it is ready: "poll" asks the REST API every 50 ms (each waiting user
    costs the hub about 20 requests a second), "progress" follows the server's progress
    stream as the spawn-pending page does in a student's browser (one request per user)."""
    hub.ensure_user(user)
    start = time.perf_counter()
    path = f"/users/{user}/servers/{server_name}" if server_name else f"/users/{user}/server"
    response = hub.api("POST", path, **({} if body is None else {"json": body}))
    if response.status_code not in (201, 202):
        return None
    if wait == "progress":
        return ready_by_progress(hub, f"{path}/progress", start, timeout)
    while time.perf_counter() - start < timeout:
        server = hub.api("GET", f"/users/{user}").json().get("servers", {}).get(server_name)
        if server and server.get("ready"):
            return time.perf_counter() - start
        if not server:
            return None
        time.sleep(0.05)
    return None


def ready_by_progress(hub: Hub, path: str, start: float, timeout: float) -> float | None:
    """Follow /progress (server-sent events) to its `ready` event, as the browser does."""
    headers = {"Authorization": f"token {TOKEN}", "Accept": "text/event-stream"}
    try:
        with requests.get(f"{hub.url}/hub/api{path}", headers=headers, stream=True, timeout=timeout) as stream:
            for line in stream.iter_lines(decode_unicode=True):  # the hub's keepalives included
                if time.perf_counter() - start > timeout:
                    return None
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[len("data:") :])
                if event.get("ready"):
                    return time.perf_counter() - start
                if event.get("failed"):
                    return None
    except requests.RequestException:
        return None
    return None


def stop(hub: Hub, user: str, server_name: str = "") -> None:
    if not server_name:
        return hub.stop_server(user)
    hub.api("DELETE", f"/users/{user}/servers/{server_name}")
    deadline = time.monotonic() + 60
    while hub.api("GET", f"/users/{user}").json().get("servers", {}).get(server_name):
        if time.monotonic() > deadline:
            raise AssertionError(f"{user}/{server_name} did not stop")
        time.sleep(0.5)


def burst(
    hub: Hub, users: list[str], body, server_name: str = "", timeout: float = 180, wait: str = "progress"
) -> tuple[list[float | None], float]:
    """Every user's spawn at once, each followed as a browser follows it (`wait`): the
    seconds each took (None: failed) and the burst's wall time. Users must exist."""
    with ThreadPoolExecutor(len(users)) as pool:
        start = time.perf_counter()
        samples = list(
            pool.map(lambda user: timed_spawn(hub, user, body, timeout, server_name, wait), users)
        )
        return samples, time.perf_counter() - start


def stop_all(hub: Hub, users: list[str], server_name: str = "") -> None:
    with ThreadPoolExecutor(max(1, len(users))) as pool:
        list(pool.map(lambda user: stop(hub, user, server_name), users))


def summary(samples: list[float | None]) -> dict:
    ok = [s for s in samples if s is not None]
    return {
        "n": len(samples),
        "failures": len(samples) - len(ok),
        "median_s": round(statistics.median(ok), 3) if ok else None,
        "p95_s": round(percentile(ok, 0.95), 3) if ok else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--profiles", action="store_true", help="named servers and a choice with resources")
    parser.add_argument("--out")
    args = parser.parse_args()
    server = "lab" if args.profiles else ""
    form_body = {**FORM_BODY, "image": "course"} if args.profiles else FORM_BODY
    images = [*IMAGES, PROFILE] if args.profiles else IMAGES
    limits = {"mem_limit": "512M", "cpu_limit": 1.0} if args.profiles else {}
    extra = NAMED if args.profiles else ""

    client = docker.from_env()
    gateway = network_gateway(client)

    hubs = {
        "stock": (Hub(Path(tempfile.mkdtemp(prefix="bench-stock-")), gateway), None),
        "form": (Hub(Path(tempfile.mkdtemp(prefix="bench-form-")), gateway), form_body),
    }
    stock_hub, form_hub = hubs["stock"][0], hubs["form"][0]
    # Distinct container prefixes so both hubs can run side by side.
    stock_hub.start(
        "dockerspawner.DockerSpawner",
        {"image": IMAGE},
        {**DOCKER_SETTINGS, "prefix": "fstest-stock", "remove": True, **limits},
        extra=extra,
    )
    form_hub.start(
        "formspawner.FormDockerSpawner",
        {"images": images, "env_policy": ENV_POLICY},
        {**DOCKER_SETTINGS, "prefix": "fstest-form"},
        extra=extra,
    )
    results: dict = {"image": IMAGE, "target_ratio": 1.05, "profiles": args.profiles}
    try:
        sequential = {"stock": [], "form": []}
        for round_number in range(args.rounds):
            # Interleaved, first one then the other first, so drift and warm caches
            # affect both alike.
            order = list(hubs.items())
            if round_number % 2:
                order.reverse()
            for name, (hub, body) in order:
                user = f"seq{round_number}"
                sequential[name].append(timed_spawn(hub, user, body, server_name=server))
                stop(hub, user, server)
        # Bursts in A-B-B-A order, each starting only after the previous one's servers
        # are fully stopped, so neither spawner runs beside the other's teardown.
        burst_samples: dict = {"stock": [], "form": []}
        burst_walls: dict = {"stock": [], "form": []}
        for name in ("stock", "form", "form", "stock"):
            hub, body = hubs[name]
            users = [f"burst{i}" for i in range(args.burst)]
            for user in users:
                hub.ensure_user(user)
            samples, wall = burst(hub, users, body, server)
            burst_samples[name] += samples
            burst_walls[name].append(wall)
            stop_all(hub, users, server)
        bursts = {
            name: {**summary(burst_samples[name]), "wall_s_each": [round(w, 3) for w in burst_walls[name]]}
            for name in burst_samples
        }
        results["sequential"] = {name: summary(samples) for name, samples in sequential.items()}
        results["burst"] = {"concurrent": args.burst, "wait": "progress", **bursts}
        for kind in ("sequential", "burst"):
            stock, form = results[kind]["stock"]["median_s"], results[kind]["form"]["median_s"]
            results[kind]["ratio_median_form_over_stock"] = round(form / stock, 3) if stock and form else None
    finally:
        for hub, _ in hubs.values():
            hub.stop()
            shutil.rmtree(hub.workdir, ignore_errors=True)
        remove_user_containers(client)
    emit(results, args.out)


if __name__ == "__main__":
    main()
