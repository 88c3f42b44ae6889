"""formspawner.build.run_build: what a repository build asks of the Docker engine, what its
log shows, and what a failure leaves behind.

A stand-in engine is used here (Engine below: it records each call and replays a build's
event stream), and a stand-in fetch writes the checkout. The real engine and a real Git
server build real repositories in tests/integration/test_repo_launches.py; these pin every
argument, log line and cleanup step one by one, which a real build cannot show.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from formspawner import build
from formspawner.build import BuildJob, run_build
from formspawner.errors import BuildError, PolicyError, RepoRefused
from formspawner.repo import RECIPE_VERSION, BaseImage, RepoPolicy

KEY = "k" * 64
TAG = "formspawner-repo/github-com-course-lab:cccccccccccc-kkkkkkkkkkkk"
COMMIT = "c" * 40
BASE = BaseImage(id="sha256:base", user="1000:100", home="/home/jovyan", workdir="/home/jovyan")
SECRET = "ghp_abcdefghijklmnopqrstuvwxyz0123"


class Engine:
    """Records build and cleanup calls; `events` is the build's stream, `fail` an exception
    the build call raises instead."""

    def __init__(self, events=(), fail=None, leftovers=(), remove_fails=False, probe="python-3.11\n"):
        self.events, self.fail, self.leftovers, self.remove_fails = list(events), fail, list(leftovers), remove_fails
        self.probe, self.probes, self.probe_removed = probe, [], []
        self.build_args = None
        self.dockerfile = None
        self.context = None
        self.removed = []
        self.image_queries = []

    def build(self, **kwargs):
        self.build_args = kwargs
        self.dockerfile = Path(kwargs["path"], "Dockerfile").read_text()
        self.context = sorted(str(p.relative_to(kwargs["path"])) for p in Path(kwargs["path"]).rglob("*"))
        self.modes = {
            str(p.relative_to(kwargs["path"])): oct(p.stat().st_mode & 0o7777) for p in Path(kwargs["path"]).rglob("*")
        }
        if self.fail:
            raise self.fail
        return iter(self.events)

    # The probe of the base image (build.image_facts): a container that prints `probe`.
    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, image, **kwargs):
        self.probes.append((image, kwargs))
        return {"Id": f"probe{len(self.probes)}"}

    def start(self, container):
        pass

    def inspect_container(self, container):
        return {"State": {"Running": False, "ExitCode": 0}}

    def logs(self, container, stdout, stderr, tail):
        assert (stdout, stderr) == (True, True)
        return self.probe.encode()

    def remove_container(self, container, force):
        self.probe_removed.append((container["Id"], force))

    def remove_image(self, image, force=False):
        self.removed.append((image, force))
        if self.remove_fails:
            raise RuntimeError("no such image")

    def images(self, filters, all=False):  # noqa: A002 (docker-py's own keyword)
        self.image_queries.append((filters, all))
        return [{"Id": image} for image in self.leftovers]


def new_job():
    return BuildJob(TAG, key=KEY, owner="ada", what="https://github.com/course/lab at cccccccccccc")


@pytest.fixture
def checkout(monkeypatch):
    """The fetch writes a repository with binder/requirements.txt and binder/postBuild."""
    fetched = []

    def fetch(request, commit, ref_name, dest, policy, deadline, stop=None):
        fetched.append((request.url, commit, ref_name, policy, deadline - time.monotonic()))
        stops.append(stop)
        Path(dest, "binder").mkdir(parents=True)
        Path(dest, "binder", "apt.txt").write_text("graphviz\n")
        Path(dest, "binder", "requirements.txt").write_text("numpy\n")
        Path(dest, "binder", "postBuild").write_text("#!/bin/sh\n")
        Path(dest, "README.md").write_text("hello\n")

    monkeypatch.setattr(build, "fetch_commit", fetch)
    return fetched


stops = []  # the stop event each fetch got (the fetch ends early when it is set)


@pytest.fixture(autouse=True)
def _no_facts_kept(monkeypatch):
    monkeypatch.setattr(build, "_image_facts", {})


def fetch_writing(monkeypatch, files: dict[str, str]):
    def fetch(request, commit, ref, dest, *rest):
        Path(dest).mkdir()
        for name, text in files.items():
            Path(dest, name).parent.mkdir(parents=True, exist_ok=True)
            Path(dest, name).write_text(text)

    monkeypatch.setattr(build, "fetch_commit", fetch)


def launch(engine, policy=None, base=BASE, **changes):
    policy = policy or RepoPolicy.from_config({"build_memory": "2g", "build_timeout": 600})
    request = policy.check({"url": "https://github.com/course/lab", "ref": "main"})
    lines = []
    run_build(engine, request, COMMIT, "refs/heads/main", KEY, TAG, base, policy, "lab", lines.append)
    return lines


def test_a_build_asks_the_engine_for_exactly_this_build(checkout, monkeypatch):
    monkeypatch.setattr(build.time, "time", lambda: 1000.0)
    monkeypatch.setattr(build.os, "cpu_count", lambda: 6)  # builds get half the machine by default
    engine = Engine([{"stream": "Step 1/9 : FROM sha256:base\n"}])
    policy = RepoPolicy.from_config({"build_memory": "2g", "build_timeout": 600})
    assert policy.build_cpus == 3 and policy.max_concurrent_builds == 3
    launch(engine, policy)
    (url, commit, ref, fetch_policy, seconds_left), = checkout
    assert (url, commit, ref, fetch_policy) == ("https://github.com/course/lab", COMMIT, "refs/heads/main", policy)
    assert 590 < seconds_left <= 600
    path = engine.build_args.pop("path")
    assert engine.build_args == {
        "tag": TAG,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
        "labels": {
            "org.formspawner.repo": "1",
            "org.formspawner.repo.url": "https://github.com/course/lab",
            "org.formspawner.repo.commit": COMMIT,
            "org.formspawner.repo.base": "sha256:base",
            "org.formspawner.repo.key": KEY,
        },
        "buildargs": {"FORMSPAWNER_DEADLINE": "1600", "FORMSPAWNER_BUILD": KEY},
        "container_limits": {"memory": 2 * 1024**3, "memswap": 2 * 1024**3, "cpusetcpus": "3-5"},
        "network_mode": None,  # Docker's default bridge, unless build_network names one
        "timeout": 660,
    }
    # The context is the checkout under repo/ and the recipe; nothing of it outlives the build.
    assert engine.context == ["Dockerfile", "repo", "repo/README.md", "repo/binder", "repo/binder/apt.txt",
                              "repo/binder/postBuild", "repo/binder/requirements.txt"]
    assert engine.dockerfile.startswith("FROM sha256:base\n")
    for step in ("--no-install-recommends graphviz &&", "COPY --chown=1000:100 repo/ /home/jovyan/lab/\n",
                 "-r binder/requirements.txt\n", "./binder/postBuild'\n"):
        assert step in engine.dockerfile
    assert not Path(path).exists() and Path(path).name.startswith("formspawner-build-")


def test_build_cpus_pins_the_build_to_the_last_cpus(checkout, monkeypatch):
    monkeypatch.setattr(build.os, "cpu_count", lambda: 8)
    engine = Engine()
    launch(engine, RepoPolicy.from_config({"build_cpus": 2, "build_memory": "1g"}))
    assert engine.build_args["container_limits"] == {"memory": 1024**3, "memswap": 1024**3, "cpusetcpus": "6-7"}
    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    launch(engine, RepoPolicy.from_config({"build_cpus": 4, "build_memory": "1g"}))
    assert engine.build_args["container_limits"]["cpusetcpus"] == "0-1"
    monkeypatch.setattr(build.os, "cpu_count", lambda: None)
    launch(engine, RepoPolicy.from_config({"build_cpus": 1, "build_memory": "1g"}))
    assert engine.build_args["container_limits"]["cpusetcpus"] == "0-0"
    # 0 is the admin's "no limit"; unset is half the machine (at least one CPU).
    launch(engine, RepoPolicy.from_config({"build_cpus": 0, "build_memory": "1g"}))
    assert "cpusetcpus" not in engine.build_args["container_limits"]
    monkeypatch.setattr(build.os, "cpu_count", lambda: 1)
    launch(engine, RepoPolicy.from_config({"build_memory": "1g"}))
    assert engine.build_args["container_limits"]["cpusetcpus"] == "0-0"


def test_the_log_is_whole_lines_redacted_with_the_steps_of_the_build(checkout):
    engine = Engine([
        {"stream": "Step 1/9 : FROM sha256:base\n"},
        {"stream": "half a "},
        {"stream": "line\n\n   \n"},
        {"stream": f"cloning https://user:{SECRET}@github.com/x\n"},
        {"aux": {"ID": "sha256:built"}},
        {"stream": "   indented output\n"},
        {"stream": "the last line has no newline"},
    ])
    assert launch(engine) == [
        "Fetching https://github.com/course/lab at cccccccccccc",
        "Building with binder/apt.txt, binder/postBuild, binder/requirements.txt",
        "Step 1/9 : FROM sha256:base",
        "half a line",
        "cloning https://***@github.com/x",
        "   indented output",
        "the last line has no newline",
        f"Built {TAG}",
    ]
    assert engine.removed == [] and engine.image_queries == []


def test_a_repository_without_build_files_says_so(monkeypatch):
    monkeypatch.setattr(build, "fetch_commit", lambda request, commit, ref, dest, *rest: Path(dest).mkdir())
    assert launch(Engine())[1] == "Building with no build files (repository only)"


def test_a_package_is_built_and_files_binder_would_use_are_named_in_the_log(monkeypatch):
    fetch_writing(monkeypatch, {"setup.py": "from setuptools import setup; setup()\n", "Dockerfile": "FROM evil\n",
                                "Pipfile": "[packages]\n", "runtime.txt": "python-3.11\n"})
    engine = Engine()
    policy = RepoPolicy.from_config({"config_files": ["requirements.txt", "setup.py", "postBuild"]})
    assert launch(engine, policy)[1:4] == [
        "Building with setup.py",
        "Checked against the image: runtime.txt asks for Python 3.11, which it has",
        "Not used by this hub: Pipfile, Dockerfile (it uses only requirements.txt, setup.py, postBuild; "
        "see the launch page)",
    ]
    # The spawner always shows these lines.
    assert build.ALWAYS_SHOWN == ("Building with", "Checked against the image", "Not used by this hub", "Warning",
                                  "Provided")
    assert "pip install --no-cache-dir .\n" in engine.dockerfile


def test_the_base_image_is_probed_once_without_network_as_its_user(monkeypatch):
    fetch_writing(monkeypatch, {"runtime.txt": "python-3\n"})
    engine = Engine(probe="mamba\npython-3.12\n")
    launch(engine)
    launch(engine)
    (image, kwargs), = engine.probes  # an image id never changes: asked once
    assert image == "sha256:base"
    assert kwargs == {
        "command": ["-c", build.PROBE],
        "entrypoint": ["sh"],
        "user": "1000:100",
        "network_disabled": True,
        "labels": {"org.formspawner.repo.build": KEY},
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"},
        "healthcheck": {"Test": ["NONE"]},
        # Bounded as every helper is: one core, a few processes, a log read back whole.
        "host_config": {
            "binds": {}, "network_mode": "none", "mem_limit": 256 * 1024**2, "nano_cpus": 10**9,
            "pids_limit": 64, "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        },
    }
    assert engine.probe_removed == [("probe1", True)]
    assert build._image_facts == {"sha256:base": frozenset({"mamba", "python-3.12"})}


def test_a_repository_without_files_that_need_checking_never_probes(checkout):
    engine = Engine()
    launch(engine)
    assert engine.probes == []


@pytest.mark.parametrize(
    ("files", "probe", "message"),
    [
        ({"environment.yml": "dependencies: [numpy]\n"}, "python-3.11\n",
         "The repository's environment.yml needs conda or mamba, which the chosen image does not have. "
         "Choose an image with conda (the docker-stacks images have it), or list the packages in requirements.txt."),
        ({"binder/runtime.txt": "python-2.7\n"}, "conda\npython-3.11\n",
         "The repository's binder/runtime.txt asks for Python 2.7; the chosen image has Python 3.11. "
         "Choose an image with Python 2.7, or change runtime.txt."),
        ({"runtime.txt": "python-3.11\n"}, "",
         "The repository's runtime.txt asks for Python 3.11; the chosen image has no Python. "
         "Choose an image with Python 3.11, or change runtime.txt."),
        ({"runtime.txt": "r-2024-01-01\n"}, "python-3.11\n",
         "The repository's runtime.txt asks for R ('r-2024-01-01'), which the chosen image does not have. "
         "Choose an image with R."),
        ({"install.R": "install.packages('x')\n"}, "python-3.11\n",
         "The repository's install.R needs R, which the chosen image does not have. Choose an image with R."),
        ({".binder/Project.toml": "[deps]\n"}, "R\npython-3.11\n",
         "The repository's .binder/Project.toml needs Julia, which the chosen image does not have. "
         "Choose an image with Julia."),
        ({"Pipfile.lock": '{"_meta": {"requires": {"python_version": "3.6"}}}', "Pipfile": "[requires]\n"
          'python_version = "3.11"\n'}, "python-3.11\n",
         "The repository's Pipfile.lock asks for Python 3.6; the chosen image has Python 3.11. "
         "Choose an image with Python 3.6, or change Pipfile.lock."),
        ({"Pipfile.lock": "{not json"}, "python-3.11\n",
         "The repository's Pipfile.lock is not valid JSON: Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)."),
        ({"Pipfile": "[requires\n"}, "python-3.11\n",
         "The repository's Pipfile is not valid TOML: Expected ']' at the end of a table declaration "
         "(at line 1, column 10)."),
        ({"Pipfile.lock": "[]"}, "python-3.11\n", "The repository's Pipfile.lock does not hold a table of settings."),
    ],
)
def test_what_the_image_cannot_do_is_refused_before_building(monkeypatch, files, probe, message):
    fetch_writing(monkeypatch, files)
    engine = Engine(probe=probe)
    with pytest.raises(RepoRefused) as refused:  # the user's to change: a 400 (issue 47)
        launch(engine)
    assert str(refused.value) == message
    assert engine.build_args is None
    # A file that is not JSON or TOML is refused before the image is asked.
    assert engine.probe_removed == ([] if "not valid" in message or "table" in message else [("probe1", True)])


def test_what_the_image_has_passes_and_files_it_has_but_this_hub_does_not_run_are_named(monkeypatch):
    fetch_writing(monkeypatch, {"environment.yml": "dependencies: []\n", "install.R": "x\n",
                                "runtime.txt": "python-3.12\n"})
    engine = Engine(probe="conda\nR\npython-3.12\n")
    lines = launch(engine)
    assert lines[1:4] == [
        "Building with environment.yml",
        "Not used by this hub: runtime.txt (environment.yml decides the Python, as on Binder)",
        "Not used by this hub: install.R (it uses only apt.txt, environment.yml, Pipfile, requirements.txt, "
        "setup.py, pyproject.toml, postBuild; see the launch page)",
    ]
    assert engine.build_args is not None


def test_the_checkout_is_shared_with_the_group_as_fix_permissions_leaves_files(monkeypatch):
    def fetch(request, commit, ref, dest, *rest):
        os.makedirs(Path(dest, "data"), mode=0o700)
        Path(dest).chmod(0o700)
        for name, mode in (("notes.md", 0o600), ("run.sh", 0o700), ("data/table.csv", 0o644)):
            Path(dest, name).write_text("x\n")
            Path(dest, name).chmod(mode)
        Path(dest, "link").symlink_to("/etc/hostname")

    monkeypatch.setattr(build, "fetch_commit", fetch)
    engine = Engine()
    launch(engine)
    assert {name: mode for name, mode in engine.modes.items() if name.startswith("repo")} == {
        "repo": "0o770",  # setgid is set inside the build (the hub's unit may not set it)
        "repo/data": "0o770",
        "repo/notes.md": "0o660",
        "repo/run.sh": "0o770",
        "repo/data/table.csv": "0o664",
        "repo/link": oct(os.stat("/etc/hostname").st_mode & 0o7777),  # followed by stat, never changed
    }


def test_a_failed_step_ends_the_build_with_its_last_lines_and_leaves_no_image(checkout):
    steps = [{"stream": f"line {n}\n"} for n in range(20)]
    engine = Engine([*steps, {"stream": "partial "}, {"error": f"token {SECRET} rejected\nexit 1"}],
                    leftovers=["sha256:one", "sha256:two"])
    lines = []
    with pytest.raises(BuildError) as raised:
        policy = RepoPolicy.from_config({})
        request = policy.check({"url": "https://github.com/course/lab"})
        run_build(engine, request, COMMIT, None, KEY, TAG, BASE, policy, "lab", lines.append)
    assert str(raised.value) == "The build failed. Last lines of its log:\n" + "\n".join(
        [f"line {n}" for n in range(12, 20)] + ["partial token *** rejected", "exit 1"]
    )
    assert lines[-2:] == ["partial token *** rejected", "exit 1"]
    assert engine.removed == [(TAG, True), ("sha256:one", True), ("sha256:two", True)]
    assert engine.image_queries == [({"label": f"org.formspawner.repo.build={KEY}"}, True)]


def test_a_build_past_its_deadline_says_so(checkout, monkeypatch):
    clock = iter([1000.0, 1000.0 + 600])
    monkeypatch.setattr(build.time, "time", lambda: next(clock))
    with pytest.raises(BuildError) as raised:
        launch(Engine([{"error": "killed"}]))
    assert str(raised.value) == "The build took longer than this hub allows (600 s)."


def test_an_engine_error_is_reported_redacted_and_cleaned_up_even_when_removal_fails(checkout):
    engine = Engine(fail=RuntimeError(f"500 Server Error for https://x:{SECRET}@h/"), leftovers=["sha256:one"],
                    remove_fails=True)
    with pytest.raises(BuildError) as raised:
        launch(engine)
    assert str(raised.value) == "The build failed: 500 Server Error for https://***@h/"
    assert engine.removed == [(TAG, True), ("sha256:one", True)]
    assert engine.image_queries == [({"label": f"org.formspawner.repo.build={KEY}"}, True)]


def test_a_fetch_failure_is_a_build_failure_and_leaves_no_work_directory(monkeypatch):
    made = []

    def fetch(request, commit, ref_name, dest, policy, deadline, stop=None):
        made.append(Path(dest).parent)
        raise BuildError("The repository could not be fetched.")

    monkeypatch.setattr(build, "fetch_commit", fetch)
    engine = Engine()
    with pytest.raises(BuildError, match="^The repository could not be fetched.$"):
        launch(engine)
    assert engine.build_args is None and engine.removed == [(TAG, True)]
    assert made and not made[0].exists()


async def test_every_waiter_follows_one_builds_log_from_its_first_line():
    job = new_job()
    assert job.task is None
    job.add_line("one")
    job.task = asyncio.ensure_future(asyncio.sleep(0.05))
    first = [line async for line in job.follow()]
    job.add_line("late")  # after the build ended, nobody is waiting any more
    second = [line async for line in job.follow()]
    assert job.tag == TAG and first == ["one"] and second == ["one", "late"]


def test_a_work_directory_that_cannot_be_removed_does_not_fail_the_build(checkout, monkeypatch):
    real_rmtree = build.shutil.rmtree

    def rmtree(path, ignore_errors=False):
        if not ignore_errors:
            raise PermissionError(f"cannot remove {path}")
        real_rmtree(path, ignore_errors=True)

    monkeypatch.setattr(build.shutil, "rmtree", rmtree)
    assert launch(Engine())[-1] == f"Built {TAG}"


def test_a_line_is_cut_at_exactly_its_limit_however_its_pieces_fall(checkout):
    limit = build.MAX_LINE
    engine = Engine([
        {"stream": "a" * (limit - 1)}, {"stream": "bcd\n"},  # one character of room left
        {"stream": "e" * 1500}, {"stream": "f" * 1500}, {"stream": "g" * 10 + "\n"},  # full, then more
    ])  # fmt: skip
    assert launch(engine)[2:-1] == [
        "a" * (limit - 1) + "b [... 2 more characters]",
        "e" * 1500 + "f" * (limit - 1500) + f" [... {3010 - limit} more characters]",
    ]


def test_a_long_line_is_cut_and_says_how_much_was_left_out(checkout):
    engine = Engine([{"stream": "x" * 5000 + "\n"}, {"stream": "a" * 1500}, {"stream": "b" * 1500 + "\nshort\n"}])
    lines = launch(engine)[2:-1]
    assert lines == [
        "x" * build.MAX_LINE + " [... 3000 more characters]",
        "a" * 1500 + "b" * 500 + " [... 1000 more characters]",
        "short",
    ]


def test_megabytes_without_a_newline_are_read_in_linear_time_and_bounded_memory(checkout):
    """20 MB in 64 KB chunks with no newline: the old reader joined the pending text to
    each chunk, time growing with the square of the length."""
    chunk = {"stream": "y" * 65536}
    engine = Engine([chunk] * 320 + [{"stream": "\nend\n"}])
    started = time.monotonic()
    lines = launch(engine)
    assert lines[2] == "y" * build.MAX_LINE + f" [... {320 * 65536 - build.MAX_LINE} more characters]"
    assert lines[3:] == ["end", f"Built {TAG}"]
    assert time.monotonic() - started < 5  # about 0.1 s; quadratic joining took minutes


def test_a_build_keeps_only_its_newest_lines_for_late_followers():
    async def scenario():
        job = new_job()
        for n in range(3 * build.MAX_LOG_LINES):
            job.add_line(f"line {n}")
        job.task = asyncio.ensure_future(asyncio.sleep(0))
        await job.task
        return [line async for line in job.follow()]

    seen = asyncio.run(scenario())
    assert build.MAX_LOG_LINES <= len(seen) <= 2 * build.MAX_LOG_LINES
    assert seen[-1] == f"line {3 * build.MAX_LOG_LINES - 1}"


def test_a_follower_that_falls_behind_is_told_how_many_lines_it_missed():
    async def scenario():
        job = new_job()
        job.task = asyncio.get_running_loop().create_future()
        job.add_line("first")
        reader = job.follow()
        seen = [await reader.__anext__()]
        for n in range(3 * build.MAX_LOG_LINES):  # the reader does not get a turn meanwhile
            job.add_line(f"line {n}")
        job.task.set_result(None)
        return seen + [line async for line in reader]

    seen = asyncio.run(scenario())
    missed = 3 * build.MAX_LOG_LINES - (len(seen) - 2)
    assert seen[:3] == ["first", f"[... {missed} lines of the build's log not shown]", f"line {missed}"]
    assert missed >= build.MAX_LOG_LINES and seen[-1] == f"line {3 * build.MAX_LOG_LINES - 1}"


def test_lines_from_the_build_thread_reach_the_log_in_batches_and_bounded():
    async def scenario():
        job = new_job()
        loop = asyncio.get_running_loop()
        scheduled = []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda callback, *args: (scheduled.append(callback), real(callback, *args))
        try:
            write = job.threadsafe_writer(loop)
            # The loop is busy (nothing runs between these calls): one callback is scheduled.
            for n in range(build.MAX_LOG_LINES + 5):
                write(f"line {n}")
            await asyncio.sleep(0)
            write("after")
            await asyncio.sleep(0)
            first_round = list(job.log.events)
            # A second flood after the first was handed over: counted from zero again.
            for n in range(build.MAX_LOG_LINES + 2):
                write(f"again {n}")
            await asyncio.sleep(0)
        finally:
            loop.call_soon_threadsafe = real
        return scheduled, first_round, job.log.events

    scheduled, events, later = asyncio.run(scenario())
    assert len(scheduled) == 3
    assert events[0] == "[... 5 lines of the build's log not shown]"
    assert events[1] == "line 5" and events[-2:] == [f"line {build.MAX_LOG_LINES + 4}", "after"]
    assert later[-build.MAX_LOG_LINES - 1] == "[... 2 lines of the build's log not shown]"
    assert later[-build.MAX_LOG_LINES] == "again 2" and later[-1] == f"again {build.MAX_LOG_LINES + 1}"


# -- stopping a build no launch waits for, and where it works --------------------------


def test_a_stopped_build_asks_nothing_more_of_the_engine(checkout):
    engine = Engine([{"stream": "Step 1/9 : FROM sha256:base\n"}])
    stop = threading.Event()
    stop.set()
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})
    with pytest.raises(BuildError, match=f"^{build.STOPPED}$"):
        run_build(engine, request, COMMIT, None, KEY, TAG, BASE, policy, "lab", [].append, stop)
    assert engine.build_args is None, "no build after the stop"


def test_a_step_killed_by_the_stop_ends_the_build_as_stopped_and_leaves_nothing(checkout):
    stop = threading.Event()

    def events():
        yield {"stream": "Step 1/9 : FROM sha256:base\n"}
        stop.set()  # the hub kills the running step: the engine reports the step's failure
        yield {"error": "The command '/bin/sh -c ./postBuild' returned a non-zero code: 137"}

    engine = Engine(leftovers=["sha256:intermediate"])
    engine.events = events()
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})
    with pytest.raises(BuildError, match=f"^{build.STOPPED}$"):
        run_build(engine, request, COMMIT, None, KEY, TAG, BASE, policy, "lab", [].append, stop)
    assert engine.removed == [(TAG, True), ("sha256:intermediate", True)]


def test_the_checkout_goes_in_a_private_directory_under_the_work_root(checkout, tmp_path):
    root = tmp_path / "builds"
    engine = Engine()
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/lab"})
    stop = threading.Event()
    for _ in range(2):  # the second build finds the work root already there
        run_build(engine, request, COMMIT, None, KEY, TAG, BASE, policy, "lab", [].append, stop, str(root))
        assert Path(engine.build_args["path"]).parent == root
        assert root.stat().st_mode & 0o777 == 0o700
        assert list(root.iterdir()) == [], "the work directory goes with the build"
        assert stops[-1] is stop, "the fetch is told about the stop too"


def test_a_hub_that_builds_switches_threads_every_half_millisecond(checkout):
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        launch(Engine([{"stream": "Step 1/9 : FROM sha256:base\n"}]))
        assert sys.getswitchinterval() == pytest.approx(build.SWITCH_INTERVAL)
    finally:
        sys.setswitchinterval(before)


class Containers:
    """A stand-in engine for the kill: the build's running steps, and which were killed."""

    def __init__(self, running):
        self.running, self.killed, self.filters = list(running), [], []

    def containers(self, filters):
        self.filters.append(filters)
        return [{"Id": c} for c in self.running]

    def kill(self, container):
        self.killed.append(container)
        if container == "gone":
            raise RuntimeError("No such container")


def test_killing_a_build_kills_its_labelled_steps_only():
    engine = Containers(["gone", "step"])
    build.kill_build_containers(engine, KEY)
    assert engine.filters == [{"label": f"org.formspawner.repo.build={KEY}"}]
    assert engine.killed == ["gone", "step"]


def test_a_build_still_in_line_is_cancelled_and_a_running_one_killed_until_it_ends():
    async def scenario():
        waiting = new_job()
        waiting.task = asyncio.ensure_future(asyncio.sleep(60))
        assert waiting.stop_building(Containers([])) is None
        await asyncio.sleep(0)
        assert waiting.task.cancelled() and waiting.stopping
        assert waiting.stop_building(Containers([])) is None, "stopped once"

        running = new_job()
        running.started = True
        ends = asyncio.get_running_loop().create_future()
        running.task = asyncio.ensure_future(ends)
        engine = Containers(["step"])
        killer = running.stop_building(engine)
        await asyncio.sleep(1.5)
        assert len(engine.killed) >= 2, "killed again while the build's thread runs"
        assert set(map(str, engine.filters)) == {str({"label": f"org.formspawner.repo.build={KEY}"})}
        assert not running.task.cancelled()
        ends.set_result(None)
        await asyncio.wait_for(killer, 3)
        count = len(engine.killed)
        await asyncio.sleep(1.2)
        assert len(engine.killed) == count, "no kill after the build ended"

        done = new_job()
        done.task = asyncio.ensure_future(asyncio.sleep(0))
        await done.task
        assert done.stop_building(engine) is None and not done.stopping
        assert new_job().stop_building(engine) is None, "nothing to stop before the build has a task"

    asyncio.run(scenario())


def test_the_last_launch_to_leave_a_running_build_stops_it():
    async def scenario():
        job = new_job()
        job.task = asyncio.ensure_future(asyncio.sleep(60))
        engine = Containers([])
        job.join()
        job.join()
        assert job.leave(engine) is False and not job.stopping, "another launch still follows it"
        assert job.leave(engine) is True and job.stopping
        await asyncio.sleep(0)
        assert job.task.cancelled(), "still in line: it leaves the line"

        running = new_job()
        running.started = True
        ends = asyncio.get_running_loop().create_future()
        running.task = asyncio.ensure_future(ends)
        steps = Containers(["step"])
        running.join()
        assert running.leave(steps) is True
        await asyncio.sleep(0.2)
        assert steps.killed == ["step"], "on a build thread: its step is killed with the hub's client"
        ends.set_result(None)

        finished = new_job()
        finished.task = asyncio.ensure_future(asyncio.sleep(0))
        await finished.task
        finished.join()
        assert finished.leave(engine) is False and not finished.stopping, "a finished build is kept"

    asyncio.run(scenario())


def test_a_build_in_line_tells_its_followers_its_place():
    job = new_job()
    job.waiting(2, 3)
    assert job.log.events == ["Waiting for a free build slot: number 2 in line (this hub builds 3 at a time)"]


def test_a_user_with_a_build_in_flight_is_refused_another_one_naming_it(monkeypatch):
    from types import SimpleNamespace

    from formspawner import cache
    from formspawner.repolaunch import start_build

    context = SimpleNamespace(user="ada")  # the refusal comes before anything else is asked of it
    monkeypatch.setitem(cache.builds, "formspawner-repo/other:1-2", new_job())  # ada's, still building
    policy = RepoPolicy.from_config({})
    request = policy.check({"url": "https://github.com/course/other"})
    with pytest.raises(BuildError) as refused:
        start_build(context, request, COMMIT, None, KEY, TAG, BASE, policy, "other")
    assert str(refused.value) == (
        "You already have a repository build in progress (https://github.com/course/lab at cccccccccccc). "
        "Launch this one when that build has finished, or stop the server it is for."
    )


def test_a_pipfile_build_names_what_it_outranks_and_checks_the_python_it_asks_for(monkeypatch):
    """As repo2docker's tests/pipfile/requirements-txt and setup-py-explicit: the Pipfile is
    the build; requirements.txt and setup.py are named (the Pipfile may install the package)."""
    fetch_writing(monkeypatch, {"Pipfile": '[packages]\ndummy = {path=".", editable=true}\n\n[requires]\n'
                                           'python_version = "3.12"\n',
                                "Pipfile.lock": '{"_meta": {"requires": {}}}', "requirements.txt": "numpy\n",
                                "setup.py": "from setuptools import setup; setup()\n", "start": "#!/bin/sh\n"})
    engine = Engine(probe="python-3.12\n")
    assert launch(engine)[1:5] == [
        "Building with Pipfile, Pipfile.lock",
        "Checked against the image: Pipfile asks for Python 3.12, which it has",
        "Not used by this hub: requirements.txt, setup.py (Pipfile comes first, as on Binder)",
        "Not used by this hub: start (it uses only apt.txt, environment.yml, Pipfile, requirements.txt, setup.py, "
        "pyproject.toml, postBuild; see the launch page)",
    ]
    assert "--ignore-pipfile --system --dev" in engine.dockerfile
    assert "-r requirements.txt" not in engine.dockerfile and "pip install --no-cache-dir .\n" not in engine.dockerfile


def test_a_pipfile_without_a_python_version_builds_without_asking_the_image(monkeypatch):
    fetch_writing(monkeypatch, {"Pipfile": "[packages]\nthere = '*'\n"})
    engine = Engine()
    assert launch(engine)[1] == "Building with Pipfile"
    assert engine.probes == [] and "--skip-lock --system --dev" in engine.dockerfile
    fetch_writing(monkeypatch, {"Pipfile.lock": '{"_meta": ["not", "a", "table"]}'})
    assert launch(engine)[1] == "Building with Pipfile.lock"
    assert engine.probes == [] and "--ignore-pipfile --system --dev" in engine.dockerfile


def test_a_build_network_carries_the_steps(checkout):
    engine = Engine()
    policy = RepoPolicy.from_config({"build_memory": "1g"})
    request = policy.check({"url": "https://github.com/course/lab", "ref": "main"})
    run_build(engine, request, COMMIT, "refs/heads/main", KEY, TAG, BASE, policy, "lab", print,
              network="jupyterhub-builds")
    assert engine.build_args["network_mode"] == "jupyterhub-builds"


class StuckProbe(Engine):
    """A probe container that never exits."""

    def inspect_container(self, container):
        return {"State": {"Running": True}}


def test_a_probe_that_does_not_answer_by_the_deadline_is_a_clear_build_error(monkeypatch):
    monkeypatch.setattr(build.helpers, "POLL_SECONDS", 0.01)
    base = BaseImage(id="sha256:" + "0123456789abcdef" * 4, user="1000:100", home="/home/jovyan", workdir="/w")
    engine = StuckProbe()
    started = time.monotonic()
    with pytest.raises(BuildError) as refused:
        build.image_facts(started + 0.2, engine, base, KEY)
    assert str(refused.value) == "Looking into the image sha256:0123456789ab did not finish in time."
    assert 0.2 <= time.monotonic() - started < 5  # the deadline given, not another
    assert engine.probe_removed == [("probe1", True)]
    assert build._image_facts == {}  # nothing learnt, nothing kept


def test_build_output_lines_are_said_whole_blank_ones_dropped_and_long_ones_cut():
    said = []
    lines = build._Lines(said.append)
    lines.feed("Step 1/2 : FROM x\n\n   \nab")
    lines.feed("c\n")
    assert said == ["Step 1/2 : FROM x", "   ", "abc"]
    # A line past MAX_LINE, in many pieces: its first MAX_LINE characters, the rest counted,
    # and no more pieces kept than it took to fill it.
    for _ in range(3 * build.MAX_LINE):
        lines.feed("x")
    assert len(lines.parts) == build.MAX_LINE
    lines.feed("\n")
    assert said[-1] == "x" * build.MAX_LINE + f" [... {2 * build.MAX_LINE} more characters]"


@pytest.mark.parametrize(
    ("text", "package"),
    [
        ('[project]\nname = "lab"\n[build-system]\nrequires = ["setuptools"]\n', "pyproject.toml"),
        ('[project]\nname = "lab"\n', ""),  # repo2docker installs neither alone
        ('[build-system]\nrequires = ["setuptools"]\n', ""),
        ("[tool.black]\nline-length = 100\n", ""),
    ],
)
def test_a_pyproject_makes_a_package_only_with_project_and_build_system(tmp_path, text, package):
    (tmp_path / "pyproject.toml").write_text(text)
    assert build._is_python_package(tmp_path) == package


def test_the_build_context_is_shared_with_the_group_and_executable_only_where_the_owner_may(tmp_path):
    modes = {"private": 0o600, "world-run": 0o601, "script": 0o700, "read": 0o644}
    for name, mode in modes.items():
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(mode)
    build.share_with_group(tmp_path)
    assert {name: oct((tmp_path / name).stat().st_mode & 0o7777) for name in modes} == {
        "private": "0o660", "world-run": "0o661", "script": "0o770", "read": "0o664",
    }  # fmt: skip


# -- another Python than the image's (issue 47) --------------------------------------------
# The test images have no conda: what a build provides with it is checked here, as the
# decision and the Dockerfile's steps; the warning and the refusal also through a real hub
# (tests/integration/test_repo_launches.py).

MISMATCHES = [
    # (files, the file named, the version asked for)
    ({"runtime.txt": "python-3.10\n", "requirements.txt": "numpy==1.26.4\n"}, "runtime.txt", "3.10"),
    ({"binder/Pipfile": '[requires]\npython_full_version = "3.13.1"\n'}, "binder/Pipfile", "3.13"),
    # As repo2docker's tests/pipfile/py36: a Pipfile build ignores runtime.txt (here the image's Python).
    ({"Pipfile": '[requires]\npython_version = "3.12"\n', "runtime.txt": "python-3.11\n"}, "Pipfile", "3.12"),
]


@pytest.mark.parametrize(("files", "path", "version"), MISMATCHES)
def test_another_python_3_is_a_warning_by_default_and_the_build_goes_on(monkeypatch, files, path, version):
    fetch_writing(monkeypatch, files)
    engine = Engine(probe="python-3.11\n")
    lines = launch(engine)
    assert f"Warning: {path} asks for Python {version}; this image has 3.11; continuing with 3.11" in lines
    assert not any(line.startswith(f"Not used by this hub: {path}") for line in lines)  # it was checked
    assert engine.build_args is not None
    assert "envs/python-" not in engine.dockerfile


@pytest.mark.parametrize(("files", "path", "version"), MISMATCHES)
def test_the_admin_can_make_another_python_a_refusal(monkeypatch, files, path, version):
    fetch_writing(monkeypatch, files)
    engine = Engine(probe="python-3.11\n")
    policy = RepoPolicy.from_config({"build_memory": "2g", "python_mismatch": "refuse"})
    with pytest.raises(RepoRefused) as refused:
        launch(engine, policy)
    assert str(refused.value) == (
        f"The repository's {path} asks for Python {version}; the chosen image has Python 3.11. "
        f"Choose an image with Python {version}, or change {path.rpartition('/')[2]}."
    )
    assert engine.build_args is None


def test_a_refusing_policy_does_not_reuse_an_image_built_while_it_warned():
    def fingerprint(config):
        return RepoPolicy.from_config(config).builder_fingerprint("sha256:b")

    # The default leaves every existing build's key as it was.
    assert fingerprint({}) == fingerprint({"python_mismatch": "warn"}) == json.dumps(
        [RECIPE_VERSION, "sha256:b", list(RepoPolicy().config_files)]
    )
    assert fingerprint({}) != fingerprint({"python_mismatch": "refuse"})
    with pytest.raises(PolicyError, match=r"^repo_policy.python_mismatch must be warn or refuse, not 'ignore'$"):
        RepoPolicy.from_config({"python_mismatch": "ignore"})


CONDA_BASE = BaseImage(id="sha256:base", user="1000:100", home="/home/jovyan", workdir="/home/jovyan", group="100",
                       python_prefix="/opt/conda")  # fmt: skip


@pytest.mark.parametrize(("files", "path", "version"), MISMATCHES)
def test_on_an_image_with_conda_the_build_provides_the_python_asked_for(monkeypatch, files, path, version):
    """As repo2docker does: the build installs the version asked for (an environment of its
    own, first on PATH, so requirements.txt and the Pipfile install there; the notebooks'
    python3 kernel); even with python_mismatch: refuse, since nothing is left unmet."""
    fetch_writing(monkeypatch, files)
    engine = Engine(probe="mamba\nconda\npython-3.11\n")
    policy = RepoPolicy.from_config({"build_memory": "2g", "python_mismatch": "refuse"})
    lines = launch(engine, policy, base=CONDA_BASE)
    assert (
        f"Provided: {path} asks for Python {version}; this image has 3.11: the build installs Python {version} "
        "with mamba for the notebooks and the terminal (the server stays on 3.11)"
    ) in lines
    steps = engine.dockerfile.splitlines()
    env = f"/opt/conda/envs/python-{version}"
    create = next(i for i, step in enumerate(steps) if "create -y -q" in step)
    assert steps[create].endswith(
        f"sh -c 'tool=$(command -v mamba || command -v conda) && \"$tool\" create -y -q -p {env} "
        f"python={version} ipykernel pip && \"$tool\" clean -a -y -q && {env}/bin/python -m ipykernel install "
        f"--prefix /opt/conda --name python3 --display-name \"Python {version}\"'"
    )
    assert steps[create + 1] == f"ENV PATH={env}/bin:$PATH"
    # Before anything installs packages into it.
    installs = [i for i, step in enumerate(steps) if "pip install" in step or "pipenv" in step]
    assert installs and min(installs) > create + 1


def test_a_python_conda_does_not_have_or_an_image_without_conda_dir_is_not_provided(monkeypatch):
    fetch_writing(monkeypatch, {"runtime.txt": "python-3.7\n", "requirements.txt": "numpy\n"})
    engine = Engine(probe="mamba\npython-3.11\n")
    lines = launch(engine, base=CONDA_BASE)
    assert "Warning: runtime.txt asks for Python 3.7; this image has 3.11; continuing with 3.11" in lines
    fetch_writing(monkeypatch, {"runtime.txt": "python-3.10\n", "requirements.txt": "numpy\n"})
    engine = Engine(probe="mamba\npython-3.11\n")
    assert "Warning: runtime.txt asks for Python 3.10; this image has 3.11; continuing with 3.11" in launch(engine)
    assert "envs/python-" not in engine.dockerfile


def test_environment_yml_decides_its_own_python_as_on_binder(monkeypatch):
    fetch_writing(monkeypatch, {"environment.yml": "dependencies: [python=3.10]\n", "runtime.txt": "python-3.9\n"})
    engine = Engine(probe="mamba\npython-3.11\n")
    lines = launch(engine, base=CONDA_BASE)
    assert "Not used by this hub: runtime.txt (environment.yml decides the Python, as on Binder)" in lines
    assert not any("3.9" in line for line in lines)
    assert "envs/python-" not in engine.dockerfile
