"""jupyterhub-ldapauthenticator's LDAPAuthenticator, bounded in time and off the hub's event
loop, with a page that says whom to ask (formspawner.campuslogin)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import ldap3
import ldapauthenticator
from ldap3.core.exceptions import LDAPBindError, LDAPException
from tornado import web
from traitlets import Integer

from . import LoginHelp

# Logins wait on the directory in threads of their own: while it stalls, they fill these,
# not the event loop's default executor that the rest of the hub (formspawner's file
# reads, JupyterHub's) shares. Each wait is bounded by directory_timeout.
_DIRECTORY = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ldap-login")


class LDAPAuthenticator(LoginHelp, ldapauthenticator.LDAPAuthenticator):
    directory_timeout = Integer(
        10,
        config=True,
        help="Seconds to wait for the directory to accept a connection, and then for each answer.",
    )

    async def authenticate(self, handler, data):
        # ldapauthenticator's authenticate awaits nothing of the hub's: run it, with its
        # blocking ldap3 calls, in a thread of the directory's, so that the hub goes on serving.
        attempt = super().authenticate(handler, data)
        try:
            return await asyncio.get_running_loop().run_in_executor(_DIRECTORY, asyncio.run, attempt)
        except LDAPException as error:
            self.log.error(
                "Login of %r failed: the directory at %s:%s did not answer (%s: %s)",
                (data or {}).get("username"), self.server_address, self.server_port,
                type(error).__name__, error,
            )  # fmt: skip
            raise web.HTTPError(
                503,
                "Logging in failed: the campus directory did not answer. Try again in a few minutes;"
                f" if it goes on, tell {self.login_help}.",
            ) from None

    def get_connection(self, userdn, password):
        """ldapauthenticator's, with both of ldap3's time limits set (a connection that
        is not accepted, an answer that does not come). None when the bind is refused."""
        use_ssl = self.tls_strategy == ldapauthenticator.ldapauthenticator.TlsStrategy.on_connect
        before_bind = self.tls_strategy == ldapauthenticator.ldapauthenticator.TlsStrategy.before_bind
        server = ldap3.Server(
            self.server_address,
            port=self.server_port,
            use_ssl=use_ssl,
            tls=ldap3.Tls(**self.tls_kwargs),
            connect_timeout=self.directory_timeout,
        )
        try:
            return ldap3.Connection(
                server,
                user=userdn,
                password=password,
                auto_bind=ldap3.AUTO_BIND_TLS_BEFORE_BIND if before_bind else ldap3.AUTO_BIND_NO_TLS,
                receive_timeout=self.directory_timeout,
            )
        except LDAPBindError as error:
            self.log.debug("Failed to bind %s: %s", userdn, type(error).__name__)
            return None
