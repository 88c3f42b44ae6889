"""Admin mistakes in the spawner's traits fail when the config loads, naming the setting."""

import pytest
from traitlets.config import Config

from formspawner import FormDockerSpawner, FormLocalProcessSpawner, PolicyError


def test_bad_policy_fails_when_the_spawner_is_configured():
    with pytest.raises(PolicyError, match="env_policy.allow_pattern is not a valid regular expression"):
        FormDockerSpawner(env_policy={"allow_pattern": "[unclosed"})
    with pytest.raises(PolicyError, match="used by more than one entry"):
        FormDockerSpawner(images=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])
    with pytest.raises(PolicyError, match="unknown option"):
        FormDockerSpawner(form_options=["image", "repo2"])


def test_check_config_reads_a_config_section_as_jupyterhub_config_py_writes_it():
    c = Config()
    c.FormDockerSpawner.images = [
        {"name": "a", "image": "x", "default": True},
        {"name": "b", "image": "y", "default": True},
    ]
    with pytest.raises(PolicyError, match="more than one entry is marked default"):
        FormDockerSpawner.check_config(c.FormDockerSpawner)
    FormDockerSpawner.check_config(Config().FormDockerSpawner)


def test_local_process_spawner_offers_env_only_and_refuses_the_image_option():
    assert FormLocalProcessSpawner().form_options == ["env"]
    with pytest.raises(PolicyError, match="needs a container spawner"):
        FormLocalProcessSpawner(form_options=["image", "env"])


def test_docker_spawner_removes_containers_on_stop_by_default():
    assert FormDockerSpawner().remove is True


def test_the_options_hooks_are_the_spawners_own():
    spawner = FormDockerSpawner(images=[{"name": "a", "image": "x"}])
    assert spawner.options_from_form == spawner._options_from_form
    assert spawner.apply_user_options.__name__ == "_apply_form_options"


def test_option_set_is_built_once_and_rebuilt_when_the_policy_changes():
    spawner = FormDockerSpawner(images=[{"name": "a", "image": "x"}])
    first = spawner.option_set
    assert spawner.option_set is first
    spawner.images = [{"name": "b", "image": "y"}]
    assert spawner.option_set is not first
    assert spawner.option_set.pieces[0].catalog.default_name == "b"


def test_a_malformed_line_keeps_the_typed_text_for_the_form_shown_again():
    import asyncio

    from jupyterhub.spawner import SpawnException

    spawner = FormDockerSpawner(images=[{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])
    with pytest.raises(SpawnException, match="Line 2 of the environment field is not NAME=value"):
        spawner._options_from_form({"image": ["b"], "env": ["OK=1\nBROKEN"], "_xsrf": ["t"]})
    html = asyncio.run(spawner.get_options_form())
    assert "OK=1\nBROKEN" in html and 'value="b" checked' in html


def test_errors_are_400s_on_jupyterhub_5_too(monkeypatch):
    """JupyterHub 5 has no SpawnException: a tornado HTTPError carries the message instead."""
    import jupyterhub.spawner
    from tornado.web import HTTPError

    from formspawner.errors import OptionError, as_http_error

    monkeypatch.delattr(jupyterhub.spawner, "SpawnException")
    error = as_http_error(OptionError("Pattern 100% wrong"))
    assert isinstance(error, HTTPError) and error.status_code == 400
    assert error.log_message % error.args == "Pattern 100% wrong"
    assert not error.reason


def test_the_form_shows_the_sentence_alone():
    from jupyterhub.utils import format_exception

    from formspawner.errors import OptionError, as_http_error

    message, html = format_exception(as_http_error(OptionError("Variable 'PATH' is reserved.")))
    assert message == "Variable 'PATH' is reserved." and html is None


def test_a_repo_policy_typo_fails_when_the_spawner_is_configured():
    with pytest.raises(PolicyError, match="repo_policy.build_timeout"):
        FormDockerSpawner(form_options=["image", "repo"], repo_policy={"build_timeout": "15m"})
    c = Config()
    c.FormDockerSpawner.repo_policy = {"allowed_hosts": ["https://github.com"]}
    with pytest.raises(PolicyError, match="allowed_hosts"):
        FormDockerSpawner.check_config(c.FormDockerSpawner)
    with pytest.raises(PolicyError, match="needs a container spawner"):
        FormLocalProcessSpawner(form_options=["env", "repo"])


def test_only_a_repository_start_gets_the_longer_start_timeout(monkeypatch):
    """The ref lookup is replaced here (it needs a Git server: the integration tests
    use a real one); what is tested is which start gets which timeout and image."""
    import asyncio
    from types import SimpleNamespace

    from formspawner import git

    monkeypatch.setattr(git, "resolve_commit", lambda request, policy: ("c" * 40, "refs/heads/main"))
    spawner = FormDockerSpawner(
        user=SimpleNamespace(name="ada", groups=[]),
        images=[{"name": "a", "image": "x"}],
        form_options=["image", "repo"],
        repo_policy={"build_timeout": 600},
        start_timeout=60,
        default_url="/lab",
    )
    apply = spawner.apply_user_options
    asyncio.run(apply(spawner, {"image": "a", "repo": {"url": "https://github.com/o/r"}}))
    assert spawner.start_timeout == 660 and spawner.repo_request.name == "r"
    # What a repository start changes (image, folder, URL) is undone before the next start.
    spawner.image, spawner.default_url = "formspawner-repo/github-com-o-r:abc", "/lab/tree/r"
    asyncio.run(apply(spawner, {"image": "a"}))
    assert (spawner.start_timeout, spawner.image, spawner.default_url, spawner.repo_request) == (60, "x", "/lab", None)


def test_a_spawn_link_comes_back_as_the_filled_in_form_and_starts_nothing():
    import asyncio
    from types import SimpleNamespace

    from jupyterhub.spawner import SpawnException

    from formspawner.errors import LaunchConfirmation

    spawner = FormDockerSpawner(
        user=SimpleNamespace(name="ada", groups=[]),
        images=[{"name": "a", "image": "x", "display_name": "<script>alert(1)</script>"}],
        form_options=["image", "env", "repo"],
        repo_policy={"allowed_hosts": ["github.com"]},
    )
    with pytest.raises(LaunchConfirmation):
        spawner.options_from_query({"image": ["a"], "repo": ["https://github.com/course/lab1"], "ref": ["v2"]})
    # The form shown with it is filled in from the link; Start submits it as a form.
    form = asyncio.run(spawner.get_options_form())
    assert 'value="https://github.com/course/lab1"' in form and 'value="v2"' in form
    notice = form.split('id="formspawner-link-notice"')[1].split("</div>")[0]
    assert "&lt;script&gt;" in notice and "<script>" not in notice
    assert "<code>https://github.com/course/lab1</code>" in notice and "<code>v2</code>" in notice
    assert 'id="formspawner-link-notice"' not in asyncio.run(spawner.get_options_form())  # shown once
    with pytest.raises(SpawnException, match="A link cannot set 'env'"):
        spawner.options_from_query({"env": ["PYTHONPATH=/tmp/evil"]})


def test_a_ca_bundle_that_is_not_a_file_on_the_hubs_host_stops_the_hub_naming_it(tmp_path):
    """Checked at start-up (jupyterhub_config.py's check), not at the first spawn, where the
    bundle would be mounted into every server and every build would fail."""
    from formspawner import FormDockerSpawner
    from formspawner.errors import PolicyError

    missing = tmp_path / "campus-ca.pem"
    with pytest.raises(PolicyError, match=rf"^FormDockerSpawner.ca_bundle: {missing} is not a file on this host$"):
        FormDockerSpawner.check_config({"ca_bundle": str(missing)})
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    FormDockerSpawner.check_config({"ca_bundle": str(missing)})
