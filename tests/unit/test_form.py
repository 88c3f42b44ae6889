"""The spawn form's HTML (formspawner.form)."""

import asyncio
from html.parser import HTMLParser

from formspawner.form import render_form
from formspawner.options import OptionSet

HOSTILE = "<script>alert('x')</script>\"'&"
IMAGES = [
    {"name": "minimal", "display_name": HOSTILE, "description": HOSTILE, "image": "a"},
    {"name": "scipy", "display_name": "SciPy", "description": "Science stack", "image": "b"},
    {"name": "gpu", "display_name": "GPU", "image": "c", "groups": ["gpu-users"],
     "resources": {"mem_limit": "16G", "cpu_limit": 8, "gpus": 1}},
]
POLICY = {"fixed": {"TZ": "UTC"}, "defaults": {"OMP_NUM_THREADS": "1"}}
OPTIONS = OptionSet.from_config(["image", "env"], IMAGES, POLICY)


class Inputs(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.radios, self.checked, self.textareas, self.scripts = [], [], {}, 0
        self._in_textarea = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "input" and attrs.get("type") == "radio":
            self.radios.append(attrs["value"])
            if "checked" in attrs:
                self.checked.append(attrs["value"])
        if tag == "textarea":
            self._in_textarea = attrs["name"]
            self.textareas[attrs["name"]] = ""

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._in_textarea = None

    def handle_data(self, data):
        if self._in_textarea:
            self.textareas[self._in_textarea] += data


def test_form_lists_visible_images_with_descriptions_and_preselects_the_default():
    html = render_form(OPTIONS, {}, [])
    form = Inputs(html)
    assert form.radios == ["minimal", "scipy"]
    assert form.checked == ["minimal"]
    assert "Science stack" in html


def test_group_members_see_their_group_images():
    assert Inputs(render_form(OPTIONS, {}, ["gpu-users"])).radios == ["minimal", "scipy", "gpu"]


def test_a_choices_resources_are_shown_next_to_it_and_only_to_those_who_may_choose_it():
    summary = "16 GB memory, 8 CPUs, 1 GPU"
    assert summary in render_form(OPTIONS, {}, ["gpu-users"])
    assert summary not in render_form(OPTIONS, {}, [])


def test_form_preselects_the_last_choice_and_ignores_one_no_longer_allowed():
    assert Inputs(render_form(OPTIONS, {"image": "scipy"}, [])).checked == ["scipy"]
    assert Inputs(render_form(OPTIONS, {"image": "gpu"}, [])).checked == ["minimal"]
    assert Inputs(render_form(OPTIONS, {"image": ["not", "a", "string"]}, [])).checked == ["minimal"]


def test_inventory_and_user_text_is_escaped():
    html = render_form(OPTIONS, {"env": {"NOTE": "</textarea><script>alert(2)</script>"}}, [])
    form = Inputs(html)
    assert form.scripts == 0
    assert "&lt;script&gt;" in html
    assert form.textareas["env"] == "NOTE=</textarea><script>alert(2)</script>"


def test_env_field_is_prefilled_with_defaults_then_with_the_last_values_but_not_secrets():
    assert Inputs(render_form(OPTIONS, {}, [])).textareas["env"] == "OMP_NUM_THREADS=1"
    html = render_form(OPTIONS, {"env": {"A": "1", "MY_TOKEN": "s3cr3t"}}, [])
    assert Inputs(html).textareas["env"] == "A=1"
    assert "s3cr3t" not in html
    assert "MY_TOKEN" in html


def test_fixed_variables_are_named_in_the_help_text():
    assert "<code>TZ</code>" in render_form(OPTIONS, {}, [])


def test_no_javascript_is_needed_to_submit():
    html = render_form(OPTIONS, {}, [])
    assert Inputs(html).scripts == 0
    assert 'name="image"' in html and 'name="env"' in html


def test_the_launch_link_helper_takes_image_and_repository_never_env():
    options = OptionSet.from_config(["image", "env", "repo"], IMAGES, POLICY, {"allowed_hosts": ["github.com"]})
    html = render_form(options, {}, [], launch_url="/hub/launch")
    assert Inputs(html).scripts == 1 and 'id="copy-launch-link"' in html
    assert '"/hub/launch"' in html  # data reaches the script through |tojson only
    assert '"param": "repo"' in html and '"param": "image"' in html
    assert 'name=env' not in html.split("<script>")[1] and '"env"' not in html.split("<script>")[1]
    assert 'id="copy-launch-link"' not in render_form(options, {}, [])  # no helper without the launch page


def test_text_that_did_not_parse_is_shown_again_as_typed_without_secret_lines():
    html = render_form(OPTIONS, {"image": "scipy", "env": "GOOD=1\nNOEQUALS\nDB_PASSWORD=hunter2"}, [])
    form = Inputs(html)
    assert form.textareas["env"] == "GOOD=1\nNOEQUALS"
    assert form.checked == ["scipy"]
    assert "hunter2" not in html and "DB_PASSWORD" in html


def test_repo_field_shows_the_allowed_hosts_and_the_last_values_escaped():
    options = OptionSet.from_config(["image", "repo"], IMAGES, POLICY, {"allowed_hosts": ["github.com"]})
    html = render_form(options, {"repo": {"url": HOSTILE, "ref": "main"}}, [])
    assert 'name="repo_url"' in html and 'name="repo_ref"' in html and 'value="main"' in html
    assert "<code>github.com</code>" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html
    # The default ref (HEAD) is shown as an empty field, as the user left it.
    assert 'value=""' in render_form(options, {"repo": {"url": "https://github.com/o/r", "ref": "HEAD"}}, [])


def test_the_repository_help_says_what_the_spawner_does_with_the_files():
    """Issue 47: the text comes from the setting the behaviour comes from (the spawner's
    _content_storage): kept and merged in the user's storage, or in the server only. The
    same through a real hub, beside the behaviour: tests/integration/test_course_content.py
    (kept) and test_repo_launches.py (not kept)."""
    from types import SimpleNamespace

    from formspawner import FormDockerSpawner, FormSwarmSpawner

    def form(spawner_class, **config):
        s = spawner_class(form_options=["image", "repo"], images=IMAGES[:1], **config)
        s.user = SimpleNamespace(name="ada", groups=[], url="/user/ada/", id=1, allow_named_servers=False)
        return " ".join(asyncio.run(s.get_options_form()).split())

    name = "jupyterhub-user-{username}"
    volume = {"volumes": {name: "/home/jovyan/work"}, "home_volume": name}
    kept = form(FormDockerSpawner, **volume)
    assert "opens in a folder of its name in your storage, <code>/home/jovyan/work</code>" in kept
    assert "Your changes there are kept when your server stops, and each launch merges" in kept
    assert "not kept when your server stops" not in kept
    for spawner_class, config in ((FormDockerSpawner, {}), (FormSwarmSpawner, volume)):
        unkept = form(spawner_class, **config)
        assert "Changes inside the repository's folder are not kept when your server stops" in unkept
        assert "in your storage" not in unkept
