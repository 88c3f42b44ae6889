"""Repository launch rules: URL and ref validation with hostile input, policy, cache keys, recipe."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formspawner.build import read_repository
from formspawner.errors import BuildError, OptionError, PolicyError
from formspawner.git import pinned_address
from formspawner.repo import (
    PIPENV_VERSION,
    BaseImage,
    RepoPolicy,
    _limited,
    cache_key,
    check_ref,
    folder_name,
    image_tag,
    parse_size,
    read_apt_packages,
    recipe,
    redact,
)

POLICY = RepoPolicy.from_config({"allowed_hosts": ["github.com", "git.example.edu:8443"]})


def check(url, ref=None):
    return POLICY.check({"url": url, "ref": ref} if ref is not None else {"url": url})


def test_a_plain_github_url_is_accepted_and_the_ref_defaults_to_head():
    request = check("https://github.com/course/lab1")
    assert (request.url, request.ref, request.host, request.port, request.name) == (
        "https://github.com/course/lab1",
        "HEAD",
        "github.com",
        443,
        "lab1",
    )


def test_dot_git_trailing_slash_and_explicit_port_are_one_repository():
    a = check("https://github.com/course/lab1.git/")
    b = check("https://GitHub.com:443/course/lab1")
    assert a.name == b.name == "lab1"
    assert a.cache_url == b.cache_url == "https://github.com/course/lab1"


def test_a_host_with_a_port_needs_that_port_in_the_allowed_list():
    assert check("https://git.example.edu:8443/group/repo").url == "https://git.example.edu:8443/group/repo"
    with pytest.raises(OptionError, match="not allowed here"):
        check("https://git.example.edu/group/repo")
    with pytest.raises(OptionError, match="not allowed here"):
        check("https://github.com:8443/group/repo")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://github.com/o/r", "Only https"),
        ("ext::sh -c touch% /tmp/pwned", "printable ASCII"),
        ("file:///etc/passwd", "Only https"),
        ("/srv/git/repo", "Only https"),
        ("git@github.com:o/r.git", "Only https"),
        ("ssh://github.com/o/r", "Only https"),
        ("git://github.com/o/r", "Only https"),
        ("-uhttps://github.com/o/r", "Only https"),
        ("--upload-pack=touch /tmp/x", "printable ASCII"),
        ("https://user:token@github.com/o/r", "user name or password"),
        ("https://token@github.com/o/r", "user name or password"),
        ("https://github.com/o/r?ref=main", "query"),
        ("https://github.com/o/r#main", "fragment"),
        ("https://github.com/o/r;x", "parameters"),
        ("https://github.com/o/../../etc", "plain names"),
        ("https://github.com/o/./r", "plain names"),
        ("https://github.com/o/%2e%2e/r", "plain names"),
        ("https://github.com/o\\r", "plain names"),
        ("https://github.com//r", "plain names"),
        ("https://github.com/.hidden/r", "plain names"),
        ("https://github.com/-o/r", "plain names"),
        ("https://github.com", "plain names"),
        ("https://github.com.evil.example/o/r", "not allowed here"),
        ("https://evil.example/github.com/o/r", "not allowed here"),
        ("https://github.com@evil.example/o/r", "user name or password"),
        ("https://gіthub.com/o/r", "ASCII"),  # a Cyrillic i
        ("https://xn--gthub-n4a.com/o/r", "not allowed here"),
        ("https://github.com/o/r\nHost: evil", "printable ASCII"),
        ("https://github.com/o/r\x00", "printable ASCII"),
        ("https://github.com/o r", "printable ASCII"),
        ("https://[::1]/o/r", "not a host name"),
        ("https://127.0.0.1/o/r", "not allowed here"),
        ("https://github.com:99999/o/r", "not allowed here"),
        ("https://github.com/" + "a/" * 11 + "r", "plain names"),
        ("https://github.com/o/" + "r" * 500, "longer than"),
    ],
)
def test_hostile_urls_are_refused_with_a_message(url, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        check(url)


@pytest.mark.parametrize(
    "ref",
    ["main", "v1.0", "release/2026", "feature_x-2", "0123abc", "a" * 40, "HEAD", "python+3.11"],
)
def test_ordinary_refs_are_accepted(ref):
    assert check_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "-c",
        "--upload-pack=touch /tmp/x",
        "main..evil",
        "HEAD~1",
        "HEAD^",
        "a@{1}",
        "refs//heads",
        "main/",
        "main.",
        "main.lock",
        ".hidden",
        "x/.hidden",
        "main branch",
        "main\n",
        "mäin",
        "a:b",
        "*",
        "[ab]",
        "\\x",
        "a" * 201,
    ],
)
def test_refs_that_git_could_read_otherwise_are_refused(ref):
    with pytest.raises(OptionError):
        check_ref(ref)


def test_the_request_shape_is_checked():
    assert POLICY.check(None) is None
    assert POLICY.check({"url": "", "ref": ""}) is None
    assert POLICY.check({"url": "  "}) is None
    with pytest.raises(OptionError, match="without a repository URL"):
        POLICY.check({"url": "", "ref": "main"})
    with pytest.raises(OptionError, match="Unknown repository field"):
        POLICY.check({"url": "https://github.com/o/r", "depth": 1})
    with pytest.raises(OptionError, match="must be text"):
        POLICY.check({"url": ["https://github.com/o/r"]})
    with pytest.raises(OptionError, match="must be given as"):
        POLICY.check("https://github.com/o/r")


@given(st.text(max_size=300))
def test_any_text_is_either_refused_cleanly_or_a_safe_https_url(text):
    try:
        request = check(text)
    except OptionError:
        return
    if request is None:
        assert not text.strip()
        return
    assert request.url.startswith(("https://github.com/", "https://git.example.edu:8443/"))
    assert not any(ch in request.url for ch in "@?#; \\%") and ".." not in request.url
    assert re.fullmatch(r"[A-Za-z0-9._-]+", request.name) and not request.name.startswith(("-", "."))


@given(st.text(max_size=80))
def test_any_ref_is_refused_or_cannot_be_an_option_or_a_range(ref):
    try:
        checked = check_ref(ref)
    except OptionError:
        return
    assert not checked.startswith("-") and ".." not in checked and all(c.isascii() and c.isprintable() for c in checked)
    assert " " not in checked and "@{" not in checked


def test_the_cache_key_changes_with_commit_base_image_and_recipe_but_not_url_spelling():
    a = check("https://github.com/course/lab1")
    b = check("https://github.com/course/lab1.git/")
    base = POLICY.builder_fingerprint("sha256:aaa")
    assert cache_key(a, "c1", base) == cache_key(b, "c1", base)
    assert cache_key(a, "c1", base) != cache_key(a, "c2", base)
    assert cache_key(a, "c1", base) != cache_key(a, "c1", POLICY.builder_fingerprint("sha256:bbb"))
    fewer_files = RepoPolicy.from_config({"config_files": ["requirements.txt"]})
    assert cache_key(a, "c1", base) != cache_key(a, "c1", fewer_files.builder_fingerprint("sha256:aaa"))
    assert cache_key(a, "c1", base) != cache_key(check("https://github.com/course/lab2"), "c1", base)


def test_image_tags_are_valid_docker_references_named_after_the_repository():
    request = check("https://git.example.edu:8443/Group/My_Lab.git")
    tag = image_tag(request, "0123456789abcdef" * 2 + "01234567", "f" * 64)
    repository, version = tag.rsplit(":", 1)
    assert repository == "formspawner-repo/git-example-edu-8443-group-my-lab"
    assert re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", repository)
    assert version == "0123456789ab-ffffffffffff"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"allowed_host": ["github.com"]}, "unknown key"),
        ({"allowed_hosts": "github.com"}, "must be a list"),
        ({"allowed_hosts": ["https://github.com"]}, "is not a lower-case host name"),
        ({"allowed_hosts": ["GitHub.com"]}, "is not a lower-case host name"),
        ({"allowed_hosts": ["github.com:0"]}, "is not a lower-case host name"),
        ({"build_timeout": "15m"}, "build_timeout must be a whole number"),
        ({"build_timeout": 5}, "at least 10"),
        ({"build_memory": "lots"}, "build_memory must be a size"),
        # The whole value is the size, not a size somewhere in it.
        ({"build_memory": "lots of 4g"}, "build_memory must be a size"),
        ({"build_memory": "4g or so"}, "build_memory must be a size"),
        ({"build_memory": 0}, "more than zero"),
        ({"cache_max_images": 0}, "cache_max_images"),
        ({"cache_max_images": True}, "cache_max_images"),
        ({"cache_max_size": "a lot"}, "cache_max_size must be a size"),
        ({"min_free_disk": 0}, "min_free_disk must be more than zero"),
        ({"config_files": ["Dockerfile"]}, "config_files must list some of"),
        ({"allow_private_hosts": "yes"}, "true or false"),
    ],
)
def test_a_broken_policy_names_the_setting(config, message):
    with pytest.raises(PolicyError, match=re.escape(message)):
        RepoPolicy.from_config(config)


def test_policy_sizes_read_like_dockers():
    policy = RepoPolicy.from_config({"build_memory": "512m", "max_repo_size": "1G", "build_cpus": 1,
                                     "max_concurrent_builds": 3})  # fmt: skip
    assert policy.max_concurrent_builds == 3
    assert policy.build_memory == 512 * 2**20 and policy.max_repo_size == 2**30 and policy.build_cpus == 1
    disk = RepoPolicy.from_config({"cache_max_size": "20g", "min_free_disk": "512m"})
    assert disk.cache_max_size == 20 * 2**30 and disk.min_free_disk == 512 * 2**20


def test_private_hosts_are_refused_unless_the_policy_allows_them():
    # localhost resolves through /etc/hosts: no network is used.
    policy = RepoPolicy.from_config({"allowed_hosts": ["localhost:8443"]})
    request = policy.check({"url": "https://localhost:8443/o/r"})
    with pytest.raises(OptionError, match="private or local address"):
        pinned_address(request, policy)
    allowing = RepoPolicy.from_config({"allowed_hosts": ["localhost:8443"], "allow_private_hosts": True})
    # git connects to exactly the checked address.
    assert pinned_address(request, allowing) in ("localhost:8443:127.0.0.1", "localhost:8443:[::1]")


def test_apt_txt_takes_package_names_only():
    assert read_apt_packages("# tools\ngraphviz\n\nlibpq-dev  # for psycopg\ng++\n") == ["graphviz", "libpq-dev", "g++"]
    for line in ("curl; rm -rf /", "$(id)", "-o APT::x", "pkg=1.0", "Pkg", "a b", "`id`"):
        with pytest.raises(ValueError, match="not a Debian package name"):
            read_apt_packages(f"ok\n{line}\n")
    with pytest.raises(ValueError, match="more than"):
        read_apt_packages("\n".join(f"p{i}" for i in range(201)))


BASE = BaseImage(id="sha256:" + "a" * 64, user="1000", home="/home/jovyan", workdir="/home/jovyan", group="100")


def test_the_recipe_installs_what_the_repository_declares_as_the_right_users():
    dockerfile = recipe(BASE, "lab1", {"apt.txt", "requirements.txt", "postBuild"}, "binder/", ["graphviz"])
    lines = dockerfile.splitlines()
    assert lines[0] == f"FROM {BASE.id}"
    apt = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    assert lines[apt - 1] == "USER root" and "graphviz" in lines[apt]
    copy = lines.index("COPY --chown=1000:100 repo/ /home/jovyan/lab1/")
    assert lines[copy + 1] == "USER 1000" and apt < copy
    pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    post = next(i for i, line in enumerate(lines) if "postBuild" in line)
    assert copy < pip < post and "binder/requirements.txt" in lines[pip] and "./binder/postBuild" in lines[post]
    assert all("timeout -s KILL" in line for line in lines if line.startswith("RUN"))
    assert lines[-1] == "USER 1000"  # the server runs as the image's user, never root
    assert not any(line.startswith(("CMD", "ENTRYPOINT")) for line in lines)


def test_a_python_package_is_installed_after_its_requirements_and_before_postbuild():
    for package in ("setup.py", "pyproject.toml"):
        lines = recipe(BASE, "lab1", {"requirements.txt", package, "postBuild"}, "", []).splitlines()
        steps = [line.split("timeout -s KILL \"$left\" ", 1)[1] for line in lines if line.startswith("RUN")]
        assert steps == [
            "find /home/jovyan/lab1 -type d -exec chmod g+rwxs {} +",
            "pip install --no-cache-dir -r requirements.txt",
            "pip install --no-cache-dir .",
            "sh -c 'chmod +x postBuild && ./postBuild'",
        ]


def test_the_repository_gets_the_images_nb_gid_as_its_group():
    info = {"Id": "i", "Config": {"User": "1000", "Env": ["NB_GID=100"]}}
    assert BaseImage.from_inspect(info).owner == "1000:100"
    info["Config"]["Env"] = ["NB_GID=1OO"]  # not a number: the user's spec alone
    assert BaseImage.from_inspect(info).owner == "1000"
    info["Config"].update(User="1000:2000", Env=["NB_GID=100"])  # the image's own group wins
    assert BaseImage.from_inspect(info).owner == "1000:2000"


def test_the_recipe_skips_what_is_absent():
    dockerfile = recipe(BASE, "lab1", set(), "", [])
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN")]
    assert len(runs) == 1 and runs[0].endswith("find /home/jovyan/lab1 -type d -exec chmod g+rwxs {} +")
    assert "USER root" not in dockerfile


def test_postbuild_gets_repo2dockers_repo_dir_and_the_images_python_prefix():
    info = {"Id": "i", "Config": {"User": "1000", "Env": ["CONDA_DIR=/opt/conda"]}}
    lines = recipe(BaseImage.from_inspect(info), "lab1", {"postBuild"}, "", []).splitlines()
    env = lines.index("ENV REPO_DIR=/home/jovyan/lab1 NB_PYTHON_PREFIX=/opt/conda")
    assert env < next(i for i, line in enumerate(lines) if "postBuild" in line)
    for odd in ("CONDA_DIR=/opt/my conda", "CONDA_DIR=relative", "CONDA_DIR=/x\nRUN id"):
        info["Config"]["Env"] = [odd]  # never pasted into the recipe: the prefix is left out
        assert "ENV REPO_DIR=/home/jovyan/lab1\n" in recipe(BaseImage.from_inspect(info), "lab1", set(), "", [])


def test_base_image_facts_come_from_its_config_and_odd_values_are_refused():
    info = {"Id": "sha256:x", "Config": {"User": "1000", "Env": ["HOME=/home/jovyan"], "WorkingDir": "/home/jovyan"}}
    assert BaseImage.from_inspect(info).home == "/home/jovyan"
    info["Config"]["User"] = "1000; RUN rm -rf /"
    with pytest.raises(ValueError):
        BaseImage.from_inspect(info)
    info["Config"].update(User="1000", Env=["HOME=/home/x y"])
    with pytest.raises(ValueError):
        BaseImage.from_inspect(info)
    # docker-stacks' NB_GID and CONDA_DIR, used only when they are a group id and a path.
    info["Config"]["Env"] = ["NB_GID=100", "CONDA_DIR=/opt/conda"]
    assert (BaseImage.from_inspect(info).group, BaseImage.from_inspect(info).python_prefix) == ("100", "/opt/conda")
    info["Config"]["Env"] = ["NB_GID=users", "CONDA_DIR=opt/conda"]
    assert (BaseImage.from_inspect(info).group, BaseImage.from_inspect(info).python_prefix) == ("", "")


def test_read_repository_prefers_the_binder_folder_and_ignores_symlinks(tmp_path):
    (tmp_path / "requirements.txt").write_text("ignored\n")
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "requirements.txt").write_text("numpy\n")
    (tmp_path / "binder" / "postBuild").symlink_to("/etc/passwd")
    (tmp_path / "binder" / "apt.txt").write_text("graphviz\n")
    present, config_dir, packages, unused, _ = read_repository(tmp_path, POLICY)
    assert config_dir == "binder/" and present == {"requirements.txt", "apt.txt"} and packages == ["graphviz"]
    assert unused == []
    only_pip = RepoPolicy.from_config({"config_files": ["requirements.txt"]})
    assert read_repository(tmp_path, only_pip)[0] == {"requirements.txt"}
    (tmp_path / "binder" / "apt.txt").write_text("graphviz; curl evil\n")
    with pytest.raises(BuildError, match="apt.txt line 1"):
        read_repository(tmp_path, POLICY)


def test_build_output_is_redacted():
    assert redact("Cloning https://user:ghp_abc@github.com/o/r") == "Cloning https://***@github.com/o/r"
    assert "ghp_" not in redact("token ghp_" + "A" * 36)
    assert redact("export API_TOKEN=s3cr3t now") == "export API_TOKEN=*** now"
    assert redact("Step 3/7 : RUN pip install") == "Step 3/7 : RUN pip install"


# -- exact outputs (each pinned whole: mutation testing showed partial checks let them drift)

STEP = 'RUN left=$(( FORMSPAWNER_DEADLINE - $(date +%s) )) && [ "$left" -gt 0 ] && exec timeout -s KILL "$left" '
JOVYAN = {"Id": "sha256:abc", "Config": {"User": "1000:100", "WorkingDir": "/home/jovyan/work",
                                         "Env": ["PATH=/x", "NB_USER=jovyan", "CONDA_DIR=/opt/conda"]}}


def test_the_whole_recipe_with_every_build_file_in_binder():
    base = BaseImage.from_inspect(JOVYAN)
    present = {"apt.txt", "environment.yml", "requirements.txt", "postBuild"}
    assert recipe(base, "lab", present, "binder/", ["vim", "git"]).splitlines() == [
        "FROM sha256:abc",
        "ARG FORMSPAWNER_BUILD",
        "LABEL org.formspawner.repo.build=$FORMSPAWNER_BUILD",
        "ARG FORMSPAWNER_DEADLINE",
        "USER root",
        STEP + "sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "--no-install-recommends vim git && rm -rf /var/lib/apt/lists/*'",
        "COPY --chown=1000:100 repo/ /home/jovyan/lab/",
        "USER 1000:100",
        STEP + "find /home/jovyan/lab -type d -exec chmod g+rwxs {} +",
        "WORKDIR /home/jovyan/lab",
        "ENV REPO_DIR=/home/jovyan/lab NB_PYTHON_PREFIX=/opt/conda",
        STEP + "sh -c 'for tool in mamba conda; do command -v $tool >/dev/null && exec $tool env update -n base "
        "-f binder/environment.yml; done; echo \"environment.yml needs an image with mamba or conda\" >&2; exit 1'",
        STEP + "pip install --no-cache-dir -r binder/requirements.txt",
        STEP + "sh -c 'chmod +x binder/postBuild && ./binder/postBuild'",
        "WORKDIR /home/jovyan/work",
        "USER 1000:100",
    ]


def test_a_pipfile_build_runs_a_throwaway_pipenv_where_the_pipfile_is_with_the_lock_if_any():
    base = BaseImage.from_inspect(JOVYAN)
    pipenv = (
        STEP + "sh -c 'tool=$(mktemp -d) && python3 -m venv \"$tool\" && \"$tool/bin/pip\" install --no-cache-dir "
        f"--quiet pipenv=={PIPENV_VERSION} && cd ./binder/ && PIPENV_CACHE_DIR=\"$tool/cache\" PIP_NO_CACHE_DIR=1 "
        "PIPENV_NOSPIN=1 PIPENV_YES=1 \"$tool/bin/pipenv\" install {} --system --dev; status=$?; "
        "rm -rf \"$tool\"; exit $status'"
    )
    locked = recipe(base, "lab", {"Pipfile", "Pipfile.lock", "postBuild"}, "binder/", []).splitlines()
    assert pipenv.format("--ignore-pipfile") in locked
    # After the ENV line (postBuild may use REPO_DIR), before postBuild.
    assert locked.index(pipenv.format("--ignore-pipfile")) == locked.index(STEP + "sh -c 'chmod +x binder/postBuild "
                                                                             "&& ./binder/postBuild'") - 1
    assert pipenv.format("--skip-lock") in recipe(base, "lab", {"Pipfile"}, "binder/", []).splitlines()
    assert pipenv.format("--ignore-pipfile") in recipe(base, "lab", {"Pipfile.lock"}, "binder/", []).splitlines()
    top = recipe(base, "lab", {"Pipfile"}, "", [])
    assert " && cd ./ && " in top and "pip install --no-cache-dir ." not in top


def test_an_empty_apt_txt_or_no_build_files_give_the_copy_alone():
    base = BaseImage.from_inspect(JOVYAN)
    expected = (
        "FROM sha256:abc\nARG FORMSPAWNER_BUILD\nLABEL org.formspawner.repo.build=$FORMSPAWNER_BUILD\n"
        "ARG FORMSPAWNER_DEADLINE\nCOPY --chown=1000:100 repo/ /home/jovyan/lab/\nUSER 1000:100\n"
        f"{STEP}find /home/jovyan/lab -type d -exec chmod g+rwxs {{}} +\n"
        "WORKDIR /home/jovyan/lab\nENV REPO_DIR=/home/jovyan/lab NB_PYTHON_PREFIX=/opt/conda\n"
        "WORKDIR /home/jovyan/work\nUSER 1000:100\n"
    )
    assert recipe(base, "lab", {"apt.txt"}, "", []) == expected
    assert recipe(base, "lab", set(), "", ["vim"]) == expected


@pytest.mark.parametrize(
    "config, expected",
    [
        (JOVYAN["Config"], ("1000:100", "/home/jovyan", "/home/jovyan/work")),
        ({"Env": ["NB_USER=ann"]}, ("root", "/home/ann", "/home/ann")),
        ({"Env": ["HOME=/"]}, ("root", "/", "/")),
        ({"Env": ["HOME=/srv/home"], "WorkingDir": "/"}, ("root", "/srv/home", "/")),
        ({}, ("root", "/home/jovyan", "/home/jovyan")),
        (None, ("root", "/home/jovyan", "/home/jovyan")),
    ],
)
def test_the_base_images_user_home_and_workdir_come_from_its_inspect_data(config, expected):
    base = BaseImage.from_inspect({"Id": "sha256:abc", "Config": config})
    assert (base.id, base.user, base.home, base.workdir) == ("sha256:abc", *expected)


def test_an_image_variable_is_split_at_its_first_equals_sign():
    with pytest.raises(ValueError, match="'/home/a=b' cannot be used"):
        BaseImage.from_inspect({"Id": "sha256:abc", "Config": {"Env": ["NB_USER=a=b"]}})


def test_a_request_as_options_names_url_ref_and_path_only_when_given():
    policy = RepoPolicy()
    request = policy.check({"url": "https://github.com/Course/Lab-1.git", "ref": "main", "path": "a/b.ipynb"})
    assert request.as_options() == {"url": "https://github.com/Course/Lab-1.git", "ref": "main", "path": "a/b.ipynb"}
    assert request.cache_url == "https://github.com/Course/Lab-1"
    assert policy.check({"url": "https://github.com/Course/Lab-1/"}).as_options() == {
        "url": "https://github.com/Course/Lab-1", "ref": "HEAD",
    }


def test_cache_key_and_image_tag_are_fixed_functions_of_url_commit_and_builder():
    request = RepoPolicy().check({"url": "https://github.com/Course/Lab-1.git", "ref": "main"})
    assert cache_key(request, "c" * 40, "fp") == "b60871a031d4473153fd8d3327032fa47a4f69f4a8fe12824e4cea966cb165e1"
    tag = "formspawner-repo/github-com-course-lab-1:cccccccccccc-kkkkkkkkkkkk"
    assert image_tag(request, "c" * 40, "k" * 64) == tag
    assert RepoPolicy().builder_fingerprint("sha256:base") == (
        '["4", "sha256:base", ["apt.txt", "environment.yml", "Pipfile", "requirements.txt", "setup.py", '
        '"pyproject.toml", "postBuild"]]'
    )


@pytest.mark.parametrize(
    "name, folder",
    [("..Ünï code--", "n-code"), ("...", "repository"), ("a" * 70, "a" * 64), ("Lab_1.x", "Lab_1.x")],
)
def test_folder_names_are_plain_and_short(name, folder):
    assert folder_name(name) == folder


@pytest.mark.parametrize(
    "text, size",
    [("4g", 4 * 1024**3), ("512M", 512 * 1024**2), ("10kb", 10 * 1024), (" 3 t", 3 * 1024**4), (7, 7), ("1", 1)],
)
def test_sizes_read_with_binary_units(text, size):
    assert parse_size(text, "s") == size


@pytest.mark.parametrize(
    "line, shown",
    [
        ("https://user:ghp_abcdefghijklmnopqrstuvwxyz@github.com/x", "https://***@github.com/x"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123 end", "token *** end"),
        ("export API_KEY=hunter2 rest", "export API_KEY=*** rest"),
        ("GITLAB_TOKEN: glpat-abcdefghijklmnopqrstuv", "GITLAB_TOKEN: ***"),
        # Each kind of token alone, where no assignment gives it away.
        ("pushed with glpat-abcdefghijklmnopqrstuv ok", "pushed with *** ok"),
        ("pushed with github_pat_11ABCDEFG0abcdefghijklmnop ok", "pushed with *** ok"),
        ("pushed with ghs_abcdefghijklmnopqrstuvwxyz ok", "pushed with *** ok"),
        ("nothing here", "nothing here"),
    ],
)
def test_redaction_replaces_exactly_the_secret(line, shown):
    assert redact(line) == shown


def test_apt_txt_comments_and_blank_lines_are_skipped():
    assert read_apt_packages("vim # editor\n\n git#x\n# all\nfonts-noto#a#b\n") == ["vim", "git", "fonts-noto"]


@pytest.mark.parametrize(
    "url, name, cleaned",
    [
        ("https://github.com/org/sub/lab.git", "lab", "https://github.com/org/sub/lab.git"),
        ("https://github.com/org/sub/lab", "lab", "https://github.com/org/sub/lab"),
        ("https://github.com/org/labX/", "labX", "https://github.com/org/labX"),
        ("https://github.com/org/lab.git.git", "lab.git", "https://github.com/org/lab.git.git"),
    ],
)
def test_the_repository_name_is_the_last_segment_without_git(url, name, cleaned):
    request = RepoPolicy().check({"url": url})
    assert (request.name, request.url) == (name, cleaned)


@pytest.mark.parametrize("path, kept", [("/lab/a.ipynb/", "lab/a.ipynb"), ("Xlab/a.ipynX", "Xlab/a.ipynX")])
def test_the_path_to_open_loses_only_its_outer_slashes(path, kept):
    assert RepoPolicy().check({"url": "https://github.com/a/b", "path": path}).path == kept


def test_commit_ids_are_seven_to_forty_lower_case_hex_digits():
    from formspawner.repo import is_commit_id

    assert is_commit_id("abc1234") and is_commit_id("f" * 40)
    assert not is_commit_id("abc123") and not is_commit_id("F" * 40) and not is_commit_id("main")


@pytest.mark.parametrize(
    "url, repository",
    [
        ("https://github.com/github.com/lab", "github-com-github-com-lab"),
        ("https://github.com/org/lab_", "github-com-org-lab"),
        ("https://github.com/" + "/".join(["a" * 40] * 3), "github-com-" + "-".join(["a" * 40] * 3)[:89]),
        ("https://github.com/" + "a" * 88 + "/b", "github-com-" + "a" * 88),  # cut at a "-"
    ],
)
def test_image_tags_name_the_host_and_path_in_at_most_100_characters(url, repository):
    request = RepoPolicy().check({"url": url})
    assert image_tag(request, "c" * 40, "k" * 64) == f"formspawner-repo/{repository}:cccccccccccc-kkkkkkkkkkkk"


def test_folder_names_keep_their_own_letters():
    assert folder_name("Xlab") == "Xlab"


def test_a_home_ending_in_a_letter_or_at_the_root_gives_the_right_target():
    assert BaseImage.from_inspect({"Id": "i", "Config": {"Env": ["HOME=/home/X"]}}).home == "/home/X"
    root = BaseImage(id="i", user="root", home="/", workdir="/")
    assert "COPY --chown=root repo/ /lab/\n" in recipe(root, "lab", set(), "", [])
    x = BaseImage(id="i", user="root", home="/home/X", workdir="/")
    assert "COPY --chown=root repo/ /home/X/lab/\n" in recipe(x, "lab", set(), "", [])


def test_read_repository_reads_the_top_level_without_a_binder_folder_and_refuses_both_folders(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert read_repository(tmp_path, POLICY)[:4] == ({"requirements.txt"}, "", [], [])
    (tmp_path / ".binder").mkdir()
    (tmp_path / ".binder" / "postBuild").write_text("#!/bin/sh\n")
    assert read_repository(tmp_path, POLICY)[:4] == ({"postBuild"}, ".binder/", [], [])
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "requirements.txt").write_text("numpy\n")
    with pytest.raises(BuildError, match="both a binder/ and a .binder/ folder; Binder refuses that too"):
        read_repository(tmp_path, POLICY)


def test_a_python_package_is_found_as_repo2docker_finds_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 99\n")
    assert read_repository(tmp_path, POLICY).present == set()  # a tool's settings, not a package
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[build-system]\nrequires = []\n')
    assert read_repository(tmp_path, POLICY).present == {"pyproject.toml"}
    (tmp_path / "setup.py").write_text("from setuptools import setup; setup()\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert read_repository(tmp_path, POLICY).present == {"setup.py", "requirements.txt"}
    no_packages = RepoPolicy.from_config({"config_files": ["requirements.txt"]})
    assert read_repository(tmp_path, no_packages)[::3] == ({"requirements.txt"}, ["setup.py"])
    # With a binder folder Binder installs no package, and says nothing either: named here.
    (tmp_path / "binder").mkdir()
    files = read_repository(tmp_path, POLICY)
    assert (files.present, files.unused) == (set(), ["setup.py", "pyproject.toml"])


def test_environment_yml_wins_over_requirements_and_the_package_as_on_binder(tmp_path):
    for name in ("environment.yml", "requirements.txt", "setup.py"):
        (tmp_path / name).write_text("x\n")
    files = read_repository(tmp_path, POLICY)
    assert (files.present, files.unused) == ({"environment.yml"}, [])
    assert files.outranked == ("environment.yml", ("requirements.txt", "setup.py"))
    without_conda = RepoPolicy.from_config({"config_files": ["requirements.txt", "setup.py"]})
    files = read_repository(tmp_path, without_conda)
    assert (files.present, files.unused) == ({"requirements.txt", "setup.py"}, ["environment.yml"])
    assert files.outranked == ("", ())


def test_a_pipfile_or_its_lock_wins_over_requirements_and_the_package_but_not_over_environment_yml(tmp_path):
    """repo2docker's order (its tests/pipfile/requirements-txt, setup-py-*, environment-yml)."""
    for name in ("Pipfile.lock", "requirements.txt", "setup.py"):
        (tmp_path / name).write_text("x\n")
    files = read_repository(tmp_path, POLICY)
    assert (files.present, files.unused) == ({"Pipfile.lock"}, [])
    assert files.outranked == ("Pipfile.lock", ("requirements.txt", "setup.py"))
    (tmp_path / "Pipfile").write_text("[packages]\n")
    files = read_repository(tmp_path, POLICY)
    assert files.present == {"Pipfile", "Pipfile.lock"}
    assert files.outranked == ("Pipfile", ("requirements.txt", "setup.py"))
    (tmp_path / "environment.yml").write_text("dependencies: []\n")
    files = read_repository(tmp_path, POLICY)
    assert files.present == {"environment.yml"}
    assert files.outranked == ("environment.yml", ("Pipfile", "requirements.txt", "Pipfile.lock", "setup.py"))
    # An admin who does not honour Pipfile gets the pip build, and both files named.
    no_pipenv = RepoPolicy.from_config({"config_files": ["requirements.txt", "setup.py"]})
    (tmp_path / "environment.yml").unlink()
    files = read_repository(tmp_path, no_pipenv)
    assert (files.present, files.unused, files.outranked) == (
        {"requirements.txt", "setup.py"}, ["Pipfile", "Pipfile.lock"], ("", ())
    )
    # In a binder folder, the Pipfile there is the one (binder-folder: the top one is not).
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "Pipfile").write_text("[packages]\n")
    files = read_repository(tmp_path, POLICY)
    assert (files.present, files.config_dir, files.unused) == ({"Pipfile"}, "binder/", ["setup.py"])


def test_a_pyproject_over_a_megabyte_is_refused_unread(tmp_path):
    (tmp_path / "pyproject.toml").write_text("# " + "x" * 1024**2 + "\n")
    with pytest.raises(BuildError, match="The repository's pyproject.toml is larger than 1 MB; this hub does not read"):
        read_repository(tmp_path, POLICY)
    (tmp_path / "pyproject.toml").write_text("# " + "x" * (1024**2 - 3) + "\n")  # exactly 1 MB: read
    assert read_repository(tmp_path, POLICY).present == set()


def test_a_pyproject_that_is_not_toml_is_refused_by_name(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(BuildError, match="The repository's pyproject.toml is not valid TOML: "):
        read_repository(tmp_path, POLICY)


def test_files_binder_would_use_and_this_hub_does_not_are_named(tmp_path):
    for name in ("Dockerfile", "start", "runtime.txt", "Pipfile", "install.R", "Project.toml", "default.nix"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "environment.yml").write_text("dependencies: []\n")
    (tmp_path / "DESCRIPTION").symlink_to("/etc/passwd")  # not a regular file: not a build file
    only_pip = RepoPolicy.from_config({"config_files": ["requirements.txt"]})
    files = read_repository(tmp_path, only_pip)
    assert files.present == set()
    assert files.unused == [
        "environment.yml", "Pipfile", "Dockerfile", "start", "runtime.txt", "install.R", "Project.toml", "default.nix"
    ]
    (tmp_path / ".binder").mkdir()
    (tmp_path / ".binder" / "Dockerfile").write_text("FROM x\n")
    assert read_repository(tmp_path, only_pip).unused == [".binder/Dockerfile"]


def test_an_apt_txt_that_is_not_utf8_is_refused_by_line(tmp_path):
    (tmp_path / "apt.txt").write_bytes(b"vim\n\xff\xfe\n")
    with pytest.raises(BuildError) as raised:
        read_repository(tmp_path, POLICY)
    assert str(raised.value) == "The repository's apt.txt line 2: '\ufffd\ufffd' is not a Debian package name."


@pytest.mark.parametrize(
    "address, public",
    [
        ("140.82.121.4", True),
        ("10.1.2.3", False),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("64:ff9b::a01:203", False),  # NAT64 of 10.1.2.3
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254 (cloud metadata)
        ("64:ff9b:1::808:808", False),  # local-use NAT64 prefix
        ("2002:808:808::1", True),  # 6to4 of a public address
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("::a00:1", False),  # IPv4-compatible 10.0.0.1
        ("2606:4700::1111", True),
        ("fd00::1", False),
    ],
)
def test_ipv6_addresses_carrying_a_private_ipv4_address_are_private(address, public):
    import ipaddress

    from formspawner.git import is_public

    assert is_public(ipaddress.ip_address(address)) is public


def test_a_host_resolving_to_nat64_or_6to4_of_a_private_address_is_refused(monkeypatch):
    """The resolver is stood in for (no DNS here): the host "resolves" to each address."""
    from formspawner import git

    policy = RepoPolicy.from_config({"allowed_hosts": ["git.example.edu"]})
    request = policy.check({"url": "https://git.example.edu/o/r"})
    for address in ("64:ff9b::a01:203", "2002:a01:203::1"):
        monkeypatch.setattr(git.socket, "getaddrinfo", lambda *a, address=address, **k: [
            (git.socket.AF_INET6, git.socket.SOCK_STREAM, 6, "", (address, 443, 0, 0))])
        with pytest.raises(OptionError, match="private or local address"):
            pinned_address(request, policy)
    monkeypatch.setattr(git.socket, "getaddrinfo", lambda *a, **k: [
        (git.socket.AF_INET6, git.socket.SOCK_STREAM, 6, "", ("64:ff9b::808:808", 443, 0, 0))])
    assert pinned_address(request, policy) == "git.example.edu:443:[64:ff9b::808:808]"


def test_repositories_whose_paths_differ_only_in_case_get_their_own_builds():
    """Git servers may be case-sensitive: github.com/Course/Lab and github.com/course/lab
    can be two repositories. The host is case-insensitive and lower-cased already."""
    policy = RepoPolicy()
    upper, lower = (policy.check({"url": url}) for url in ("https://github.com/Course/Lab", "https://github.com/course/lab"))
    assert cache_key(upper, "c" * 40, "fp") != cache_key(lower, "c" * 40, "fp")
    assert cache_key(policy.check({"url": "https://GitHub.com/Course/Lab"}), "c" * 40, "fp") == cache_key(
        upper, "c" * 40, "fp"
    )


@pytest.mark.parametrize("cpus, share", [(None, 1), (1, 1), (2, 1), (3, 1), (4, 2), (8, 4)])
def test_builds_get_half_the_machine_by_default(monkeypatch, cpus, share):
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    policy = RepoPolicy.from_config({})
    assert (policy.build_cpus, policy.max_concurrent_builds) == (share, share)


def test_an_apt_txt_over_a_megabyte_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    """A file of newlines compresses to almost nothing in a pack: read whole it would cost
    the hub gigabytes. apt.txt is read as the other build files are: 1 MB at most."""
    (tmp_path / "apt.txt").write_text("\n" * (1024**2 + 1))
    with pytest.raises(BuildError, match="The repository's apt.txt is larger than 1 MB; this hub does not read"):
        read_repository(tmp_path, POLICY)
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "apt.txt").write_text("graphviz\n" + "\n" * 1024**2)
    with pytest.raises(BuildError, match="The repository's binder/apt.txt is larger than 1 MB"):
        read_repository(tmp_path, POLICY)


@pytest.mark.parametrize("ref", ["feature/abcdef12", "v1.0-0123456789abc", "abcdef1-fix", "ABCDEF1234"])
def test_only_a_whole_hexadecimal_ref_is_taken_for_a_commit_id(ref):
    """A branch whose name holds hex digits is a branch: resolved through ls-remote like any."""
    from formspawner.repo import is_commit_id

    assert not is_commit_id(ref)
    assert is_commit_id("abcdef1") and is_commit_id("0" * 40)


@pytest.mark.parametrize(("prefix", "env", "kernels"), [
    ("/opt/conda", "/opt/conda/envs/python-3.10", "/opt/conda"),
    ("/srv/pyX", "/srv/pyX/envs/python-3.10", "/srv/pyX"),
    ("/", "/envs/python-3.10", "/"),  # CONDA_DIR=/ (the pattern's one path with a "/" at its end)
])  # fmt: skip
def test_the_python_a_build_provides_is_an_environment_of_its_own_first_on_path(prefix, env, kernels):
    """Issue 47, the recipe's steps exactly (tests/unit/test_build.py: when they are used)."""
    base = BaseImage(id="sha256:b", user="1000:100", home="/home/jovyan", workdir="/home/jovyan", group="100",
                     python_prefix=prefix)  # fmt: skip
    steps = recipe(base, "lab", {"requirements.txt"}, "", [], python="3.10").splitlines()
    assert steps[0] == "FROM sha256:b"
    create = next(i for i, step in enumerate(steps) if "create -y -q" in step)
    assert steps[create] == "RUN " + _limited(
        f"sh -c 'tool=$(command -v mamba || command -v conda) && \"$tool\" create -y -q -p {env} python=3.10 "
        f"ipykernel pip && \"$tool\" clean -a -y -q && {env}/bin/python -m ipykernel install --prefix {kernels} "
        "--name python3 --display-name \"Python 3.10\"'"
    )
    assert steps[create + 1] == f"ENV PATH={env}/bin:$PATH"
    with pytest.raises(ValueError, match=r"^not a Python version a build installs: '2\.7'$"):
        recipe(base, "lab", set(), "", [], python="2.7")
