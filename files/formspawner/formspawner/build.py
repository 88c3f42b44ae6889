"""Repository launches: git (resolve a ref, fetch one commit) and the Docker build.

Git runs only over https, with `--` before every argument that came from a user, no
prompts, no system or user git config, no redirects, and with the host's address
checked and pinned (a name that resolves to a private address is refused unless the
policy allows it). Everything here is blocking; the spawner runs it in its executor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .errors import OptionError
from .repo import LABEL_PREFIX, RepoPolicy, RepoRequest, is_commit_id, read_apt_packages, recipe, redact

# Passed through to git from the hub's environment: proxies and extra CA bundles.
_PASSTHROUGH = ("PATH", "LANG", "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR")
_PROXIES = ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")


class BuildError(RuntimeError):
    """A repository could not be fetched or built; the message is shown to the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


def _git_environment(home: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSTHROUGH + _PROXIES if k in os.environ}
    env.update(
        HOME=home,
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_ALLOW_PROTOCOL="https",
        GIT_LFS_SKIP_SMUDGE="1",
    )
    return env


def _proxied() -> bool:
    return any(os.environ.get(k) for k in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"))


def pinned_address(request: RepoRequest, policy: RepoPolicy) -> str | None:
    """Check where the host resolves to; return the curl `host:port:address` pin.

    Git connects to exactly the address checked here (no second lookup that DNS
    rebinding could answer differently).
    """
    try:
        infos = socket.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM)
    except OSError:
        if _proxied():
            return None  # only the proxy can resolve it; the proxy decides
        raise OptionError(f"The host {request.host} cannot be found.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not policy.allow_private_hosts:
        for address in addresses:
            if not address.is_global or address.is_multicast:
                raise OptionError(
                    f"The host {request.host} resolves to a private or local address, "
                    "which this hub does not fetch from."
                )
    address = sorted(addresses, key=lambda a: a.version)[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{request.host}:{request.port}:{shown}"


def _git(pin: str | None) -> list[str]:
    args = [
        "git",
        "-c", "protocol.allow=never",
        "-c", "protocol.https.allow=always",
        "-c", "http.followRedirects=false",
        "-c", "core.hooksPath=/dev/null",
        "-c", "core.symlinks=true",
        "-c", "submodule.recurse=false",
    ]  # fmt: skip
    if pin:
        args += ["-c", f"http.curloptResolve={pin}"]
    return args


def _last_git_line(stderr: str) -> str:
    lines = [redact(line.strip()) for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def resolve_commit(request: RepoRequest, policy: RepoPolicy) -> tuple[str, str | None]:
    """The commit SHA the ref names now, and the ref's full name (None for a commit id)."""
    pin = pinned_address(request, policy)
    with tempfile.TemporaryDirectory(prefix="formspawner-git-") as home:
        env = _git_environment(home)
        ref = request.ref
        patterns = ["HEAD"] if ref == "HEAD" else [f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"]
        command = [*_git(pin), "ls-remote", "--", request.url, *patterns]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=policy.resolve_timeout)
        except subprocess.TimeoutExpired:
            raise OptionError(f"{request.url} did not answer within {policy.resolve_timeout} s.") from None
        if done.returncode != 0:
            raise OptionError(
                f"{request.url} cannot be read: it does not exist, is not public, or is not a Git repository "
                f"(git said: {_last_git_line(done.stderr)})."
            )
        found = {}
        for line in done.stdout.splitlines():
            sha, _, name = line.partition("\t")
            found[name] = sha
        for name in (f"refs/tags/{ref}^{{}}", f"refs/heads/{ref}", f"refs/tags/{ref}", "HEAD"):
            if name in found and (name != "HEAD" or ref == "HEAD"):
                return found[name], name.removesuffix("^{}")
        if is_commit_id(ref):
            if len(ref) == 40:
                return ref, None
            return _expand_short_commit(request, policy, pin, env), None
        raise OptionError(f"{request.url} has no branch or tag named {ref!r}.")


def _expand_short_commit(request: RepoRequest, policy: RepoPolicy, pin: str | None, env: dict) -> str:
    with tempfile.TemporaryDirectory(prefix="formspawner-resolve-") as repo:
        _run_git(["init", "-q", "--bare", repo], pin, env, time.monotonic() + policy.resolve_timeout)
        command = ["-C", repo, "fetch", "-q", "--filter=blob:none", "--no-tags", "--", request.url]
        try:
            _fetch(
                command + ["+refs/heads/*:refs/heads/*"],
                pin,
                env,
                repo,
                policy,
                time.monotonic() + policy.resolve_timeout,
            )
        except BuildError as error:
            raise OptionError(f"{request.url}: looking up commit {request.ref!r} failed. {error}") from None
        rev_parse = ["-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{request.ref}^{{commit}}"]
        done = subprocess.run([*_git(pin), *rev_parse], env=env, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise OptionError(f"{request.url} has no branch, tag or commit {request.ref!r} (or it is ambiguous).")
        return done.stdout.strip()


def _run_git(args: list[str], pin: str | None, env: dict, deadline: float) -> None:
    done = subprocess.run(
        [*_git(pin), *args], env=env, capture_output=True, text=True, timeout=max(1, deadline - time.monotonic())
    )
    if done.returncode != 0:
        raise BuildError(f"git {args[0] if args[0] != '-C' else args[2]} failed: {_last_git_line(done.stderr)}")


def _tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _fetch(args: list[str], pin: str | None, env: dict, where: str, policy: RepoPolicy, deadline: float) -> None:
    """A fetch watched for time and size: git has no limit of its own on how much it downloads."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([*_git(pin), *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise BuildError("Fetching the repository took longer than this hub allows.")
            if _tree_size(where) > policy.max_repo_size:
                process.kill()
                process.wait()
                raise BuildError(f"The repository is larger than this hub allows ({policy.max_repo_size // 2**20} MB).")
            time.sleep(0.2)
        if process.returncode != 0:
            stderr.seek(0)
            raise BuildError(
                f"Fetching the repository failed: {_last_git_line(stderr.read().decode(errors='replace'))}"
            )


def fetch_commit(
    request: RepoRequest, commit: str, ref_name: str | None, dest: str, policy: RepoPolicy, deadline: float
) -> None:
    """A checkout of exactly `commit` in `dest`, with the URL as its `origin` remote."""
    pin = pinned_address(request, policy)
    with tempfile.TemporaryDirectory(prefix="formspawner-git-") as home:
        env = _git_environment(home)
        _run_git(["init", "-q", dest], pin, env, deadline)
        fetch = ["-C", dest, "fetch", "-q", "--no-tags"]
        try:
            # Protocol v2 servers (GitHub, GitLab, git http-backend) serve any commit by id.
            _fetch([*fetch, "--depth", "1", "--", request.url, commit], pin, env, dest, policy, deadline)
        except BuildError:
            if ref_name is None:
                raise
            # An older server only serves advertised refs: fetch the ref and find the commit in it.
            _fetch([*fetch, "--", request.url, ref_name], pin, env, dest, policy, deadline)
        _run_git(
            ["-C", dest, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit], pin, env, deadline
        )
        _run_git(["-C", dest, "remote", "add", "origin", request.url], pin, env, deadline)


def read_repository(checkout: Path, policy: RepoPolicy) -> tuple[set[str], str, list[str]]:
    """Which honoured files the repository declares, where (binder/ first, as on Binder), and
    its apt packages."""
    config_dir = ""
    for candidate in (".binder", "binder"):
        if (checkout / candidate).is_dir() and not (checkout / candidate).is_symlink():
            config_dir = candidate + "/"
            break
    present = set()
    for name in policy.config_files:
        path = checkout / config_dir / name
        # A symlink could point anywhere on the build host: only regular files count.
        if path.is_file() and not path.is_symlink():
            present.add(name)
    packages = []
    if "apt.txt" in present:
        try:
            packages = read_apt_packages((checkout / config_dir / "apt.txt").read_text(errors="replace"))
        except ValueError as error:
            raise BuildError(f"The repository's {config_dir}{error}.") from None
    return present, config_dir, packages


class BuildJob:
    """One build in flight, shared by every spawn that wants the same image; each waiter
    follows the same log from its first line."""

    def __init__(self, tag: str):
        self.tag = tag
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def add_line(self, line: str) -> None:
        self.lines.append(line)
        self.changed.set()

    async def follow(self) -> AsyncIterator[str]:
        sent = 0
        while True:
            while sent < len(self.lines):
                yield self.lines[sent]
                sent += 1
            if self.task.done():
                return
            self.changed.clear()
            waiter = asyncio.ensure_future(self.changed.wait())
            await asyncio.wait([waiter, self.task], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()


def run_build(
    client,
    request: RepoRequest,
    commit: str,
    ref_name: str | None,
    key: str,
    tag: str,
    base,
    policy: RepoPolicy,
    folder: str,
    log: Callable[[str], None],
) -> None:
    """Fetch and build; on any failure remove what the build left and raise BuildError."""
    deadline = time.time() + policy.build_timeout
    tail: list[str] = []

    def say(line: str) -> None:
        line = redact(line.rstrip())
        if line:
            tail.append(line)
            del tail[:-15]
            log(line)

    workdir = tempfile.mkdtemp(prefix="formspawner-build-")
    try:
        checkout = Path(workdir, "repo")
        say(f"Fetching {request.url} at {commit[:12]}")
        fetch_commit(request, commit, ref_name, str(checkout), policy, time.monotonic() + policy.build_timeout)
        present, config_dir, packages = read_repository(checkout, policy)
        say(
            "Building with "
            + (", ".join(config_dir + f for f in sorted(present)) or "no build files (repository only)")
        )
        Path(workdir, "Dockerfile").write_text(recipe(base, folder, present, config_dir, packages))
        limits = {"memory": policy.build_memory, "memswap": policy.build_memory}
        if policy.build_cpus:
            cpus = os.cpu_count() or 1
            first = max(0, cpus - policy.build_cpus)
            limits["cpusetcpus"] = f"{first}-{cpus - 1}"
        labels = {
            f"{LABEL_PREFIX}": "1",
            f"{LABEL_PREFIX}.url": request.cache_url,
            f"{LABEL_PREFIX}.commit": commit,
            f"{LABEL_PREFIX}.base": base.id,
            f"{LABEL_PREFIX}.key": key,
        }
        stream = client.build(
            path=workdir,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels=labels,
            buildargs={"FORMSPAWNER_DEADLINE": str(int(deadline)), "FORMSPAWNER_BUILD": key},
            container_limits=limits,
            # A step may print nothing for a long time (compiling); the deadline bounds it.
            timeout=policy.build_timeout + 60,
        )
        pending = ""
        for event in stream:
            if "error" in event:
                for line in (pending + event["error"]).splitlines():
                    say(line)
                if time.time() >= deadline:
                    raise BuildError(f"The build took longer than this hub allows ({policy.build_timeout} s).")
                raise BuildError("The build failed. Last lines of its log:\n" + "\n".join(tail[-10:]))
            text = pending + event.get("stream", "")
            *complete, pending = text.split("\n")
            for line in complete:
                say(line)
        if pending:
            say(pending)
        say(f"Built {tag}")
    except BuildError:
        _remove_leftovers(client, key, tag)
        raise
    except Exception as error:
        _remove_leftovers(client, key, tag)
        raise BuildError(f"The build failed: {redact(str(error))}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_leftovers(client, key: str, tag: str) -> None:
    """A failed build leaves no image behind, intermediate or tagged."""
    try:
        client.remove_image(tag, force=True)
    except Exception:
        pass
    for image in client.images(filters={"label": f"{LABEL_PREFIX}.build={key}"}, all=True):
        try:
            client.remove_image(image["Id"], force=True)
        except Exception:
            pass


class LaunchRecord:
    """When each built image was last launched, so the cache evicts the least recently used.

    Kept in a small JSON file beside the hub's database; if it is lost, images fall back
    to their build time.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def touch(self, tag: str) -> None:
        with self._lock:
            data = self._read()
            data[tag] = time.time()
            self._write(data)

    def forget(self, tags: set[str]) -> None:
        with self._lock:
            data = {k: v for k, v in self._read().items() if k not in tags}
            self._write(data)

    def last_launched(self) -> dict[str, float]:
        with self._lock:
            return self._read()

    def _write(self, data: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)


def docker_root(client) -> str:
    """Where the engine keeps its data (asked once; the answer does not change)."""
    return client.info().get("DockerRootDir") or "/var/lib/docker"


def disk_usage(root: str) -> tuple[int, int] | None:
    """(free, size) in bytes of the file system at `root`, or None when it is not on this machine."""
    try:
        stat = os.statvfs(root)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def free_disk(root: str) -> int | None:
    """Bytes free where the engine keeps images, or None when that is not on this machine."""
    usage = disk_usage(root)
    return usage[0] if usage else None


def own_sizes(df_images: list[dict] | None) -> dict[str, int]:
    """Each built image's own bytes, from `docker system df`'s images: its size less the
    layers it shares (its base image's)."""
    return {
        image["Id"]: max(0, image.get("Size", 0) - max(0, image.get("SharedSize", 0)))
        for image in df_images or []
        if (image.get("Labels") or {}).get(LABEL_PREFIX) == "1"
    }


def evict(client, policy: RepoPolicy, record: LaunchRecord, protected: set[str], log) -> list[str]:
    """Remove the least recently launched builds, never one in use or about to start, until
    at most cache_max_images remain, they take at most cache_max_size, and at least
    min_free_disk is free where the engine keeps images (when that can be seen from here)."""
    images = client.images(filters={"label": f"{LABEL_PREFIX}=1"})
    sizes = own_sizes(client.df().get("Images"))
    count, total = len(images), sum(sizes.get(image["Id"], 0) for image in images)
    root = docker_root(client)
    free = free_disk(root)

    def over() -> bool:
        short = free is not None and free < policy.min_free_disk
        return count > policy.cache_max_images or total > policy.cache_max_size or short

    if not over():
        return []
    launched = record.last_launched()
    in_use = {c["ImageID"] for c in client.containers(all=True)}

    def last_use(image) -> float:
        return max([launched.get(t, 0.0) for t in image.get("RepoTags") or []] + [float(image.get("Created", 0))])

    removed = []
    for image in sorted(images, key=last_use):
        if not over():
            break
        tags = set(image.get("RepoTags") or [])
        if image["Id"] in in_use or tags & protected:
            continue
        try:
            # Tag by tag: on a swarm manager a build also carries its registry names, and
            # removing by ID would refuse an image with several names. The last name goes
            # with the image; a container using it still stops the removal.
            for name in sorted(tags) or [image["Id"]]:
                client.remove_image(name, force=False)
        except Exception as error:  # e.g. a container created meanwhile
            log.warning("Not removing repository image %s: %s", ", ".join(tags), error)
            continue
        removed.extend(tags)
        count -= 1
        total -= sizes.get(image["Id"], 0)
        free = free_disk(root)
    record.forget(set(removed))
    return removed


def make_room(client, policy: RepoPolicy, record: LaunchRecord, protected: set[str], log) -> None:
    """Before a build: evict old builds if the disk is short; refuse the build if still short."""
    root = docker_root(client)
    free = free_disk(root)
    if free is None or free >= policy.min_free_disk:
        return
    removed = evict(client, policy, record, protected, log)
    if removed:
        log.info("Removed %d repository images to keep %d bytes free", len(removed), policy.min_free_disk)
    free = free_disk(root)
    if free is not None and free < policy.min_free_disk:
        log.warning("Refusing a build: %d bytes free, the policy keeps %d free", free, policy.min_free_disk)
        raise BuildError(
            f"The server is short of disk space ({free / 2**30:.1f} GB free; it keeps "
            f"{policy.min_free_disk / 2**30:.1f} GB free), so repositories cannot be built now. "
            "Servers without a repository still start. Please tell the hub's admins."
        )
