"""The launch page: /hub/launch?image=NAME&repo=URL&ref=REF&path=FILE, for course pages.
With named servers on, `&server=NAME` opens the user's server of that name: it is made
(within the hub's per-user limit and JupyterHub's rules for names) or reused.

A link only describes what to start. The page checks it (the same rules as the form and
the REST API, as links: never environment variables), shows it, and starts nothing until
the user presses its button (a POST with JupyterHub's XSRF token). If the user's server
is already running with other options, the page says so and offers to stop it and
start the requested one; it never restarts a server on its own.

One arrival starts without the page: a launch from the LMS (LTI 1.3) whose target is a
launch link (`start_on_arrival`). The student's click in their course, signed by the
platform and bound to this browser's login state, is the confirmation; the rules are the
link's, and a server already running (or a link the page would refuse) goes to the page.

Registered in jupyterhub_config.py with
    c.JupyterHub.extra_handlers = formspawner.launch_handlers()
(JupyterHub serves it under the hub's prefix, /hub/launch).
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from urllib.parse import parse_qs, urlparse

from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import url_path_join
from tornado import web

from .errors import OptionError
from .form import link_summary

# Rendered by the hub's own Jinja environment (autoescaping, page.html as the frame).
PAGE = resources.files("formspawner").joinpath("templates/launch.html").read_text()


def launch_handlers() -> list:
    """What jupyterhub_config.py adds to c.JupyterHub.extra_handlers."""
    return [(r"/launch", LaunchHandler)]


def _message(error: web.HTTPError) -> str:
    """The words to show for a refusal. JupyterHub's message is plain text; tornado keeps
    log_message a format string (it doubles each "%" when there are no arguments)."""
    text = getattr(error, "jupyterhub_message", None)
    if text:
        return text
    if not error.log_message:
        return "Bad request"
    try:
        return error.log_message % error.args
    except (TypeError, ValueError):
        return error.log_message


def link_query(arguments: dict[str, list[str]]) -> dict[str, list[str]]:
    """A link's options from its query arguments (the server's name and the XSRF token
    are not options). JupyterHub's own /hub/spawn links prefix options with `opt-`: both."""
    return {key.removeprefix("opt-"): values for key, values in arguments.items() if key not in ("_xsrf", "server")}


def _may_start_own_server(user) -> bool:
    """What the launch page's @needs_scope("servers") asks, for a user just logged in
    (the handler's own scopes are still those it had before the login)."""
    from jupyterhub.scopes import get_scopes_for, has_scope

    return has_scope(f"servers!user={user.name}", get_scopes_for(user.orm_user))


async def start_on_arrival(handler: BaseHandler, user, next_url: str) -> str | None:
    """Start the user's default server from a launch link they arrive at from the LMS, as
    the launch page's button would; the URL to send the browser to (its progress page).
    None where the page must decide: not a launch link, a named server, a server already
    running or starting, a link refused or a start that failed (the page says why)."""
    target = urlparse(next_url)
    if target.path.rstrip("/") != url_path_join(handler.hub.base_url, "launch") or "server" in parse_qs(target.query):
        return None
    if not _may_start_own_server(user):
        return None  # as the launch page's `servers` scope: the page refuses it
    spawner = user.spawners[""]
    if spawner.active or spawner.pending:
        return None
    try:
        options, _ = spawner.link_options(link_query(parse_qs(target.query, keep_blank_values=True)))
        await handler.spawn_single_user(user, "", options=options)
    except (web.HTTPError, OptionError) as error:
        handler.log.info("Launch of %s from the LMS left to the launch page: %s", user.name, error)
        return None
    except Exception:
        # The login itself succeeded: the student lands on the launch page, which can say why.
        handler.log.exception("Launch of %s from the LMS could not start their server", user.name)
        return None
    handler.log.info("Launch of %s from the LMS started their server (%s)", user.name, next_url)
    return url_path_join(handler.hub.base_url, "spawn-pending", user.escaped_name, "")


class LaunchHandler(BaseHandler):
    """GET shows what a link asks for; POST (the user's own click) starts it."""

    def _query(self) -> dict:
        arguments = self.request.query_arguments.items()
        return link_query({key: [v.decode("utf8", "replace") for v in values] for key, values in arguments})

    def _server_name(self) -> str:
        """The named server a link asks for ("": the default server)."""
        values = self.request.query_arguments.get("server") or [b""]
        return values[-1].decode("utf8", "replace")

    async def _server(self, user):
        """The spawner of the server the link asks for. The default one stands in for a
        named server that does not exist yet (the same policy applies to all of a user's
        servers): nothing is made by looking, nor by a refused link; _post makes it."""
        name = self._server_name()
        if not name:
            return "", user.spawners[""]
        if not self.allow_named_servers:
            raise web.HTTPError(400, "This hub runs one server per user: remove server= from the link.")
        if name in user.orm_spawners:
            return name, user.spawners[name]
        # JupyterHub's own checks: the user's limit and its rules for server names.
        await self._check_named_server_request(user, name, name)
        return name, user.spawners[""]

    async def _render(self, status: int = 200, **ns) -> None:
        template = self.settings["jinja2_env"].from_string(PAGE)
        namespace = dict(self.template_namespace, xsrf_token=self.xsrf_token.decode("ascii"))
        namespace.update(ns)
        self.set_status(status)
        self.finish(await template.render_async(**namespace))

    async def _refuse(self, error: web.HTTPError) -> None:
        await self._render(400, heading="This launch link cannot be used", error=_message(error))

    # Like JupyterHub's own spawn page: the page and the start need the `servers` scope
    # on the user's own server (a role without it may not start one by a link either).
    @web.authenticated
    async def get(self):
        return await self._get(user_name=self.current_user.name)

    @web.authenticated
    async def post(self):
        return await self._post(user_name=self.current_user.name)

    @needs_scope("servers")
    async def _get(self, user_name):
        user = self.current_user
        try:
            name, spawner = await self._server(user)
            _, checked = spawner.link_options(self._query())
        except web.HTTPError as error:
            return await self._refuse(error)
        requested = link_summary(checked)
        if name:
            requested.insert(0, ("Server", name))
        builds = checked.get("repo") is not None
        # What happens to the repository's files, from the setting that decides it (as the form says).
        repo_storage = spawner._content_storage() if builds else None
        running_here = spawner.active and spawner.name == name
        if running_here:
            try:
                running = spawner.option_set.check(spawner.user_options or {}, spawner._user_groups())
            except OptionError:
                running = None
            if running is None:
                current = [("Options", "no longer allowed by this hub")]
            elif spawner.ready and all(running.get(key) == checked.get(key) for key in ("image", "repo")):
                return self.redirect(user.server_url(name))
            else:
                current = link_summary(running)
            return await self._render(
                heading="Your server is already running",
                current=current,
                requested=requested,
                builds=builds,
                repo_storage=repo_storage,
                action=self.request.uri,
                server_url=user.server_url(name),
                button="Stop my server and start this one",
            )
        await self._render(
            heading="Start your server from this link?",
            requested=requested,
            builds=builds,
            repo_storage=repo_storage,
            action=self.request.uri,
            button="Launch",
        )

    @needs_scope("servers")
    async def _post(self, user_name):
        user = self.current_user
        try:
            name, spawner = await self._server(user)
            options, _ = spawner.link_options(self._query())
            if name:
                spawner = user.get_or_create_spawner(name, name, replace_failed=True)
        except web.HTTPError as error:
            return await self._refuse(error)
        if spawner.pending:
            return await self._render(
                409, heading="Your server is busy", error=f"Your server is {spawner.pending}; try again in a moment."
            )
        if spawner.active:
            # The user pressed "Stop my server and start this one" on this page.
            await self.stop_single_user(user, name)
            deadline = time.monotonic() + 120
            while (spawner.active or spawner.pending) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        try:
            await self.spawn_single_user(user, name, name, options=options)
        except web.HTTPError as error:
            message = _message(error)
            return await self._render(error.status_code, heading="Your server could not start", error=message)
        self.redirect(url_path_join(self.hub.base_url, "spawn-pending", user.escaped_name, name))
