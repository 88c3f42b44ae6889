"""Give a user's volume to the user's own id: what the image's user (or an id the volume had
before) owns in it becomes the user's.

Runs inside the user's image, never in the hub: a short container as root with only the
capabilities to change owners and to look into folders (CHOWN, DAC_READ_SEARCH), no
network, the volume mounted at --volume. What the volume holds is the student's, so it is
input: links are never followed (their own owner changes, not their target's), nothing in
the volume is run or read, only walked.

Until this release every server ran as the image's user (docker-stacks' jovyan, 1000): a
volume made before holds that user's files. Files some other id owns (root's, an
instructor's) are left alone. Safe to stop at any point and run again: each entry is
changed on its own, and the volume's top last, so a run stopped early finds the rest again.

Output: `FORMSPAWNER-RESULT {json}` (how many entries changed). Exit 0 when the volume is
the user's, 1 on failure (named).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys

RESULT = "FORMSPAWNER-RESULT "


def give(volume: str, uid: int, previous: set[int]) -> int:
    """Every entry under `volume` owned by one of `previous` owned by `uid` now (groups
    kept); the number changed. The top's owner counts as a previous one (an id the volume
    was given before, when the hub's record of ids was lost), unless it is root's."""
    top = os.lstat(volume).st_uid
    owners = set(previous) | ({top} if top != 0 else set())
    owners.discard(uid)
    changed = 0
    if owners:
        for folder, dirs, files in os.walk(volume, followlinks=False, onerror=_raise):
            for name in dirs + files:
                path = os.path.join(folder, name)
                if os.lstat(path).st_uid in owners:
                    os.lchown(path, uid, -1)
                    changed += 1
    if os.lstat(volume).st_uid != uid:
        os.lchown(volume, uid, -1)  # last: the mark that the volume is the user's
        changed += 1
    return changed


def _raise(error: OSError) -> None:
    raise error  # a folder not read would keep the old owner's files: a failure, named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", required=True, help="where the volume is mounted in this container")
    parser.add_argument("--uid", type=int, required=True, help="the user's own id")
    parser.add_argument("--previous", action="append", default=[], help="an id or user name the files had before")
    args = parser.parse_args(argv)
    try:
        previous = {int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid for name in args.previous}
    except KeyError as error:
        print(RESULT + json.dumps({"error": f"the image has no user {error}"}), flush=True)
        return 1
    try:
        changed = give(args.volume, args.uid, previous)
    except OSError as error:
        print(RESULT + json.dumps({"error": f"{error.strerror}: {error.filename}"}), flush=True)
        return 1
    print(RESULT + json.dumps({"changed": changed, "uid": args.uid}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
