"""What the spawn form and the launch page are given to show, pinned whole: the form's
context per option (formspawner.options) and a link's summary rows (formspawner.form)."""

from types import SimpleNamespace

import pytest

from formspawner.env import EnvPolicy
from formspawner.form import link_summary, render_form
from formspawner.options import ABSENT, OptionSet

IMAGES = [
    {"name": "minimal", "image": "x/minimal:1", "display_name": "Minimal Python"},
    {"name": "scipy", "image": "x/scipy:1", "default": True},
    {"name": "gpu", "image": "x/gpu:1", "groups": ["gpu-users"]},
]
POLICY = {"fixed": {"TZ": "UTC", "LANG": "C"}, "defaults": {"OMP_NUM_THREADS": "1"}, "max_vars": 7}
OPTIONS = OptionSet.from_config(["image", "env", "repo"], IMAGES, POLICY, {"allowed_hosts": ["github.com"]})
IMAGE, ENV, REPO = OPTIONS.pieces


@pytest.mark.parametrize(
    "previous, groups, selected",
    [
        ({}, [], "scipy"),
        ({"image": "minimal"}, [], "minimal"),
        ({"image": "gpu"}, [], "scipy"),  # not the user's any more
        ({"image": "gpu"}, ["gpu-users"], "gpu"),
        ({"image": ["minimal"]}, [], "scipy"),  # stored options may be anything
    ],
)
def test_the_image_choice_shows_the_users_last_image_when_still_theirs(previous, groups, selected):
    context = IMAGE.form_context(previous, groups)
    assert context["selected"] == selected
    assert [c.name for c in context["choices"]] == ["minimal", "scipy"] + (["gpu"] if groups else [])


def test_without_a_default_the_first_visible_image_is_selected():
    option = OptionSet.from_config(["image"], [{"name": "a", "image": "x/a:1"}, {"name": "b", "image": "x/b:1"}],
                                   None).pieces[0]
    assert option.form_context({"image": "zzz"}, [])["selected"] == "a"


def test_the_env_field_shows_defaults_or_the_users_variables_with_secrets_withheld():
    assert ENV.form_context({}, []) == {"text": "OMP_NUM_THREADS=1", "withheld": [], "fixed": ["LANG", "TZ"],
                                        "max_vars": 7}
    stored = {"A": "1", "MY_TOKEN": "s3cret", "B": 2, 3: "x"}
    assert ENV.form_context({"env": stored}, []) == {"text": "A=1", "withheld": ["MY_TOKEN"],
                                                     "fixed": ["LANG", "TZ"], "max_vars": 7}
    typed = "A=1\nexport API_SECRET=x\nbroken line"
    assert ENV.form_context({"env": typed}, [])["text"] == "A=1\nbroken line"
    assert ENV.form_context({"env": typed}, [])["withheld"] == ["API_SECRET"]
    assert ENV.form_context({"env": ["A=1"]}, [])["text"] == "OMP_NUM_THREADS=1"


def test_the_env_field_reads_the_text_as_typed_and_bounds_it():
    assert ENV.from_form({}) is ABSENT
    assert ENV.from_form({"env": []}) == {}
    assert ENV.from_form({"env": ["A=1", "B=2"]}) == {"A": "1"}
    too_long = "A=" + "x" * EnvPolicy.from_config(POLICY).max_text_length
    with pytest.raises(ValueError, match="too long"):
        ENV.from_form({"env": [too_long]})


def test_applying_env_gives_the_server_the_users_layer_with_fixed_values_on_top():
    spawner = SimpleNamespace()
    ENV.apply(spawner, {"A": "1", "TZ": "Mars"})
    assert spawner.form_env == {"A": "1", "TZ": "UTC", "LANG": "C"}
    ENV.apply(spawner, None)
    assert spawner.form_env == {"OMP_NUM_THREADS": "1", "TZ": "UTC", "LANG": "C"}


@pytest.mark.parametrize(
    "previous, shown",
    [
        ({}, ("", "", "")),
        ({"repo": {"url": "https://github.com/a/b", "ref": "HEAD", "path": "x.ipynb"}},
         ("https://github.com/a/b", "", "x.ipynb")),
        ({"repo": {"url": "https://github.com/a/b", "ref": "dev"}}, ("https://github.com/a/b", "dev", "")),
        ({"repo": {"url": 1, "ref": ["x"], "path": None}}, ("", "", "")),
        ({"repo": "https://github.com/a/b"}, ("", "", "")),
    ],
)
def test_the_repository_fields_show_the_last_request_as_plain_text(previous, shown):
    context = REPO.form_context(previous, [])
    assert (context["url"], context["ref"], context["path"]) == shown
    assert context["hosts"] == ("github.com",)
    assert context["files"] == (
        "apt.txt", "environment.yml", "Pipfile", "requirements.txt", "setup.py", "pyproject.toml", "postBuild"
    )


def test_the_repository_fields_become_the_rest_api_body():
    assert REPO.from_form({"repo_url": [" "], "repo_ref": [""]}) is ABSENT
    assert REPO.from_form({"repo_url": ["u"], "repo_ref": [""], "repo_path": [""]}) == {"url": "u", "ref": ""}
    assert REPO.from_form({"repo_url": ["u"], "repo_path": ["p"]}) == {"url": "u", "ref": "", "path": "p"}


def test_a_links_summary_names_each_thing_it_starts():
    checked = OPTIONS.check(
        {"image": "minimal", "repo": {"url": "https://github.com/a/b", "ref": "HEAD", "path": "x.ipynb"}}, []
    )
    assert link_summary(checked) == [
        ("Image", "Minimal Python"),
        ("Repository", "https://github.com/a/b"),
        ("Ref", "default branch"),
        ("Opens", "x.ipynb"),
    ]
    checked = OPTIONS.check({"repo": {"url": "https://github.com/a/b", "ref": "dev"}}, [])
    assert link_summary(checked)[1:] == [("Repository", "https://github.com/a/b"), ("Ref", "dev")]
    assert link_summary({}) == [("Options", "the defaults")]


def link_fields(html: str) -> str:
    return next(line.strip() for line in html.splitlines() if "var fields =" in line)


def test_the_forms_link_helper_copies_image_and_repository_fields_never_env():
    assert link_fields(render_form(OPTIONS, {}, [], launch_url="/hub/launch")) == (
        'var fields = [{"param": "image", "selector": "input[name=image]:checked"}, '
        '{"param": "repo", "selector": "#repo_url"}, {"param": "ref", "selector": "#repo_ref"}, '
        '{"param": "path", "selector": "#repo_path"}];'
    )
    image_env = OptionSet.from_config(["env", "image"], IMAGES, POLICY)
    assert link_fields(render_form(image_env, {}, [], launch_url="/hub/launch")) == (
        'var fields = [{"param": "image", "selector": "input[name=image]:checked"}];'
    )
    assert "var fields" not in render_form(OptionSet.from_config(["env"], IMAGES, POLICY), {}, [], "/hub/launch")
    assert "var fields" not in render_form(OPTIONS, {}, [])
