"""The images role's real state inside each target."""

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from scenario import run_playbook  # noqa: E402

PULLED = ["jhtest-registry:5000/jhtest/singleuser:minimal", "jhtest-registry:5000/jhtest/singleuser:scipy"]


@pytest.mark.parametrize("image", PULLED + ["jhtest/debian:bookworm"])
def test_images_are_present_in_the_targets_engine(host, image):
    assert host.run(f"docker image inspect {image}").rc == 0


def test_a_prepulled_image_runs_a_jupyter_server(host):
    out = host.check_output(f"docker run --rm {PULLED[1]} jupyterhub-singleuser --version")
    assert out.strip().startswith("6.")


def test_refresh_units_are_valid_and_the_timer_is_active(host):
    for unit in ("jupyterhub-images-refresh.service", "jupyterhub-images-refresh.timer"):
        result = host.run(f"systemd-analyze verify /etc/systemd/system/{unit}")
        assert result.rc == 0, result.stderr
    timer = host.service("jupyterhub-images-refresh.timer")
    assert timer.is_enabled and timer.is_running


def test_refresh_service_pulls_every_image_and_succeeds(host):
    result = host.run("systemctl start jupyterhub-images-refresh.service")
    assert result.rc == 0, host.run("journalctl -u jupyterhub-images-refresh.service --no-pager").stdout
    script = host.file("/usr/local/sbin/jupyterhub-images-refresh").content_string
    listed = next(line for line in script.splitlines() if line.startswith("for image in"))
    for image in PULLED:
        assert f" {image} " in listed
    assert "refresh:" not in host.run("journalctl -u jupyterhub-images-refresh.service --no-pager").stdout


def test_refresh_skips_pulls_that_would_eat_into_the_free_disk_budget(host):
    # A budget no disk here meets: every pull is skipped, named, and the run fails.
    result = host.run("IMAGES_REFRESH_MIN_FREE_GB=1000000 /usr/local/sbin/jupyterhub-images-refresh")
    assert result.rc == 1
    for image in PULLED:
        assert f"refresh: not pulling {image}: " in result.stderr
    assert "MB free where Docker keeps images" in result.stderr
    for image in PULLED:
        assert host.run(f"docker image inspect {image}").rc == 0, "nothing is removed to make room"


def test_an_image_that_starts_slowly_is_named_with_the_fix(host):
    """The docker-stacks-faithful stand-in (vanilla) has rfc3987-syntax and not rfc3987, as
    upstream's images do; minimal has rfc3987 (tests/env/images/singleuser-campus)."""
    vanilla = "jhtest-registry:5000/jhtest/singleuser:vanilla"
    chosen = {"images_prepull": [vanilla, PULLED[0]], "images_archives": []}
    result = run_playbook(host, "converge.yml", __file__, "--tags", "images_install", "-e", json.dumps(chosen))
    assert result.returncode == 0, result.stdout[-3000:]
    text = " ".join(result.stdout.split())  # as printed, long messages are wrapped
    note = re.search(r"NOTE: (.*?): each server started from (this image|these images) spends 1.2-1.5 CPU", text)
    assert note, result.stdout[-3000:]
    assert note.group(1) == vanilla  # minimal, with rfc3987, is not named
    assert "Install rfc3987 in the image (pip install rfc3987, as the notebook user)" in text
