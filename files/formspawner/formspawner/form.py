"""The spawn form's HTML: Jinja2 with autoescaping, never string concatenation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape

_templates = Environment(
    loader=PackageLoader("formspawner", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


# The form fields a launch link carries (never env), and their names in the link.
_LINK_FIELDS = {
    "image": [{"selector": "input[name=image]:checked", "param": "image"}],
    "repo": [
        {"selector": "#repo_url", "param": "repo"},
        {"selector": "#repo_ref", "param": "ref"},
        {"selector": "#repo_path", "param": "path"},
    ],
}


def link_summary(checked: Mapping) -> list[tuple[str, str]]:
    """What a launch link asks for, as (label, value) rows for a person to read."""
    rows = []
    image = checked.get("image")
    if image is not None:
        rows.append(("Image", image.display_name))
    repo = checked.get("repo")
    if repo is not None:
        rows.append(("Repository", repo.url))
        rows.append(("Ref", "default branch" if repo.ref == "HEAD" else repo.ref))
        if repo.path:
            rows.append(("Opens", repo.path))
    return rows or [("Options", "the defaults")]


def render_form(
    option_set,
    previous: Mapping,
    groups: Sequence[str],
    launch_url: str | None = None,
    link: list[tuple[str, str]] | None = None,
    servers: Sequence[tuple[str, str, list[tuple[str, str]]]] = (),
    repo_storage: str | None = None,
) -> str:
    """The form's inner HTML (JupyterHub wraps it in its own <form> and Start button).

    With `launch_url`, a "Copy launch link" helper builds a link to the chosen image and
    repository (the only script: the form itself submits without JavaScript). `servers`:
    the user's other servers (named servers), shown above the choices. `repo_storage`:
    where a launched repository's files are kept (the spawner's _content_storage, which
    decides it), None where they live in the server only.
    """
    pieces = [
        {"template": p.template, **p.form_context(previous, groups)}
        for p in option_set.pieces
    ]
    link_keys = [field for p in option_set.pieces if p.from_links for field in _LINK_FIELDS[p.key]]
    return _templates.get_template("form.html").render(
        pieces=pieces, launch_url=launch_url, link_keys=link_keys, link=link, servers=servers,
        repo_storage=repo_storage,
    )
