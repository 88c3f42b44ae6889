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


def render_form(option_set, previous: Mapping, groups: Sequence[str]) -> str:
    """The form's inner HTML (JupyterHub wraps it in its own <form> and Start button)."""
    pieces = [
        {"key": p.key, "template": p.template, **p.form_context(previous, groups)}
        for p in option_set.pieces
    ]
    return _templates.get_template("form.html").render(pieces=pieces)
