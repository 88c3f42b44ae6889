"""The hub's side of storage quotas: asks the root service (formspawner.quotad, behind
jupyterhub-quota.socket) to put a user's volume under its quota before their server
starts, and reads what each volume uses for the metrics and the home page."""

from __future__ import annotations

import asyncio
import json
import os
import socket

from .errors import UserFacingError
from .images import _human

# A volume made by Docker before quotas were on is copied into its quota once (reflinks:
# metadata only, but a folder of a million files takes a while).
LIMIT_TIMEOUT = 600
USAGE_TIMEOUT = 60


class QuotaUnavailable(Exception):
    """The quota service did not do what was asked; the text says why."""


class VolumeInUse(QuotaUnavailable):
    """A volume made before quotas that a container still mounts: its quota waits for a
    start when none does (the metrics count it, the hub's log names it)."""


async def ask(socket_path: str, request: dict, timeout: float) -> dict:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), timeout=10)
    except (TimeoutError, OSError) as error:
        raise QuotaUnavailable(f"the quota service ({socket_path}) does not answer: {error}") from None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout=timeout)
    except (TimeoutError, OSError) as error:
        raise QuotaUnavailable(f"the quota service did not answer within {timeout} s: {error!r}") from None
    finally:
        writer.close()
    return _answer(line)


def ask_blocking(socket_path: str, request: dict, timeout: float) -> dict:
    """`ask` for a thread (the metrics' background reader)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(socket_path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            with conn.makefile("rb") as answer:
                line = answer.readline()
    except OSError as error:
        raise QuotaUnavailable(f"the quota service ({socket_path}) did not answer: {error!r}") from None
    return _answer(line)


def _answer(line: bytes) -> dict:
    try:
        answer = json.loads(line)
    except ValueError:
        raise QuotaUnavailable(f"the quota service answered {line[:200]!r}") from None
    if isinstance(answer, dict) and answer.get("in_use"):
        raise VolumeInUse(str(answer.get("error")))
    if not isinstance(answer, dict) or "error" in answer:
        raise QuotaUnavailable(str(answer.get("error") if isinstance(answer, dict) else answer))
    return answer


async def limit(socket_path: str, volume: str, size: int) -> tuple[int, int]:
    """Put `volume` under a quota of `size` bytes; what it uses and its limit."""
    answer = await ask(socket_path, {"op": "limit", "volume": volume, "bytes": size}, LIMIT_TIMEOUT)
    return answer["used"], answer["limit"]


async def usage(socket_path: str) -> dict[str, tuple[int | None, int | None]]:
    """Every user's volume: bytes used and the limit (None: not under a quota)."""
    answer = await ask(socket_path, {"op": "usage"}, USAGE_TIMEOUT)
    return {name: (value[0], value[1]) for name, value in answer["volumes"].items()}


def summary(volumes: dict[str, tuple[int | None, int | None]]) -> dict:
    """What /hub/metrics shows of users' storage: totals and counts by how full, not a
    series per user (a thousand users would be a thousand series per scrape)."""
    limited = {name: value for name, value in volumes.items() if value[1]}
    fill = {"below_50": 0, "50_to_90": 0, "above_90": 0}
    for used, limit in limited.values():
        share = (used or 0) / limit
        fill["below_50" if share < 0.5 else "50_to_90" if share < 0.9 else "above_90"] += 1
    return {
        "volumes_with_quota": len(limited),
        "volumes_without_quota": len(volumes) - len(limited),
        "without_quota": sorted(set(volumes) - set(limited)),
        "committed_bytes": sum(limit for _, limit in limited.values()),
        "used_bytes": sum(used or 0 for used, _ in limited.values()),
        "volumes_by_fill": fill,
    }


def describe(used: int | None, limit: int | None) -> str:
    """For the user: "1.2 GB of 5 GB used (24%)"."""
    if used is None or not limit:
        return ""
    return f"{_human(used)} of {_human(limit)} used ({100 * used // limit}%)"


def check_free_space(path: str, min_free: int, what: str) -> None:
    """Refuse a start or a build while the filesystem that holds Docker's data has less
    than `min_free` bytes free: the hub's database, logs and every other student's server
    need the rest (jupyterhub_min_free_disk)."""
    if not min_free:
        return
    try:
        info = os.statvfs(path)
    except OSError:
        return  # not visible to the hub (another mount namespace): nothing to check
    free = info.f_bavail * info.f_frsize
    if free < min_free:
        raise UserFacingError(
            f"The server's disk is almost full ({_human(free)} free, the hub keeps {_human(min_free)}): "
            f"{what} is refused until the hub's admins free some space. Please tell them."
        )
