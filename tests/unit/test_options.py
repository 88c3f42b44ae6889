"""The one validation path shared by the form, links and the REST API (formspawner.options)."""

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formspawner.env import BUILTIN_DENIED, EnvPolicy
from formspawner.errors import OptionError, PolicyError
from formspawner.options import OptionSet

IMAGES = [
    {"name": "minimal", "image": "jhtest/singleuser:minimal"},
    {"name": "scipy", "image": "jhtest/singleuser:scipy"},
]
POLICY = {"fixed": {"TZ": "UTC"}, "defaults": {"OMP_NUM_THREADS": "1"}, "deny_patterns": ["^AWS_"]}
OPTIONS = OptionSet.from_config(["image", "env"], IMAGES, POLICY)


def test_form_fields_become_the_same_options_as_the_rest_api_body():
    form = {"image": ["scipy"], "env": ["A=1\nB=2"], "_xsrf": ["token"]}
    assert OPTIONS.from_form(form) == {"image": "scipy", "env": {"A": "1", "B": "2"}}


def test_check_returns_each_pieces_value():
    checked = OPTIONS.check({"image": "scipy", "env": {"A": "1"}}, [])
    assert checked["image"].image == "jhtest/singleuser:scipy"
    assert checked["env"] == {"A": "1"}


def test_empty_options_mean_defaults():
    checked = OPTIONS.check({}, [])
    assert checked["image"].name == "minimal"
    assert checked["env"] is None


@pytest.mark.parametrize("options", [{"imagee": "scipy"}, {"cmd": "bash"}, {"image": "scipy", "extra": 1}])
def test_unknown_keys_are_refused_naming_the_key(options):
    with pytest.raises(OptionError, match="Unknown option"):
        OPTIONS.check(options, [])


def test_options_that_are_switched_off_are_refused():
    env_only = OptionSet.from_config(["env"], IMAGES, POLICY)
    with pytest.raises(OptionError, match="Unknown option 'image'. This hub accepts: env"):
        env_only.check({"image": "scipy"}, [])


@pytest.mark.parametrize("options", [["image"], "image=scipy", 42])
def test_options_must_be_an_object(options):
    with pytest.raises(OptionError, match="must be a JSON object"):
        OPTIONS.check(options, [])


def test_links_may_choose_an_image_but_never_environment_variables():
    query = OPTIONS.from_query({"image": ["scipy"]})
    assert OPTIONS.check(query, [], from_link=True)["image"].name == "scipy"
    with pytest.raises(OptionError, match="A link cannot set 'env'"):
        link = OPTIONS.from_query({"image": ["scipy"], "env": ["PIP_INDEX_URL=https://evil"]})
        OPTIONS.check(link, [], from_link=True)


def test_a_link_repeating_a_key_is_refused():
    with pytest.raises(OptionError, match="more than once"):
        OPTIONS.from_query({"image": ["scipy", "minimal"]})


@pytest.mark.parametrize(
    "form_options, message",
    [(["image", "cmd"], "unknown option.*'cmd'"), (["env", "env"], "lists an option twice")],
)
def test_form_options_mistakes_fail_at_config_time(form_options, message):
    with pytest.raises(PolicyError, match=message):
        OptionSet.from_config(form_options, IMAGES, POLICY)


def test_image_option_needs_a_container_spawner():
    with pytest.raises(PolicyError, match="needs a container spawner"):
        OptionSet.from_config(["image"], IMAGES, POLICY, supports_image=False)


def test_a_broken_policy_fails_even_when_its_option_is_off():
    with pytest.raises(PolicyError, match="allow_pattern"):
        OptionSet.from_config(["image"], IMAGES, {"allow_pattern": "("})


# -- Hypothesis: no input crashes the parser or gets a denied name through ----------

denied_names = st.sampled_from(BUILTIN_DENIED).flatmap(
    lambda p: st.text(alphabet=string.ascii_letters + string.digits + "_", max_size=8).map(
        lambda suffix: p.replace(".*", suffix)
    )
)
case_variants = denied_names.flatmap(
    lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
        lambda flips: "".join(c.swapcase() if f else c for c, f in zip(n, flips, strict=True))
    )
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_no_form_text_crashes_the_parser_or_passes_a_denied_name(text):
    try:
        options = OPTIONS.from_form({"env": [text]})
        checked = OPTIONS.check(options, [])
    except OptionError:
        return
    policy = EnvPolicy.from_config(POLICY)
    for name in checked["env"]:
        assert not policy.is_denied(name)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(case_variants | st.text(max_size=30), st.text(max_size=30), max_size=8))
def test_denied_names_never_pass_in_any_case(env):
    try:
        checked = OPTIONS.check({"env": env}, [])
    except OptionError:
        return
    lowered = [p.lower() for p in BUILTIN_DENIED]
    for name in checked["env"]:
        assert not any(re.fullmatch(p, name.lower()) for p in lowered)
        assert name.upper() != "TZ" and not name.upper().startswith("AWS_")


@settings(max_examples=300, deadline=None)
@given(any_json)
def test_any_json_body_is_either_accepted_or_refused_with_option_error(body):
    try:
        OPTIONS.check(body, [])
    except OptionError:
        pass
    try:
        OPTIONS.check({"image": body, "env": body}, [])
    except OptionError:
        pass


# -- The repo piece ---------------------------------------------------------------

REPO_OPTIONS = OptionSet.from_config(["image", "repo"], IMAGES, POLICY, {"allowed_hosts": ["github.com"]})


def test_repo_form_fields_become_the_rest_api_body_and_empty_means_no_build():
    form = {"image": ["scipy"], "repo_url": ["https://github.com/course/lab1"], "repo_ref": ["main"]}
    options = REPO_OPTIONS.from_form(form)
    assert options == {"image": "scipy", "repo": {"url": "https://github.com/course/lab1", "ref": "main"}}
    assert REPO_OPTIONS.check(options, [])["repo"].url == "https://github.com/course/lab1"
    empty = REPO_OPTIONS.from_form({"image": ["scipy"], "repo_url": [""], "repo_ref": [""]})
    assert empty == {"image": "scipy"} and REPO_OPTIONS.check(empty, [])["repo"] is None


def test_a_link_names_image_repository_ref_and_file_to_open():
    link = REPO_OPTIONS.from_query(
        {"image": ["scipy"], "repo": ["https://github.com/course/lab1"], "ref": ["main"], "path": ["week 1/lab.ipynb"]}
    )
    assert link == {
        "image": "scipy",
        "repo": {"url": "https://github.com/course/lab1", "ref": "main", "path": "week 1/lab.ipynb"},
    }
    checked = REPO_OPTIONS.check(link, [], from_link=True)
    assert checked["image"].name == "scipy" and checked["repo"].path == "week 1/lab.ipynb"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"env": ["PIP_INDEX_URL=https://evil"]}, "Unknown option 'env'"),
        ({"ref": ["main"]}, "no repository"),
        ({"repo": ["https://github.com/o/r"], "path": ["../../etc/passwd"]}, "not a path inside the repository"),
        ({"repo": ["https://github.com/o/r"], "ref": ["--upload-pack=x"]}, "not a branch, tag or commit"),
        ({"repo": ["http://github.com/o/r"]}, "Only https"),
        ({"cmd": ["sh"]}, "Unknown option 'cmd'"),
        ({"image": ["docker.io/evil/image"]}, "Unknown image"),
    ],
)
def test_bad_links_are_refused_with_a_message(query, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        REPO_OPTIONS.check(REPO_OPTIONS.from_query(query), [], from_link=True)


def test_a_link_can_never_set_environment_variables_even_when_the_env_option_is_on():
    options = OptionSet.from_config(["image", "env", "repo"], IMAGES, POLICY, {})
    with pytest.raises(OptionError, match="A link cannot set 'env'"):
        options.check(options.from_query({"repo": ["https://github.com/o/r"], "env": ["A=1"]}), [], from_link=True)


def test_repo_needs_a_container_spawner_and_its_policy_is_checked_when_off():
    with pytest.raises(PolicyError, match="'repo' needs a container spawner"):
        OptionSet.from_config(["env", "repo"], IMAGES, POLICY, {}, supports_image=False)
    with pytest.raises(PolicyError, match="repo_policy: unknown key"):
        OptionSet.from_config(["image"], IMAGES, POLICY, {"allowed_host": ["github.com"]})


@settings(max_examples=200, deadline=None)
@given(any_json)
def test_any_json_repo_value_is_either_accepted_or_refused_with_option_error(body):
    try:
        REPO_OPTIONS.check({"repo": body}, [])
    except OptionError:
        pass
    try:
        REPO_OPTIONS.check({"repo": {"url": body, "ref": body}}, [])
    except OptionError:
        pass
