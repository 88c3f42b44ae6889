"""The curated images users choose from. Users send an entry's `name`, never an image reference."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import OptionError, PolicyError, describe

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
ENTRY_KEYS = {"name", "display_name", "image", "description", "default", "groups"}


@dataclass(frozen=True)
class ImageChoice:
    name: str
    image: str
    display_name: str
    description: str = ""
    groups: tuple[str, ...] = ()

    def visible_to(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))


@dataclass(frozen=True)
class ImageCatalog:
    """The `images` trait, checked. An empty catalog offers no choice at all."""

    choices: tuple[ImageChoice, ...] = ()
    default_name: str | None = None

    @classmethod
    def from_config(cls, entries: Sequence | None, setting: str = "images") -> ImageCatalog:
        if entries is None:
            return cls()
        if not isinstance(entries, (list, tuple)):
            raise PolicyError(f"{setting} must be a list of image entries")
        choices, defaults = [], []
        for index, entry in enumerate(entries):
            where = f"{setting}[{index}]"
            if not isinstance(entry, Mapping):
                raise PolicyError(f"{where} must be a mapping with at least 'name' and 'image'")
            unknown = sorted(set(entry) - ENTRY_KEYS)
            if unknown:
                raise PolicyError(
                    f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                    f"known keys are {', '.join(sorted(ENTRY_KEYS))}"
                )
            name = entry.get("name")
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                raise PolicyError(
                    f"{where}.name must be a short slug (lower-case letters, digits, '.', '_', '-'), not {name!r}"
                )
            where = f"{setting}[{index}] ({name})"
            image = entry.get("image")
            if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
                raise PolicyError(
                    f"{where}.image must be an image reference such as quay.io/jupyter/minimal-notebook:TAG"
                )
            display_name = entry.get("display_name", name)
            description = entry.get("description", "")
            for key, value in (("display_name", display_name), ("description", description)):
                if not isinstance(value, str):
                    raise PolicyError(f"{where}.{key} must be a string")
            groups = entry.get("groups") or []
            if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) and g for g in groups):
                raise PolicyError(f"{where}.groups must be a list of JupyterHub group names")
            is_default = entry.get("default", False)
            if not isinstance(is_default, bool):
                raise PolicyError(f"{where}.default must be true or false")
            if name in {c.name for c in choices}:
                raise PolicyError(f"{setting}: the name {name!r} is used by more than one entry")
            choice = ImageChoice(name, image, display_name, description, tuple(groups))
            choices.append(choice)
            if is_default:
                defaults.append(choice)
        if len(defaults) > 1:
            raise PolicyError(
                f"{setting}: more than one entry is marked default ({', '.join(c.name for c in defaults)})"
            )
        if defaults:
            default = defaults[0]
            if default.groups:
                raise PolicyError(
                    f"{setting}: the default image {default.name!r} is limited to groups; "
                    "the default must be available to every user"
                )
        else:
            default = next((c for c in choices if not c.groups), None)
            if choices and default is None:
                raise PolicyError(
                    f"{setting}: no default image: every entry is limited to groups, so some users "
                    "would have none. Add an entry without groups or mark one default."
                )
        return cls(tuple(choices), default.name if default else None)

    def __bool__(self) -> bool:
        return bool(self.choices)

    def visible_to(self, groups: Iterable[str]) -> list[ImageChoice]:
        groups = list(groups)
        return [c for c in self.choices if c.visible_to(groups)]

    @property
    def default(self) -> ImageChoice | None:
        return next((c for c in self.choices if c.name == self.default_name), None)

    def choose(self, requested: object, groups: Iterable[str]) -> ImageChoice | None:
        """The entry the user asked for (None: the default), if this user may have it."""
        if not self.choices:
            if requested is None:
                return None
            raise OptionError("This hub does not offer a choice of image.")
        if requested is None:
            return self.default
        if not isinstance(requested, str):
            raise OptionError(f"'image' must be the name of an image, not {type(requested).__name__}.")
        visible = self.visible_to(groups)
        for choice in visible:
            if choice.name == requested:
                return choice
        # The same answer for an unknown name and a group-limited one: the message
        # does not tell a user which images exist beyond their own.
        names = ", ".join(c.name for c in visible)
        raise OptionError(f"Unknown image {describe(requested)}. Choose one of: {names}.")
