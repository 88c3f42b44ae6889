"""Short containers the hub runs for a launch (the merge into the user's storage, the
whole-home move, the image probe): confined, bounded, and never waited for past a deadline.

What runs in them is not the hub's to trust: git in a student's folder, a student's image.
So the hub never follows their output with a stream that can block (Docker's log stream
has no read timeout): it polls the container's state and its log, and at the deadline the
container is removed (killed first) whatever it is doing. Blocking; the spawner runs these
on `schedule.helpers` threads, never on the event loop's default pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker.errors
import requests.exceptions

# What a helper may use: one core, a little memory, a few processes (git and the script),
# and a log small enough to read back whole.
MEM_LIMIT = 512 * 1024**2
NANO_CPUS = 1_000_000_000
PIDS_LIMIT = 64
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}}
# Lines of output followed as progress at the most; past that only the last ones are read.
MAX_LINES = 2000
TAIL_LINES = 50
POLL_SECONDS = 0.25


class HelperTimeout(Exception):
    """The helper was still running at its deadline (it has been removed)."""


def host_config_kwargs(confinement: dict, binds: dict | None = None, mem_limit: int = MEM_LIMIT) -> dict:
    """A helper's host config: no network, the limits above, the confinement the admin's
    servers get (capabilities dropped, no-new-privileges)."""
    return {
        "binds": binds or {},
        "network_mode": "none",
        "mem_limit": mem_limit,
        "nano_cpus": NANO_CPUS,
        "pids_limit": PIDS_LIMIT,
        "log_config": LOG_CONFIG,
        **confinement,
    }


def run(
    deadline: float,
    client,
    image: str,
    command: list[str],
    *,
    entrypoint: list[str],
    user: str,
    labels: dict,
    host_config: dict,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Run `image` with `command` until it exits or `deadline` (time.monotonic()) passes:
    (its exit status, its output lines: every line up to MAX_LINES, else the last ones).
    `on_line` hears each line as it is read. HelperTimeout at the deadline."""
    container = client.create_container(
        image,
        command=command,
        entrypoint=entrypoint,
        user=user,
        network_disabled=True,
        labels=labels,
        # No GPU, even where nvidia is the default runtime and the image sets CUDA_VERSION.
        environment={"NVIDIA_VISIBLE_DEVICES": "void"},
        healthcheck={"Test": ["NONE"]},  # the image's own check: processes for nothing
        host_config=client.create_host_config(**host_config),
    )
    lines: list[str] = []
    followed = True
    try:
        client.start(container)
        while True:
            state = client.inspect_container(container)["State"]
            if followed:
                now = _lines(client, container)
                if len(now) < len(lines) or len(now) > MAX_LINES:
                    followed = False  # rotated or flooded: only the end is read from here on
                else:
                    for line in now[len(lines) :]:
                        if on_line is not None:
                            on_line(line)
                    lines = now
            if not state.get("Running"):
                if not followed:
                    lines = _lines(client, container, tail=TAIL_LINES)
                return int(state.get("ExitCode", -1)), lines
            if time.monotonic() >= deadline:
                raise HelperTimeout()
            time.sleep(POLL_SECONDS)
    finally:
        try:
            client.remove_container(container, force=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # the engine did not answer: the container keeps its user's label for the admin


def _lines(client, container, tail: int | str = "all") -> list[str]:
    output = client.logs(container, stdout=True, stderr=True, tail=tail)
    return output.decode(errors="replace").splitlines()
