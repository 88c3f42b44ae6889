"""The exact settings every git the hub runs against a repository from the internet gets
(formspawner.git: ls-remote, the fetch, the checks of a commit), each with what it keeps
out. Behaviour against a real Git server is the integration tier's
(tests/integration/test_repo_launches.py); these name each setting, so that dropping one
fails in seconds (tests/mutation/source_mutants.py makes those mutants)."""

from __future__ import annotations

import pytest

from formspawner.git import _git, _git_environment

# Each `git -c` setting, and why it is there.
SETTINGS = {
    "protocol.allow=never": "no transport but the one allowed next (ext::, file://, ssh:// ...)",
    "protocol.https.allow=always": "https, the only protocol a repository URL may have",
    "http.followRedirects=false": "a redirect could point at an address the host check refused",
    "core.hooksPath=/dev/null": "no hook runs, whatever a template or config would install",
    "core.symlinks=true": "a link in the checkout stays a link (build.py refuses to follow them)",
    "submodule.recurse=false": "no submodule is fetched from a URL the policy never checked",
}

# Each variable of git's environment, and why it is there.
ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": ("0", "a repository asking for a password fails at once, never waits"),
    "GIT_ASKPASS": ("/bin/false", "no program is asked for a password"),
    "GIT_CONFIG_NOSYSTEM": ("1", "the host's /etc/gitconfig (credentials, url rewrites) is not read"),
    "GIT_CONFIG_GLOBAL": ("/dev/null", "the hub user's ~/.gitconfig is not read"),
    "GIT_ALLOW_PROTOCOL": ("https", "overrides any protocol.*.allow a config file could set"),
    "GIT_NO_LAZY_FETCH": ("1", "a commit missing from a partial fetch is never fetched on demand"),
}


def pairs(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_git_against_a_repository_gets_each_protective_setting(setting):
    assert setting in pairs(_git(None)), SETTINGS[setting]
    assert setting in pairs(_git("host:443:192.0.2.1")), SETTINGS[setting]


def test_a_checked_address_is_pinned_for_git_so_no_second_lookup_can_differ():
    """DNS rebinding: git connects to the address the policy checked, through curl's resolve."""
    assert "http.curloptResolve=github.com:443:192.0.2.1" in pairs(_git("github.com:443:192.0.2.1"))
    assert not any(s.startswith("http.curloptResolve") for s in pairs(_git(None)))
    assert _git(None)[0] == "git"


@pytest.mark.parametrize("name", ENVIRONMENT)
def test_gits_environment_holds_each_protective_variable(name, tmp_path, monkeypatch):
    # Whatever the hub's own environment says.
    monkeypatch.setenv(name, "something else")
    value, why = ENVIRONMENT[name]
    assert _git_environment(str(tmp_path)).get(name) == value, why


def test_gits_home_is_the_private_one_given_and_nothing_else_passes_through(tmp_path, monkeypatch):
    """HOME is the fetch's own empty folder (no ~/.netrc, ~/.git-credentials of the hub's
    user); of the hub's environment only the path, language, CA bundles and proxies pass."""
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("GIT_SSH_COMMAND", "evil")
    env = _git_environment(str(tmp_path))
    assert env["HOME"] == str(tmp_path)
    assert "GIT_DIR" not in env and "GIT_SSH_COMMAND" not in env


STAND_IN_GIT = r"""#!/bin/sh
# A stand-in for git that records each command line (one argument a line, then a blank
# line) and answers as a server with one branch would, one that serves no commit by id
# (a shallow fetch of it fails, so the fetch of the ref is tried too).
for arg in "$@"; do printf '%s\n' "$arg"; done >> "$GIT_LOG"
echo >> "$GIT_LOG"
for arg in "$@"; do
  case "$arg" in
    ls-remote) printf '%s\trefs/heads/main\n' 0123456789abcdef0123456789abcdef01234567; exit 0 ;;
    rev-parse) echo 0123456789abcdef0123456789abcdef01234567; exit 0 ;;
    init) eval "dest=\${$#}"; mkdir -p "$dest"; exit 0 ;;
    --depth) exit 1 ;;
  esac
done
exit 0
"""


def test_every_url_git_is_given_comes_after_a_double_dash(tmp_path, monkeypatch):
    """A repository URL is never read as an option (BinderHub CVE-2021-39159: RCE through
    `git ls-remote` with a URL starting `--upload-pack=`). check_url already refuses such
    a URL; this holds the second line of defence in each command: every git given the URL
    has `--` right before it. git itself is a stand-in here that records its command lines
    (the real one against a real server: tests/integration/test_repo_launches.py)."""
    from formspawner.git import fetch_commit, resolve_commit
    from formspawner.repo import RepoPolicy

    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(STAND_IN_GIT)
    fake.chmod(0o755)
    log = tmp_path / "git.log"
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    # The stand-in reads where to write from its environment, which git.py builds anew:
    # GIT_LOG is let through for this test.
    monkeypatch.setattr("formspawner.git._PASSTHROUGH", ("PATH", "LANG", "GIT_LOG"))
    monkeypatch.setenv("GIT_LOG", str(log))
    policy = RepoPolicy.from_config({"allowed_hosts": ["localhost"], "allow_private_hosts": True})
    url = "https://localhost/course/lab"
    for ref in ("main", "0123456"):
        resolve_commit(policy.check_url(url, ref), policy)
    fetch_commit(policy.check_url(url, "main"), "0123456789abcdef0123456789abcdef01234567", "refs/heads/main",
                 str(tmp_path / "checkout"), policy, __import__("time").monotonic() + 30)  # fmt: skip
    commands = [block.split("\n") for block in log.read_text().split("\n\n") if block.strip()]
    with_url = [command for command in commands if url in command]
    # ls-remote, the reachability fetch, the commit's fetch and the ref's, origin
    assert len(with_url) >= 5, commands
    for command in with_url:
        # After the settings (`-c NAME=VALUE` pairs) and before the URL: `--`.
        assert "--" in command[command.index(url) - 2 : command.index(url)], command
