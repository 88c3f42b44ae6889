"""Course content in the user's storage: the hub's copy (content.py) and nbgitpuller's merge
run by contentsync.py, with real git on real folders. The container around the merge is
the integration tests' (tests/integration/test_course_content.py); here it runs in a
subprocess of this venv's Python, which has traitlets as every Jupyter image has."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbgitpuller
import pytest

from formspawner import content
from formspawner.contentsync import REPORT, RESULT
from formspawner.errors import BuildError
from formspawner.repo import RepoPolicy

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Instructor",
    "GIT_AUTHOR_EMAIL": "i@example.invalid",
    "GIT_COMMITTER_NAME": "Instructor",
    "GIT_COMMITTER_EMAIL": "i@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(*args, cwd) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_vendored_nbgitpuller_files_are_the_release_unchanged():
    installed = Path(nbgitpuller.__file__).parent
    assert nbgitpuller.__version__ == "1.3.0"
    for name in ("pull.py", "errors.py"):
        vendored = Path(content.VENDOR_DIR, "nbgitpuller", name).read_bytes()
        assert hashlib.sha256(vendored).hexdigest() == hashlib.sha256((installed / name).read_bytes()).hexdigest()
    assert "BSD 3-Clause" in Path(content.VENDOR_DIR, "nbgitpuller", "LICENSE").read_text()


class Course:
    """An instructor's repository, checked out as fetch_commit leaves a checkout (detached
    at the commit), recorded in the hub's copy like a launch does."""

    def __init__(self, tmp: Path):
        self.upstream = tmp / "upstream"
        self.upstream.mkdir()
        git("init", "-q", "-b", "main", cwd=self.upstream)
        self.root = str(tmp / "content")
        self.request = RepoPolicy(allowed_hosts=("git.example.edu",)).check_url(
            "https://git.example.edu/course/lab1", "main"
        )

    def commit(self, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            path = self.upstream / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git("add", "-A", cwd=self.upstream)
        git("commit", "-q", "-m", "week", cwd=self.upstream)
        return git("rev-parse", "HEAD", cwd=self.upstream)

    def launch(self, commit: str) -> str:
        checkout = self.upstream.parent / "checkout"
        subprocess.run(["rm", "-rf", str(checkout)], check=True)
        git("clone", "-q", str(self.upstream), str(checkout), cwd=self.upstream.parent)
        git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit, cwd=checkout)
        copy, self.version = content.record(checkout, commit, self.request, self.root)
        return copy


def tip(copy: str) -> str:
    return git("rev-parse", f"refs/heads/{content.BRANCH}", cwd=copy)


def test_the_hubs_copy_is_a_chain_of_launched_versions(tmp_path):
    course = Course(tmp_path)
    first = course.commit({"a.txt": "1"})
    copy = course.launch(first)
    assert os.path.basename(copy) == content.copy_name(course.request)
    t1 = tip(copy)
    assert git("rev-parse", f"{t1}^{{tree}}", cwd=copy) == git("rev-parse", f"{first}^{{tree}}", cwd=course.upstream)
    assert course.request.url in git("log", "-1", "--format=%s", t1, cwd=copy)
    assert course.launch(first) == copy and tip(copy) == t1  # the same files: no new version
    second = course.commit({"a.txt": "2"})
    course.launch(second)
    t2 = tip(copy)
    assert git("rev-parse", f"{t2}^", cwd=copy) == t1
    # Back to an older commit (a link to an older tag): a new version on top, never a rewind.
    course.launch(first)
    t3 = tip(copy)
    assert git("rev-parse", f"{t3}^", cwd=copy) == t2
    assert git("rev-parse", f"{t3}^{{tree}}", cwd=copy) == git("rev-parse", f"{t1}^{{tree}}", cwd=copy)

def test_the_hubs_copy_is_readable_by_the_images_user_under_the_units_umask(tmp_path):
    """The role's unit runs the hub with UMask=0077 (and RestrictSUIDSGID: no setgid)."""
    course = Course(tmp_path)
    previous = os.umask(0o077)
    try:
        copy = course.launch(course.commit({"a/b.txt": "1"}))
        course.launch(course.commit({"a/b.txt": "2"}))
    finally:
        os.umask(previous)
    for folder, dirs, files in os.walk(copy):
        for name in dirs:
            mode = os.stat(os.path.join(folder, name)).st_mode
            assert mode & 0o005 == 0o005 and not mode & 0o2000, (folder, name, oct(mode))
        for name in files:
            if name != "FETCH_HEAD":
                assert os.stat(os.path.join(folder, name)).st_mode & 0o004, (folder, name)


def test_a_checkout_at_another_commit_is_refused(tmp_path):
    course = Course(tmp_path)
    first = course.commit({"a.txt": "1"})
    course.commit({"a.txt": "2"})
    with pytest.raises(BuildError, match="not at"):
        checkout = tmp_path / "checkout"
        git("clone", "-q", str(course.upstream), str(checkout), cwd=tmp_path)
        content.record(checkout, first, course.request, course.root)


def sync(
    copy: str, storage: Path, name: str = "lab1", version: str | None = None, path: str = "", system: str = ""
) -> dict:
    """contentsync as the short container runs it, merging `version` of the hub's copy (its
    tip unless named), seen through a launch's view as the container sees it."""
    made = content.launch_view(copy, version or tip(copy), copy + "-views", objects_at=copy)
    # The container sees every launch's view at one path (the copy's URL): so does this test.
    seen = Path(copy + "-seen")
    shutil.rmtree(seen, ignore_errors=True)
    os.rename(os.path.dirname(made), seen)
    view = str(seen / os.path.basename(made))
    binds, command = content.sync_command(copy, view, str(storage), content_request(name), "0" * 40)
    # The container's paths, mapped back to this machine's.
    mounts = {bind["bind"]: source for source, bind in binds.items()}
    args = [mounts.get(arg, arg) for arg in command]
    args = [arg.replace(f"file://{content.SOURCE_ROOT}", f"file://{os.path.dirname(view)}") for arg in args]
    search = f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"]
    env = {"PATH": search, "HOME": str(storage)}
    if system:  # where git would find the image's /etc/gitconfig
        env["GIT_CONFIG_SYSTEM"] = system
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith(RESULT), (done.stdout, done.stderr)
    result = json.loads(lines[-1].removeprefix(RESULT))
    result["returncode"] = done.returncode
    result["lines"] = lines
    return result


def content_request(name: str):
    return RepoPolicy(allowed_hosts=("git.example.edu",)).check_url(f"https://git.example.edu/course/{name}", "main")


# Lines apart: git merges changes to separate parts of a file, and takes the student's
# where both changed the same or adjacent lines.
NOTEBOOK_1 = "cell 1: instructions\n\n---\n\ncell 2: TODO\ncell 3: end\n"
NOTEBOOK_2 = "cell 1: better instructions\n\n---\n\ncell 2: TODO (hint: use a loop)\ncell 3: end\n"
STUDENT = "cell 1: instructions\n\n---\n\ncell 2: my answer\ncell 3: end\n"


def test_nbgitpuller_rules_keep_the_students_work_and_bring_the_instructors(tmp_path):
    course = Course(tmp_path)
    storage = tmp_path / "work"
    storage.mkdir()
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_1, "data.csv": "x\n1\n", "notes.md": "v1\n"}))
    first = sync(copy, storage)
    assert first["returncode"] == 0 and first["cloned"] and first["folder"] == "lab1"
    folder = storage / "lab1"
    assert (folder / "week1.ipynb").read_text() == NOTEBOOK_1

    # The student answers, deletes a file, makes their own files (one of them with the
    # name the instructor will use next week).
    (folder / "week1.ipynb").write_text(STUDENT)
    (folder / "data.csv").unlink()
    (folder / "mine.txt").write_text("my notes")
    (folder / "week2.ipynb").write_text("my early start")
    copy = course.launch(
        course.commit({"week1.ipynb": NOTEBOOK_2, "notes.md": "v2\n", "week2.ipynb": "week 2", "extra.py": "x = 1\n"})
    )
    second = sync(copy, storage)
    assert second["returncode"] == 0 and not second["cloned"], second["lines"]
    # The student's answer stays (their line wins where both changed it); the instructor's
    # other line is merged in; their whole new version is beside it, and reported.
    assert (folder / "week1.ipynb").read_text() == (
        "cell 1: better instructions\n\n---\n\ncell 2: my answer\ncell 3: end\n"
    ), second["lines"]
    assert (folder / "week1.from-instructor.ipynb").read_text() == NOTEBOOK_2
    assert second["conflicts"] == [["week1.ipynb", "week1.from-instructor.ipynb"]]
    report = (folder / REPORT).read_text()
    assert "week1.ipynb" in report and "week1.from-instructor.ipynb" in report
    assert (folder / "notes.md").read_text() == "v2\n"  # untouched by the student: updated
    assert (folder / "data.csv").read_text() == "x\n1\n"  # deleted by the student: back
    assert second["restored"] == ["data.csv"]
    assert (folder / "extra.py").exists() and (folder / "mine.txt").read_text() == "my notes"
    assert (folder / "week2.ipynb").read_text() == "week 2"
    renamed = [p for p in folder.iterdir() if p.name.startswith("week2__")]
    assert [p.read_text() for p in renamed] == ["my early start"], second["lines"]
    assert any("week2.ipynb" in line for line in second["renamed"])
    assert "week2.ipynb" in (folder / REPORT).read_text()

    # Launched again at the same version: nothing changes, nothing lost.
    third = sync(copy, storage)
    assert third["returncode"] == 0 and third["conflicts"] == [] and third["renamed"] == []
    assert (folder / "week1.ipynb").read_text().count("my answer") == 1


def test_a_folder_of_that_name_holding_other_files_is_never_touched(tmp_path):
    course = Course(tmp_path)
    storage = tmp_path / "work"
    (storage / "lab1").mkdir(parents=True)
    (storage / "lab1" / "thesis.tex").write_text("mine")
    copy = course.launch(course.commit({"a.txt": "1"}))
    result = sync(copy, storage)
    assert result["returncode"] == 0 and result["folder"] == "lab1-2"
    assert sorted(p.name for p in (storage / "lab1").iterdir()) == ["thesis.tex"]
    assert (storage / "lab1-2" / "a.txt").read_text() == "1"
    assert sync(copy, storage)["folder"] == "lab1-2"  # found again at the next launch


def test_an_image_without_git_is_named(tmp_path):
    course = Course(tmp_path)
    copy = course.launch(course.commit({"a.txt": "1"}))
    binds, command = content.sync_command(copy, copy, str(tmp_path), course.request, "0" * 40)
    script = next(source for source, bind in binds.items() if bind["bind"] == content.SCRIPT_MOUNT)
    done = subprocess.run(
        [sys.executable, script, *command[1:]], capture_output=True, text=True, env={"PATH": "/nonexistent"}
    )
    assert done.returncode == 2
    assert json.loads(done.stdout.splitlines()[-1].removeprefix(RESULT)) == {"error": "this image has no git"}


def student_answered_week1(tmp_path):
    """Week 1 launched into a student's storage, and the student's answer in it."""
    course = Course(tmp_path)
    storage = tmp_path / "work"
    storage.mkdir()
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_1, "notes.md": "v1\n"}))
    assert sync(copy, storage)["returncode"] == 0
    folder = storage / "lab1"
    (folder / "week1.ipynb").write_text(STUDENT)
    return course, storage, folder


def test_a_hub_copy_made_anew_still_merges_from_the_version_the_student_had(tmp_path):
    """The hub's copies are not in the backup: one lost (or a restore without it) starts
    a new chain, unrelated to the student's folder; the merge must still keep the
    student's edit and bring the instructor's changes."""
    course, storage, folder = student_answered_week1(tmp_path)
    subprocess.run(["rm", "-rf", course.root], check=True)
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_2, "notes.md": "v2\n"}))
    result = sync(copy, storage)
    assert result["returncode"] == 0, result["lines"]
    assert any("made anew" in line for line in result["lines"])
    assert (folder / "notes.md").read_text() == "v2\n"
    assert "my answer" in (folder / "week1.ipynb").read_text()
    assert "better instructions" in (folder / "week1.ipynb").read_text()
    assert result["conflicts"] == [["week1.ipynb", "week1.from-instructor.ipynb"]]


# -- whole-home storage from a work-folder volume (homemigrate.py) -----------------------

from formspawner import homemigrate  # noqa: E402


def old_layout(tmp_path):
    volume, home = tmp_path / "volume", tmp_path / "image-home"
    (volume / "lab1").mkdir(parents=True)
    (volume / "lab1" / "week1.ipynb").write_text("my work")
    (volume / "work").mkdir()  # the student's own folder named work, inside work/
    (volume / "work" / "x.txt").write_text("nested")
    (volume / ".bashrc").write_text("the student's own")  # a dotfile in work/
    (home / ".local").mkdir(parents=True)
    (home / ".bashrc").write_text("the image's")
    (home / ".profile").write_text("profile")
    (home / "work").mkdir()
    return volume, home


def test_a_work_volume_becomes_a_whole_home_with_every_path_kept(tmp_path):
    volume, home = old_layout(tmp_path)
    result = homemigrate.migrate(str(volume), str(home), "work")
    assert result == {"moved": 3, "copied": 3, "already": False}
    assert (volume / "work" / "lab1" / "week1.ipynb").read_text() == "my work"
    assert (volume / "work" / "work" / "x.txt").read_text() == "nested"
    assert (volume / "work" / ".bashrc").read_text() == "the student's own"
    assert (volume / ".bashrc").read_text() == "the image's"  # the home's own dotfiles arrive
    assert (volume / ".local").is_dir() and (volume / ".profile").exists()
    assert sorted(p.name for p in volume.iterdir()) == [".bashrc", ".formspawner-home", ".local", ".profile", "work"]
    assert not (volume / "work" / homemigrate.MOVED).exists()
    # Again: nothing moves twice.
    assert homemigrate.migrate(str(volume), str(home), "work")["already"]
    assert (volume / "work" / "lab1" / "week1.ipynb").exists() and not (volume / "work" / "work" / "lab1").exists()


def test_a_move_stopped_half_way_resumes_without_nesting(tmp_path):
    volume, home = old_layout(tmp_path)
    # Stopped after moving one entry.
    (volume / homemigrate.MOVING).mkdir()
    (volume / "lab1").rename(volume / homemigrate.MOVING / "lab1")
    homemigrate.migrate(str(volume), str(home), "work")
    assert (volume / "work" / "lab1" / "week1.ipynb").read_text() == "my work"
    assert (volume / "work" / "work" / "x.txt").read_text() == "nested"
    assert not (volume / homemigrate.MOVING).exists()


def test_a_move_stopped_after_the_rename_is_only_finished(tmp_path):
    volume, home = old_layout(tmp_path)
    moving = volume / homemigrate.MOVING
    moving.mkdir()
    for entry in [p for p in volume.iterdir() if p.name != homemigrate.MOVING]:
        entry.rename(moving / entry.name)
    (moving / homemigrate.MOVED).touch()
    moving.rename(volume / "work")
    homemigrate.migrate(str(volume), str(home), "work")
    assert (volume / "work" / "lab1" / "week1.ipynb").read_text() == "my work"
    assert not (volume / "work" / "work" / "lab1").exists()
    assert (volume / homemigrate.DONE).exists()


def test_a_new_volume_is_only_marked(tmp_path):
    volume, home = tmp_path / "volume", tmp_path / "home"
    volume.mkdir()
    home.mkdir()
    (volume / ".bashrc").write_text("copied by Docker")
    assert homemigrate.migrate(str(volume), str(home), "work", new=True)["already"]
    assert sorted(p.name for p in volume.iterdir()) == [".bashrc", ".formspawner-home"]


def test_a_merge_that_cannot_run_fails_naming_why_and_changes_nothing(tmp_path):
    """nbgitpuller refuses to work beside a recent git lock (another git at work in the
    folder): the launch fails with the reason, and the student's files are as they were."""
    course, storage, folder = student_answered_week1(tmp_path)
    (folder / ".git" / "index.lock").touch()
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_2, "notes.md": "v2\n"}))
    result = sync(copy, storage)
    assert result["returncode"] == 1
    assert "index.lock" in result["error"] and "your files are as they were" in result["error"]
    assert (folder / "week1.ipynb").read_text() == STUDENT
    assert (folder / "notes.md").read_text() == "v1\n"


# -- the student's folder is input (contentsync runs git and writes files there) ---------------


def test_a_launch_merges_the_version_it_recorded_not_what_a_later_launch_recorded(tmp_path):
    """Another student launching another ref moves the chain's tip between this launch's
    record and its merge: this launch still merges its own version."""
    course = Course(tmp_path)
    storage = tmp_path / "work"
    storage.mkdir()
    copy = course.launch(course.commit({"lab.py": "main\n"}))
    mine = course.version
    course.launch(course.commit({"lab.py": "someone else's branch\n"}))
    assert tip(copy) != mine
    assert sync(copy, storage, version=mine)["returncode"] == 0
    assert (storage / "lab1" / "lab.py").read_text() == "main\n"


HOSTILE_SETTINGS = {
    "core.hooksPath": "{hooks}",
    "core.fsmonitor": "{run} fsmonitor",
    "filter.evil.clean": "{run} clean",
    "filter.evil.smudge": "{run} smudge",
    "filter.evil.required": "true",
    "merge.evil.driver": "{run} merge",
    "diff.evil.textconv": "{run} textconv",
    "commit.gpgSign": "true",
    "merge.verifySignatures": "true",
    "gpg.program": "{run} gpg",
    "core.pager": "{run} pager",
    "core.editor": "{run} editor",
}


def test_git_in_the_students_folder_runs_nothing_its_config_names(tmp_path):
    """Hooks, fsmonitor, filters, merge and diff drivers, upload-pack, signing, pager and
    editor set in the student's .git/config (and an included file) all stay off; each
    would leave a mark in `ran` (and signing, with no key, would fail the commit)."""
    course, storage, folder = student_answered_week1(tmp_path)
    ran = tmp_path / "ran"
    run = tmp_path / "run.sh"
    run.write_text(f'#!/bin/sh\necho "$1" >> {ran}\ncat\n')
    run.chmod(0o755)
    hooks = folder / ".git" / "my-hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "commit-msg", "post-commit", "pre-merge-commit", "post-merge", "post-checkout"):
        (hooks / hook).write_text(f'#!/bin/sh\necho {hook} >> {ran}\nsleep 600\n')
        (hooks / hook).chmod(0o755)
    for hook in ("pre-commit", "post-merge", "post-checkout"):  # the default place, too
        (folder / ".git" / "hooks" / hook).write_text(f"#!/bin/sh\necho {hook}-default >> {ran}\n")
        (folder / ".git" / "hooks" / hook).chmod(0o755)
    included = tmp_path / "included.gitconfig"
    included.write_text(f"[filter \"Also\"]\n\tclean = {run} included-clean\n\tsmudge = {run} included-smudge\n")
    for key, value in HOSTILE_SETTINGS.items():
        git("config", key, value.format(hooks=hooks, run=run), cwd=folder)
    git("config", "include.path", str(included), cwd=folder)
    (folder / ".gitattributes").write_text("* filter=evil merge=evil diff=evil\n*.md filter=Also\n")
    (folder / "notes.md").write_text("v1 and mine\n")
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_2, "notes.md": "v1\n\n\n\nv2\n"}))
    result = sync(copy, storage)
    assert result["returncode"] == 0, result["lines"]
    assert not ran.exists(), ran.read_text()
    assert "my answer" in (folder / "week1.ipynb").read_text()
    assert "better instructions" in (folder / "week1.ipynb").read_text()


@pytest.mark.parametrize(
    ("key", "named"),
    [
        # git reads upload-pack first-one-wins: no override beats the folder's.
        ("remote.origin.uploadpack", "git config --unset remote.origin.uploadpack"),
        ("remote.other.receivepack", "git config --unset remote.other.receivepack"),
        # A driver name with "=" cannot be written in GIT_CONFIG_PARAMETERS' form.
        ("filter.a=b.clean", "filter.a=b.clean"),
    ],
)
def test_a_setting_that_cannot_be_switched_off_stops_the_merge_naming_it(tmp_path, key, named):
    course, storage, folder = student_answered_week1(tmp_path)
    marker = tmp_path / "ran"
    git("config", key, f"touch {marker}; git-upload-pack", cwd=folder)
    result = sync(course.launch(course.commit({"notes.md": "v2\n"})), storage)
    assert result["returncode"] == 1
    assert named in result["error"] and "your files are as they were" in result["error"]
    assert (folder / "notes.md").read_text() == "v1\n"
    assert not marker.exists()


def test_a_link_the_repository_ships_is_never_written_through(tmp_path):
    """The instructor's version and the report are written without following symbolic
    links: a repository cannot overwrite a file outside its folder (~/.bashrc)."""
    course = Course(tmp_path)
    storage = tmp_path / "work"
    storage.mkdir()
    outside = storage / "bashrc"
    outside.write_text("mine\n")
    (course.upstream / "week1.from-instructor.ipynb").symlink_to("../bashrc")
    (course.upstream / "CONFLICTS-FROM-UPDATE.txt").symlink_to("../bashrc")
    copy = course.launch(course.commit({"week1.ipynb": NOTEBOOK_1}))
    assert sync(copy, storage)["returncode"] == 0
    folder = storage / "lab1"
    (folder / "week1.ipynb").write_text(STUDENT)
    result = sync(course.launch(course.commit({"week1.ipynb": NOTEBOOK_2})), storage)
    assert result["returncode"] == 0, result["lines"]
    assert outside.read_text() == "mine\n"
    assert any("Not saving the instructor's version of week1.ipynb" in line for line in result["lines"])
    assert (folder / "week1.from-instructor.ipynb").is_symlink()


def test_a_fifo_where_the_students_file_was_does_not_hang_the_merge(tmp_path):
    course, storage, folder = student_answered_week1(tmp_path)
    (folder / "week1.from-instructor.ipynb").unlink(missing_ok=True)
    os.mkfifo(folder / "week1.from-instructor.ipynb")
    result = sync(course.launch(course.commit({"week1.ipynb": NOTEBOOK_2})), storage)
    assert result["returncode"] == 0, result["lines"]
    assert any("Not saving the instructor's version of week1.ipynb" in line for line in result["lines"])


def test_file_names_with_newlines_stay_one_line_in_the_report(tmp_path):
    course = Course(tmp_path)
    storage = tmp_path / "work"
    storage.mkdir()
    name = "evil\nYou and the instructor agreed: delete your work.ipynb"
    copy = course.launch(course.commit({name: NOTEBOOK_1}))
    assert sync(copy, storage)["returncode"] == 0
    (storage / "lab1" / name).write_text(STUDENT)
    assert sync(course.launch(course.commit({name: NOTEBOOK_2})), storage)["returncode"] == 0
    report = (storage / "lab1" / REPORT).read_text()
    assert "evil\\x0aYou and the instructor agreed" in report
    assert not any(line.startswith("You and the instructor agreed") for line in report.splitlines())


def test_a_harmless_key_that_merely_contains_a_refused_name_does_not_stop_the_merge(tmp_path):
    course, storage, folder = student_answered_week1(tmp_path)
    git("config", "notes.remote.origin.uploadpack", "just a note", cwd=folder)
    result = sync(course.launch(course.commit({"notes.md": "v2\n"})), storage)
    assert result["returncode"] == 0, result["lines"]
    assert (folder / "notes.md").read_text() == "v2\n"


def test_the_students_own_gitconfig_is_not_read_by_the_merge(tmp_path):
    """With whole-home storage the student's ~/.gitconfig is in their storage: the merge
    reads the hub's own global config, never theirs (here it would refuse the merge)."""
    course, storage, folder = student_answered_week1(tmp_path)
    (storage / ".gitconfig").write_text("[merge]\n\tff = only\n[pull]\n\tff = only\n")
    result = sync(course.launch(course.commit({"notes.md": "v2\n"})), storage)
    assert result["returncode"] == 0, result["lines"]
    assert (folder / "notes.md").read_text() == "v2\n"


def test_a_remote_helper_the_folder_names_never_runs(tmp_path):
    """remote.origin.vcs names a program (git-remote-NAME, found on the PATH, which in a
    server includes the student's ~/.local/bin); protocol.NAME.allow in the folder would let
    it run. Only file:// is allowed (GIT_ALLOW_PROTOCOL wins over every config): the fetch
    fails, the folder is left as it was, and the program never runs."""
    course, storage, folder = student_answered_week1(tmp_path)
    bin_dir = tmp_path / "student-bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    helper = bin_dir / "git-remote-evil"
    helper.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    helper.chmod(0o755)
    git("config", "remote.origin.vcs", "evil", cwd=folder)
    git("config", "protocol.evil.allow", "always", cwd=folder)
    sync(course.launch(course.commit({"notes.md": "v2\n"})), storage, path=str(bin_dir))
    assert not marker.exists()
    assert (folder / "week1.ipynb").read_text() == STUDENT


def test_the_images_system_gitconfig_is_not_read_by_the_merge(tmp_path):
    """The merge runs in the server's image, whose /etc/gitconfig is the image's (a
    image's author ships one): not read (GIT_CONFIG_SYSTEM stands in for it here)."""
    course, storage, folder = student_answered_week1(tmp_path)
    system = tmp_path / "gitconfig"
    system.write_text("[merge]\n\tff = only\n")
    result = sync(course.launch(course.commit({"notes.md": "v2\n"})), storage, system=str(system))
    assert result["returncode"] == 0, result["lines"]
    assert (folder / "notes.md").read_text() == "v2\n"
