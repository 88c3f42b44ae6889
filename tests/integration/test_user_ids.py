"""Each user's server runs as the user's own id (FormDockerSpawner.user_ids 'distinct'), on
storage owned by that id; volumes made when every server ran as the image's user (1000)
are given to the user's id at their next start. Checked from inside the containers."""

import io
import json

import docker
import pytest

from .hubharness import DOCKER_SETTINGS, ENV_POLICY, IMAGES, container_of, remove_user_containers

pytestmark = pytest.mark.integration

VOLUME = "fstest-uid-{username}"
# Confined as the role confines servers.
SETTINGS = {
    **DOCKER_SETTINGS,
    "volumes": {VOLUME: "/home/jovyan/work"},
    "extra_host_config": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]},
}
WORK = "/home/jovyan/work"
SPAWNER = {"images": IMAGES, "env_policy": ENV_POLICY, "home_volume": VOLUME, "user_ids": "distinct"}


@pytest.fixture
def uid_hub(make_hub, docker_client):
    hub = make_hub()
    hub.start("formspawner.FormDockerSpawner", SPAWNER, SETTINGS)
    yield hub
    remove_user_containers(docker_client)
    for volume in docker_client.volumes.list(filters={"name": "fstest-uid-"}):
        volume.remove(force=True)


def inside(client, user: str, command: str) -> str:
    """`command` as the server's own user and groups."""
    code, output = container_of(client, user).exec_run(["sh", "-c", command])
    assert code == 0, output.decode(errors="replace")
    return output.decode().strip()


# The status of the container's jupyterhub-singleuser process, read from inside.
SERVER_STATUS = (
    "import os\n"
    "for pid in (p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()):\n"
    "    if b'jupyterhub-singleuser' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "        print(open(f'/proc/{pid}/status').read())\n"
    "        break\n"
)


def recorded(hub) -> dict:
    return json.loads((hub.workdir / "formspawner-uids.json").read_text())["users"]


def test_each_user_runs_as_their_own_id_confined_on_storage_they_own(uid_hub, docker_client):
    for name in ("ada", "bob"):
        assert uid_hub.spawn(name, {"image": "minimal"}).status_code in (201, 202)
        uid_hub.wait_ready(name)
    ids = recorded(uid_hub)
    assert sorted(ids) == ["ada", "bob"] and ids["ada"] != ids["bob"]
    assert min(ids.values()) >= 200000  # the default first_uid, above the images' 1000
    for name, uid in ids.items():
        # The server's process (jupyterhub-singleuser, under tini) as the user's id.
        code, output = container_of(docker_client, name).exec_run(["python3", "-c", SERVER_STATUS])
        assert code == 0, output
        status = output.decode()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split() == [str(uid)] * 4
        assert fields["Gid"].split() == ["0"] * 4
        assert fields["Groups"].split() == ["0", "100"]
        assert fields["CapEff"].strip() == "0000000000000000"
        assert fields["CapPrm"].strip() == "0000000000000000"
        assert fields["NoNewPrivs"].strip() == "1"
        # start.sh named the id (the images let group 0 write /etc/passwd): tools that ask
        # who they are (git, pip) get an answer.
        assert inside(docker_client, name, "whoami") == "jovyan"
        assert inside(docker_client, name, "getent passwd jovyan | cut -d: -f3,6") == f"{uid}:/home/jovyan"
        # The storage is the user's: the volume's top, and what they write.
        inside(docker_client, name, "echo mine > /home/jovyan/work/mine.txt && touch /home/jovyan/.dotfile")
        owners = inside(docker_client, name, "stat -c %u /home/jovyan/work /home/jovyan/work/mine.txt")
        assert owners.split() == [str(uid)] * 2, uid_hub.log_text()[-4000:]
        # pip and conda still install into the image's environment (group 100's).
        assert inside(docker_client, name, "test -w /opt/conda/lib && echo writable") == "writable"
        container = container_of(docker_client, name)
        assert container.attrs["Config"]["User"] == f"{uid}:0"
        assert container.attrs["HostConfig"]["GroupAdd"] == ["100"]
        assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    log = uid_hub.log_text()
    assert log.count("belongs to") == 2, log[-3000:]

    # The same id at the next start, and the volume is not walked again.
    uid_hub.stop_server("ada")
    uid_hub.restart()
    uid_hub.spawn("ada", {"image": "scipy"})
    uid_hub.wait_ready("ada")
    assert inside(docker_client, "ada", "id -u") == str(ids["ada"])
    assert inside(docker_client, "ada", "cat /home/jovyan/work/mine.txt") == "mine"
    assert uid_hub.log_text().count("belongs to") == 2, (uid_hub.workdir / "formspawner-volume-owners.txt").read_text()
    assert recorded(uid_hub) == ids


def test_a_volume_of_the_previous_release_is_given_to_the_users_id_at_their_next_start(uid_hub, docker_client):
    """Made as the previous release made it (the image's user, 1000): the student's files,
    a folder they closed, a link to a file of another id (an admin's), which stays theirs."""
    volume = docker_client.volumes.create("fstest-uid-carol")
    prepare = (
        "mkdir -p lab1 closed && echo answer > lab1/notes.txt && ln -s admin.txt link && "
        "echo secret > closed/inner.txt && chmod 000 closed"
    )
    docker_client.containers.run(
        "jhtest/singleuser:minimal", ["sh", "-c", prepare], entrypoint=[], user="1000",
        working_dir=WORK, volumes={volume.name: {"bind": WORK, "mode": "rw"}}, remove=True,
    )  # fmt: skip
    docker_client.containers.run(
        "jhtest/singleuser:minimal", ["sh", "-c", "echo admin > /w/admin.txt && chown 4242 /w/admin.txt"],
        entrypoint=[], user="0", volumes={volume.name: {"bind": "/w", "mode": "rw"}}, remove=True,
    )  # fmt: skip

    assert uid_hub.spawn("carol", {"image": "minimal"}).status_code in (201, 202)
    uid_hub.wait_ready("carol")
    uid = str(recorded(uid_hub)["carol"])
    work = "/home/jovyan/work"
    assert inside(docker_client, "carol", f"cat {work}/lab1/notes.txt") == "answer"
    names = ". lab1 lab1/notes.txt closed link admin.txt"
    listing = inside(docker_client, "carol", f"cd {work} && stat -c '%n %u %F' {names}")
    assert listing.splitlines() == [
        f". {uid} directory",
        f"lab1 {uid} directory",
        f"lab1/notes.txt {uid} regular file",
        f"closed {uid} directory",
        f"link {uid} symbolic link",
        "admin.txt 4242 regular file",  # another id's file, the link's target: not followed
    ]
    # The student can open the folder they closed (theirs now) and find their file.
    assert inside(docker_client, "carol", f"chmod 700 {work}/closed && cat {work}/closed/inner.txt") == "secret"
    assert "Volume fstest-uid-carol belongs to carol's id" in uid_hub.log_text()
    assert (uid_hub.workdir / "formspawner-volume-owners.txt").read_text() == f"fstest-uid-carol {uid}\n"


# The stand-in's Python is a venv, where Python reads no user site-packages; docker-stacks'
# conda Python reads them, for root too. This image reads them as those do (built once).
USERSITE_IMAGE = "jhtest/singleuser:usersite"


def test_a_students_home_cannot_run_code_in_the_root_helper_that_gives_it(make_hub, docker_client):
    """Whole-home storage: the helper's HOME (/home/jovyan) is the student's volume, where
    Python would run ~/.local's usercustomize.py and .pth files at start. Given as root with
    CHOWN, it must run none of them (python3 -I): nothing becomes root's."""
    try:
        docker_client.images.get(USERSITE_IMAGE)
    except docker.errors.ImageNotFound:
        dockerfile = (
            b"FROM jhtest/singleuser:minimal\nUSER root\n"
            b"RUN sed -i 's/include-system-site-packages = false/include-system-site-packages = true/' "
            b"/opt/conda/pyvenv.cfg\nUSER 1000\n"
        )
        docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=USERSITE_IMAGE, rm=True)
    volume = docker_client.volumes.create("fstest-uid-mallory")
    probe = "import sys, site; print('%d.%d' % sys.version_info[:2], site.ENABLE_USER_SITE)"
    version = docker_client.containers.run(
        USERSITE_IMAGE, ["python3", "-c", probe], entrypoint=[], user="0", remove=True
    ).decode().split()
    assert version[1] == "True"  # root's Python would read the home's user site-packages
    version = version[0]
    site = f"/home/jovyan/.local/lib/python{version}/site-packages"
    # What root with CHOWN could do there: take a student's file (then left as root's).
    payload = "import os; os.getuid() == 0 and os.lchown('/home/jovyan/notes.txt', 0, 0)"
    plant = (
        f"mkdir -p {site} && echo \"{payload}\" > {site}/usercustomize.py && "
        f"echo \"{payload}\" > {site}/sitecustomize.py && echo \"{payload}\" > {site}/evil.pth && "
        f"echo \"import os; {payload}\" > {site}/zz.pth && echo kept > /home/jovyan/notes.txt"
    )
    docker_client.containers.run(
        USERSITE_IMAGE, ["sh", "-c", plant], entrypoint=[], user="1000",
        volumes={volume.name: {"bind": "/home/jovyan", "mode": "rw"}}, remove=True,
    )  # fmt: skip
    hub = make_hub()
    settings = {**SETTINGS, "volumes": {VOLUME: "/home/jovyan"}}
    images = [{"name": "usersite", "display_name": "User site", "image": USERSITE_IMAGE, "default": True}]
    hub.start("formspawner.FormDockerSpawner", {**SPAWNER, "images": images}, settings)
    try:
        assert hub.spawn("mallory", {"image": "usersite"}).status_code in (201, 202)
        hub.wait_ready("mallory")
        assert "Volume fstest-uid-mallory belongs to mallory's id" in hub.log_text()
        uid = str(recorded(hub)["mallory"])
        # Every file hers (named jovyan by start.sh), notes.txt too: the helper ran none of
        # the home's Python files (the server, as mallory, may run her own).
        owners = inside(docker_client, "mallory", "find /home/jovyan -xdev -printf '%U %p\\n'")
        assert {line.split()[0] for line in owners.splitlines()} == {uid}, owners
        assert inside(docker_client, "mallory", "cat /home/jovyan/notes.txt") == "kept"
    finally:
        remove_user_containers(docker_client)
        volume.remove(force=True)
