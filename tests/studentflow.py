"""What a student does in the browser, shared by the integration hub and the demo deployment.

Debian's Chromium driven by Playwright: log in, see the inventory's images with their
descriptions on the spawn form, choose one, enter a variable, watch the progress page,
land in JupyterLab, run a cell that prints the variable; then stop the server from the
hub's home page and try a denied variable: the form comes back with the message and no
server starts. Screenshots go to artifacts/screenshots/ (the README's picture is
spawn-form.png from a run).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@contextlib.contextmanager
def chromium_page(ignore_https_errors: bool = False):
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: `make testenv` installs Debian's chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=ignore_https_errors)
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(SHOTS / "last.png"), full_page=True)  # what the page showed at the end
            browser.close()


@dataclass
class Hub:
    """Where the hub is and how the test looks into the student's server from outside."""

    url: str
    password: str
    descriptions: list[str]  # the texts the form must show for the inventory's images
    env_of: Callable[[str], dict[str, str]]  # user -> the server process's environment
    has_server: Callable[[str], bool]  # user -> whether a container exists for them
    fixed: dict[str, str]  # the admin's fixed variables, which every server gets
    shots: str = ""  # prefix of the screenshot names


def log_in(page, hub: Hub, name: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")


def student_flow(page, hub: Hub, user: str = "student", image: str = "scipy") -> None:
    shot = lambda name: str(SHOTS / f"{hub.shots}{name}.png")  # noqa: E731
    log_in(page, hub, user)

    # The spawn form, with the inventory's images and their descriptions.
    page.wait_for_url("**/hub/spawn**")
    for text in hub.descriptions:
        expect(page.locator("#formspawner-image")).to_contain_text(text)
    expect(page.locator("#env")).to_have_value("OMP_NUM_THREADS=1")
    page.check(f"#image-{image}")
    page.fill("#env", "OMP_NUM_THREADS=1\nCOURSE=browser-e2e")
    page.screenshot(path=shot("spawn-form"), full_page=True)

    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(rf".*/(hub/spawn-pending|user)/{user}.*"))
    page.screenshot(path=shot("progress"))
    page.wait_for_url(f"**/user/{user}/**", timeout=180_000)
    env = hub.env_of(user)
    assert env["COURSE"] == "browser-e2e" and env["OMP_NUM_THREADS"] == "1"
    assert {name: env.get(name) for name in hub.fixed} == hub.fixed

    # JupyterLab: open a Python notebook from the launcher and print the variable.
    page.goto(f"{hub.url}/user/{user}/lab")
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    # As a student would: wait until the status bar shows the kernel idle, then run the cell.
    expect(page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\|\s*Idle"))).to_be_visible(timeout=120_000)
    page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
    page.keyboard.type('import os; print("value:", os.environ["COURSE"])')
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    expect(output).to_contain_text("value: browser-e2e", timeout=90_000)
    page.screenshot(path=shot("jupyterlab"))

    # Stop from the hub's home page, then try a denied variable.
    page.goto(f"{hub.url}/hub/home")
    # The page's script binds the button after load: a click before that does nothing.
    page.wait_for_load_state("networkidle")
    page.click("#stop")
    expect(page.locator("#stop")).to_be_hidden(timeout=60_000)
    # The button goes while the stop may still be pending; wait until it is done.
    deadline = time.monotonic() + 60
    while hub.has_server(user) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hub.has_server(user)
    page.goto(f"{hub.url}/hub/spawn")
    page.fill("#env", "PYTHONPATH=/tmp/evil")
    page.click("input[type=submit], button[type=submit]")
    expect(page.locator("body")).to_contain_text("Variable 'PYTHONPATH' is reserved by the platform")
    expect(page.locator("body")).not_to_contain_text("SpawnException")
    expect(page.locator("#env")).to_have_value("PYTHONPATH=/tmp/evil")
    page.screenshot(path=shot("refused"), full_page=True)
    time.sleep(2)
    assert not hub.has_server(user), "a refused form started nothing"
