"""formspawner.launch's pieces that need no running hub: how a link's query is read and how
a refusal's message is told. The page itself (GET shows, POST starts) runs on a real hub in
tests/integration/test_repo_launches.py and tests/integration/test_browser.py."""

import asyncio
from types import SimpleNamespace

import pytest
from tornado import web

from formspawner.launch import LaunchHandler, _message, launch_handlers


def test_the_page_is_served_at_launch_under_the_hubs_prefix():
    assert launch_handlers() == [("/launch", LaunchHandler)]


def test_a_links_query_drops_the_xsrf_token_and_jupyterhubs_opt_prefix():
    request = SimpleNamespace(query_arguments={
        "_xsrf": [b"token"],
        "opt-image": [b"scipy"],
        "repo": [b"https://github.com/course/lab"],
        "ref": [b"main", b"dev"],
        "path": [b"caf\xc3\xa9.ipynb"],
        "bad": [b"\xff"],
    })
    assert LaunchHandler._query(SimpleNamespace(request=request)) == {
        "image": ["scipy"],
        "repo": ["https://github.com/course/lab"],
        "ref": ["main", "dev"],
        "path": ["café.ipynb"],
        "bad": ["\ufffd"],
    }


@pytest.mark.parametrize(
    "error, text",
    [
        (web.HTTPError(400, "Unknown image %r", "x"), "Unknown image 'x'"),
        # A user's text with "%" in it (a URL's %2F) is shown as it was written.
        (web.HTTPError(400, "https://h/a%2Fb is not allowed"), "https://h/a%2Fb is not allowed"),
        (web.HTTPError(400, "%d of %d", 1), "%d of %d"),
        (web.HTTPError(400, "plain text"), "plain text"),
        (web.HTTPError(400), "Bad request"),
    ],
)
def test_a_refusal_is_told_with_its_own_words(error, text):
    assert _message(error) == text


def test_jupyterhubs_own_message_comes_first():
    error = web.HTTPError(400, "log text")
    error.jupyterhub_message = "Shown to the user"
    assert _message(error) == "Shown to the user"


class Page:
    """Stands in for the handler's hub side: JupyterHub's page.html frame (a bare block
    here; the real frame is served by a real hub in tests/integration), its template
    namespace and XSRF token, and what the handler sends back."""

    def __init__(self):
        from jinja2 import DictLoader, Environment

        frame = DictLoader({"page.html": "<main>{% block main %}{% endblock %}</main>"})
        self.settings = {"jinja2_env": Environment(loader=frame, autoescape=True, enable_async=True)}
        self.template_namespace = {"base_url": "/hub/"}
        self.xsrf_token = b"xsrf-123"
        self.status = None
        self.body = None

    def set_status(self, status):
        self.status = status

    def finish(self, body):
        self.body = body

    async def _render(self, status=200, **ns):
        await LaunchHandler._render(self, status, **ns)


async def test_the_page_renders_its_rows_the_xsrf_token_and_the_status():
    page = Page()
    await LaunchHandler._render(page, heading="Start <it>?", requested=[("Image", "SciPy")], action="/hub/launch?x",
                                button="Launch")
    assert page.status == 200
    assert "<h1 class=\"text-center mb-4\">Start &lt;it&gt;?</h1>" in page.body
    assert '<input type="hidden" name="_xsrf" value="xsrf-123">' in page.body
    assert "<dt class=\"col-sm-3\">Image</dt><dd class=\"col-sm-9\"><code>SciPy</code></dd>" in page.body
    assert '<a class="btn btn-link" href="/hub/spawn">Choose other options</a>' in page.body


async def test_a_refused_link_is_a_400_page_with_the_reason():
    page = Page()
    await LaunchHandler._refuse(page, web.HTTPError(400, "Unknown image %r", "x"))
    assert page.status == 400
    assert '<h1 class="text-center mb-4">This launch link cannot be used</h1>' in page.body
    assert '<p class="alert alert-danger" id="launch-error">Unknown image &#39;x&#39;</p>' in page.body
    assert "launch-start" not in page.body


async def test_a_link_that_builds_says_whose_files_and_access_the_code_gets():
    page = Page()
    await LaunchHandler._render(page, heading="Start?", requested=[("Repository", "https://h/a/b")], builds=True,
                                action="/hub/launch", button="Launch")
    assert ('<p class="alert alert-warning" id="launch-trust">The repository\'s code runs in your own server, '
            "with your files and your access to this hub") in page.body
    plain = Page()
    await LaunchHandler._render(plain, heading="Start?", requested=[("Image", "SciPy")], builds=False,
                                action="/hub/launch", button="Launch")
    assert "launch-trust" not in plain.body and "launch-kept" not in plain.body


async def test_a_link_with_a_repository_says_whether_its_files_are_kept():
    """Issue 47: as the form, from the spawner's _content_storage (the same through a real
    hub: tests/integration/test_course_content.py)."""
    kept, unkept = Page(), Page()
    for page, storage in ((kept, "/home/jovyan/work"), (unkept, None)):
        await LaunchHandler._render(page, heading="Start?", requested=[("Repository", "https://h/a/b")], builds=True,
                                    repo_storage=storage, action="/hub/launch", button="Launch")  # fmt: skip
    assert ("It opens in a folder of its name in your storage, <code>/home/jovyan/work</code>: your changes there "
            "are kept when your server stops, and each launch merges") in kept.body
    assert "not kept when your server stops" in unkept.body and "in your storage" not in unkept.body


def test_a_link_to_a_named_server_on_a_hub_without_them_is_refused_naming_the_fix():
    """A link naming a server where the hub runs one server per user is a 400 with what to
    change, never a start of the default server in its place (nothing is made by looking)."""
    import asyncio

    default = object()
    handler = SimpleNamespace(
        request=SimpleNamespace(query_arguments={"server": [b"lab"]}), allow_named_servers=False
    )
    handler._server_name = lambda: LaunchHandler._server_name(handler)
    user = SimpleNamespace(spawners={"": default}, orm_spawners={})
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(LaunchHandler._server(handler, user))
    assert (refused.value.status_code, refused.value.log_message) == (
        400, "This hub runs one server per user: remove server= from the link."
    )
    handler.request.query_arguments = {}
    assert asyncio.run(LaunchHandler._server(handler, user)) == ("", default)


def test_a_link_to_a_named_server_gets_that_server_or_the_default_as_stand_in_after_jupyterhubs_checks():
    """An existing named server is the link's; a new name is checked by JupyterHub's own
    rules (the user's limit, the name) and the default server's spawner stands in for it
    until the start makes it. A name that is not UTF-8 reaches those rules, not a 500."""
    import asyncio

    default, lab = object(), object()
    checked = []

    async def check(user, server_name, name):
        checked.append((user, server_name, name))
        if "\ufffd" in name:
            raise web.HTTPError(400, "Invalid server_name")

    handler = SimpleNamespace(request=SimpleNamespace(query_arguments={"server": [b"lab"]}), allow_named_servers=True,
                              _check_named_server_request=check)  # fmt: skip
    handler._server_name = lambda: LaunchHandler._server_name(handler)
    user = SimpleNamespace(spawners={"": default, "lab": lab}, orm_spawners={"lab": object()})
    assert asyncio.run(LaunchHandler._server(handler, user)) == ("lab", lab)
    assert checked == []  # an existing server is the user's already
    handler.request.query_arguments = {"server": [b"new"]}
    assert asyncio.run(LaunchHandler._server(handler, user)) == ("new", default)
    assert checked == [(user, "new", "new")]
    handler.request.query_arguments = {"server": [b"caf\xff"]}
    with pytest.raises(web.HTTPError, match="Invalid server_name"):
        asyncio.run(LaunchHandler._server(handler, user))
    assert checked[-1][1:] == ("caf\ufffd", "caf\ufffd")


class _Spawner:
    def __init__(self, active=False, refuse=None):
        self.active, self.pending, self.refuse, self.asked = active, None, refuse, None

    def link_options(self, query):
        self.asked = query
        if self.refuse:
            raise web.HTTPError(400, self.refuse)
        return {"image": query["image"][0]}, {}


def _arrival(spawner, started: list):
    async def spawn_single_user(user, name, options=None):
        started.append((name, options))

    log = SimpleNamespace(info=lambda *a: None, exception=lambda *a: None)
    handler = SimpleNamespace(hub=SimpleNamespace(base_url="/hub/"), log=log, spawn_single_user=spawn_single_user)
    user = SimpleNamespace(name="ada", escaped_name="ada", spawners={"": spawner})
    return handler, user


@pytest.mark.parametrize(
    "next_url, spawner, lands",
    [
        ("/hub/launch?image=ml&_xsrf=x", _Spawner(), "/hub/spawn-pending/ada"),  # starts, then its progress page
        ("/hub/home", _Spawner(), None),  # not a launch link: where the course's link points
        ("/hub/launch?image=ml&server=lab", _Spawner(), None),  # a named server: the page decides
        ("/hub/launch?image=ml", _Spawner(active=True), None),  # running: the page opens it or asks
        ("/hub/launch?image=gpu", _Spawner(refuse="not yours"), None),  # refused: the page says why
    ],
)
def test_an_lms_arrival_at_a_launch_link_starts_the_default_server_only_where_the_page_would_not_ask(
    next_url, spawner, lands, monkeypatch
):
    from formspawner import launch
    from formspawner.launch import start_on_arrival

    started = []
    handler, user = _arrival(spawner, started)
    monkeypatch.setattr(launch, "_may_start_own_server", lambda user: True)
    assert asyncio.run(start_on_arrival(handler, user, next_url)) == lands
    assert started == ([("", {"image": "ml"})] if lands else [])
    if lands:
        assert "_xsrf" not in spawner.asked


def test_an_lms_arrival_starts_nothing_for_a_user_whose_roles_do_not_let_them_start_servers(monkeypatch):
    from formspawner import launch

    started = []
    handler, user = _arrival(_Spawner(), started)
    monkeypatch.setattr(launch, "_may_start_own_server", lambda user: False)
    assert asyncio.run(launch.start_on_arrival(handler, user, "/hub/launch?image=ml")) is None
    assert started == []
