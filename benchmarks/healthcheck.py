"""What the docker-stacks images' own health check costs on an idle server.

The real images (and the stand-ins built like them) declare
`HEALTHCHECK --interval=3s ... CMD ["/etc/jupyter/docker_healthcheck.py"]`: every 3 s,
Docker execs a Python process that starts `jupyter --runtime-dir` (a second Python) and
asks the server's /api. This starts N idle servers of one image twice, once with the
image's check and once with it switched off (`--no-healthcheck`, what formspawner
creates for users' servers), and measures over the same window:

- the CPU the servers' containers used (Docker's stats: the check's processes run in
  the container's cgroup), and
- the CPU the whole machine used (/proc/stat: adds dockerd, containerd and runc, which
  set up each exec).

Prints one JSON; `ratio` is with-check over without-check CPU (machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time

import docker
from common import emit

LABEL = "org.jhtest.benchmark"


def host_busy_seconds() -> float:
    """CPU seconds the machine spent busy since boot (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / 100.0  # USER_HZ


def container_cpu_seconds(container) -> float:
    stats = container.stats(stream=False)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def all_cpu(pool, containers) -> float:
    return sum(pool.map(container_cpu_seconds, containers))


def wait_serving(container, deadline: float) -> None:
    while time.monotonic() < deadline:
        if b"is running at" in container.logs():
            return
        container.reload()
        if container.status != "running":
            raise RuntimeError(f"{container.name} stopped:\n{container.logs().decode()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{container.name} was not serving in time:\n{container.logs().decode()[-2000:]}")


def run(client, image: str, count: int, seconds: float, check: bool) -> dict:
    name = "with-check" if check else "no-check"
    extra = {} if check else {"healthcheck": {"test": ["NONE"]}}
    containers = []
    try:
        for i in range(count):
            containers.append(
                client.containers.run(
                    image,
                    name=f"jhbench-health-{name}-{i}",
                    detach=True,
                    labels={LABEL: "healthcheck"},
                    mem_limit="512m",
                    **extra,
                )
            )
        deadline = time.monotonic() + 60 + 6 * count
        for container in containers:
            wait_serving(container, deadline)
        time.sleep(10)  # the start's own CPU settles; the first checks have run
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            host0, cont0, t0 = host_busy_seconds(), all_cpu(pool, containers), time.monotonic()
            time.sleep(seconds)
            host1, cont1, t1 = host_busy_seconds(), all_cpu(pool, containers), time.monotonic()
        states = []
        for container in containers:
            container.reload()
            health = container.attrs["State"].get("Health") or {}
            states.append(health.get("Status", "none"))
        elapsed = t1 - t0
        return {
            "servers": count,
            "seconds": round(elapsed, 1),
            "containers_cpu_cores": round((cont1 - cont0) / elapsed, 3),
            "machine_cpu_cores": round((host1 - host0) / elapsed, 3),
            "health": {s: states.count(s) for s in sorted(set(states))},
        }
    finally:
        for container in containers:
            container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="jhtest/singleuser:minimal")
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    for old in client.containers.list(all=True, filters={"label": LABEL}):
        old.remove(force=True)
    declared = client.images.get(args.image).attrs["Config"].get("Healthcheck") or {}
    without = run(client, args.image, args.servers, args.seconds, check=False)
    with_check = run(client, args.image, args.servers, args.seconds, check=True)
    emit(
        {
            "benchmark": "healthcheck",
            "image": args.image,
            "image_healthcheck": declared,
            "without_check": without,
            "with_check": with_check,
            "ratio_machine_cpu": round(with_check["machine_cpu_cores"] / max(without["machine_cpu_cores"], 1e-3), 1),
            "check_cost_cores": round(with_check["machine_cpu_cores"] - without["machine_cpu_cores"], 3),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
