"""What a student sees, in a real browser: Debian's Chromium driven by Playwright.

Log in, fill the spawn form, watch the progress page, land in JupyterLab, run a cell that
prints the variable; then stop the server from the hub's home page and try a denied
variable: the form comes back with the message and no server starts.
Then a repository launch from the form (the build log on the progress page, JupyterLab in
the repository's folder) and launch links: logged out, log in, confirm, land on the file;
a link while the server runs with other options asks before restarting; a link with a
variable is refused.
Screenshots go to artifacts/screenshots/; the README's picture is spawn-form.png from a run.
"""

import re
import time
from pathlib import Path

import docker
import pytest
from playwright.sync_api import expect, sync_playwright

from .conftest import container_env, container_of

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make testenv` installs Debian's chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        yield page
        page.screenshot(path=str(SHOTS / "last.png"), full_page=True)  # what the page showed at the end
        browser.close()


def test_student_spawns_from_the_form_and_sees_the_variable_in_a_kernel(docker_hub, docker_client, browser_page):
    page, hub = browser_page, docker_hub
    hub.ensure_user("student")

    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "student")
    page.fill("#password_input", hub.password)
    page.click("#login_submit")

    # The spawn form, with the inventory's images and their descriptions.
    page.wait_for_url("**/hub/spawn**")
    expect(page.locator("#formspawner-image")).to_contain_text("Minimal Python")
    expect(page.locator("#formspawner-image")).to_contain_text("Python and JupyterLab")
    expect(page.locator("#formspawner-image")).to_contain_text("SciPy")
    expect(page.locator("#env")).to_have_value("OMP_NUM_THREADS=1")
    page.check("#image-scipy")
    page.fill("#env", "OMP_NUM_THREADS=1\nCOURSE=browser-e2e")
    page.screenshot(path=str(SHOTS / "spawn-form.png"), full_page=True)

    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r".*/(hub/spawn-pending|user)/student.*"))
    page.screenshot(path=str(SHOTS / "progress.png"))
    page.wait_for_url("**/user/student/**", timeout=120_000)
    assert container_env(docker_client, "student")["COURSE"] == "browser-e2e"

    # JupyterLab: open a Python notebook from the launcher and print the variable.
    page.goto(f"{hub.url}/user/student/lab")
    launcher = page.locator(".jp-LauncherCard[data-category='Notebook']").first
    launcher.click()
    editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    editor.click()
    page.keyboard.type('import os; print("value:", os.environ["COURSE"])')
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    expect(output).to_contain_text("value: browser-e2e", timeout=90_000)
    page.screenshot(path=str(SHOTS / "jupyterlab.png"))

    # Stop from the hub's home page, then try a denied variable.
    page.goto(f"{hub.url}/hub/home")
    page.click("#stop")
    expect(page.locator("#start")).to_be_visible(timeout=60_000)
    # The button comes back while the stop is still pending; wait until it is done.
    deadline = time.monotonic() + 60
    while hub.api("GET", "/users/student").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    page.goto(f"{hub.url}/hub/spawn")
    page.fill("#env", "PYTHONPATH=/tmp/evil")
    page.click("input[type=submit], button[type=submit]")
    expect(page.locator("body")).to_contain_text("Variable 'PYTHONPATH' is reserved by the platform")
    expect(page.locator("body")).not_to_contain_text("SpawnException")
    expect(page.locator("#env")).to_have_value("PYTHONPATH=/tmp/evil")
    page.screenshot(path=str(SHOTS / "refused.png"), full_page=True)
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
