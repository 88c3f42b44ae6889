"""Git repositories users launch, the way Binder does: the rules, without any I/O.

What a repository URL and ref may look like, what the admin's `repo_policy` holds,
how a build is named in the image cache and the Dockerfile a build runs. The git and
Docker work lives in git.py, build.py and cache.py; everything here is pure and tested
with hostile input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .errors import OptionError, PolicyError, describe, refuse_unknown_keys
from .labels import IMAGE_REPOSITORY, REPO_LABEL

# What a repository may declare, as Binder users know it (repo2docker's file names).
# setup.py and pyproject.toml count as repo2docker counts them: at the top of a repository
# without a binder folder, pyproject.toml only with [project] and [build-system]; the
# repository is then installed with pip after its requirements. "Pipfile" stands for
# Pipfile and Pipfile.lock: either one makes a pipenv build, as on Binder.
CONFIG_FILES = (
    "apt.txt",
    "environment.yml",
    "Pipfile",
    "requirements.txt",
    "setup.py",
    "pyproject.toml",
    "postBuild",
)
PACKAGE_FILES = ("setup.py", "pyproject.toml")
# Files honoured (or not) under another file's name in config_files.
COMPANIONS = {"Pipfile.lock": "Pipfile"}
PIPFILES = ("Pipfile", "Pipfile.lock")
# The pipenv that installs a Pipfile build (in a throwaway environment of its own, so the
# user's environment holds only what the repository declares). repo2docker pins 2022.1.8,
# which predates the Pythons the docker-stacks images carry now.
PIPENV_VERSION = "2026.10.3"
# Files repo2docker acts on that this hub never uses, named in the build log when present.
# A repository's own Dockerfile and `start` script above all: the first could change the
# user and entry point, the second would run at every start with the user's data mounted.
OTHER_BINDER_FILES = (
    "Dockerfile",
    "start",
    "runtime.txt",
    "requirements3.txt",
    "install.R",
    "DESCRIPTION",
    "Project.toml",
    "JuliaProject.toml",
    "REQUIRE",
    "default.nix",
)
# Bumped whenever the Dockerfile below changes, so old builds are not reused.
RECIPE_VERSION = "4"

POLICY_KEYS = {
    "allowed_hosts",
    "allow_private_hosts",
    "config_files",
    "build_timeout",
    "build_memory",
    "build_cpus",
    "cache_max_images",
    "cache_max_size",
    "min_free_disk",
    "resolve_timeout",
    "max_repo_size",
    "max_concurrent_builds",
    "python_mismatch",
}
# What a repository asking for another Python 3 minor version than the image has gets
# (runtime.txt, a Pipfile's python_version), where the build cannot provide it with conda.
PYTHON_MISMATCH = ("warn", "refuse")
# The Python versions a build installs with conda or mamba when the repository asks for one
# the image does not have (repo2docker's SUPPORTED_PYTHON_VERSION).
CONDA_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
REQUEST_KEYS = {"url", "ref", "path"}
MAX_URL_LENGTH = 400
MAX_REF_LENGTH = 200
MAX_PATH_SEGMENTS = 10
MAX_APT_PACKAGES = 200
MAX_OPEN_PATH_LENGTH = 255

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_ENTRY_RE = re.compile(rf"({_HOST_RE.pattern})(?::([0-9]{{1,5}}))?")
# Path segments: no percent-escapes, nothing hidden, no dot segments, no option-like start.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_~][A-Za-z0-9._~-]{0,99}")
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
_HEX_RE = re.compile(r"[0-9a-f]{7,40}")
_SIZE_RE = re.compile(r"([0-9]+)\s*([kmgt]?)b?", re.IGNORECASE)
_APT_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}")
_IMAGE_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?")
_ABSOLUTE_PATH_RE = re.compile(r"(?:/[A-Za-z0-9_.-]+)+|/")


def parse_size(value: object, setting: str) -> int:
    """`4g`, `512m`, `1000000` (bytes), as Docker's memory options read them."""
    if isinstance(value, bool):
        raise PolicyError(f"{setting} must be a size such as 4g or 512m, not {value!r}")
    if isinstance(value, int):
        number, unit = value, ""
    else:
        match = _SIZE_RE.fullmatch(str(value).strip())
        if not match:
            raise PolicyError(f"{setting} must be a size such as 4g or 512m, not {value!r}")
        number, unit = int(match.group(1)), match.group(2).lower()
    size = number * 1024 ** " kmgt".index(unit or " ")
    if size <= 0:
        raise PolicyError(f"{setting} must be more than zero")
    return size


def machine_share() -> int:
    """Half of this machine's CPUs, at least one: what builds get unless the admin says."""
    return max(1, (os.cpu_count() or 1) // 2)


def _size(config: Mapping, key: str, default: int, setting: str) -> int:
    return parse_size(config.get(key, default), f"{setting}.{key}")


def _positive_int(config: Mapping, key: str, default: int, setting: str, minimum: int = 1) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{setting}.{key} must be a whole number of at least {minimum}, not {value!r}")
    return value


def _one_of(config: Mapping, key: str, choices: tuple[str, ...], setting: str) -> str:
    value = config.get(key, choices[0])
    if value not in choices:
        raise PolicyError(f"{setting}.{key} must be {' or '.join(choices)}, not {value!r}")
    return value


@dataclass(frozen=True)
class RepoRequest:
    """A checked request: the URL as it will be fetched, and the ref as the user gave it."""

    url: str
    ref: str
    host: str
    port: int
    name: str
    # A file or folder inside the repository to open (e.g. a notebook), or "".
    path: str = ""

    @property
    def cache_url(self) -> str:
        """The URL as the cache knows it: `x` and `x.git` are one repository."""
        return self.url[: -len(".git")] if self.url.endswith(".git") else self.url

    def as_options(self) -> dict:
        options = {"url": self.url, "ref": self.ref}
        if self.path:
            options["path"] = self.path
        return options


@dataclass(frozen=True)
class RepoPolicy:
    """The admin's rules for repository launches (the `repo_policy` trait, checked)."""

    allowed_hosts: tuple[str, ...] = ("github.com", "gitlab.com")
    allow_private_hosts: bool = False
    config_files: tuple[str, ...] = CONFIG_FILES
    build_timeout: int = 900
    build_memory: int = 4 * 1024**3
    # CPUs a build may use (the last N cores; 0 = no limit) and builds running at once:
    # half the machine each by default, so builds never take every core from the servers.
    build_cpus: int = dataclasses.field(default_factory=machine_share)
    max_concurrent_builds: int = dataclasses.field(default_factory=machine_share)
    cache_max_images: int = 30
    # Bytes the built images may take beyond their base images (their own layers).
    cache_max_size: int = 50 * 1024**3
    # Bytes to keep free where Docker keeps images: builds make room or wait below it.
    min_free_disk: int = 10 * 1024**3
    resolve_timeout: int = 30
    max_repo_size: int = 500 * 1024**2
    python_mismatch: str = "warn"

    @classmethod
    def from_config(cls, config: Mapping | None, setting: str = "repo_policy") -> RepoPolicy:
        config = dict(config or {})
        refuse_unknown_keys(config, POLICY_KEYS, setting)
        defaults = cls()
        hosts = config.get("allowed_hosts", defaults.allowed_hosts)
        if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
            raise PolicyError(f"{setting}.allowed_hosts must be a list of host names such as github.com")
        for host in hosts:
            match = _HOST_ENTRY_RE.fullmatch(host)
            if not match or (match.group(2) and not 0 < int(match.group(2)) < 65536):
                raise PolicyError(
                    f"{setting}.allowed_hosts: {host!r} is not a lower-case host name "
                    "(optionally with :port), such as github.com or git.example.edu:8443"
                )
        files = config.get("config_files", list(defaults.config_files))
        if not isinstance(files, (list, tuple)) or any(f not in CONFIG_FILES for f in files):
            raise PolicyError(f"{setting}.config_files must list some of {', '.join(CONFIG_FILES)}, not {files!r}")
        private = config.get("allow_private_hosts", False)
        if not isinstance(private, bool):
            raise PolicyError(f"{setting}.allow_private_hosts must be true or false, not {private!r}")
        return cls(
            allowed_hosts=tuple(hosts),
            allow_private_hosts=private,
            config_files=tuple(f for f in CONFIG_FILES if f in files),
            build_timeout=_positive_int(config, "build_timeout", defaults.build_timeout, setting, minimum=10),
            build_memory=parse_size(config.get("build_memory", defaults.build_memory), f"{setting}.build_memory"),
            build_cpus=_positive_int(config, "build_cpus", defaults.build_cpus, setting, minimum=0),
            max_concurrent_builds=_positive_int(
                config, "max_concurrent_builds", defaults.max_concurrent_builds, setting
            ),
            cache_max_images=_positive_int(config, "cache_max_images", defaults.cache_max_images, setting),
            cache_max_size=_size(config, "cache_max_size", defaults.cache_max_size, setting),
            min_free_disk=_size(config, "min_free_disk", defaults.min_free_disk, setting),
            resolve_timeout=_positive_int(config, "resolve_timeout", defaults.resolve_timeout, setting),
            max_repo_size=parse_size(config.get("max_repo_size", defaults.max_repo_size), f"{setting}.max_repo_size"),
            python_mismatch=_one_of(config, "python_mismatch", PYTHON_MISMATCH, setting),
        )

    # -- user input ------------------------------------------------------------

    def check(self, value: object) -> RepoRequest | None:
        """The checked request, None for "no repository", or OptionError naming the problem."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise OptionError('The repository must be given as {"url": "https://...", "ref": "main"}.')
        unknown = sorted(map(str, set(value) - REQUEST_KEYS))
        if unknown:
            raise OptionError(f"Unknown repository field {describe(unknown[0])}: use 'url' and 'ref'.")
        url, ref, path = value.get("url"), value.get("ref"), value.get("path")
        for field, text in (("URL", url), ("ref", ref), ("path", path)):
            if text is not None and not isinstance(text, str):
                raise OptionError(f"The repository {field} must be text, not {describe(text)}.")
        url, ref, path = (url or "").strip(), (ref or "").strip(), (path or "").strip()
        if not url:
            if ref or path:
                raise OptionError("A ref or path was given without a repository URL.")
            return None
        request = self.check_url(url, ref or "HEAD")
        return replace(request, path=check_open_path(path)) if path else request

    def check_url(self, url: str, ref: str) -> RepoRequest:
        if len(url) > MAX_URL_LENGTH:
            raise OptionError(f"The repository URL is longer than {MAX_URL_LENGTH} characters.")
        if not url.isascii() or not url.isprintable() or any(ch.isspace() for ch in url):
            raise OptionError(
                "The repository URL may only hold printable ASCII characters without spaces "
                "(write an international host name in its xn-- form)."
            )
        if not url.lower().startswith("https://"):
            raise OptionError(f"Only https:// repository URLs are accepted, not {describe(url)}.")
        parts = urlsplit(url)
        netloc = parts.netloc.lower()
        if "@" in netloc:
            raise OptionError("The repository URL must not hold a user name or password.")
        if "?" in url or "#" in url or ";" in url:
            raise OptionError("The repository URL must not have a query (?), fragment (#) or parameters (;).")
        match = _HOST_ENTRY_RE.fullmatch(netloc)
        if not match:
            raise OptionError(f"{describe(parts.netloc)} is not a host name this hub accepts.")
        host, port_text = match.groups()
        port = int(port_text) if port_text else 443
        entry = host if port == 443 else f"{host}:{port}"
        if entry not in self.allowed_hosts:
            raise OptionError(
                f"Repositories from {describe(entry)} are not allowed here. "
                f"Allowed hosts: {', '.join(self.allowed_hosts)}."
            )
        path = parts.path.rstrip("/")
        # An https:// URL's path is empty or starts with "/".
        segments = path.split("/")[1:]
        if not segments or len(segments) > MAX_PATH_SEGMENTS or not all(_SEGMENT_RE.fullmatch(s) for s in segments):
            raise OptionError(
                "The repository URL's path must be plain names separated by '/', such as /owner/repository "
                "(no '..', hidden names, escapes or backslashes)."
            )
        # The segment pattern allows no leading dot, so a name remains without ".git".
        name = segments[-1].removesuffix(".git")
        return RepoRequest(
            url=f"https://{entry}{path}", ref=check_ref(ref), host=host, port=port, name=folder_name(name)
        )

    # -- the build -------------------------------------------------------------

    def builder_fingerprint(self, base_image_id: str) -> str:
        """What else decides a build's result: the base image, the recipe, the honoured files
        and (when not the default) what a Python mismatch gets: an image built while it was
        a warning is not reused once it is a refusal."""
        refuses = [self.python_mismatch] if self.python_mismatch != "warn" else []
        return json.dumps([RECIPE_VERSION, base_image_id, list(self.config_files), *refuses])


def check_ref(ref: str) -> str:
    """A branch, tag or commit name that git can never read as an option or a range."""
    if len(ref) > MAX_REF_LENGTH:
        raise OptionError(f"The ref is longer than {MAX_REF_LENGTH} characters.")
    bad = (
        not _REF_RE.fullmatch(ref)
        or ".." in ref
        or "//" in ref
        or ref.endswith(("/", "."))
        or any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/"))
    )
    if bad:
        raise OptionError(
            f"{describe(ref)} is not a branch, tag or commit name: use letters, digits, '.', '_', '-', "
            "'+' and '/', not starting with '-' and without '..'."
        )
    return ref


def check_open_path(path: str) -> str:
    """A path inside the repository to open, as a launch link names a notebook."""
    path = path.strip("/")
    parts = path.split("/")
    bad = (
        len(path) > MAX_OPEN_PATH_LENGTH
        or not path.isprintable()
        or "\\" in path
        or any(part in ("", ".", "..") for part in parts)
    )
    if bad:
        raise OptionError(
            f"{describe(path)} is not a path inside the repository: use names separated by '/', "
            "without '..' or backslashes."
        )
    return path


def is_commit_id(ref: str) -> bool:
    return bool(_HEX_RE.fullmatch(ref))


def folder_name(name: str) -> str:
    """The folder in the user's home that holds the repository."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "repository"
    return cleaned[:64]


def cache_key(request: RepoRequest, commit: str, fingerprint: str) -> str:
    """Builds are shared and reused by (repository, commit, builder), never by a mutable ref."""
    # The host is lower case already; a path's case is the Git server's to decide.
    material = json.dumps([request.cache_url, commit, fingerprint])
    return hashlib.sha256(material.encode()).hexdigest()


def image_tag(request: RepoRequest, commit: str, key: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{request.host}{request.cache_url.split(request.host, 1)[1]}".lower())
    # The host starts with a letter or digit, so the slug is never empty.
    slug = slug[:100].strip("-")
    return f"{IMAGE_REPOSITORY}/{slug}:{commit[:12]}-{key[:12]}"


def read_apt_packages(text: str) -> list[str]:
    """apt.txt: one Debian package name a line; anything else is refused, never passed to a shell."""
    packages = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.partition("#")[0].strip()
        if not line:
            continue
        if not _APT_PACKAGE_RE.fullmatch(line):
            raise ValueError(f"apt.txt line {number}: {describe(line)} is not a Debian package name")
        packages.append(line)
    if len(packages) > MAX_APT_PACKAGES:
        raise ValueError(f"apt.txt lists more than {MAX_APT_PACKAGES} packages")
    return packages


def _limited(command: str) -> str:
    # Every step runs under the one build deadline: the build as a whole gets
    # build_timeout seconds, however many steps it has.
    return (
        f'left=$(( FORMSPAWNER_DEADLINE - $(date +%s) )) && [ "$left" -gt 0 ] && exec timeout -s KILL "$left" {command}'
    )


@dataclass(frozen=True)
class BaseImage:
    """What the recipe needs to know of the chosen image (from `docker inspect`)."""

    id: str
    user: str
    home: str
    workdir: str
    # NB_GID of docker-stacks images: the group the repository's files get (as
    # fix-permissions leaves the images' own files); "" = the user's spec alone.
    group: str = ""
    # CONDA_DIR of docker-stacks images: the prefix of the image's Python, which
    # repo2docker's postBuild scripts know as NB_PYTHON_PREFIX. "" = not known.
    python_prefix: str = ""

    @property
    def owner(self) -> str:
        """COPY --chown's argument: a user alone would get a group of its own number."""
        return self.user if ":" in self.user or not self.group else f"{self.user}:{self.group}"

    @classmethod
    def from_inspect(cls, info: Mapping) -> BaseImage:
        config = info.get("Config") or {}
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        user = config.get("User") or "root"
        home = env.get("HOME") or (f"/home/{env['NB_USER']}" if env.get("NB_USER") else "/home/jovyan")
        workdir = config.get("WorkingDir") or home
        if not _IMAGE_USER_RE.fullmatch(user):
            raise ValueError(f"the image's user {user!r} cannot be used for a repository build")
        for path in (home, workdir):
            if not _ABSOLUTE_PATH_RE.fullmatch(path):
                raise ValueError(f"the image's home or working directory {path!r} cannot be used for a build")
        group = env.get("NB_GID", "")
        if not group.isascii() or not group.isdigit():
            group = ""
        prefix = env.get("CONDA_DIR", "")
        if not _ABSOLUTE_PATH_RE.fullmatch(prefix):
            prefix = ""
        # The pattern allows no trailing "/" but in "/" itself (the recipe handles that).
        return cls(id=info["Id"], user=user, home=home, workdir=workdir, group=group, python_prefix=prefix)


def recipe(
    base: BaseImage,
    folder: str,
    present: set[str],
    config_dir: str,
    apt_packages: list[str],
    trust_lines: Sequence[str] = (),
    python: str = "",
) -> str:
    """The Dockerfile of a repository build. Nothing the repository contains is pasted into
    it except apt package names, which read_apt_packages has checked. `trust_lines` (the
    hub's CA bundle for the steps that download: outbound.Outbound.recipe_lines) come first.
    `python` (a version build.check_against_image checked, such as "3.10"): installed with
    the image's mamba or conda as an environment of its own, first on PATH (the repository's
    packages go there) and the notebooks' python3 kernel; the server stays on the image's."""
    target = f"{base.home.rstrip('/')}/{folder}"
    lines = [
        f"FROM {base.id}",
        # Every intermediate image carries the key, so a failed build's leftovers can be found.
        "ARG FORMSPAWNER_BUILD",
        f"LABEL {REPO_LABEL}.build=$FORMSPAWNER_BUILD",
        "ARG FORMSPAWNER_DEADLINE",
        *trust_lines,
    ]
    if "apt.txt" in present and apt_packages:
        install = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
        lines += [
            "USER root",
            "RUN " + _limited(f"sh -c '{install}{' '.join(apt_packages)} && rm -rf /var/lib/apt/lists/*'"),
        ]
    lines += [
        f"COPY --chown={base.owner} repo/ {target}/",
        f"USER {base.user}",
        # COPY makes the folder itself with its own mode; what is inside keeps the
        # checkout's (build.share_with_group). Folders get setgid here, as fix-permissions
        # sets it (only folders: no file data is copied into the layer). The user owns
        # them, so no root is needed.
        "RUN " + _limited(f"find {target} -type d -exec chmod g+rwxs {{}} +"),
        f"WORKDIR {target}",
        # What repo2docker gives postBuild scripts (and the server) that means something on
        # a docker-stacks image: where the repository is, and the prefix of its Python.
        f"ENV REPO_DIR={target}" + (f" NB_PYTHON_PREFIX={base.python_prefix}" if base.python_prefix else ""),
    ]
    if python:
        if python not in CONDA_PYTHONS:
            raise ValueError(f"not a Python version a build installs: {python!r}")
        prefix = base.python_prefix.rstrip("/")
        env = f"{prefix}/envs/python-{python}"
        lines += [
            "RUN "
            + _limited(
                "sh -c 'tool=$(command -v mamba || command -v conda) && "
                f'"$tool" create -y -q -p {env} python={python} ipykernel pip && "$tool" clean -a -y -q && '
                f'{env}/bin/python -m ipykernel install --prefix {prefix or "/"} --name python3 '
                f'--display-name "Python {python}"\''
            ),
            f"ENV PATH={env}/bin:$PATH",
        ]
    if "environment.yml" in present:
        lines.append(
            "RUN "
            + _limited(
                "sh -c 'for tool in mamba conda; do command -v $tool >/dev/null && "
                f"exec $tool env update -n base -f {config_dir}environment.yml; done; "
                'echo "environment.yml needs an image with mamba or conda" >&2; exit 1\''
            )
        )
    if present & set(PIPFILES):
        # As repo2docker runs it: where the Pipfile is (its relative paths mean that
        # folder), the lock file when there is one (--ignore-pipfile) and the Pipfile's
        # own ranges otherwise (--skip-lock), into the image's Python (--system), with the
        # development packages. pipenv itself lives in a directory this step removes.
        mode = "--ignore-pipfile" if "Pipfile.lock" in present else "--skip-lock"
        lines.append(
            "RUN "
            + _limited(
                "sh -c 'tool=$(mktemp -d) && python3 -m venv \"$tool\" && "
                f'"$tool/bin/pip" install --no-cache-dir --quiet pipenv=={PIPENV_VERSION} && '
                f"cd ./{config_dir} && "
                'PIPENV_CACHE_DIR="$tool/cache" PIP_NO_CACHE_DIR=1 PIPENV_NOSPIN=1 PIPENV_YES=1 '
                f'"$tool/bin/pipenv" install {mode} --system --dev; '
                'status=$?; rm -rf "$tool"; exit $status\''
            )
        )
    if "requirements.txt" in present:
        lines.append("RUN " + _limited(f"pip install --no-cache-dir -r {config_dir}requirements.txt"))
    if present & set(PACKAGE_FILES):
        lines.append("RUN " + _limited("pip install --no-cache-dir ."))
    if "postBuild" in present:
        lines.append("RUN " + _limited(f"sh -c 'chmod +x {config_dir}postBuild && ./{config_dir}postBuild'"))
    lines += [f"WORKDIR {base.workdir}", f"USER {base.user}"]
    return "\n".join(lines) + "\n"


# Linear in the line's length, whatever a build prints (the hub runs them on every line of
# build output, holding the GIL): the scheme is bounded, and the assignment pattern finds
# its keyword in a lookahead and then takes the name possessively, so no run of letters is
# rescanned from each of its positions.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://)[^/\s@]+@")
_TOKEN_RE = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,})")
_ASSIGNMENT_RE = re.compile(
    r"(?i)\b(?=[A-Z0-9_]*?(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY))([A-Z0-9_]++\s*+[=:]\s*+)\S+"
)


def redact(line: str) -> str:
    """Build output can carry credentials (a URL with a token in it): hide them."""
    line = _USERINFO_RE.sub(r"\1***@", line)
    line = _TOKEN_RE.sub("***", line)
    return _ASSIGNMENT_RE.sub(r"\1***", line)
