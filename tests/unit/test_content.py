"""Course content in the user's storage: the hub's copy (content.py) and nbgitpuller's merge
run by contentsync.py, with real git on real folders. The container around the merge is
the integration tests' (tests/integration/test_course_content.py); here it runs in a
subprocess of this venv's Python, which has traitlets as every Jupyter image has."""

from __future__ import annotations

import hashlib
import json
import os
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
        return content.record(checkout, commit, self.request, self.root)


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


def sync(copy: str, storage: Path, name: str = "lab1") -> dict:
    binds, command = content.sync_command(copy, str(storage), content_request(name), "0" * 40)
    # The container's paths, mapped back to this machine's.
    mounts = {bind["bind"]: source for source, bind in binds.items()}
    args = [mounts.get(arg, arg) for arg in command]
    args = [arg.replace(f"file://{content.SOURCE_ROOT}", f"file://{os.path.dirname(copy)}") for arg in args]
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env={"PATH": os.environ["PATH"], "HOME": str(storage)}
    )
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
    binds, command = content.sync_command(copy, str(tmp_path), course.request, "0" * 40)
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
