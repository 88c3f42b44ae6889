"""The option pieces of the spawn form and their one validation path.

Each piece owns a key of `user_options`, its part of the form, how form fields become
its value, how that value is checked against policy, and what it applies to the
spawner. `OptionSet.check` is the single validation function: the form, launch links,
the REST API and options reused from the database all go through it, at every start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .env import EnvPolicy, format_env_text, parse_env_text, withhold_secret_lines
from .errors import OptionError, PolicyError, describe
from .images import ImageCatalog, ImageChoice, Resources
from .repo import RepoPolicy, RepoRequest

ABSENT = object()


@dataclass
class ImageOption:
    """Choose one of the curated images by its name."""

    catalog: ImageCatalog
    key: str = "image"
    template: str = "image.html"
    from_links: bool = True

    def from_form(self, form: Mapping[str, list[str]]) -> Any:
        values = form.get(self.key)
        return values[0] if values else ABSENT

    def check(self, value: Any, groups: Sequence[str]) -> ImageChoice | None:
        return self.catalog.choose(None if value is ABSENT else value, groups)

    def apply(self, spawner, choice: ImageChoice | None) -> None:
        if choice is not None:
            spawner.image = choice.image
        # Every start: a choice without resources gets the hub's settings again.
        spawner.choice_resources = choice.resources if choice is not None else Resources()

    def form_context(self, previous: Mapping, groups: Sequence[str]) -> dict:
        visible = self.catalog.visible_to(groups)
        # Stored options may be anything the API once accepted into the database.
        wanted = previous.get(self.key)
        names = [c.name for c in visible]
        # The default is visible to every user (ImageCatalog refuses a default limited to groups).
        selected = wanted if isinstance(wanted, str) and wanted in names else self.catalog.default_name
        return {"choices": visible, "selected": selected}


@dataclass
class EnvOption:
    """Environment variables, as `NAME=value` lines in the form or a JSON object in the API."""

    policy: EnvPolicy
    key: str = "env"
    template: str = "env.html"
    # A link someone else wrote must never set variables in a user's server.
    from_links: bool = False

    def from_form(self, form: Mapping[str, list[str]]) -> Any:
        values = form.get(self.key)
        if values is None:
            return ABSENT
        return parse_env_text(values[0] if values else "", self.policy.max_text_length)

    def check(self, value: Any, groups: Sequence[str]) -> dict[str, str] | None:
        return None if value is ABSENT else self.policy.check(value)

    def apply(self, spawner, user_env: dict[str, str] | None) -> None:
        spawner.form_env = self.policy.user_layer(user_env)

    def form_context(self, previous: Mapping, groups: Sequence[str]) -> dict:
        current = previous.get(self.key)
        if isinstance(current, str):
            # Text that did not parse, shown again as typed (secret-looking lines aside).
            text, withheld = withhold_secret_lines(current)
        else:
            env = current if isinstance(current, Mapping) else self.policy.defaults
            text, withheld = format_env_text(
                {k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str)}
            )
        return {
            "text": text,
            "withheld": withheld,
            "fixed": sorted(self.policy.fixed),
            "max_vars": self.policy.max_vars,
        }


@dataclass
class RepoOption:
    """A Git repository (and ref) to build on top of the chosen image, as on Binder."""

    policy: RepoPolicy
    key: str = "repo"
    template: str = "repo.html"
    # Links may name a repository; nothing is built before the user confirms (launch.py).
    from_links: bool = True

    def from_form(self, form: Mapping[str, list[str]]) -> Any:
        fields = {key: (form.get(f"repo_{key}") or [""])[0] for key in ("url", "ref", "path")}
        if not any(value.strip() for value in fields.values()):
            return ABSENT
        return {key: value for key, value in fields.items() if value or key != "path"}

    def check(self, value: Any, groups: Sequence[str]) -> RepoRequest | None:
        return None if value is ABSENT else self.policy.check(value)

    def apply(self, spawner, request: RepoRequest | None) -> None:
        spawner.repo_request = request

    def form_context(self, previous: Mapping, groups: Sequence[str]) -> dict:
        current = previous.get(self.key)
        current = current if isinstance(current, Mapping) else {}
        url, ref, path = current.get("url"), current.get("ref"), current.get("path")
        return {
            "url": url if isinstance(url, str) else "",
            "ref": ref if isinstance(ref, str) and ref != "HEAD" else "",
            "path": path if isinstance(path, str) else "",
            "hosts": self.policy.allowed_hosts,
            "files": self.policy.config_files,
        }


PIECES = ("image", "env", "repo")
# How a launch link names the repository's fields (Binder-like: ?repo=URL&ref=main&path=lab.ipynb).
LINK_REPO_KEYS = {"repo": "url", "ref": "ref", "path": "path"}


@dataclass
class OptionSet:
    pieces: list = field(default_factory=list)

    @classmethod
    def from_config(
        cls,
        form_options: Iterable[str],
        images: Sequence | None,
        env_policy: Mapping | None,
        repo_policy: Mapping | None = None,
        supports_image: bool = True,
        gpus: str = "devices",
    ) -> OptionSet:
        names = list(form_options or [])
        unknown = [n for n in names if n not in PIECES]
        if unknown:
            raise PolicyError(
                f"form_options: unknown option(s) {', '.join(map(repr, unknown))}; available: {', '.join(PIECES)}"
            )
        if len(set(names)) != len(names):
            raise PolicyError(f"form_options lists an option twice: {names}")
        # Checked even when the piece is off: a broken policy is a typo to report now.
        catalog = ImageCatalog.from_config(images)
        policy = EnvPolicy.from_config(env_policy)
        repos = RepoPolicy.from_config(repo_policy)
        for choice in catalog.choices:
            wanted = choice.resources.gpus
            if wanted is None or gpus == "devices":
                continue
            if not gpus:
                raise PolicyError(
                    f"images: {choice.name!r} asks for GPUs, which this hub's spawner cannot give "
                    "(GPUs are for servers in containers: FormDockerSpawner, FormSwarmSpawner)"
                )
            if wanted.device_ids or wanted.count < 1:
                raise PolicyError(
                    f"images: {choice.name!r} asks for {wanted.summary()}, but on a swarm a server asks for a "
                    "number of GPUs (gpus: 1), which the swarm places on a worker that declares them free"
                )
        for name in ("image", "repo"):
            if name in names and not supports_image:
                raise PolicyError(f"form_options: {name!r} needs a container spawner (FormDockerSpawner)")
        built = {
            "image": lambda: ImageOption(catalog),
            "env": lambda: EnvOption(policy),
            "repo": lambda: RepoOption(repos),
        }
        return cls([built[n]() for n in names])

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.pieces]

    def piece(self, key: str):
        return next((p for p in self.pieces if p.key == key), None)

    def check(self, user_options: object, groups: Sequence[str], from_link: bool = False) -> dict:
        """Every piece's checked value, or OptionError naming the first problem."""
        if user_options is None:
            user_options = {}
        if not isinstance(user_options, Mapping):
            raise OptionError('Options must be a JSON object such as {"image": "NAME"}.')
        allowed = {p.key for p in self.pieces if p.from_links or not from_link}
        for key in user_options:
            if key in allowed:
                continue
            if from_link and key in self.keys:
                raise OptionError(
                    f"A link cannot set {describe(key)}: only "
                    f"{', '.join(sorted(allowed)) or 'nothing'} may come from a link. "
                    "Set it yourself on the spawn form."
                )
            raise OptionError(
                f"Unknown option {describe(key)}. This hub accepts: {', '.join(self.keys) or 'no options'}."
            )
        return {p.key: p.check(user_options.get(p.key, ABSENT), groups) for p in self.pieces}

    def apply(self, spawner, checked: Mapping) -> None:
        for piece in self.pieces:
            piece.apply(spawner, checked[piece.key])

    def from_form(self, form: Mapping[str, list[str]]) -> dict:
        options = {}
        for piece in self.pieces:
            value = piece.from_form(form)
            if value is not ABSENT:
                options[piece.key] = value
        return options

    def from_query(self, query: Mapping[str, list[str]]) -> dict:
        """Launch-link options, as they come in a URL: `image`, and `repo` with `ref` and
        `path` (a file to open). Single values only; any other key is passed on for
        check() to refuse by name."""
        options: dict = {}
        repo: dict = {}
        for key, values in query.items():
            if isinstance(values, (list, tuple)):
                if len(values) != 1:
                    raise OptionError(f"The link gives {describe(key)} more than once.")
                values = values[0]
            if key in LINK_REPO_KEYS and isinstance(values, str):
                repo[LINK_REPO_KEYS[key]] = values
            else:
                options[key] = values
        if repo:
            if "url" not in repo:
                raise OptionError("The link gives a ref or path but no repository (repo=https://...).")
            options["repo"] = repo
        return options
