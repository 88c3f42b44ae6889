"""The refusals FormDockerSpawner's hooks make before anything starts, without a hub: a
link's options, a repository that cannot be looked up (or no thread to look it up on), the
whole-home move while other servers use the storage, an image that cannot be used, a pull
that fails. On a real hub: tests/integration/ (test_repo_launches.py, test_named_servers.py,
test_course_content.py); these fail in seconds when a refusal is dropped
(tests/mutation/source_mutants.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from tornado import web

from formspawner import FormDockerSpawner, git, schedule
from formspawner.errors import BuildError, OptionError, RepoRefused

IMAGES = [{"name": "minimal", "image": "x/minimal:1"}]


def spawner(**settings) -> FormDockerSpawner:
    s = FormDockerSpawner(images=IMAGES, form_options=["image", "repo"],
                          repo_policy={"allowed_hosts": ["github.com"]}, **settings)  # fmt: skip
    s.user = SimpleNamespace(name="ada", groups=[], url="/user/ada/", id=1, spawners={}, allow_named_servers=True)
    return s


@pytest.mark.parametrize(
    "query, message",
    [
        # Refused as the link is read, and as its options are checked.
        ({"image": ["minimal", "minimal"]}, "The link gives 'image' more than once."),
        ({"ref": ["main"]}, "The link gives a ref or path but no repository (repo=https://...)."),
        ({"image": ["nope"]}, "nope"),
    ],
)
def test_a_links_bad_options_are_a_400_naming_them(query, message):
    with pytest.raises(web.HTTPError) as refused:
        spawner().link_options(query)
    assert refused.value.status_code == 400 and message in refused.value.log_message


def repo_spawner() -> FormDockerSpawner:
    s = spawner()
    s.repo_request = s.repo_policy_checked.check({"url": "https://github.com/course/lab", "ref": "main"})
    return s


def test_a_ref_that_cannot_be_resolved_is_a_400_with_gits_reason(monkeypatch):
    def missing(request, policy):
        raise OptionError("No branch or tag main in https://github.com/course/lab.")

    monkeypatch.setattr(git, "resolve_commit", missing)
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(repo_spawner().prepare_options())
    assert (refused.value.status_code, refused.value.log_message) == (
        400, "No branch or tag main in https://github.com/course/lab."
    )


def test_no_thread_free_to_look_up_a_ref_is_a_400_that_says_try_again(monkeypatch):
    async def busy(*args):
        raise schedule.Busy("the hub's launch threads stayed busy for 90 s")

    monkeypatch.setattr(schedule.launch_io, "run", busy)
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(repo_spawner().prepare_options())
    assert refused.value.status_code == 400
    assert refused.value.log_message == (
        "Looking up https://github.com/course/lab did not start: the hub's launch threads stayed busy for 90 s. "
        "Try again."
    )


def whole_home_spawner(tmp_path) -> FormDockerSpawner:
    s = spawner(home_volume="home-{username}", home_volume_moved_into="work",
                home_volume_record=str(tmp_path / "moved.txt"))  # fmt: skip
    s.volumes = {"home-{username}": "/home/jovyan"}
    return s


def test_the_whole_home_move_waits_for_the_users_other_servers_to_stop(tmp_path):
    s = whole_home_spawner(tmp_path)
    s.orm_spawner = SimpleNamespace(name="second", server=None)
    s.user.spawners = {"": SimpleNamespace(active=True, pending=None), "second": s}
    with pytest.raises(BuildError, match=r"^Your storage is being moved to your whole home, .*: default\. Stop them"):
        asyncio.run(s._move_volume_into_home())


def test_the_whole_home_move_refuses_an_image_it_cannot_use(tmp_path):
    s = whole_home_spawner(tmp_path)

    async def pull(image):
        pass

    async def inspect(method, *args):
        return {"Id": "sha256:x", "Config": {"User": "1000; RUN rm -rf /", "Env": [], "WorkingDir": "/"}}

    s.pull_image, s.docker = pull, inspect
    with pytest.raises(BuildError, match=rf"^The image {s.image} cannot be used: the image's user .+\.$"):
        asyncio.run(s._move_volume_into_home())


def test_a_pull_that_fails_says_which_image_and_why(monkeypatch):
    import docker.errors

    s = spawner()

    async def not_here(method, *args):
        raise docker.errors.NotFound("no such image")

    class Client:
        def pull(self, repo, tag, stream, decode):
            yield {"status": "Pulling"}
            yield {"error": "manifest unknown"}

    s.docker = not_here
    monkeypatch.setattr(FormDockerSpawner, "_client", Client())
    with pytest.raises(RuntimeError, match=r"^Pulling quay.io/x/y:1 failed: manifest unknown$"):
        asyncio.run(s.pull_image("quay.io/x/y:1"))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RepoRefused("The repository's install.R needs R, which the chosen image does not have."), 400),
        (BuildError("The build failed. Last lines of its log:\nE: no such package"), None),
    ],
)
def test_a_refused_repository_is_a_400_with_its_words_and_a_failed_build_is_not(monkeypatch, error, status):
    """Issue 47: a refusal found before anything is built is the user's error (a 400, as the
    other option errors); a build that fails is not, and keeps its own error."""
    from formspawner import repolaunch

    async def prepare(self, *args):
        raise error

    monkeypatch.setattr(repolaunch.RepoLaunch, "prepare", prepare)
    # No Docker engine in the quick tier: the launch never reaches it (prepare fails first).
    monkeypatch.setattr(FormDockerSpawner, "_client", object())
    s = repo_spawner()
    s._repo_commit = ("c" * 40, "refs/heads/main")
    s.volumes = {}
    events = []
    s.emit_progress = lambda progress, message: events.append(message)
    with pytest.raises(Exception) as failed:
        asyncio.run(s.start())
    if status is None:
        assert failed.value is error
        assert events == []
    else:
        assert (failed.value.status_code, failed.value.jupyterhub_message) == (status, str(error))
        assert events == [f"The repository https://github.com/course/lab was refused: {error}"]
