"""Course content students keep: a launched repository's files in the user's volume,
merged by nbgitpuller's rules at every launch. A real hub, the real Docker engine, the
real Git server (gitserver.py), the docker-stacks-faithful image; the student's edits are
made inside their container as their user, and read back from a new container."""

from __future__ import annotations

import io
import time

import docker
import pytest

from .hubharness import (
    DOCKER_SETTINGS,
    IMAGES,
    container_env,
    container_of,
    package_repo,
    remove_user_containers,
)
from .test_repo_launches import builds_logged, repo_body, run_as_user

VOLUME = "fstest-content-{username}"
# Confined as the role confines servers: the merge's short container takes the same.
STORAGE = {
    **DOCKER_SETTINGS,
    "volumes": {VOLUME: "/home/jovyan/work"},
    "extra_host_config": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]},
}
FOLDER = "/home/jovyan/work/fstest-course"

# Lines apart, so that git merges the instructor's and the student's changes to one file.
WEEK1 = "# Week 1\n\n---\n\nanswer = None  # TODO\n"
WEEK1_V2 = "# Week 1 (revised)\n\n---\n\nanswer = None  # TODO\n"
ANSWERED = "# Week 1\n\n---\n\nanswer = 42\n"


NOGIT_IMAGE = "jhtest/singleuser:nogit"


@pytest.fixture
def content_volumes(docker_client):
    """Users' volumes (fstest-content-*): after the test, its servers, then their volumes
    (set up after repo_hub, so removed before repo_hub's own cleanup)."""
    yield
    remove_user_containers(docker_client)
    for volume in docker_client.volumes.list(filters={"name": "fstest-content-"}):
        volume.remove(force=True)


@pytest.fixture
def content_hub(repo_hub, docker_client, content_volumes):
    """repo_hub with users' volumes (home_volume), as the role configures them, and an
    image without git (the stand-in with git removed, built once per machine)."""
    try:
        docker_client.images.get(NOGIT_IMAGE)
    except docker.errors.ImageNotFound:
        dockerfile = b"FROM jhtest/singleuser:minimal\nUSER root\nRUN rm /usr/bin/git\nUSER 1000\n"
        docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=NOGIT_IMAGE, rm=True)
    images = [*IMAGES, {"name": "nogit", "display_name": "No git", "image": NOGIT_IMAGE}]
    # As the role runs servers: each user as their own id (the merge, too).
    return lambda: repo_hub(images=images, settings=STORAGE, spawner={"home_volume": VOLUME, "user_ids": "distinct"})


def messages(events) -> list[str]:
    return [event.get("message", "") for event in events]


def launch(hub, user, body) -> list[str]:
    assert hub.spawn(user, body).status_code in (201, 202)
    events = hub.progress_events(user)
    assert events[-1].get("ready"), events[-5:]
    return messages(events)


def test_a_students_work_survives_stops_hub_restarts_and_the_instructors_updates(
    content_hub, git_server, docker_client
):
    hub = content_hub()
    # The spawn page says what happens below: kept in the storage, and merged (issue 47).
    hub.ensure_user("ada")
    session = hub.login("ada")
    page = " ".join(session.get(f"{hub.url}/hub/spawn").text.split())
    assert "opens in a folder of its name in your storage, <code>/home/jovyan/work</code>" in page
    assert "Your changes there are kept when your server stops, and each launch merges" in page
    assert "are not kept when your server stops" not in page
    link = session.get(f"{hub.url}/hub/launch", params={"repo": git_server.url("fstest-course"), "ref": "main"})
    link_page = " ".join(link.text.split())
    assert "It opens in a folder of its name in your storage, <code>/home/jovyan/work</code>" in link_page, link_page
    git_server.commit(
        "fstest-course", {"lab1/week1.py": WEEK1, "lab1/data.csv": "x\n1\n", "lab1/notes.md": "v1\n"}
    )
    repo = {"url": git_server.url("fstest-course"), "ref": "main", "path": "lab1/week1.py"}
    body = {"image": "minimal", "repo": repo}

    # A repository with nothing to build: no build, the chosen image as it is.
    shown = launch(hub, "ada", body)
    assert any("Nothing to build" in m for m in shown), shown
    assert any("Synchronising fstest-course into your storage" in m for m in shown), shown
    assert builds_logged(hub, git_server.url("fstest-course")) == 0
    assert "jhtest/singleuser:minimal" in container_of(docker_client, "ada").image.tags
    assert container_env(docker_client, "ada")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/work/fstest-course/lab1/week1.py"
    assert run_as_user(docker_client, "ada", f"cat {FOLDER}/lab1/week1.py") == WEEK1.strip()

    # The student works, and deletes a file.
    run_as_user(docker_client, "ada", f"printf '{ANSWERED}' > {FOLDER}/lab1/week1.py && rm {FOLDER}/lab1/data.csv")
    hub.stop_server("ada")
    hub.restart()

    # The instructor publishes: the notebook the student edited, another file, a new file.
    git_server.commit("fstest-course", {"lab1/week1.py": WEEK1_V2, "lab1/notes.md": "v2\n", "lab2/week2.py": "w2\n"})
    shown = launch(hub, "ada", body)
    assert any("Kept your changes to lab1/week1.py" in m for m in shown), shown
    assert any("Brought back lab1/data.csv" in m for m in shown), shown
    # The student's answer and the instructor's revised title, both; the rest updated.
    merged = "# Week 1 (revised)\n\n---\n\nanswer = 42"
    assert run_as_user(docker_client, "ada", f"cat {FOLDER}/lab1/week1.py") == merged
    assert run_as_user(docker_client, "ada", f"cat {FOLDER}/lab1/week1.from-instructor.py") == WEEK1_V2.strip()
    assert "lab1/week1.py" in run_as_user(docker_client, "ada", f"cat {FOLDER}/CONFLICTS-FROM-UPDATE.txt")
    assert run_as_user(docker_client, "ada", f"cat {FOLDER}/lab1/notes.md {FOLDER}/lab2/week2.py") == "v2\nw2"
    assert run_as_user(docker_client, "ada", f"cat {FOLDER}/lab1/data.csv") == "x\n1"
    # The files are the student's, in their volume, as the server sees them.
    owners = run_as_user(docker_client, "ada", f"stat -c %u {FOLDER}/lab1/week1.py {FOLDER}/lab2/week2.py")
    uid = run_as_user(docker_client, "ada", "id -u")
    assert int(uid) >= 200000
    assert owners == f"{uid}\n{uid}"

    # Another student's launch starts from the instructor's version, not from ada's.
    launch(hub, "grace", body)
    assert run_as_user(docker_client, "grace", f"cat {FOLDER}/lab1/week1.py") == WEEK1_V2.strip()


def test_a_repository_with_an_environment_is_built_and_its_files_kept(content_hub, git_server, docker_client):
    hub = content_hub()
    package_repo(git_server, "fstest-envcourse", "first")
    shown = launch(hub, "lin", repo_body(git_server, "fstest-envcourse"))
    assert any(m.startswith("Step ") for m in shown), shown
    assert run_as_user(docker_client, "lin", "python -c 'import fsdemo; print(fsdemo.VALUE)'") == "first"
    kept = "/home/jovyan/work/fstest-envcourse"
    assert run_as_user(docker_client, "lin", f"cat {kept}/README.md") == "# fstest-envcourse"
    assert container_env(docker_client, "lin")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/work/fstest-envcourse"
    run_as_user(docker_client, "lin", f"echo mine >> {kept}/README.md")
    hub.stop_server("lin")
    package_repo(git_server, "fstest-envcourse", "second")
    launch(hub, "lin", repo_body(git_server, "fstest-envcourse"))
    assert run_as_user(docker_client, "lin", "python -c 'import fsdemo; print(fsdemo.VALUE)'") == "second"
    assert run_as_user(docker_client, "lin", f"cat {kept}/README.md") == "# fstest-envcourse\nmine"
    assert builds_logged(hub, git_server.url("fstest-envcourse")) == 2


def test_an_image_without_git_runs_the_repository_unkept_and_says_so(content_hub, git_server, docker_client):
    hub = content_hub()
    git_server.commit("fstest-nogit", {"a.txt": "a"})
    shown = launch(hub, "noor", repo_body(git_server, "fstest-nogit", image="nogit"))
    assert any("has no git or Python" in m for m in shown), shown
    assert run_as_user(docker_client, "noor", "cat /home/jovyan/fstest-nogit/a.txt") == "a"



def test_a_folder_of_the_repositorys_name_holding_the_students_files_is_left_alone(
    content_hub, git_server, docker_client
):
    hub = content_hub()
    git_server.commit("fstest-taken", {"lab.py": "x = 1\n"})
    launch(hub, "kim", {"image": "minimal"})
    taken = "/home/jovyan/work/fstest-taken"
    run_as_user(docker_client, "kim", f"mkdir -p {taken} && echo thesis > {taken}/mine.txt")
    hub.stop_server("kim")
    shown = launch(hub, "kim", repo_body(git_server, "fstest-taken"))
    assert any("using fstest-taken-2" in m for m in shown), shown
    # The server was started before the merge chose the folder: it opens in the right one.
    assert container_env(docker_client, "kim")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/work/fstest-taken-2"
    assert run_as_user(docker_client, "kim", f"ls {taken}") == "mine.txt"
    assert run_as_user(docker_client, "kim", "cat /home/jovyan/work/fstest-taken-2/lab.py") == "x = 1"


def notebook(*sources: str) -> str:
    """A notebook as nbformat writes it (JupyterLab saves the same layout)."""
    import nbformat

    book = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})  # fmt: skip
    book.cells = [nbformat.v4.new_code_cell(source, id=f"cell-{n}") for n, source in enumerate(sources)]
    return nbformat.writes(book) + "\n"


@pytest.mark.integration
def test_in_the_browser_a_students_notebook_edit_survives_the_instructors_next_commit(
    content_hub, git_server, docker_client
):
    """Follow a launch link, edit the notebook in JupyterLab, delete a file; the instructor
    publishes; the same link again: the student's edit, the instructor's change to another
    cell, the new file, the deleted file back, all in a notebook that is still valid."""
    import json

    from playwright.sync_api import expect

    from tests.studentflow import SHOTS, chromium_page

    hub = content_hub()
    git_server.commit("fstest-lab", {"week1.ipynb": notebook("# exercise 1", "# exercise 2"), "data.csv": "x\n1\n"})
    link = f"{hub.url}/hub/launch?image=minimal&repo={git_server.url('fstest-lab')}&ref=main&path=week1.ipynb"
    folder = "/home/jovyan/work/fstest-lab"
    hub.ensure_user("zoe")
    with chromium_page() as page:
        page.goto(link)
        page.wait_for_url("**/hub/login**")
        page.fill("#username_input", "zoe")
        page.fill("#password_input", hub.password)
        page.click("#login_submit")
        page.wait_for_url("**/hub/launch**")
        page.click("#launch-start")
        page.wait_for_url("**/user/zoe/lab/tree/work/fstest-lab/week1.ipynb**", timeout=180_000)
        editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        expect(editor).to_contain_text("# exercise 1", timeout=90_000)
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\nanswer = 42")
        page.keyboard.press("Control+s")
        run = f"grep -c 'answer = 42' {folder}/week1.ipynb || true"
        for _ in range(60):
            if run_as_user(docker_client, "zoe", run) == "1":
                break
            page.wait_for_timeout(500)
        assert run_as_user(docker_client, "zoe", run) == "1", "JupyterLab did not save the edit"
        # The student deletes a file, through the server's API as JupyterLab's file browser does.
        status = page.evaluate(
            """async () => {
                const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf=')).slice(6);
                const r = await fetch('/user/zoe/api/contents/work/fstest-lab/data.csv',
                                      {method: 'DELETE', headers: {'X-XSRFToken': xsrf}});
                return r.status;
            }"""
        )
        assert status == 204
        page.screenshot(path=str(SHOTS / "content-edited.png"))
        hub.stop_server("zoe")

        git_server.commit("fstest-lab", {"week1.ipynb": notebook("# exercise 1", "# exercise 2, revised"),
                                         "week2.ipynb": notebook("# week 2")})  # fmt: skip
        page.goto(link)
        page.click("#launch-start")
        page.wait_for_url("**/user/zoe/lab/tree/work/fstest-lab/week1.ipynb**", timeout=180_000)
        listing = page.locator(".jp-DirListing-content")
        for name in ("week2.ipynb", "data.csv", "week1.from-instructor.ipynb", "CONFLICTS-FROM-UPDATE.txt"):
            expect(listing).to_contain_text(name, timeout=90_000)
        cells = page.locator(".jp-Notebook .jp-Cell .cm-content")
        expect(cells.nth(0)).to_contain_text("answer = 42", timeout=90_000)
        expect(cells.nth(1)).to_contain_text("# exercise 2, revised")
        page.screenshot(path=str(SHOTS / "content-relaunched.png"))
    merged = json.loads(run_as_user(docker_client, "zoe", f"cat {folder}/week1.ipynb"))
    sources = ["".join(cell["source"]) for cell in merged["cells"]]
    assert sources == ["# exercise 1\nanswer = 42", "# exercise 2, revised"], sources


def test_switching_to_whole_home_volumes_loses_no_file_and_keeps_every_path(
    repo_hub, git_server, docker_client, content_volumes
):
    """A deployment with work/ volumes switches to whole-home volumes (as Zero to
    JupyterHub keeps them): a returning student finds every file at its old path, the
    image's dotfiles arrive, `pip install --user`-style files persist; a new student's
    volume is the image's home from the start; a launched repository lands in the home."""
    volume = "fstest-content-{username}"

    def start(mount: str, moved_into: str = ""):
        return repo_hub(settings={**DOCKER_SETTINGS, "volumes": {volume: mount}},
                        spawner={"home_volume": volume, "home_volume_moved_into": moved_into})

    before = start("/home/jovyan/work")
    launch(before, "sam", {"image": "minimal"})
    work = "mkdir -p ~/work/lab1 ~/work/work && echo answer > ~/work/lab1/week1.py"
    run_as_user(docker_client, "sam", f"{work} && echo mine > ~/work/.hidden && echo n > ~/work/work/n")
    before.stop_server("sam")
    before.stop()

    after = start("/home/jovyan", moved_into="work")
    shown = launch(after, "sam", {"image": "minimal"})
    assert any("now holds your whole home" in m for m in shown), shown
    kept = run_as_user(docker_client, "sam", "cat ~/work/lab1/week1.py ~/work/.hidden ~/work/work/n")
    assert kept == "answer\nmine\nn"
    assert run_as_user(docker_client, "sam", "test -f ~/.bashrc && test -f ~/.formspawner-home && echo ok") == "ok"
    run_as_user(docker_client, "sam", "mkdir -p ~/.local/lib && echo pkg > ~/.local/lib/installed")
    after.stop_server("sam")
    after.restart()
    shown = launch(after, "sam", {"image": "minimal"})
    assert not any("whole home" in m for m in shown), shown  # moved once
    assert run_as_user(docker_client, "sam", "cat ~/.local/lib/installed ~/work/lab1/week1.py") == "pkg\nanswer"
    assert run_as_user(docker_client, "sam", "ls ~/work/work") == "n"

    # A new student: the image's home, marked, nothing nested.
    launch(after, "new", {"image": "minimal"})
    assert run_as_user(docker_client, "new", "ls -A ~/work") == ""
    assert run_as_user(docker_client, "new", "test -f ~/.bashrc && test -f ~/.formspawner-home && echo ok") == "ok"

    # A launched repository's folder is in the home now.
    git_server.commit("fstest-homecourse", {"a.py": "a = 1\n"})
    after.stop_server("new")
    launch(after, "new", repo_body(git_server, "fstest-homecourse"))
    assert container_env(docker_client, "new")["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/fstest-homecourse"
    assert run_as_user(docker_client, "new", "cat ~/fstest-homecourse/a.py") == "a = 1"


# -- a student's own folder is hostile input to the merge (issue: one student cannot take
# the hub from the others) -----------------------------------------------------------------

NAMED = "c.JupyterHub.allow_named_servers = True\nc.JupyterHub.named_server_limit_per_user = 12\n"


def helper_containers(client, user: str) -> list:
    """The user's short containers (the merge): theirs, but not a server (no options label)."""
    return [
        c for c in client.containers.list(all=True, filters={"label": f"org.formspawner.user={user}"})
        if "org.formspawner.options" not in c.labels
    ]  # fmt: skip


def timed_start(hub, user: str) -> float:
    """Seconds from the REST call to ready for a plain start (no repository) of `user`."""
    started = time.monotonic()
    assert hub.spawn(user, {"image": "minimal"}).status_code in (201, 202)
    events = hub.progress_events(user, timeout=150)
    assert events[-1].get("ready"), events[-3:]
    return time.monotonic() - started


def test_merges_stuck_in_a_students_folder_are_stopped_and_stop_no_one_else(repo_hub, git_server, docker_client,
                                                                           content_volumes):  # fmt: skip
    """A student's folder whose git blocks (packed-refs made a FIFO: every git that reads a
    ref waits for a writer forever), relaunched on more named servers at once than the
    hub's default thread pool has threads (6 on two cores): each merge is stopped at
    helper_timeout with a message, none is left running, and another student's plain
    start meanwhile succeeds. Before helpers had threads and deadlines of their own, each
    stuck merge held a thread of the pool tornado resolves names on, and the other
    student's start failed ("did not answer")."""
    hub = repo_hub(
        settings=STORAGE, spawner={"home_volume": VOLUME, "helper_timeout": 15}, extra=NAMED
    )
    print("plain start, no attack:", f"{timed_start(hub, 'calm'):.1f} s")
    hub.stop_server("calm")
    git_server.commit("fstest-stuck", {"lab.py": "x = 1\n"})
    body = repo_body(git_server, "fstest-stuck")
    launch(hub, "mal", body)
    folder = "/home/jovyan/work/fstest-stuck"
    run_as_user(docker_client, "mal", f"cd {folder} && rm -f .git/packed-refs && mkfifo .git/packed-refs")
    hub.stop_server("mal")
    servers = [f"s{n}" for n in range(8)]
    for server in servers:
        response = hub.api("POST", f"/users/mal/servers/{server}", json=body)
        assert response.status_code in (201, 202), response.text
    took = timed_start(hub, "calm")
    print("plain start during 8 stuck merges:", f"{took:.1f} s")
    for server in servers:
        events = hub.progress_events("mal", server=server, timeout=200)
        assert events[-1].get("failed"), events[-3:]
        assert "Synchronising fstest-stuck into your storage did not finish within 15 s" in events[-1]["message"]
    assert helper_containers(docker_client, "mal") == []
    # The hub is still whole: a new login's page and the API answer.
    assert hub.login("calm").get(f"{hub.url}/hub/home", timeout=30).status_code == 200


def test_git_in_a_students_folder_runs_none_of_its_hooks_filters_or_fsmonitor(content_hub, git_server, docker_client):
    """Through the real hub: hooks (also a sleeping one), core.fsmonitor and a clean/smudge
    filter set in the student's copy never run when the instructor's update is merged;
    the student's edit and the update are both there."""
    hub = content_hub()
    git_server.commit("fstest-hooked", {"lab.py": WEEK1, "notes.md": "v1\n"})
    body = repo_body(git_server, "fstest-hooked")
    launch(hub, "eve", body)
    folder = "/home/jovyan/work/fstest-hooked"
    marker = "/home/jovyan/work/ran"
    script = f"#!/bin/sh\\necho $0 >> {marker}\\nsleep 600\\n"
    run_as_user(docker_client, "eve", " && ".join([
        f"cd {folder}",
        *(f"printf '{script}' > .git/hooks/{hook} && chmod +x .git/hooks/{hook}"
          for hook in ("pre-commit", "post-merge", "post-checkout", "pre-merge-commit", "commit-msg")),
        f"printf '{script}' > /home/jovyan/work/run && chmod +x /home/jovyan/work/run",
        "git config core.fsmonitor /home/jovyan/work/run",
        "git config filter.evil.clean /home/jovyan/work/run",
        "git config filter.evil.smudge /home/jovyan/work/run",
        "printf '* filter=evil\\n' > .gitattributes",
        "printf '# Week 1\\n\\n---\\n\\nanswer = 42\\n' > lab.py",
    ]))  # fmt: skip
    hub.stop_server("eve")
    git_server.commit("fstest-hooked", {"lab.py": WEEK1_V2, "notes.md": "v2\n"})
    started = time.monotonic()
    launch(hub, "eve", body)
    print(f"relaunch with a hostile .git: {time.monotonic() - started:.1f} s")
    assert run_as_user(docker_client, "eve", f"cat {folder}/lab.py") == "# Week 1 (revised)\n\n---\n\nanswer = 42"
    assert run_as_user(docker_client, "eve", f"cat {folder}/notes.md") == "v2"
    assert run_as_user(docker_client, "eve", f"test -e {marker} && cat {marker} || echo none") == "none"
    assert helper_containers(docker_client, "eve") == []
