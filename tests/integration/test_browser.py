"""What a student sees, in a real browser: Debian's Chromium driven by Playwright.

The form flow (tests/studentflow.py) against a hub started by the test; the same flow
runs against the `make demo` deployment in tests/demo. Then a repository launch from the
form (the build log on the progress page, JupyterLab in the repository's folder) and
launch links: logged out, log in, confirm, land on the file; a link while the server runs
with other options asks before restarting; a link with a variable is refused.
Screenshots go to artifacts/screenshots/.
"""


import docker
import pytest
from playwright.sync_api import expect

from tests.studentflow import SHOTS, Hub, chromium_page, student_flow

from .hubharness import ENV_POLICY, container_env, container_of

pytestmark = pytest.mark.integration


@pytest.fixture
def browser_page():
    with chromium_page() as page:
        yield page


def test_student_spawns_from_the_form_and_sees_the_variable_in_a_kernel(docker_hub, docker_client, browser_page):
    docker_hub.ensure_user("student")
    hub = Hub(
        url=docker_hub.url,
        password=docker_hub.password,
        descriptions=["Minimal Python", "Python and JupyterLab", "SciPy"],
        env_of=lambda user: container_env(docker_client, user),
        has_server=lambda user: bool(docker_hub.api("GET", f"/users/{user}").json()["servers"]),
        fixed=ENV_POLICY["fixed"],
    )
    student_flow(browser_page, hub)
    with pytest.raises(docker.errors.NotFound):
        container_of(docker_client, "student")


def login(page, hub, name):
    page.fill("#username_input", name)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")


def test_repository_launch_from_the_form_and_from_a_launch_link(repo_hub, git_server, docker_client, browser_page):
    page, hub = browser_page, repo_hub()
    git_server.commit(
        "fstest-browser",
        {"README.md": "# Lab 1\n", "lab1.py": "print('lab one')\n",
         "postBuild": "#!/bin/sh\necho 'preparing the course material'\nsleep 4\n"},
        executable={"postBuild"},
    )  # fmt: skip
    url = git_server.url("fstest-browser")
    hub.ensure_user("brook")

    # From the form: the repository field, the copy-link helper, the build log, JupyterLab.
    page.goto(f"{hub.url}/hub/login")
    login(page, hub, "brook")
    page.wait_for_url("**/hub/spawn**")
    page.fill("#repo_url", url)
    page.fill("#repo_ref", "main")
    page.click("#copy-launch-link")
    link = page.input_value("#launch-link")
    assert link.startswith(f"{hub.url}/hub/launch?") and "image=minimal" in link and "ref=main" in link
    assert "env" not in link and "fstest-browser.git" in link.replace("%2F", "/").replace("%3A", ":")
    page.screenshot(path=str(SHOTS / "repo-form.png"), full_page=True)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/hub/spawn-pending/brook**")
    expect(page.locator("#progress-log")).to_contain_text("preparing the course material", timeout=120_000)
    page.screenshot(path=str(SHOTS / "repo-progress.png"), full_page=True)
    page.wait_for_url("**/user/brook/lab/tree/fstest-browser**", timeout=180_000)
    expect(page.locator(".jp-DirListing-content")).to_contain_text("lab1.py", timeout=90_000)
    page.screenshot(path=str(SHOTS / "repo-jupyterlab.png"))
    hub.stop_server("brook")

    # A launch link opened while logged out: log in, confirm, land on the file.
    page.context.clear_cookies()
    page.goto(link.replace("image=minimal", "image=scipy") + "&path=lab1.py")
    page.wait_for_url("**/hub/login**")
    login(page, hub, "brook")
    page.wait_for_url("**/hub/launch**")
    expect(page.locator("#launch-requested")).to_contain_text(url)
    expect(page.locator("#launch-requested")).to_contain_text("SciPy")
    page.screenshot(path=str(SHOTS / "launch-confirm.png"), full_page=True)
    assert not hub.api("GET", "/users/brook").json()["servers"], "nothing starts before the click"
    page.click("#launch-start")
    page.wait_for_url("**/user/brook/lab/tree/fstest-browser/lab1.py**", timeout=180_000)
    base = container_of(docker_client, "brook").image.labels["org.formspawner.repo.base"]
    assert base == docker_client.images.get("jhtest/singleuser:scipy").id
    first = container_of(docker_client, "brook").id

    # Another link while that server runs: the page says so, and only the click restarts it.
    page.goto(f"{hub.url}/hub/launch?image=minimal")
    expect(page.locator("#launch-current")).to_contain_text(url)
    expect(page.locator("#launch-requested")).to_contain_text("Minimal Python")
    assert container_of(docker_client, "brook").id == first
    page.screenshot(path=str(SHOTS / "launch-running.png"), full_page=True)
    page.click("#launch-start")
    page.wait_for_url("**/user/brook/**", timeout=180_000)
    assert container_of(docker_client, "brook").id != first
    assert "jhtest/singleuser:minimal" in container_of(docker_client, "brook").image.tags

    # A link that tries to set a variable is refused, and offers no button.
    page.goto(f"{hub.url}/hub/launch?image=minimal&env=PIP_INDEX_URL%3Dhttps://evil.example")
    expect(page.locator("#launch-error")).to_contain_text("A link cannot set 'env'")
    expect(page.locator("#launch-start")).to_have_count(0)
    assert "jhtest/singleuser:minimal" in container_of(docker_client, "brook").image.tags


def test_a_student_adds_a_named_server_and_picks_a_choice_with_its_resources(make_hub, docker_client, browser_page):
    """Named servers and per-choice resources as a student meets them: JupyterHub's home
    page adds the server, the form shows each choice's resources, the container gets them,
    and the home page then says what the server runs."""
    from .hubharness import IMAGES
    from .test_named_servers import named_hub

    page = browser_page
    course = {"name": "course", "display_name": "Course (small)", "image": "jhtest/singleuser:minimal",
              "resources": {"mem_limit": "384M", "cpu_limit": 0.5}}  # fmt: skip
    hub = named_hub(make_hub, "server", limit=2, images=[*IMAGES, course])
    hub.ensure_user("pia")
    page.goto(f"{hub.url}/hub/login")
    login(page, hub, "pia")
    page.wait_for_url("**/hub/**")
    page.goto(f"{hub.url}/hub/home")
    # The button does nothing until home.js, loaded by require.js after the page, binds it:
    # a click before that was lost once on a loaded machine (the row never appeared).
    page.wait_for_load_state("networkidle")
    page.fill(".new-server-name", "course1")
    page.click(".new-server-btn")
    start = page.locator("#start-course1")
    expect(start).to_be_visible(timeout=30_000)
    start.click()
    page.wait_for_url("**/hub/spawn/pia/course1**")
    expect(page.locator("label[for=image-course]")).to_contain_text("384 MB memory, 0.5 CPUs")
    page.check("#image-course")
    page.screenshot(path=str(SHOTS / "named-server-form.png"), full_page=True)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/pia/course1/**", timeout=120_000)
    host = docker_client.containers.get("fstest-pia--course1").attrs["HostConfig"]
    assert (host["Memory"], host["CpuQuota"], host["CpuPeriod"]) == (384 * 2**20, 50_000, 100_000)
    page.goto(f"{hub.url}/hub/home")
    row = page.locator('#formspawner-servers tr[data-server-name="course1"]')
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("Course (small)")
    expect(row).to_contain_text("384 MB memory, 0.5 CPUs")
    page.screenshot(path=str(SHOTS / "named-server-home.png"), full_page=True)
