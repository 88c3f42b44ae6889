"""jupyterhub-ldapauthenticator, with a failure a student can act on: when the campus
directory does not answer (down, unreachable, a TLS handshake refused), the login page
says so and whom to ask (`login_help`), with status 503, and the hub's log says exactly
why, instead of ldapauthenticator's "500: Internal Server Error". Nothing else changes:
the class keeps the name LDAPAuthenticator, so its settings stay in that config section.
"""

from __future__ import annotations

import ldapauthenticator
from ldap3.core.exceptions import LDAPException
from tornado import web
from traitlets import Unicode


class LDAPAuthenticator(ldapauthenticator.LDAPAuthenticator):
    login_help = Unicode(
        "the hub's administrators",
        config=True,
        help="Whom students should tell when logins fail for a reason of the hub's (shown on the error page).",
    )

    async def authenticate(self, handler, data):
        try:
            return await super().authenticate(handler, data)
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
