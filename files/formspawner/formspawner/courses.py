"""Courses from inventory: who is staff and who is a student of each (JupyterHub groups),
the images a course's members are offered, and its folder, which staff write and students
read. Pure: the spawner asks `mounts_for` what a user's server mounts and which groups it
joins; the role makes each course's folder and host group and passes their gid.

A folder is the host's directory `path` (owned by root and the course's group, setgid,
mode 2775, made by the role), mounted at `mount` in the servers of the course's members:
read-write for staff, whose servers join the course's group; read-only for students, for
whom nothing in it can be changed or deleted whatever its modes. A user of neither group
does not get it at all. A team (a group of a course's students) has a folder of its own
(`Team`): its members write it, the course's staff read it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import PolicyError

# At most 23 characters: the host's group is named jhcourse-NAME, and Debian's group names
# have at most 32.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,22}")
KEYS = {"name", "gid", "path", "mount", "staff_groups", "student_groups", "images", "teams"}
TEAM_KEYS = {"name", "gid", "path", "mount"}
# A team is a JupyterHub group; its host group is jhteam-NAME (at most 32 characters).
TEAM_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,24}")
_PATH_RE = re.compile(r"/(?:[A-Za-z0-9._-]+/)*[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Team:
    """A folder that one group of a course's students writes together: its members' servers
    mount it read-write and join `gid`; the course's staff read it; no one else has it. On
    the host it is setgid and sticky (3770): a member cannot delete or rename another's
    files, nor change them unless their owner made them group-writable."""

    name: str  # the JupyterHub group of its members
    gid: int
    path: str
    mount: str


@dataclass(frozen=True)
class Course:
    name: str
    gid: int
    path: str  # the folder on the host
    mount: str  # where servers see it
    staff_groups: tuple[str, ...]
    student_groups: tuple[str, ...]
    images: tuple[str, ...] = ()
    teams: tuple[Team, ...] = ()

    def role_of(self, groups: Iterable[str]) -> str | None:
        """'staff', 'student' or None for a user in `groups` (staff over student)."""
        groups = set(groups)
        if groups & set(self.staff_groups):
            return "staff"
        if groups & set(self.student_groups):
            return "student"
        return None


def from_config(entries: object, setting: str = "courses") -> list[Course]:
    """The courses of a config list; PolicyError naming the entry and its problem."""
    if not isinstance(entries, (list, tuple)):
        raise PolicyError(f"{setting} must be a list of courses")
    courses: list[Course] = []
    for index, entry in enumerate(entries):
        where = f"{setting}[{index}]"
        if not isinstance(entry, Mapping):
            raise PolicyError(f"{where} must be a mapping (name, staff_groups, student_groups, ...)")
        unknown = set(entry) - KEYS
        if unknown:
            raise PolicyError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise PolicyError(
                f"{where}.name {name!r} must be 1-23 lowercase letters, digits and '-', starting with a letter or digit"
            )
        where = f"{setting} {name!r}"
        if any(course.name == name for course in courses):
            raise PolicyError(f"{where} is listed twice")
        gid = entry.get("gid")
        if not isinstance(gid, int) or isinstance(gid, bool) or not 1 <= gid < 2**31:
            raise PolicyError(f"{where}.gid must be the course's group id on the host, not {gid!r}")
        path, mount = entry.get("path"), entry.get("mount")
        for key, value in (("path", path), ("mount", mount)):
            if not isinstance(value, str) or not _PATH_RE.fullmatch(value) or ".." in value.split("/"):
                raise PolicyError(f"{where}.{key} must be an absolute path without '..', not {value!r}")
        groups = {}
        for key in ("staff_groups", "student_groups", "images"):
            value = entry.get(key, [])
            if not isinstance(value, (list, tuple)) or not all(isinstance(g, str) and g for g in value):
                raise PolicyError(f"{where}.{key} must be a list of names")
            groups[key] = tuple(value)
        if not groups["staff_groups"]:
            raise PolicyError(f"{where}.staff_groups must name at least one group (the instructors')")
        clash = set(groups["staff_groups"]) & set(groups["student_groups"])
        if clash:
            raise PolicyError(f"{where}: {', '.join(sorted(clash))} cannot be both staff and students")
        teams = _teams(entry.get("teams", []), where)
        courses.append(Course(name, gid, posixpath.normpath(path), posixpath.normpath(mount), **groups, teams=teams))
    mounts = [course.mount for course in courses] + [team.mount for course in courses for team in course.teams]
    names = [team.name for course in courses for team in course.teams]
    for name in names:
        if names.count(name) > 1:
            raise PolicyError(f"{setting}: the team {name!r} is listed twice")
    for course in courses:
        if any(other != course.mount and other.startswith(course.mount + "/") for other in mounts):
            raise PolicyError(f"{setting} {course.name!r}: its mount {course.mount} holds another course's")
        if mounts.count(course.mount) > 1:
            raise PolicyError(f"{setting} {course.name!r}: its mount {course.mount} is another course's too")
    return courses


def _teams(entries: object, where: str) -> tuple[Team, ...]:
    if not isinstance(entries, (list, tuple)):
        raise PolicyError(f"{where}.teams must be a list")
    teams = []
    for entry in entries:
        if not isinstance(entry, Mapping) or set(entry) != TEAM_KEYS:
            raise PolicyError(f"{where}.teams: each team has exactly {', '.join(sorted(TEAM_KEYS))}")
        name, gid = entry["name"], entry["gid"]
        if not isinstance(name, str) or not TEAM_RE.fullmatch(name):
            raise PolicyError(
                f"{where}: the team {name!r} must be a group name of 1-25 lowercase letters, digits and '-'"
            )
        if not isinstance(gid, int) or isinstance(gid, bool) or not 1 <= gid < 2**31:
            raise PolicyError(f"{where}: the team {name!r} needs its group id on the host, not {gid!r}")
        for key in ("path", "mount"):
            value = entry[key]
            if not isinstance(value, str) or not _PATH_RE.fullmatch(value) or ".." in value.split("/"):
                raise PolicyError(f"{where}: the team {name!r}'s {key} must be an absolute path, not {value!r}")
        teams.append(Team(name, gid, posixpath.normpath(entry["path"]), posixpath.normpath(entry["mount"])))
    return tuple(teams)


def mounts_for(courses: Iterable[Course], groups: Iterable[str]) -> tuple[dict, list[str]]:
    """A user's course and team folders as DockerSpawner binds ({host path: {bind, mode}}),
    and the groups their server joins (the courses they are staff of, their teams, and the
    teams of the courses they teach, whose folders they read)."""
    groups = list(groups)
    binds, gids = {}, []
    for course in courses:
        role = course.role_of(groups)
        if role is not None:
            binds[course.path] = {"bind": course.mount, "mode": "rw" if role == "staff" else "ro"}
            if role == "staff":
                gids.append(str(course.gid))
        for team in course.teams:
            if team.name in groups or role == "staff":
                writes = team.name in groups and role != "staff"
                binds[team.path] = {"bind": team.mount, "mode": "rw" if writes else "ro"}
                gids.append(str(team.gid))
    return binds, list(dict.fromkeys(gids))


def with_course_images(images: list[dict], courses: Iterable[Course], setting: str = "courses") -> list[dict]:
    """The image catalogue with each course's images offered to the course's members: the
    course's groups added to the image's own (an image named by no course keeps its groups,
    or is offered to everyone without them)."""
    images = [dict(entry) for entry in images]
    names = {entry.get("name") for entry in images}
    for course in courses:
        for name in course.images:
            if name not in names:
                raise PolicyError(f"{setting} {course.name!r}.images: no image is named {name!r}")
    for entry in images:
        added = [
            group
            for course in courses
            if entry.get("name") in course.images
            for group in (*course.staff_groups, *course.student_groups)
        ]
        if added:
            own = list(entry.get("groups") or [])
            entry["groups"] = own + [group for group in dict.fromkeys(added) if group not in own]
    return images
