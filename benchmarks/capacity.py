"""How many students fit on a server (#46): what one student's server costs once started,
in memory and CPU, idle and active, through the hub and without it (the floor), and what
the hub itself needs; for the table in docs/admin.md ("How many students fit").

For each image (`minimal`, the stand-in of the campus image, and `numpy`: the same with
numpy and pandas, built here once, as docker-stacks' scipy-notebook has them):
- `hub`: N servers started through a real hub (FormDockerSpawner, the integration tests'
  harness: the single-user server with the hub's extension), left idle SETTLE s, then
  measured over WINDOW s; then each opens a notebook's kernel through the hub's proxy
  (the server's REST API with the hub's token) and runs a cell over the kernel's websocket
  (`import numpy, pandas` and a small data frame's describe(); `import json` on minimal),
  and is measured again, idle after its cell;
- `floor`: the same N of the same image without the hub: its own `jupyter lab` (the
  image's start script with no hub in its environment, as lecture.py's floor), the same
  kernel and cell through its own token.
Memory is each container's cgroup usage less its inactive file cache (what `docker stats`
shows), CPU its cgroup CPU time over the window, both read from cgroupfs; the hub's and proxy's is the hub's process
tree's resident memory (VmRSS) before the first and with all N servers running.
`ratio_over_floor` compares the medians; `fits` says how many students fit in 8, 32 and
128 GB, idle and active: each student's server (the median) and the hub's growth per
server, beside 1 GB kept for the system and the hub's own base. Plan by the active figure:
a lecture where every student has run something.

Needs the test environment's Docker and images (make testenv). Usage:
    python benchmarks/capacity.py [--students 10] [--settle 20] [--window 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
import requests  # noqa: E402
from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from benchmarks.common import emit, process_tree  # noqa: E402
from benchmarks.spawn import burst  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    DOCKER_SETTINGS,
    ENV_POLICY,
    IMAGES,
    NETWORK,
    TOKEN,
    Hub,
    network_gateway,
    remove_user_containers,
)

MiB = 1 << 20
NUMPY_IMAGE = "jhtest/singleuser:capacity-numpy"
CELLS = {
    "minimal": "import json\nprint(json.dumps({'ok': 1}))",
    "numpy": (
        "import numpy, pandas\n"
        "frame = pandas.DataFrame(numpy.random.rand(100000, 10))\n"
        "print(frame.describe().shape)"
    ),
}
FLOOR_PREFIX = "fstest-capfloor-"
SIZES_GB = (8, 32, 128)
SYSTEM_GB = 1.0


def ensure_numpy_image(client) -> str:
    """The minimal stand-in with numpy and pandas (pip, once; kept for the next run)."""
    try:
        client.images.get(NUMPY_IMAGE)
    except docker.errors.ImageNotFound:
        recipe = "FROM jhtest/singleuser:minimal\nRUN pip install --no-cache-dir numpy pandas\n"
        client.images.build(fileobj=io.BytesIO(recipe.encode()), tag=NUMPY_IMAGE, rm=True)
    return NUMPY_IMAGE


CGROUP = Path("/sys/fs/cgroup")


def cgroup_figures(container_id: str) -> tuple[float, float]:
    """(memory bytes less inactive file cache, CPU seconds) of a container's cgroup, read
    from cgroupfs (cgroup v1 under docker/, or v2's docker-ID.scope): Docker's own stats
    API answers empty inside some sandboxes."""
    v1 = CGROUP / "memory" / "docker" / container_id
    if v1.exists():
        stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
        memory = int((v1 / "memory.usage_in_bytes").read_text()) - int(stat.get("total_inactive_file", 0))
        cpu = int((CGROUP / "cpuacct" / "docker" / container_id / "cpuacct.usage").read_text()) / 1e9
        return memory, cpu
    v2 = next(CGROUP.glob(f"**/docker-{container_id}.scope"), None) or next(CGROUP.glob(f"**/docker/{container_id}"))
    stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
    memory = int((v2 / "memory.current").read_text()) - int(stat.get("inactive_file", 0))
    cpu_stat = dict(line.split() for line in (v2 / "cpu.stat").read_text().splitlines())
    return memory, int(cpu_stat["usage_usec"]) / 1e6


def memory_and_cpu(containers: list, window: float) -> list[dict]:
    """Each container's memory (usage less inactive file cache, as `docker stats` shows)
    at the end of `window` seconds, and the CPU cores it used over them."""
    first = [cgroup_figures(container.id) for container in containers]
    time.sleep(window)
    second = [cgroup_figures(container.id) for container in containers]
    return [
        {"memory_mb": after[0] / MiB, "cpu_cores": (after[1] - before[1]) / window}
        for before, after in zip(first, second, strict=True)
    ]


def summarize(figures: list[dict]) -> dict:
    memory = [f["memory_mb"] for f in figures]
    cpu = [f["cpu_cores"] for f in figures]
    return {
        "servers": len(figures),
        "memory_mb_median": round(statistics.median(memory), 1),
        "memory_mb_max": round(max(memory), 1),
        "cpu_cores_median": round(statistics.median(cpu), 4),
        "cpu_cores_total": round(sum(cpu), 3),
    }


def process_tree_rss(root: int) -> float:
    """Resident memory (MB) of a process and its descendants (the hub and its proxy)."""
    total = 0.0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # gone meanwhile
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(found.group(1)) / 1024 if found else 0.0
    return total


async def run_cell(base: str, token: str, code: str, timeout: float = 120) -> None:
    """Start a kernel through the server's REST API and run one cell over its websocket, as
    a notebook does; the kernel is left running (an open notebook)."""
    headers = {"Authorization": f"token {token}"}
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(
        None, lambda: requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    )
    answer.raise_for_status()
    kernel = answer.json()["id"]
    url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel}/channels"
    socket = await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=60, connect_timeout=60))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench", "session": uuid.uuid4().hex,
              "version": "5.3", "date": ""}  # fmt: skip
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
    socket.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                     "channel": "shell", "buffers": []}))  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = await asyncio.wait_for(socket.read_message(), deadline - time.monotonic())
            if message is None:
                raise RuntimeError(f"{base}: the kernel's websocket closed")
            reply = json.loads(message)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "execute_reply":
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"{base}: the cell failed: {reply['content']}")
                return
        raise RuntimeError(f"{base}: no answer to the cell in {timeout} s")
    finally:
        socket.close()


async def run_cells(bases: list[tuple[str, str]], code: str) -> None:
    await asyncio.gather(*(run_cell(base, token, code) for base, token in bases))


def floor_servers(client, image: str, size: int, timeout: float) -> list[tuple]:
    """`size` bare servers of the image: (container, base URL, token), each answering /api."""
    started = []
    for i in range(size):
        token = secrets.token_hex(16)
        container = client.containers.run(
            image, detach=True, name=f"{FLOOR_PREFIX}{i}", network=NETWORK, healthcheck={"Test": ["NONE"]},
            environment={"JUPYTER_TOKEN": token},
        )  # fmt: skip
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        started.append((container, f"http://{address}:8888", token))
    deadline = time.monotonic() + timeout
    for _, base, _ in started:
        while True:
            try:
                if requests.get(f"{base}/api", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base} did not answer within {timeout} s")
            time.sleep(0.2)
    return started


def measure(client, containers, bases, code, settle, window) -> dict:
    time.sleep(settle)
    idle = summarize(memory_and_cpu(containers, window))
    before = [cgroup_figures(container.id)[1] for container in containers]
    asyncio.run(run_cells(bases, code))
    cell = [cgroup_figures(container.id)[1] - spent for container, spent in zip(containers, before, strict=True)]
    time.sleep(settle)
    active = summarize(memory_and_cpu(containers, window))
    # The CPU seconds each server spent opening the kernel and running the cell.
    active["cell_cpu_s_median"] = round(statistics.median(cell), 2)
    return {"idle": idle, "active": active}


def fits(per_student_mb: float, hub_base_mb: float, hub_per_server_mb: float) -> dict:
    """Students that fit in each memory size: their servers and the hub's share of each,
    beside the system's SYSTEM_GB and the hub's own base."""
    each = per_student_mb + max(0.0, hub_per_server_mb)
    return {f"{gb}GB": int(max(0.0, gb * 1024 - SYSTEM_GB * 1024 - hub_base_mb) // each) for gb in SIZES_GB}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--settle", type=float, default=20, help="seconds left idle before each measurement")
    parser.add_argument("--window", type=float, default=10, help="seconds over which CPU is measured")
    parser.add_argument("--out")
    args = parser.parse_args()

    client = docker.from_env()
    images = {"minimal": "jhtest/singleuser:minimal", "numpy": ensure_numpy_image(client)}
    gateway = network_gateway(client)
    workdir = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    hub = Hub(workdir, gateway)
    hub.start(
        "formspawner.FormDockerSpawner",
        {"images": [*IMAGES, {"name": "numpy", "display_name": "NumPy", "image": images["numpy"]}],
         "env_policy": ENV_POLICY, "start_timeout": 300},
        {**DOCKER_SETTINGS, "prefix": "fstest-capacity"},
        extra="c.JupyterHub.concurrent_spawn_limit = 0\n",
    )  # fmt: skip
    results: dict = {"students": args.students, "cpus": os.cpu_count(), "settle_s": args.settle,
                     "window_s": args.window, "system_gb": SYSTEM_GB, "images": {}}  # fmt: skip
    users = [f"student{i}" for i in range(args.students)]
    try:
        for user in users:
            hub.ensure_user(user)
        time.sleep(args.settle)
        hub_before = process_tree_rss(hub.process.pid)
        for name, image in images.items():
            samples, _ = burst(hub, users, {"image": name}, timeout=360)
            if None in samples:
                failed = samples.count(None)
                raise RuntimeError(f"{failed} of {len(users)} servers did not start:\n{hub.log_text()[-3000:]}")
            containers = [client.containers.get(f"fstest-capacity-{user}") for user in users]
            bases = [(f"{hub.url}/user/{user}", TOKEN) for user in users]
            measured = {"hub": measure(client, containers, bases, CELLS[name], args.settle, args.window)}
            hub_with = process_tree_rss(hub.process.pid)
            with ThreadPoolExecutor(len(users)) as pool:
                list(pool.map(hub.stop_server, users))
            remove_user_containers(client)
            try:
                floor = floor_servers(client, image, args.students, 300)
                containers = [container for container, _, _ in floor]
                bases = [(base, token) for _, base, token in floor]
                measured["floor"] = measure(client, containers, bases, CELLS[name], args.settle, args.window)
            finally:
                for container in client.containers.list(all=True, filters={"name": FLOOR_PREFIX}):
                    container.remove(force=True)
            for state in ("idle", "active"):
                ours, theirs = measured["hub"][state]["memory_mb_median"], measured["floor"][state]["memory_mb_median"]
                measured["hub"][state]["ratio_over_floor"] = round(ours / theirs, 3) if theirs else None
                measured["hub"][state]["mb_over_floor"] = round(ours - theirs, 1)
            measured["hub_and_proxy_mb"] = {
                "no_servers": round(hub_before, 1),
                "with_servers": round(hub_with, 1),
                "per_100_servers": round((hub_with - hub_before) / len(users) * 100, 1),
            }
            per_server = (hub_with - hub_before) / len(users)
            measured["fits"] = {
                state: fits(measured["hub"][state]["memory_mb_median"], hub_before, per_server)
                for state in ("idle", "active")
            }
            results["images"][name] = {"image": image, **measured}
    finally:
        hub.stop()
        remove_user_containers(client)
        for container in client.containers.list(all=True, filters={"name": FLOOR_PREFIX}):
            container.remove(force=True)
        shutil.rmtree(workdir, ignore_errors=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
