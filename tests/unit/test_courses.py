"""Courses from inventory (formspawner.courses): who gets a course's folder and how, and
the images its members are offered."""

import pytest

from formspawner import FormSwarmSpawner, courses
from formspawner.errors import PolicyError

ML = {
    "name": "ml-101", "gid": 990, "path": "/srv/jupyterhub/courses/ml-101", "mount": "/home/jovyan/courses/ml-101",
    "staff_groups": ["ml-staff"], "student_groups": ["ml-101"], "images": ["ml"],
}  # fmt: skip
PHYS = {
    **ML, "name": "phys", "gid": 991, "path": "/srv/jupyterhub/courses/phys", "mount": "/home/jovyan/courses/phys",
    "staff_groups": ["phys-staff"], "student_groups": ["phys"], "images": [],
}  # fmt: skip


def test_staff_write_students_read_and_others_do_not_get_the_folder():
    listed = courses.from_config([ML, PHYS])
    staff = courses.mounts_for(listed, ["ml-staff", "phys"])
    assert staff == (
        {
            "/srv/jupyterhub/courses/ml-101": {"bind": "/home/jovyan/courses/ml-101", "mode": "rw"},
            "/srv/jupyterhub/courses/phys": {"bind": "/home/jovyan/courses/phys", "mode": "ro"},
        },
        ["990"],  # the group of the course they teach, not of the one they take
    )
    assert courses.mounts_for(listed, ["ml-101"]) == (
        {"/srv/jupyterhub/courses/ml-101": {"bind": "/home/jovyan/courses/ml-101", "mode": "ro"}}, [],
    )  # fmt: skip
    assert courses.mounts_for(listed, ["chemistry"]) == ({}, [])
    # Staff and student of one course (a TA who also takes it): staff.
    assert courses.mounts_for(listed, ["ml-101", "ml-staff"])[0]["/srv/jupyterhub/courses/ml-101"]["mode"] == "rw"


def test_a_team_writes_its_folder_its_courses_staff_read_it_and_nobody_else_has_it():
    team = {"name": "ml-team-a", "gid": 980, "path": "/srv/jupyterhub/courses/.teams/ml-team-a",
            "mount": "/home/jovyan/teams/ml-team-a"}  # fmt: skip
    listed = courses.from_config([{**ML, "teams": [team]}, PHYS])
    member = courses.mounts_for(listed, ["ml-101", "ml-team-a"])
    assert member[0][team["path"]] == {"bind": team["mount"], "mode": "rw"}
    assert member[1] == ["980"]
    staff = courses.mounts_for(listed, ["ml-staff"])
    assert staff[0][team["path"]] == {"bind": team["mount"], "mode": "ro"}
    assert staff[1] == ["990", "980"]  # the course's group, and the team's to read its folder
    assert team["path"] not in courses.mounts_for(listed, ["ml-101"])[0]  # a classmate of another team
    assert courses.mounts_for(listed, ["phys-staff"])[0].keys() == {PHYS["path"]}
    with pytest.raises(PolicyError, match="the team 'ml-team-a' is listed twice"):
        courses.from_config([{**ML, "teams": [team]}, {**PHYS, "teams": [{**team, "mount": "/home/jovyan/t"}]}])
    with pytest.raises(PolicyError, match="the team 'Team A' must be a group name of 1-25"):
        courses.from_config([{**ML, "teams": [{**team, "name": "Team A"}]}])
    with pytest.raises(PolicyError, match="each team has exactly gid, mount, name, path"):
        courses.from_config([{**ML, "teams": [{"name": "x"}]}])


def test_a_courses_images_are_offered_to_its_members_and_others_keep_theirs():
    images = [
        {"name": "minimal", "image": "a", "default": True},
        {"name": "ml", "image": "b"},
        {"name": "gpu", "image": "c", "groups": ["gpu-users"]},
    ]
    gpu_course = {**PHYS, "images": ["gpu"]}
    offered = courses.with_course_images(images, courses.from_config([ML, gpu_course]))
    assert offered[0] == images[0]
    assert offered[1]["groups"] == ["ml-staff", "ml-101"]
    assert offered[2]["groups"] == ["gpu-users", "phys-staff", "phys"]
    assert "groups" not in images[1]  # the inventory's list is not changed
    with pytest.raises(PolicyError, match="courses 'ml-101'.images: no image is named 'ml'"):
        courses.with_course_images([images[0]], courses.from_config([ML]))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**ML, "name": "ML 101"}, r"courses\[0\].name 'ML 101' must be 1-23 lowercase"),
        ({**ML, "name": "a" * 24}, r"courses\[0\].name 'a{24}' must be 1-23 lowercase"),
        ({**ML, "gid": "990"}, "courses 'ml-101'.gid must be the course's group id"),
        ({**ML, "mount": "courses/ml"}, "courses 'ml-101'.mount must be an absolute path"),
        ({**ML, "path": "/srv/../etc"}, "courses 'ml-101'.path must be an absolute path without '..'"),
        ({**ML, "staff_groups": []}, "staff_groups must name at least one group"),
        ({**ML, "student_groups": ["ml-staff"]}, "ml-staff cannot be both staff and students"),
        ({**ML, "student_groups": "ml-101"}, "student_groups must be a list of names"),
        ({**ML, "teachers": ["x"]}, "unknown keys: teachers"),
    ],
)
def test_a_course_the_hub_cannot_use_is_refused_naming_it(entry, message):
    with pytest.raises(PolicyError, match=message):
        courses.from_config([entry])


def test_courses_are_listed_once_and_their_folders_do_not_nest():
    with pytest.raises(PolicyError, match="'ml-101' is listed twice"):
        courses.from_config([ML, ML])
    with pytest.raises(PolicyError, match="its mount /home/jovyan/courses/ml-101 is another course's too"):
        courses.from_config([ML, {**PHYS, "mount": ML["mount"]}])
    with pytest.raises(PolicyError, match="'ml-101': its mount /home/jovyan/courses/ml-101 holds another course's"):
        courses.from_config([ML, {**PHYS, "mount": ML["mount"] + "/phys"}])


def test_a_swarm_refuses_course_folders():
    with pytest.raises(PolicyError, match="course folders are not available on a swarm yet"):
        FormSwarmSpawner.check_config({"courses": [ML]})
    with pytest.raises(PolicyError, match="course folders are not available on a swarm yet"):
        FormSwarmSpawner(courses=[ML])
