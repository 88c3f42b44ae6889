"""Course folders (FormDockerSpawner.courses): staff write, students read, other students do
not see them; each user as their own id. Checked from inside the containers. The folders
are made here as the role makes them (root and the course's group, setgid, 2775)."""

import os
import shutil

import pytest

from .hubharness import DOCKER_SETTINGS, ENV_POLICY, container_of, remove_user_containers

pytestmark = pytest.mark.integration

# Group ids no account of this machine uses (the role gets them from the host's groups).
ML_GID, PHYS_GID, TEAM_GID = 64711, 64712, 64713
IMAGES = [
    {"name": "minimal", "display_name": "Minimal", "image": "jhtest/singleuser:minimal", "default": True},
    {"name": "ml", "display_name": "ML", "image": "jhtest/singleuser:scipy"},
]
MOUNT = "/home/jovyan/courses/ml-101"
TEAM = "/home/jovyan/teams/ml-team-a"


@pytest.fixture
def course_hub(make_hub, docker_client):
    hub = make_hub()
    folders = {}
    for name, gid in (("ml-101", ML_GID), ("phys", PHYS_GID)):
        folder = hub.workdir / "courses" / name
        folder.mkdir(parents=True)
        os.chown(folder, 0, gid)
        os.chmod(folder, 0o2775)
        folders[name] = folder
    (folders["ml-101"] / "syllabus.md").write_text("week 1\n")
    team = hub.workdir / "courses" / ".teams" / "ml-team-a"
    team.mkdir(parents=True)
    os.chown(team, 0, TEAM_GID)
    os.chmod(team, 0o3770)
    folders["team"] = team
    os.chmod(hub.workdir, 0o755)  # the hub's own folder: the engine mounts what is in it
    courses = [
        {"name": "ml-101", "gid": ML_GID, "path": str(folders["ml-101"]), "mount": MOUNT,
         "staff_groups": ["ml-staff"], "student_groups": ["ml-101"], "images": ["ml"],
         "teams": [{"name": "ml-team-a", "gid": TEAM_GID, "path": str(team), "mount": TEAM}]},
        {"name": "phys", "gid": PHYS_GID, "path": str(folders["phys"]), "mount": "/home/jovyan/courses/phys",
         "staff_groups": ["phys-staff"], "student_groups": ["phys"]},
    ]  # fmt: skip
    # As hubconfig gives them: the course's images offered to its members.
    from formspawner import courses as course_rules

    images = course_rules.with_course_images(IMAGES, course_rules.from_config(courses))
    spawner = {"images": images, "env_policy": ENV_POLICY, "user_ids": "distinct", "courses": courses}
    settings = {**DOCKER_SETTINGS, "extra_host_config": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}}
    hub.start("formspawner.FormDockerSpawner", spawner, settings)
    hub.folders = folders
    yield hub
    remove_user_containers(docker_client)
    shutil.rmtree(hub.workdir / "courses", ignore_errors=True)


def run(client, user: str, command: str):
    """`command` as the server's own user and groups: (exit status, output)."""
    code, output = container_of(client, user).exec_run(["sh", "-c", command])
    return code, output.decode(errors="replace").strip()


def test_staff_write_the_course_folder_students_read_it_and_other_students_do_not_see_it(course_hub, docker_client):
    course_hub.ensure_user("ines", ["ml-staff"])
    course_hub.ensure_user("sam", ["ml-101"])
    course_hub.ensure_user("pia", ["phys"])
    for name, image in (("ines", "ml"), ("sam", "ml"), ("pia", "minimal")):
        assert course_hub.spawn(name, {"image": image}).status_code in (201, 202)
        course_hub.wait_ready(name)

    # The instructor writes; the file is theirs, of the course's group.
    assert run(docker_client, "ines", f"echo 'lab 1' > {MOUNT}/lab1.md && cat {MOUNT}/syllabus.md") == (0, "week 1")
    assert str(ML_GID) in run(docker_client, "ines", "id -G")[1].split()
    ines_uid = run(docker_client, "ines", "id -u")[1]
    assert run(docker_client, "ines", f"stat -c '%u %g' {MOUNT}/lab1.md") == (0, f"{ines_uid} {ML_GID}")

    # The student reads, and can change or delete nothing.
    assert run(docker_client, "sam", f"cat {MOUNT}/lab1.md {MOUNT}/syllabus.md") == (0, "lab 1\nweek 1")
    assert str(ML_GID) not in run(docker_client, "sam", "id -G")[1].split()
    for attempt in (f"echo mine > {MOUNT}/lab1.md", f"rm -f {MOUNT}/lab1.md", f"touch {MOUNT}/new.md",
                    f"mv {MOUNT}/syllabus.md {MOUNT}/gone.md", f"chmod 777 {MOUNT}/lab1.md"):  # fmt: skip
        code, output = run(docker_client, "sam", attempt)
        assert code != 0 and "Read-only file system" in output, (attempt, output)
    assert (course_hub.folders["ml-101"] / "lab1.md").read_text() == "lab 1\n"
    assert sorted(p.name for p in course_hub.folders["ml-101"].iterdir()) == ["lab1.md", "syllabus.md"]

    # A student of another course has neither the folder nor the course's image.
    assert run(docker_client, "pia", "ls /home/jovyan/courses")[1] == "phys"
    # The phys students' folder is read-only for them too.
    code, output = run(docker_client, "pia", "touch /home/jovyan/courses/phys/x")
    assert code != 0 and "Read-only file system" in output
    course_hub.stop_server("pia")
    refused = course_hub.spawn("pia", {"image": "ml"})
    assert refused.status_code == 400 and "Unknown image 'ml'" in refused.text, refused.text


def test_a_team_writes_its_folder_together_and_no_member_deletes_anothers_files(course_hub, docker_client):
    course_hub.ensure_user("ines", ["ml-staff"])
    course_hub.ensure_user("sam", ["ml-101", "ml-team-a"])
    course_hub.ensure_user("tara", ["ml-101", "ml-team-a"])
    course_hub.ensure_user("uma", ["ml-101"])  # a classmate in no team
    for name in ("ines", "sam", "tara", "uma"):
        assert course_hub.spawn(name, {"image": "minimal"}).status_code in (201, 202)
        course_hub.wait_ready(name)
    assert run(docker_client, "sam", f"echo 'our plan' > {TEAM}/plan.md && ls -ld {TEAM}")[0] == 0
    assert run(docker_client, "tara", f"cat {TEAM}/plan.md && echo 'my part' > {TEAM}/tara.md") == (0, "our plan")
    # Sam's file: Tara reads it, and can neither change, delete nor rename it.
    for attempt, error in ((f"echo mine > {TEAM}/plan.md", "Permission denied"),
                           (f"rm -f {TEAM}/plan.md", "Operation not permitted"),
                           (f"mv {TEAM}/plan.md {TEAM}/gone.md", "Operation not permitted")):  # fmt: skip
        code, output = run(docker_client, "tara", attempt)
        assert code != 0 and error in output, (attempt, output)
    assert (course_hub.folders["team"] / "plan.md").read_text() == "our plan\n"
    # The course's staff read the team's folder and write nothing there.
    assert run(docker_client, "ines", f"cat {TEAM}/plan.md {TEAM}/tara.md") == (0, "our plan\nmy part")
    code, output = run(docker_client, "ines", f"touch {TEAM}/staff.md")
    assert code != 0 and "Read-only file system" in output
    # A classmate in no team has no team folder, and is not in the team's group.
    assert run(docker_client, "uma", "test -e /home/jovyan/teams")[0] != 0
    assert str(TEAM_GID) not in run(docker_client, "uma", "id -G")[1].split()
