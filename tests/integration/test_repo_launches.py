"""Repository launches with a real hub, the real Docker engine and a real Git server.

The Git server is git's own smart HTTP over TLS on loopback (gitserver.py); the builds
run in the real engine on top of the jhtest singleuser image. The packages the test
repositories install are wheels inside the repositories, so no build reaches PyPI.
"""

from __future__ import annotations

import html
import re
import threading
import time

import requests

from .gitserver import make_wheel
from .hubharness import container_env, container_of, package_repo

BUILD_LABEL = "org.formspawner.repo.build"


def repo_body(server, name, ref="main", image="minimal"):
    return {"image": image, "repo": {"url": server.url(name), "ref": ref}}


def run_as_user(client, user: str, command: str) -> str:
    """`command` run as the server runs: the container's own user (the image's, or the
    user's own id with user_ids 'distinct') and groups."""
    code, output = container_of(client, user).exec_run(["sh", "-c", command])
    assert code == 0, output.decode(errors="replace")
    return output.decode().strip()


def stand_in_python(docker_client) -> str:
    """The stand-in image's Python, major.minor."""
    return docker_client.containers.run(
        "jhtest/singleuser:minimal", ["python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        entrypoint=[], remove=True,
    ).decode().strip()


def assert_launch_refused(hub, git_server, user: str, repository: str, message: str) -> None:
    """A launch of `repository` fails before any server starts, with `message` on the page."""
    assert hub.spawn(user, repo_body(git_server, repository)).status_code in (201, 202)
    events = hub.progress_events(user)
    assert events[-1].get("failed"), events[-3:]
    assert message in events[-1]["message"], events[-1]
    assert not hub.api("GET", f"/users/{user}").json()["servers"]


def builds_logged(hub, url: str) -> int:
    return len(re.findall(rf"Building {re.escape(url)} at ", hub.log_text()))


def test_repo_launch_builds_once_per_commit_and_opens_in_the_repository(repo_hub, git_server, docker_client):
    hub = repo_hub()
    first = package_repo(git_server, "fstest-pkg", "first")
    # The spawn page says what happens below: this hub keeps no repository files (issue 47).
    hub.ensure_user("ada")
    page = " ".join(hub.login("ada").get(f"{hub.url}/hub/spawn").text.split())
    assert "Changes inside the repository's folder are not kept when your server stops" in page
    assert "in your storage" not in page

    response = hub.spawn("ada", repo_body(git_server, "fstest-pkg"))
    assert response.status_code in (201, 202), response.text
    events = hub.progress_events("ada")
    assert events[-1].get("ready"), events[-3:]
    messages = [e.get("message", "") for e in events]
    assert any("postBuild ran as jovyan" in m for m in messages), messages
    assert any(m.startswith("Step ") for m in messages)

    # The package the repository declares is importable by the user's Python, the
    # repository sits in a folder of its name in the home, the server opens there.
    assert run_as_user(docker_client, "ada", "python -c 'import fsdemo; print(fsdemo.VALUE)'") == "first"
    assert run_as_user(docker_client, "ada", "cat /home/jovyan/fstest-pkg/README.md") == "# fstest-pkg"
    assert run_as_user(docker_client, "ada", "cat /home/jovyan/fstest-pkg/postbuild-user") == "jovyan"
    env_in_postbuild = "/home/jovyan/fstest-pkg /opt/conda"
    assert run_as_user(docker_client, "ada", "cat /home/jovyan/fstest-pkg/postbuild-env") == env_in_postbuild
    assert run_as_user(docker_client, "ada", "git -C /home/jovyan/fstest-pkg rev-parse HEAD") == first
    env = container_env(docker_client, "ada")
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/fstest-pkg"
    assert env["OMP_NUM_THREADS"] == "1"  # the other pieces still apply
    image = container_of(docker_client, "ada").image
    assert image.labels["org.formspawner.repo.commit"] == first
    assert any(tag.startswith("formspawner-repo/localhost-") for tag in image.tags)
    # The user's volume is mounted at its usual place next to the repository.
    assert run_as_user(docker_client, "ada", "touch /home/jovyan/work/kept && echo ok") == "ok"
    assert builds_logged(hub, git_server.url("fstest-pkg")) == 1

    # The same commit again, for another user: no build at all.
    assert hub.spawn("grace", repo_body(git_server, "fstest-pkg")).status_code in (201, 202)
    events = hub.progress_events("grace")
    assert events[-1].get("ready")
    assert any("Using the existing build" in e.get("message", "") for e in events)
    assert not any(e.get("message", "").startswith("Step ") for e in events)
    assert container_of(docker_client, "grace").image.id == image.id
    assert builds_logged(hub, git_server.url("fstest-pkg")) == 1

    # A new commit on the branch builds anew; the old server keeps running its image.
    second = package_repo(git_server, "fstest-pkg", "second")
    hub.stop_server("grace")
    assert hub.spawn("grace", repo_body(git_server, "fstest-pkg")).status_code in (201, 202)
    hub.wait_ready("grace", timeout=300)
    assert run_as_user(docker_client, "grace", "python -c 'import fsdemo; print(fsdemo.VALUE)'") == "second"
    assert container_of(docker_client, "grace").image.labels["org.formspawner.repo.commit"] == second
    assert builds_logged(hub, git_server.url("fstest-pkg")) == 2

    # A plain spawn after a repository launch runs the plain image, opening as configured.
    hub.stop_server("ada")
    assert hub.spawn("ada", {"image": "minimal"}).status_code in (201, 202)
    hub.wait_ready("ada")
    assert "jhtest/singleuser:minimal" in container_of(docker_client, "ada").image.tags
    assert container_env(docker_client, "ada").get("JUPYTERHUB_DEFAULT_URL", "/lab") != "/lab/tree/fstest-pkg"


def test_refs_tags_and_commit_ids_resolve_to_the_same_build(repo_hub, git_server, docker_client):
    hub = repo_hub()
    commit = package_repo(git_server, "fstest-refs", "tagged")
    git_server.tag("fstest-refs", "v1.0", commit)
    for user, ref in (("r1", "v1.0"), ("r2", commit[:9]), ("r3", commit), ("r4", "")):
        assert hub.spawn(user, repo_body(git_server, "fstest-refs", ref=ref)).status_code in (201, 202), ref
        hub.wait_ready(user, timeout=300)
        assert container_of(docker_client, user).image.labels["org.formspawner.repo.commit"] == commit
    assert builds_logged(hub, git_server.url("fstest-refs")) == 1


def test_two_users_launching_one_commit_share_one_build(repo_hub, git_server, docker_client):
    hub = repo_hub()
    package_repo(git_server, "fstest-shared", "shared")
    for user in ("s1", "s2"):
        hub.ensure_user(user)
    results = {}

    def launch(user):
        results[user] = hub.spawn(user, repo_body(git_server, "fstest-shared")).status_code

    threads = [threading.Thread(target=launch, args=(u,)) for u in ("s1", "s2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results.values()) <= {201, 202}, results
    for user in ("s1", "s2"):
        hub.wait_ready(user, timeout=300)
    assert container_of(docker_client, "s1").image.id == container_of(docker_client, "s2").image.id
    assert builds_logged(hub, git_server.url("fstest-shared")) == 1


def test_a_failing_build_reports_its_log_and_leaves_nothing(repo_hub, git_server, docker_client):
    hub = repo_hub()
    git_server.commit(
        "fstest-broken",
        {"postBuild": "#!/bin/sh\necho 'compiling the course material'\necho 'error: missing dataset' >&2\nexit 3\n"},
        executable={"postBuild"},
    )
    leftovers_before = len(docker_client.images.list(all=True, filters={"label": BUILD_LABEL}))
    assert hub.spawn("broken", repo_body(git_server, "fstest-broken")).status_code in (201, 202)
    events = hub.progress_events("broken")
    assert events[-1].get("failed"), events[-3:]
    message = events[-1]["message"]
    assert "The build failed" in message and "error: missing dataset" in message, message
    assert not hub.api("GET", "/users/broken").json()["servers"]
    assert not docker_client.containers.list(all=True, filters={"name": "fstest-broken"})
    assert not docker_client.images.list(
        filters={"label": f"org.formspawner.repo.url={git_server.url('fstest-broken')[:-4]}"}
    )
    assert len(docker_client.images.list(all=True, filters={"label": BUILD_LABEL})) == leftovers_before


# A pyproject.toml package as on Binder, built by an in-tree PEP 517 backend that hands
# pip the wheel in dist/ (no build requirement, so pip's isolated build needs no index).
PYPROJECT = """[project]
name = "fspkg"
version = "1.0"

[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""
BACKEND = """import pathlib, shutil

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel = next(pathlib.Path("dist").glob("*.whl"))
    shutil.copy(wheel, wheel_directory)
    return wheel.name
"""


def test_a_python_package_repository_is_installed_and_files_binder_would_use_are_named(
    repo_hub, git_server, docker_client
):
    hub = repo_hub()
    wheel, data = make_wheel("fspkg", "from-pyproject")
    git_server.commit(
        "fstest-pyproject",
        {
            "pyproject.toml": PYPROJECT,
            "backend.py": BACKEND,
            f"dist/{wheel}": data,
            "Dockerfile": "FROM scratch\n",  # never used: named instead
            "start": '#!/bin/sh\nexec "$@"\n',  # Binder would run it at every start; this hub does not
            "notebooks/intro.ipynb": "{}\n",
        },
    )
    assert hub.spawn("pkg", repo_body(git_server, "fstest-pyproject")).status_code in (201, 202)
    events = hub.progress_events("pkg")
    assert events[-1].get("ready"), events[-3:]
    messages = [e.get("message", "") for e in events]
    assert "Building with pyproject.toml" in messages, messages
    assert any(m.startswith("Not used by this hub: Dockerfile, start (it uses only ") for m in messages)
    assert run_as_user(docker_client, "pkg", "python -c 'import fspkg; print(fspkg.VALUE)'") == "from-pyproject"
    # The image's user and NB_GID (100) own the repository, group-writable, setgid folders:
    # as docker-stacks' fix-permissions leaves files (COPY --chown=1000 alone gave group 1000).
    listing = run_as_user(
        docker_client, "pkg",
        "cd /home/jovyan/fstest-pyproject && stat -c '%n %u:%g %A' . notebooks notebooks/intro.ipynb pyproject.toml",
    )
    assert listing.splitlines() == [
        ". 1000:100 drwxrwsr-x",
        "notebooks 1000:100 drwxrwsr-x",
        "notebooks/intro.ipynb 1000:100 -rw-rw-r--",
        "pyproject.toml 1000:100 -rw-rw-r--",
    ]


def test_a_repository_with_both_binder_folders_is_refused_by_name(repo_hub, git_server, docker_client):
    hub = repo_hub()
    git_server.commit("fstest-twobinders", {"binder/requirements.txt": "\n", ".binder/postBuild": "#!/bin/sh\n"})
    assert hub.spawn("twob", repo_body(git_server, "fstest-twobinders")).status_code in (201, 202)
    events = hub.progress_events("twob")
    assert events[-1].get("failed"), events[-3:]
    assert "both a binder/ and a .binder/ folder" in events[-1]["message"], events[-1]
    assert not hub.api("GET", "/users/twob").json()["servers"]
    url = git_server.url("fstest-twobinders")[:-4]
    assert not docker_client.images.list(filters={"label": f"org.formspawner.repo.url={url}"})


def test_what_the_image_cannot_do_is_refused_before_building_naming_the_file(repo_hub, git_server, docker_client):
    """The stand-in has Debian's Python in a venv and no conda, R or Julia; the hub asks the
    image itself (a probe container), so these hold for any image an admin lists."""
    hub = repo_hub()
    python = stand_in_python(docker_client)
    cases = {
        "fstest-conda": ({"environment.yml": "dependencies: [numpy]\n"}, "environment.yml needs conda or mamba"),
        "fstest-py27": (
            {"binder/runtime.txt": "python-2.7\n"},
            f"binder/runtime.txt asks for Python 2.7; the chosen image has Python {python}.",
        ),
        "fstest-rlang": ({"install.R": "install.packages('ggplot2')\n"}, "install.R needs R, which the chosen image"),
    }
    for number, (name, (files, message)) in enumerate(cases.items()):
        git_server.commit(name, files)
        assert_launch_refused(hub, git_server, f"lack{number}", name, message)
    assert not running_builds(docker_client)
    assert not docker_client.containers.list(all=True, filters={"label": BUILD_LABEL})  # the probe is gone
    # The same image passes where it can: runtime.txt naming its own Python builds.
    git_server.commit("fstest-runtime-ok", {"runtime.txt": f"python-{python}\n"})
    assert hub.spawn("lack9", repo_body(git_server, "fstest-runtime-ok")).status_code in (201, 202)
    events = hub.progress_events("lack9")
    assert events[-1].get("ready"), events[-3:]
    checked = f"Checked against the image: runtime.txt asks for Python {python}, which it has"
    assert checked in [e.get("message") for e in events]


def test_a_runtime_txt_one_minor_version_away_launches_with_a_warning_or_is_refused_when_the_admin_says(
    repo_hub, git_server, docker_client
):
    """Issue 47: runtime.txt names the version its author used; a pinned requirements.txt
    still installs on the image's Python. The stand-in has no conda (the Python a docker-
    stacks image would install instead: tests/unit/test_build.py)."""
    python = stand_in_python(docker_client)
    major, minor = python.split(".")
    asked = f"{major}.{int(minor) - 1}"
    wheel, data = make_wheel("fspinned", "pinned")
    git_server.commit("fstest-runtime-near", {
        "runtime.txt": f"python-{asked}\n", f"wheels/{wheel}": data, "requirements.txt": f"./wheels/{wheel}\n",
    })  # fmt: skip
    warning = f"Warning: runtime.txt asks for Python {asked}; this image has {python}; continuing with {python}"
    hub = repo_hub()
    assert hub.spawn("near", repo_body(git_server, "fstest-runtime-near")).status_code in (201, 202)
    events = hub.progress_events("near")
    assert events[-1].get("ready"), events[-3:]
    assert warning in [e.get("message") for e in events]
    assert run_as_user(docker_client, "near", "python -c 'import fspinned; print(fspinned.VALUE)'") == "pinned"
    hub.stop()
    strict = repo_hub(python_mismatch="refuse")
    assert_launch_refused(
        strict, git_server, "strict", "fstest-runtime-near",
        f"The repository's runtime.txt asks for Python {asked}; the chosen image has Python {python}. "
        f"Choose an image with Python {asked}, or change runtime.txt.",
    )  # fmt: skip


# Refusals decided before anything is built (issue 47): each with the words a user reads.
REFUSALS = {
    "fstest-no-binders": (
        {"binder/requirements.txt": "numpy\n", ".binder/requirements.txt": "numpy\n"},
        "The repository has both a binder/ and a .binder/ folder; Binder refuses that too. Keep one of them.",
    ),
    "fstest-no-conda": ({"environment.yml": "dependencies: [numpy]\n"}, "environment.yml needs conda or mamba"),
    "fstest-no-r": ({"install.R": "install.packages('x')\n"}, "install.R needs R, which the chosen image"),
    "fstest-no-py2": ({"runtime.txt": "python-2.7\n"}, "runtime.txt asks for Python 2.7; the chosen image has"),
    "fstest-no-apt": ({"apt.txt": "vim; curl evil\n"}, "apt.txt line 1: 'vim; curl evil' is not a Debian package"),
    "fstest-too-big": ({"data.bin": b"x" * (2 * 1024**2)}, "The repository's files take more than this hub allows"),
}


def test_refusals_known_before_building_are_400s_with_their_message_on_the_api_and_the_form(
    repo_hub, git_server, docker_client
):
    """A course's launch script (the REST API) and the form tell a refused repository from a
    crash: a 400 with the refusal's own words, nothing started. (Within the hub's
    slow_spawn_timeout, 10 s by default, raised here so a loaded CI machine cannot turn the
    answer into a 202; a refusal that comes later fails the spawn with the same words.)"""
    hub = repo_hub(answer_at_once=False, extra='c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 120}\n',
                   max_repo_size="1m")  # fmt: skip
    for number, (name, (files, message)) in enumerate(REFUSALS.items()):
        git_server.commit(name, files)
        response = hub.spawn(f"refused{number}", repo_body(git_server, name))
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        assert message in response.json()["message"], (name, response.json())
        assert not hub.api("GET", f"/users/refused{number}").json()["servers"]
    # The form: JupyterHub's spawn page waits one second for a start, then shows the pending
    # page. A refusal within it comes back on the form, a 400 with the same words; a later
    # one on the pending page, whose progress says the repository was refused and why.
    hub.ensure_user("former")
    session = hub.login("former")
    session.get(f"{hub.url}/hub/spawn")
    for name, (_, message) in REFUSALS.items():
        page = session.post(
            f"{hub.url}/hub/spawn",
            data={"image": "minimal", "repo_url": git_server.url(name), "repo_ref": "main",
                  "_xsrf": session.cookies.get("_xsrf")},
            allow_redirects=False,
        )  # fmt: skip
        if page.status_code == 400:  # (how many do depends on the machine's load: not counted)
            assert message in html.unescape(page.text), (name, page.text[:2000])
            continue
        assert page.status_code == 302 and "/hub/spawn-pending/former" in page.headers["Location"], name
        events = hub.progress_events("former")
        assert events[-1].get("failed") and message in events[-1]["message"], (name, events[-3:])
        refused = f"The repository {git_server.url(name)} was refused: "
        assert any(e.get("message", "").startswith(refused) for e in events), (name, events[-3:])
    assert not hub.api("GET", "/users/former").json()["servers"]
    assert not running_builds(docker_client)


def test_unknown_refs_hosts_and_hostile_urls_are_refused_with_400(repo_hub, git_server, docker_client):
    hub = repo_hub(answer_at_once=False)
    package_repo(git_server, "fstest-pkg400", "x")
    cases = {
        "has no branch or tag": {"url": git_server.url("fstest-pkg400"), "ref": "no-such-branch"},
        "cannot be read": {"url": git_server.url("fstest-missing")},
        "not allowed here": {"url": "https://github.com/jupyter/notebook"},
        "Only https": {"url": f"http://{git_server.host}/fstest-pkg400.git"},
        "user name or password": {"url": f"https://user:secret@{git_server.host}/fstest-pkg400.git"},
        "not a branch, tag or commit": {"url": git_server.url("fstest-pkg400"), "ref": "--upload-pack=touch /tmp/x"},
    }
    for expected, repo in cases.items():
        response = hub.spawn("mallory", {"image": "minimal", "repo": repo})
        assert response.status_code == 400, (repo, response.text)
        assert expected in response.json()["message"], (expected, response.json())
        assert "secret" not in response.json()["message"]
        assert not docker_client.containers.list(all=True, filters={"name": "fstest-mallory"})


def test_the_cache_evicts_least_recent_builds_but_never_one_in_use(repo_hub, git_server, docker_client):
    hub = repo_hub(cache_max_images=1)
    for name in ("fstest-c1", "fstest-c2", "fstest-c3"):
        package_repo(git_server, name, name)

    def tags_of(name):
        url = git_server.url(name)[:-4]
        # The low-level list: images.list() inspects each image it lists, and the eviction
        # this test waits for may remove one in between (ImageNotFound).
        return docker_client.api.images(filters={"label": f"org.formspawner.repo.url={url}"})

    assert hub.spawn("c1", repo_body(git_server, "fstest-c1")).status_code in (201, 202)
    hub.wait_ready("c1", timeout=300)
    assert hub.spawn("c2", repo_body(git_server, "fstest-c2")).status_code in (201, 202)
    hub.wait_ready("c2", timeout=300)
    # Over the limit, but both images are in use: both stay.
    assert tags_of("fstest-c1") and tags_of("fstest-c2")
    hub.stop_server("c1")
    assert hub.spawn("c3", repo_body(git_server, "fstest-c3")).status_code in (201, 202)
    hub.wait_ready("c3", timeout=300)
    deadline = time.monotonic() + 30
    while tags_of("fstest-c1") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not tags_of("fstest-c1"), "the least recently launched image no longer in use is removed"
    assert tags_of("fstest-c2"), "an image a running server uses is kept"
    assert tags_of("fstest-c3")


def test_the_cache_keeps_to_its_size_budget(repo_hub, git_server, docker_client):
    # Every build's own layers are more than one byte: one build fits only while in use.
    hub = repo_hub(cache_max_size="1")
    for name in ("fstest-s1", "fstest-s2"):
        package_repo(git_server, name, name)

    def built(name):
        return docker_client.images.list(filters={"label": f"org.formspawner.repo.url={git_server.url(name)[:-4]}"})

    assert hub.spawn("s1", repo_body(git_server, "fstest-s1")).status_code in (201, 202)
    hub.wait_ready("s1", timeout=300)
    assert built("fstest-s1"), "over the budget, but in use: kept"
    hub.stop_server("s1")
    assert hub.spawn("s2", repo_body(git_server, "fstest-s2")).status_code in (201, 202)
    hub.wait_ready("s2", timeout=300)
    deadline = time.monotonic() + 30
    while built("fstest-s1") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not built("fstest-s1") and built("fstest-s2")


def test_no_build_when_the_disk_is_short_but_plain_servers_start(repo_hub, git_server, docker_client):
    # More free space than any disk here has: the engine's disk is always "short".
    hub = repo_hub(min_free_disk="1000t")
    package_repo(git_server, "fstest-full", "full")
    assert hub.spawn("dora", repo_body(git_server, "fstest-full")).status_code in (201, 202)
    events = hub.progress_events("dora")
    assert events[-1].get("failed"), events[-3:]
    assert "short of disk space" in events[-1]["message"], events[-1]
    assert not docker_client.images.list(
        filters={"label": f"org.formspawner.repo.url={git_server.url('fstest-full')[:-4]}"}
    )
    assert hub.spawn("dora", {"image": "minimal"}).status_code in (201, 202)
    hub.wait_ready("dora")


def test_a_build_may_outlast_the_start_timeout(repo_hub, git_server, docker_client):
    hub = repo_hub()
    # The hub's start timeout is 120 s; this one is short so a slow build would hit it.
    hub.stop()
    hub.settings["spawner"]["start_timeout"] = 15
    hub.start(hub.settings["spawner_class"], hub.settings["spawner"], hub.settings["docker"],
              env={"GIT_SSL_CAINFO": str(git_server.cert)})  # fmt: skip
    git_server.commit("fstest-slow", {"postBuild": "#!/bin/sh\necho slow build\nsleep 25\n"}, executable={"postBuild"})
    assert hub.spawn("slow", repo_body(git_server, "fstest-slow")).status_code in (201, 202)
    events = hub.progress_events("slow")
    assert events[-1].get("ready"), events[-3:]


def running_builds(docker_client, keys: set[str] | None = None) -> list:
    """The containers of build steps running now, of any build or of the builds with these
    keys (a step carries its build's key as a label; the URL label comes only at the end)."""
    return [
        c for c in docker_client.containers.list(filters={"label": BUILD_LABEL})
        if keys is None or c.labels[BUILD_LABEL] in keys
    ]  # fmt: skip


def test_builds_wait_in_line_one_per_user_and_stop_unwatched(repo_hub, git_server, docker_client):
    """One build at a time on this hub: a second user's launch waits in line and hears its
    place; the same user cannot start a second build; a build whose launch is stopped is
    stopped too and leaves nothing."""
    hub = repo_hub(max_concurrent_builds=1, extra="c.JupyterHub.allow_named_servers = True\n")
    slow = git_server.url("fstest-q-slow")
    long_build = {"postBuild": "#!/bin/sh\necho long build\nsleep 600\n"}
    git_server.commit("fstest-q-slow", long_build, executable={"postBuild"})
    package_repo(git_server, "fstest-q-next", "next")
    assert hub.spawn("qa", repo_body(git_server, "fstest-q-slow")).status_code in (201, 202)
    # Its long step (postBuild), not one of the short steps before it.
    deadline = time.monotonic() + 120
    while not (long_steps := [
        c for c in running_builds(docker_client) if "postBuild" in " ".join(c.attrs["Config"]["Cmd"] or [])
    ]):  # fmt: skip
        assert time.monotonic() < deadline, "the slow build's postBuild step never ran"
        time.sleep(0.5)
    slow_build = {c.labels[BUILD_LABEL] for c in long_steps}  # the only build yet

    # The same user, a second server, another repository: refused while the first builds.
    second = hub.api("POST", "/users/qa/servers/second", json=repo_body(git_server, "fstest-q-next"))
    assert second.status_code in (201, 202), second.text
    events = hub.progress_events("qa", server="second")
    assert events[-1].get("failed"), events[-3:]
    assert "You already have a repository build in progress" in events[-1]["message"], events[-1]
    assert f"{slow} at " in events[-1]["message"]

    # Another user: in line behind the slow build.
    assert hub.spawn("qb", repo_body(git_server, "fstest-q-next")).status_code in (201, 202)
    deadline = time.monotonic() + 30
    while "Waiting for a free build slot" not in hub.log_text() and time.monotonic() < deadline:
        time.sleep(0.5)

    # The slow launch is stopped: its build goes with it, and the next one runs.
    hub.stop_server("qa")
    deadline = time.monotonic() + 60
    while running_builds(docker_client, slow_build) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running_builds(docker_client, slow_build), "the stopped launch's build still runs"
    assert "Stopping the build of " + slow in hub.log_text()
    events = hub.progress_events("qb")
    assert events[-1].get("ready"), events[-3:]
    messages = [e.get("message", "") for e in events]
    assert "Waiting for a free build slot: number 1 in line (this hub builds 1 at a time)" in messages, messages
    assert run_as_user(docker_client, "qb", "python -c 'import fsdemo; print(fsdemo.VALUE)'") == "next"
    assert not docker_client.images.list(filters={"label": f"org.formspawner.repo.url={slow[:-4]}"})
    # A stopped build's intermediate images would be left untagged, with no tagged child.
    assert not docker_client.images.list(filters={"label": BUILD_LABEL, "dangling": True})


def test_a_commit_id_is_built_only_if_a_branch_or_tag_reaches_it(repo_hub, git_server, docker_client):
    """GitHub serves every commit of a fork network through the parent's URL: a link that
    shows the course's repository must not build a stranger's commit."""
    hub = repo_hub(answer_at_once=False)
    package_repo(git_server, "fstest-forked", "course")
    stranger = git_server.unreachable_commit("fstest-forked", {"postBuild": "#!/bin/sh\necho not the course\n"})
    for ref in (stranger, stranger[:10]):
        response = hub.spawn("fork", repo_body(git_server, "fstest-forked", ref=ref))
        assert response.status_code == 400, (ref, response.text)
        assert "No branch or tag of " in response.json()["message"], response.json()
        assert "forks" in response.json()["message"]
    assert builds_logged(hub, git_server.url("fstest-forked")) == 0


def test_a_checkout_larger_than_the_limit_is_refused_before_it_is_written(repo_hub, git_server, docker_client):
    """Git stores equal content once and compresses it: 8 MB of one repeated line fetch as a
    few kilobytes. The limit applies to the files as they would be checked out."""
    hub = repo_hub(max_repo_size="1m")
    git_server.commit("fstest-bomb", {f"data/{n}.txt": "the same line\n" * 150_000 for n in range(4)})
    assert hub.spawn("bomb", repo_body(git_server, "fstest-bomb")).status_code in (201, 202)
    events = hub.progress_events("bomb")
    assert events[-1].get("failed"), events[-3:]
    assert "The repository's files take more than this hub allows once checked out (1 MB)" in events[-1]["message"]
    assert not running_builds(docker_client) and builds_logged(hub, git_server.url("fstest-bomb")) == 1
    assert not list((hub.workdir / "formspawner-builds").iterdir()), "the build's work directory is removed"


# -- Launch links (/hub/launch) -------------------------------------------------------


def xsrf_of(page: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert match, page[:2000]
    return match.group(1)


def test_a_launch_link_asks_first_then_starts_the_repository_at_the_file(repo_hub, git_server, docker_client):
    hub = repo_hub()
    commit = package_repo(git_server, "fstest-link", "linked")
    hub.ensure_user("lena")
    query = {"image": "scipy", "repo": git_server.url("fstest-link"), "ref": "main", "path": "README.md"}

    # Logged out, the link leads to the login page and comes back after it.
    anonymous = requests.get(f"{hub.url}/hub/launch", params=query, allow_redirects=False)
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]
    assert "launch" in anonymous.headers["Location"]
    session = hub.login("lena")
    page = session.get(f"{hub.url}/hub/launch", params=query)
    assert page.status_code == 200 and "Start your server from this link?" in page.text
    assert git_server.url("fstest-link") in page.text and "SciPy" in page.text and "README.md" in page.text
    assert "with your files and your access to this hub" in page.text
    assert "Launch only repositories you trust" in page.text
    assert not hub.api("GET", "/users/lena").json()["servers"], "a link alone starts nothing"

    # Without the page's XSRF token (a cross-site form), nothing starts either.
    forged = session.post(f"{hub.url}/hub/launch", params=query, allow_redirects=False)
    assert forged.status_code == 403
    assert not hub.api("GET", "/users/lena").json()["servers"]

    started = session.post(
        f"{hub.url}/hub/launch", params=query, data={"_xsrf": xsrf_of(page.text)}, allow_redirects=False
    )
    assert started.status_code == 302 and "spawn-pending" in started.headers["Location"]
    hub.wait_ready("lena", timeout=300)
    container = container_of(docker_client, "lena")
    assert container.image.labels["org.formspawner.repo.commit"] == commit
    assert container.image.labels["org.formspawner.repo.base"] == docker_client.images.get("jhtest/singleuser:scipy").id
    assert container_env(docker_client, "lena")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/fstest-link/README.md"

    # The same link again opens the running server.
    again = session.get(f"{hub.url}/hub/launch", params=query, allow_redirects=False)
    assert again.status_code == 302 and again.headers["Location"].endswith("/user/lena/")

    # Another link while it runs: the page says so; only the user's click restarts it.
    other = {"image": "minimal"}
    page = session.get(f"{hub.url}/hub/launch", params=other)
    assert "Your server is already running" in page.text and "Stop my server and start this one" in page.text
    assert container_of(docker_client, "lena").id == container.id
    restarted = session.post(
        f"{hub.url}/hub/launch", params=other, data={"_xsrf": xsrf_of(page.text)}, allow_redirects=False
    )
    assert restarted.status_code == 302, restarted.text[:500]
    hub.wait_ready("lena")
    assert container_of(docker_client, "lena").id != container.id
    assert "jhtest/singleuser:minimal" in container_of(docker_client, "lena").image.tags


def test_links_never_carry_variables_and_spawn_links_only_fill_the_form(repo_hub, git_server):
    hub = repo_hub()
    hub.ensure_user("otto")
    session = hub.login("otto")
    refused = session.get(
        f"{hub.url}/hub/launch", params={"repo": git_server.url("fstest-link"), "env": "PYTHONPATH=/tmp/evil"}
    )
    assert refused.status_code == 400 and "A link cannot set" in refused.text and "Launch</button>" not in refused.text
    # JupyterHub's own spawn links (?opt-NAME=value) show the form filled in, with a notice.
    link = {"opt-image": "scipy", "opt-repo": git_server.url("fstest-link"), "opt-ref": "v9"}
    spawn = session.get(f"{hub.url}/hub/spawn", params=link)
    assert spawn.status_code == 200 and "A launch link asks to start your server" in spawn.text
    assert f'value="{git_server.url("fstest-link")}"' in spawn.text and 'value="v9"' in spawn.text
    assert 'id="copy-launch-link"' in spawn.text
    assert not hub.api("GET", "/users/otto").json()["servers"]


# Users may log in and see their own server, but not start one (no `servers` scope).
NO_SERVERS_SCOPE = """
c.JupyterHub.load_roles.append({"name": "user", "scopes": ["read:users!user", "read:servers!user"]})
"""


def test_a_launch_link_starts_nothing_for_a_user_without_the_servers_scope(repo_hub, git_server):
    hub = repo_hub(extra=NO_SERVERS_SCOPE)
    hub.ensure_user("vera")
    session = hub.login("vera")
    query = {"image": "scipy"}
    # JupyterHub's own spawn page refuses this user; so does the launch page, both ways.
    assert session.get(f"{hub.url}/hub/spawn", allow_redirects=False).status_code == 403
    page = session.get(f"{hub.url}/hub/launch", params=query, allow_redirects=False)
    assert page.status_code == 403, page.text[:500]
    token = re.search(r'xsrf_token: "([^"]+)"', page.text).group(1)
    started = session.post(f"{hub.url}/hub/launch", params=query, data={"_xsrf": token}, allow_redirects=False)
    assert started.status_code == 403, started.text[:500]
    assert hub.api("GET", "/users/vera").json()["servers"] == {}
