"""A repository build that floods its log: does the hub stay responsive for everyone?

For each case a repository's postBuild prints about 20 MB (in short lines, without any
newline, or in lines of a megabyte that are the worst case for naive redaction patterns)
while the benchmark asks the hub's API (`GET /hub/api/users/NAME`, authenticated) every
20 ms and records each answer's time. The same hub idle (no build) is the baseline of the
same run. Prints JSON: per case the latency p50/p99/max, the ratio of p99 to the idle
p99, the build's duration, and whether the p99 is under the target (100 ms).

Uses the test environment (`make testenv`) and the integration tests' Git server on
loopback. `--formspawner DIR` runs the hub with another formspawner tree (for a
before/after comparison, e.g. a `git worktree` of an older commit). Usage:
    python benchmarks/build_flood.py [--megabytes 20] [--formspawner DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from benchmarks.common import emit, repo_hub  # noqa: E402
from tests.integration.hubharness import (  # noqa: E402
    ANSWER_AT_ONCE,
    TOKEN,
    Hub,
)

TARGET_P99_S = 0.100


def postbuild(case: str, megabytes: int) -> str:
    size = megabytes * 1024 * 1024
    writes = {
        # short lines
        "short_lines": f"line = 'x' * 99 + '\\n'\nfor _ in range({size // 100}): out.write(line)",
        # one endless line
        "no_newlines": f"chunk = 'y' * 65536\nfor _ in range({size // 65536}): out.write(chunk)",
        # lines of a megabyte of scheme-like text (quadratic for an unbounded URL pattern)
        "megabyte_lines": f"line = 'a.b+c-' * {1024 * 1024 // 6} + '\\n'\nfor _ in range({megabytes}): out.write(line)",
    }[case]
    return f"#!/usr/bin/env python3\nimport sys\nout = sys.stdout\n{writes}\nout.flush()\n"


def probe(hub: Hub, user: str, stop: threading.Event, samples: list[float]) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"token {TOKEN}"
    while not stop.is_set():
        started = time.monotonic()
        try:
            session.get(f"{hub.url}/hub/api/users/{user}", timeout=30)
        except requests.RequestException:
            pass
        samples.append(time.monotonic() - started)
        time.sleep(0.02)


def latency(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "samples": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def measure(hub: Hub, seconds: float | None = None, until=None, first=None) -> list[float]:
    """Probe the API until `until()` (or for `seconds`); `first()` runs once probing has begun."""
    samples: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=probe, args=(hub, "probe", stop, samples), daemon=True)
    thread.start()
    if first:
        first()
    deadline = time.monotonic() + (seconds or 900)
    while time.monotonic() < deadline and not (until and until()):
        time.sleep(0.2)
    stop.set()
    thread.join()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=20)
    parser.add_argument("--formspawner", help="a formspawner source tree (files/formspawner) to run the hub with")
    parser.add_argument("--cases", default="short_lines,no_newlines,megabyte_lines")
    parser.add_argument("--out")
    args = parser.parse_args()

    env = {"PYTHONPATH": str(Path(args.formspawner).resolve())} if args.formspawner else {}
    # The spawn request is answered at once (202); the build goes on while probed.
    flood_hub = repo_hub("flood", policy={"build_timeout": 900}, prefix="fstest-flood", extra=ANSWER_AT_ONCE, env=env)
    with flood_hub as (_, git, hub):
        results = run_cases(git, hub, args)
    emit(results, args.out)


def run_cases(git, hub, args) -> dict:
    hub.ensure_user("probe")
    results: dict = {"megabytes": args.megabytes, "target_p99_ms": TARGET_P99_S * 1000, "cases": {}}
    idle = latency(measure(hub, seconds=10))
    results["idle"] = idle
    for number, case in enumerate(args.cases.split(",")):
        name = f"flood{number}"
        git.commit(name, {"postBuild": postbuild(case, args.megabytes)}, executable=("postBuild",))
        hub.ensure_user(name)
        started = time.monotonic()

        def spawn(name=name) -> None:
            response = hub.spawn(name, {"image": "minimal", "repo": {"url": git.url(name), "ref": "main"}})
            assert response.status_code in (201, 202), response.text

        def finished(name=name) -> bool:
            servers = hub.api("GET", f"/users/{name}").json().get("servers", {})
            server = servers.get("")
            return not server or server.get("ready") or not server.get("pending")

        samples = measure(hub, until=finished, first=spawn)
        result = latency(samples)
        result["build_and_start_s"] = round(time.monotonic() - started, 1)
        result["ready"] = bool(hub.api("GET", f"/users/{name}").json().get("servers", {}).get("", {}).get("ready"))
        result["p99_over_idle_p99"] = round(result["p99_ms"] / max(idle["p99_ms"], 0.1), 2)
        result["within_target"] = result["p99_ms"] <= TARGET_P99_S * 1000
        results["cases"][case] = result
        hub.stop_server(name)
    return results


if __name__ == "__main__":
    main()
