"""Each hub user's own user id: given at their first start, written to the hub's record
before any container or file gets it, and never given to anyone else (a user deleted from
the hub keeps their line; ids only grow).

Blocking file I/O: the spawner calls `uid_for` on a thread (asyncio.to_thread). One hub
process writes the record; a lock keeps its threads from giving one id twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading

from .errors import PolicyError

# Linux ids fit in 32 bits; above 2**31 - 1 some tools read them as negative.
MAX_UID = 2**31 - 1
# docker-stacks' jovyan (1000) and the ids below it belong to images and hosts.
MIN_FIRST_UID = 1001

_lock = threading.Lock()


def check_first_uid(first: int) -> int:
    if not MIN_FIRST_UID <= first <= MAX_UID - 1_000_000:
        raise PolicyError(
            f"first_uid {first} is outside {MIN_FIRST_UID}..{MAX_UID - 1_000_000}: users' ids must not be "
            "root's, an image's user (1000) or the host's accounts; 200000 and above is usual"
        )
    return first


def read(path: str) -> tuple[dict[str, int], int]:
    """The record's users and their ids, and the lowest id never given ({}, 0 before the
    first)."""
    try:
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
    except FileNotFoundError:
        return {}, 0
    except (OSError, ValueError) as error:
        raise PolicyError(f"The hub's record of user ids {path} cannot be read: {error}") from None
    users = data.get("users") if isinstance(data, dict) else None
    given = data.get("next", 0) if isinstance(data, dict) else None
    if (
        not isinstance(users, dict)
        or not all(isinstance(uid, int) for uid in users.values())
        or not isinstance(given, int)
    ):
        raise PolicyError(f"The hub's record of user ids {path} is not one this hub wrote")
    return users, max([given, *(uid + 1 for uid in users.values())])


def uid_for(path: str, name: str, first: int) -> int:
    """`name`'s id: the recorded one, else the lowest never given (at least `first`),
    recorded now (the file replaced whole, so a crash leaves the old or the new). The record
    keeps the high-water mark too: a line deleted by hand does not free its id."""
    with _lock:
        users, next_free = read(path)
        if name in users:
            return users[name]
        uid = max(first, next_free)
        if uid > MAX_UID:
            raise PolicyError(f"No user id is left after {uid - 1} in {path}")
        users[name] = uid
        directory = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(prefix=".uids-", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"next": uid + 1, "users": users}, out, indent=1, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return uid
