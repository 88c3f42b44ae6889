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
import ctypes
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


SOCKS_PORT = 1080
CLONE_NEWNET = 0x40000000


def _setns(namespace) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(namespace.fileno(), CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {namespace.name}")


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        if not (chunk := sock.recv(size - len(data))):
            raise ConnectionError("the browser closed the SOCKS connection")
        data += chunk
    return data


def _socks5(client: socket.socket) -> None:
    """One SOCKS5 CONNECT (RFC 1928, no authentication) to a loopback port of the host."""
    with client:
        try:
            _read(client, _read(client, 2)[1])  # greeting: version, number of methods, the methods
            client.sendall(b"\x05\x00")
            _, command, _, kind = _read(client, 4)
            host = socket.inet_ntoa(_read(client, 4)) if kind == 1 else _read(client, _read(client, 1)[0]).decode()
            port = int.from_bytes(_read(client, 2), "big")
            if command != 1 or host not in ("127.0.0.1", "localhost"):
                client.sendall(b"\x05\x02\x00\x01" + bytes(6))  # not allowed: loopback only
                return
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            with contextlib.suppress(OSError):
                client.sendall(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        with upstream:
            upstream.settimeout(None)
            client.sendall(b"\x05\x00\x00\x01" + bytes(6))
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()


def _serve(listener: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the listener is closed when the browser is done
        while True:
            threading.Thread(target=_socks5, args=(listener.accept()[0],), daemon=True).start()


@contextlib.contextmanager
def own_network():
    """Chromium in a network namespace of its own, reaching the host's loopback through SOCKS.

    Chromium cancels connections being opened (a TLS handshake is enough) with
    net::ERR_NETWORK_CHANGED whenever an address appears or goes on any interface it can see,
    and in CI the other lane's Docker makes and removes networks all the time: a CI run failed
    so while the spawn-pending page redirected to the student's server, and retrying does not
    help while the churn goes on. In a namespace of its own nothing changes; a SOCKS5
    listener made inside it (the test process enters the namespace to open it) connects to the
    host's 127.0.0.1 only, so the browser still reaches nothing but this machine's loopback.
    Yields the path of a wrapper that starts Debian's Chromium inside the namespace.
    """
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
    try:
        namespace = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(namespace) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare --net made no network namespace"
            time.sleep(0.02)
        # lo, and a veth pair whose both ends stay in the namespace with a documentation address
        # (RFC 5737) and no route beyond itself: without a link that is up and has an address,
        # Chromium believes it is offline (navigator.onLine false). Not every kernel has `dummy`.
        # No IPv6 there: the links' link-local addresses would appear a second or two later
        # and count as a change themselves.
        for name in ("all", "default"):
            subprocess.run(["nsenter", f"--net={namespace}", "sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"])
        for command in (
            "link set lo up",
            "link add online type veth peer name online-peer",
            "addr add 192.0.2.1/32 dev online",
            "link set online-peer up",
            "link set online up",
        ):
            subprocess.run(["nsenter", f"--net={namespace}", "ip", *command.split()], check=True)
        with open("/proc/thread-self/ns/net") as host, open(namespace) as own:
            _setns(own)
            try:
                listener = socket.create_server(("127.0.0.1", SOCKS_PORT))
            finally:
                _setns(host)
        threading.Thread(target=_serve, args=(listener,), daemon=True).start()
        with tempfile.TemporaryDirectory() as directory, listener:
            wrapper = Path(directory) / "chromium"
            wrapper.write_text(f'#!/bin/sh\nexec nsenter --net={namespace} {CHROMIUM} "$@"\n')
            wrapper.chmod(0o755)
            yield str(wrapper)
    finally:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def chromium_page(ignore_https_errors: bool = False):
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: `make testenv` installs Debian's chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=stack.enter_context(own_network()),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  f"--proxy-server=socks5://127.0.0.1:{SOCKS_PORT}", "--proxy-bypass-list=<-loopback>"],
        )  # fmt: skip
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
