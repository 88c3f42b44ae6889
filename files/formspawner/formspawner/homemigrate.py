"""Turn a user's volume that held their work folder into one that holds their whole home.

Runs inside the user's image, never in the hub: a short container (as the image's user, no
network) with the volume mounted at --volume. Until now the volume was mounted at
~/work; from now on at ~. So that every path the student knew stays (work/lab1/...), what
the volume holds moves into its folder `work`, and the image's home (dotfiles, the empty
folders the image makes) is copied in where the volume has nothing of that name. Nothing
is overwritten or removed.

Safe to stop at any point and run again: entries move one by one into a hidden folder,
which then becomes `work` in one rename, and the volume is marked done last.

Output: progress lines, then `FORMSPAWNER-RESULT {json}`. Exit 0 when the volume holds the
whole home (now or before), 1 on failure (named).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

RESULT = "FORMSPAWNER-RESULT "
DONE = ".formspawner-home"
MOVING = ".formspawner-moving-into-work"
MOVED = ".formspawner-moved"


def say(line: str) -> None:
    print(line, flush=True)


def copy_missing(source: str, target: str) -> int:
    """The image's home into the volume, where the volume has nothing of that name."""
    copied = 0
    for name in sorted(os.listdir(source)):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.islink(src):
            if not os.path.lexists(dst):
                os.symlink(os.readlink(src), dst)
                copied += 1
        elif os.path.isdir(src):
            if not os.path.lexists(dst):
                os.mkdir(dst, os.stat(src).st_mode & 0o7777)
                copied += 1
            if os.path.isdir(dst) and not os.path.islink(dst):
                copied += copy_missing(src, dst)
        elif not os.path.lexists(dst):
            shutil.copy2(src, dst)
            copied += 1
    return copied


def mark_done(volume: str, folder: str) -> None:
    with open(os.path.join(volume, DONE), "w", encoding="utf-8") as out:
        out.write(f"This volume holds the whole home; what it held before the switch is in {folder}/.\n")


def migrate(volume: str, home: str, folder: str, new: bool = False) -> dict:
    if os.path.exists(os.path.join(volume, DONE)):
        return {"moved": 0, "copied": 0, "already": True}
    if new:
        # A volume made for the whole home (Docker copied the image's home into it).
        mark_done(volume, folder)
        return {"moved": 0, "copied": 0, "already": True}
    moving = os.path.join(volume, MOVING)
    target = os.path.join(volume, folder)
    moved = 0
    finished = os.path.exists(os.path.join(target, MOVED))
    if not finished:
        os.makedirs(moving, exist_ok=True)
        for name in sorted(os.listdir(volume)):
            if name != MOVING:
                os.rename(os.path.join(volume, name), os.path.join(moving, name))
                moved += 1
        # Inside the folder until the rename: a run stopped after it finds it in `work`.
        with open(os.path.join(moving, MOVED), "w", encoding="utf-8"):
            pass
        os.rename(moving, target)
    copied = copy_missing(home, volume) if os.path.isdir(home) else 0
    mark_done(volume, folder)
    os.remove(os.path.join(target, MOVED))
    return {"moved": moved, "copied": copied, "already": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", required=True, help="where the volume is mounted in this container")
    parser.add_argument("--home", required=True, help="the image's home, to copy what the volume lacks")
    parser.add_argument("--folder", default="work", help="the folder the volume's content moves into")
    parser.add_argument("--new", action="store_true", help="the volume was just made, at the home: mark it only")
    args = parser.parse_args(argv)
    try:
        result = migrate(args.volume, args.home, args.folder, args.new)
    except OSError as error:
        say(RESULT + json.dumps({"error": f"{error.strerror}: {error.filename}"}))
        return 1
    if not result["already"]:
        say(f"Your storage now holds your whole home: your files are in {args.folder}/ as before")
    say(RESULT + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
