"""Users' own ids: the hub's record (formspawner.identity) and the helper that gives a volume
to its user's id (formspawner/owner.py, here on a folder of this machine; in a real container
in tests/integration/test_user_ids.py)."""

import json
import os
import subprocess
import sys
import threading

import pytest

from formspawner import identity, owner, resources
from formspawner.errors import PolicyError


def test_ids_are_given_in_order_kept_and_never_given_again(tmp_path):
    record = str(tmp_path / "uids.json")
    assert identity.uid_for(record, "ada", 200000) == 200000
    assert identity.uid_for(record, "bob", 200000) == 200001
    assert identity.uid_for(record, "ada", 200000) == 200000
    # A user deleted from the record by hand: the ids after theirs stay taken.
    data = json.loads(open(record).read())
    del data["users"]["bob"]
    open(record, "w").write(json.dumps(data))
    assert identity.uid_for(record, "cy", 200000) == 200002  # bob's line went; his id stays given
    # A higher first id later: new users start there, old ones keep theirs.
    assert identity.uid_for(record, "dee", 300000) == 300000
    assert identity.uid_for(record, "ada", 300000) == 200000
    assert identity.uid_for(record, "eve", 200000) == 300001
    assert json.loads(open(record).read())["next"] == 300002
    assert oct(os.stat(record).st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["uids.json"]  # no temporary file left


def test_threads_asking_at_once_get_distinct_ids(tmp_path):
    record = str(tmp_path / "uids.json")
    got = {}

    def ask(name):
        got[name] = identity.uid_for(record, name, 5000)

    threads = [threading.Thread(target=ask, args=(f"u{n}",)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got.values()) == list(range(5000, 5020))
    assert identity.read(record) == (got, 5020)


@pytest.mark.parametrize("content", ["not json", '{"users": {"a": "1"}}', "[1]", '{"users": {}, "next": "2"}'])
def test_a_record_the_hub_did_not_write_stops_the_start_with_its_name(tmp_path, content):
    record = tmp_path / "uids.json"
    record.write_text(content)
    with pytest.raises(PolicyError, match="record of user ids .*uids.json"):
        identity.uid_for(str(record), "ada", 200000)
    assert record.read_text() == content


@pytest.mark.parametrize("first", [0, 1000, 2**31 - 1])
def test_first_uid_must_be_above_images_users_and_leave_room(first):
    with pytest.raises(PolicyError, match=f"first_uid {first} is outside"):
        identity.check_first_uid(first)


def test_servers_run_as_their_id_with_group_0_and_the_images_users_group():
    assert resources.run_as(200001) == "200001:0"
    assert resources.run_as(None) == ""
    assert resources.identity_groups({}) == {"group_add": ["100"]}
    assert resources.identity_groups({"group_add": [44, "100"]}) == {"group_add": ["44", "100"]}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root (CI runs as root)")


@needs_root
def test_owner_gives_the_previous_owners_files_and_leaves_others_and_link_targets(tmp_path):
    volume = tmp_path / "volume"
    (volume / "lab1").mkdir(parents=True)
    (volume / "lab1" / "notes.ipynb").write_text("{}")
    (volume / "instructor.txt").write_text("theirs")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the volume's")
    (volume / "link").symlink_to(outside)
    (volume / "closed").mkdir(mode=0o000)
    for path in (volume, volume / "lab1", volume / "lab1" / "notes.ipynb", volume / "closed"):
        os.lchown(path, 1000, 100)
    os.lchown(volume / "link", 1000, 100)
    os.lchown(volume / "instructor.txt", 4242, 100)
    os.lchown(outside, 1000, 100)

    assert owner.give(str(volume), 200001, {1000}) == 5
    for path in (volume, volume / "lab1", volume / "lab1" / "notes.ipynb", volume / "closed", volume / "link"):
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (200001, 100), path
    assert os.lstat(volume / "instructor.txt").st_uid == 4242
    assert os.lstat(outside).st_uid == 1000  # the link's target is not the volume's
    assert owner.give(str(volume), 200001, {1000}) == 0  # done: nothing more


@needs_root
def test_owner_stopped_early_finishes_at_the_next_run_and_follows_an_earlier_id(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "a").write_text("a")
    (volume / "b").write_text("b")
    for path in (volume, volume / "a", volume / "b"):
        os.lchown(path, 1000, 100)
    os.lchown(volume / "a", 200001, 100)  # a run stopped after its first entry
    assert owner.give(str(volume), 200001, {1000}) == 2
    assert {os.lstat(p).st_uid for p in (volume, volume / "a", volume / "b")} == {200001}
    # The hub's record lost: the user gets another id; the volume's top names the old one.
    assert owner.give(str(volume), 300000, {1000}) == 3
    assert {os.lstat(p).st_uid for p in (volume, volume / "a", volume / "b")} == {300000}


def test_owner_script_names_what_fails(tmp_path):
    script = owner.__file__
    done = subprocess.run(
        [sys.executable, script, "--volume", str(tmp_path / "missing"), "--uid", "200001", "--previous", "1000"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout.removeprefix(owner.RESULT)) == {
        "error": f"No such file or directory: {tmp_path / 'missing'}"
    }
    done = subprocess.run(
        [sys.executable, script, "--volume", str(tmp_path), "--uid", "200001", "--previous", "no-such-user"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "the image has no user" in done.stdout and "no-such-user" in done.stdout
