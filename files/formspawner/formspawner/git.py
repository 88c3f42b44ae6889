"""Git for repository launches: resolve a ref to a commit, fetch exactly that commit.

Git runs only over https, with `--` before every argument that came from a user, no
prompts, no system or user git config, no redirects, and with the host's address
checked and pinned (a name that resolves to a private address is refused unless the
policy allows it). Everything here is blocking; the spawner runs it in a thread.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
import threading
import time

from .errors import BuildError, OptionError, RepoRefused
from .repo import RepoPolicy, RepoRequest, is_commit_id, redact

# Build results that git can end with; build.py says them too.
STOPPED = "The build was stopped: no launch waits for it any more."
# Files a checkout may have, whatever their size (each takes an inode and a directory entry).
MAX_CHECKOUT_FILES = 200_000

# Passed through to git from the hub's environment: proxies and extra CA bundles.
_PASSTHROUGH = ("PATH", "LANG", "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR")
_PROXIES = ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")


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
        # A commit missing from a partial fetch is missing: never fetched on demand.
        GIT_NO_LAZY_FETCH="1",
    )
    return env


def _proxied() -> bool:
    return any(os.environ.get(k) for k in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"))


# IPv6 ranges that carry an IPv4 address (or a local network) inside them; ipaddress
# calls most of them global. NAT64's well-known prefix (RFC 6052) and IPv4-compatible
# addresses put it in the last 32 bits; 6to4 and IPv4-mapped addresses have properties.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use, any embedding
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast, and so is any IPv4 address carried inside an IPv6 one."""
    if not address.is_global or address.is_multicast:
        return False
    if address.version == 4:
        return True
    if address in _NAT64_LOCAL:
        return False
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return all(is_public(inner) for inner in embedded if inner is not None)


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
            if not is_public(address):
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
            return _reachable_commit(request, policy, pin, env), None
        raise OptionError(f"{request.url} has no branch or tag named {ref!r}.")


def _reachable_commit(request: RepoRequest, policy: RepoPolicy, pin: str | None, env: dict) -> str:
    """The full id of a commit id (7 to 40 digits) that a branch or tag of the repository
    reaches. Git hosts such as GitHub serve any commit of a fork network through the
    parent's URL: a link may not show one repository and build a stranger's commit. The
    branches' and tags' history (commits and trees, no file contents) is fetched into an
    empty repository: a commit found there is reachable from them."""
    with tempfile.TemporaryDirectory(prefix="formspawner-resolve-") as repo:
        _run_git(["init", "-q", "--bare", repo], pin, env, time.monotonic() + policy.resolve_timeout)
        command = ["-C", repo, "fetch", "-q", "--filter=blob:none", "--no-tags", "--", request.url]
        refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        try:
            _fetch(command + refspecs, pin, env, repo, policy, time.monotonic() + policy.resolve_timeout)
        except BuildError as error:
            raise OptionError(f"{request.url}: looking up commit {request.ref!r} failed. {error}") from None
        rev_parse = ["-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{request.ref}^{{commit}}"]
        done = subprocess.run([*_git(pin), *rev_parse], env=env, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise OptionError(
                f"No branch or tag of {request.url} contains a commit {request.ref!r} (or the id is ambiguous). "
                "A commit id is accepted only from the repository's own history: Git hosts also serve "
                "commits of other copies (forks) through a repository's address."
            )
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


def _fetch(
    args: list[str],
    pin: str | None,
    env: dict,
    where: str,
    policy: RepoPolicy,
    deadline: float,
    stop: threading.Event | None = None,
) -> None:
    """A fetch watched for time and size (git has no limit of its own on how much it
    downloads), ended when `stop` is set."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([*_git(pin), *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            if stop is not None and stop.is_set():
                process.kill()
                process.wait()
                raise BuildError(STOPPED)
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise BuildError("Fetching the repository took longer than this hub allows.")
            if _tree_size(where) > policy.max_repo_size:
                process.kill()
                process.wait()
                limit = policy.max_repo_size // 2**20
                raise RepoRefused(f"The repository is larger than this hub allows ({limit} MB).")
            time.sleep(0.2)
        if process.returncode != 0:
            stderr.seek(0)
            raise BuildError(
                f"Fetching the repository failed: {_last_git_line(stderr.read().decode(errors='replace'))}"
            )


def check_checkout_size(
    dest: str, commit: str, pin: str | None, env: dict, policy: RepoPolicy, deadline: float
) -> None:
    """Refuse a commit whose files would take more than max_repo_size, or number more than
    MAX_CHECKOUT_FILES, read from its tree before anything is written."""
    command = [*_git(pin), "-C", dest, "ls-tree", "-r", "-l", "--full-tree", commit]
    total = count = 0
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        try:
            for line in process.stdout:
                # "<mode> <type> <object> <size>\t<path>"; a submodule's size is "-".
                size = line.split(b"\t", 1)[0].split()[-1]
                total += int(size) if size.isdigit() else 0
                count += 1
                if total > policy.max_repo_size:
                    raise RepoRefused(
                        f"The repository's files take more than this hub allows once checked out "
                        f"({policy.max_repo_size // 2**20} MB)."
                    )
                if count > MAX_CHECKOUT_FILES:
                    raise RepoRefused(f"The repository has more files than this hub allows ({MAX_CHECKOUT_FILES}).")
                if time.monotonic() > deadline:
                    raise BuildError("Fetching the repository took longer than this hub allows.")
        finally:
            process.kill()
    if process.returncode not in (0, -9):
        raise BuildError("Reading the fetched commit failed.")


def fetch_commit(
    request: RepoRequest,
    commit: str,
    ref_name: str | None,
    dest: str,
    policy: RepoPolicy,
    deadline: float,
    stop: threading.Event | None = None,
) -> None:
    """A checkout of exactly `commit` in `dest`, with the URL as its `origin` remote; the
    checkout is refused before it is written if its files would take more than
    max_repo_size (git stores equal content once: a small fetch can expand without end)."""
    pin = pinned_address(request, policy)
    with tempfile.TemporaryDirectory(prefix="formspawner-git-") as home:
        env = _git_environment(home)
        _run_git(["init", "-q", dest], pin, env, deadline)
        fetch = ["-C", dest, "fetch", "-q", "--no-tags"]
        try:
            # Protocol v2 servers (GitHub, GitLab, git http-backend) serve any commit by id.
            _fetch([*fetch, "--depth", "1", "--", request.url, commit], pin, env, dest, policy, deadline, stop)
        except BuildError:
            if ref_name is None:
                raise
            # An older server only serves advertised refs: fetch the ref and find the commit in it.
            _fetch([*fetch, "--", request.url, ref_name], pin, env, dest, policy, deadline, stop)
        check_checkout_size(dest, commit, pin, env, policy, deadline)
        _run_git(
            ["-C", dest, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit], pin, env, deadline
        )
        _run_git(["-C", dest, "remote", "add", "--", "origin", request.url], pin, env, deadline)
