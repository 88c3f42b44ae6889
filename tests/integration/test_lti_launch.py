"""Launches from the learning management system (#43): LTI 1.3 through the real
jupyterhub-ltiauthenticator, configured by the role's own code (hubconfig's
apply_authenticator and apply_login_groups), from a stand-in platform
(tests/integration/ltiplatform.py: no LMS runs here, so its three requests are played).
The course and the role in it become hub groups; a launch from another course keeps the
first course's groups; a launch signed with another key, for another tool, expired,
replayed or from a platform whose clock is ahead logs no one in, with a page that says
what to do and whom to ask, and a log line that says why."""

from __future__ import annotations

import re
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from .hubharness import IMAGES, start_with_login
from .ltiplatform import MEMBERSHIP, TA, Platform

ML = {"id": "c0ffee-17", "label": "ML 101", "title": "Machine Learning, winter term"}
PHYSICS = {"id": "beef-42", "label": "PHY-2", "title": "Physics II"}
HELPDESK = "the IT service desk (help@campus.test)"
COURSE_IMAGE = {"name": "ml", "display_name": "ML 101", "image": "jhtest/singleuser:scipy", "groups": ["ml-101"]}


@pytest.fixture(scope="module")
def platform():
    stand_in = Platform()
    yield stand_in
    stand_in.close()


@pytest.fixture
def lti_hub(make_hub, platform):
    settings = {
        "authenticator": "lti13",
        "authenticator_class": "formspawner.campuslogin.lti.LTI13Authenticator",
        "authenticator_config": platform.tool_config(),
        "admin_users": [],
        "allow_all": True,
        "login_groups": {"enabled": True, "admin_groups": [], "claim": "groups"},
        "login_help": HELPDESK,
    }
    return start_with_login(make_hub(), settings, [*IMAGES, COURSE_IMAGE])


def groups_of(hub, name: str) -> list[str]:
    return sorted(hub.api("GET", f"/users/{name}").json()["groups"])


def test_a_launch_logs_the_student_in_with_the_course_and_role_as_groups(lti_hub, platform):
    # The course's link is a launch link for its image: the launch from the course starts
    # the student's server with it (the click in the LMS is the confirmation).
    answer = platform.launch(lti_hub.url, "ada", ML, [MEMBERSHIP + "Learner"], target="/hub/launch?image=ml")
    assert answer.status_code == 302, answer.text[:800]
    assert answer.headers["Location"] == "/hub/spawn-pending/ada", answer.headers
    assert groups_of(lti_hub, "ada") == ["ml-101", "ml-101-students"]
    lti_hub.wait_ready("ada")
    assert lti_hub.api("GET", "/users/ada").json()["servers"][""]["user_options"]["image"] == "ml"
    # Launched again while it runs: the launch page, which opens the running server.
    answer = platform.launch(lti_hub.url, "ada", ML, [MEMBERSHIP + "Learner"], target="/hub/launch?image=ml")
    assert answer.headers["Location"] == "/hub/launch?image=ml"
    # A link the rules refuse (physics students may not have the ML image) starts nothing:
    # the launch page says why.
    answer = platform.launch(lti_hub.url, "phil", PHYSICS, [MEMBERSHIP + "Learner"], target="/hub/launch?image=ml")
    assert answer.headers["Location"] == "/hub/launch?image=ml"
    assert lti_hub.api("GET", "/users/phil").json()["servers"] == {}
    assert "Launch of phil from the LMS left to the launch page" in lti_hub.log_text()
    answer = platform.launch(lti_hub.url, "prof", ML, [MEMBERSHIP + "Instructor"])
    assert answer.status_code == 302 and groups_of(lti_hub, "prof") == ["ml-101", "ml-101-instructors"]
    answer = platform.launch(lti_hub.url, "tina", ML, [TA])
    assert answer.status_code == 302 and groups_of(lti_hub, "tina") == ["ml-101", "ml-101-tas"]
    # Instructors of a course are no hub admins.
    assert lti_hub.api("GET", "/users/prof").json()["admin"] is False
    # The course's image is offered to its members (the group the launch brought).
    assert lti_hub.spawn("tina", {"image": "ml"}).status_code in (201, 202)
    assert lti_hub.spawn("dora", {"image": "ml"}).status_code == 400


def test_a_launch_from_another_course_keeps_the_first_courses_groups(lti_hub, platform):
    platform.launch(lti_hub.url, "bob", ML, [MEMBERSHIP + "Learner"])
    platform.launch(lti_hub.url, "bob", PHYSICS, [MEMBERSHIP + "Learner"])
    assert groups_of(lti_hub, "bob") == ["ml-101", "ml-101-students", "phy-2", "phy-2-students"]
    # Made a TA of ML 101 since: that course's groups follow, physics stays.
    platform.launch(lti_hub.url, "bob", ML, [TA])
    assert groups_of(lti_hub, "bob") == ["ml-101", "ml-101-tas", "phy-2", "phy-2-students"]


def refused_with_help(answer, status: int, reason: str) -> None:
    """What the student sees: the status, the reason, and what to do and whom to ask."""
    assert answer.status_code == status and reason in answer.text, answer.text[-800:]
    assert "Logging in did not work. Go back to your course and open the link again." in answer.text
    assert f"If it goes on, tell {HELPDESK}." in answer.text


def test_a_launch_with_a_bad_signature_or_another_audience_logs_no_one_in(lti_hub, platform):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = platform.launch(lti_hub.url, "mallory", ML, [MEMBERSHIP + "Instructor"], key=impostor)
    refused_with_help(answer, 400, "Signature verification failed")
    assert lti_hub.api("GET", "/users/mallory").status_code == 404
    assert "LTI launch refused (400): Signature verification failed." in lti_hub.log_text()
    # Signed by the platform, for another tool of the same LMS.
    answer = platform.launch(lti_hub.url, "mallory", ML, [MEMBERSHIP + "Instructor"], audience="another-tool")
    refused_with_help(answer, 401, "Audience")
    assert lti_hub.api("GET", "/users/mallory").status_code == 404


def test_an_expired_or_replayed_launch_logs_no_one_in(lti_hub, platform):
    answer = platform.launch(lti_hub.url, "eve", ML, [MEMBERSHIP + "Learner"], issued=time.time() - 3600)
    refused_with_help(answer, 400, "expired")
    assert lti_hub.api("GET", "/users/eve").status_code == 404
    # A platform whose clock is ten minutes ahead of the hub's: its token is not valid yet.
    answer = platform.launch(lti_hub.url, "eve", ML, [MEMBERSHIP + "Learner"], issued=time.time() + 600)
    refused_with_help(answer, 400, "not yet valid")
    assert lti_hub.api("GET", "/users/eve").status_code == 404
    assert re.search(r"LTI launch refused \(400\): The token is not yet valid \(iat\)\. The platform's clock and"
                     r" the hub's differ", lti_hub.log_text()), lti_hub.log_text()[-2000:]  # fmt: skip
    # A good launch, then its id_token posted again, by the same browser (the tool forgot
    # its state and nonce at the first use) or by another one that captured it: refused.
    assert platform.launch(lti_hub.url, "zoe", ML, [MEMBERSHIP + "Learner"]).status_code == 302
    lti_hub.api("DELETE", "/users/zoe")
    for fresh_browser in (False, True):
        answer = platform.replay(fresh_browser)
        assert answer.status_code == 400 and "OAuth state missing from cookies" in answer.text, answer.text[-500:]
    assert lti_hub.api("GET", "/users/zoe").status_code == 404


def test_the_tool_serves_the_configuration_an_lms_admin_registers(lti_hub):
    answer = requests.get(f"{lti_hub.url}/hub/lti13/config", timeout=10)
    assert answer.status_code == 200, answer.text[:500]
    config = answer.json()
    assert config["oidc_initiation_url"] == f"{lti_hub.url}/hub/lti13/oauth_login", config
    assert config["target_link_uri"] == lti_hub.url, config
