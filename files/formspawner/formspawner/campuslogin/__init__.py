"""The campus's logins (LDAP, OpenID Connect, LTI 1.3), with failures a student can act on.

Each class is the maintained authenticator's (jupyterhub-ldapauthenticator,
oauthenticator's GenericOAuthenticator, jupyterhub-ltiauthenticator's LTI13Authenticator)
under the same class name, so its settings stay in the same config section. What they add:

- When logging in fails, the page says that logging in failed, what the student can do
  and whom to ask (`login_help`, inventory: jupyterhub_login_help); the hub's log says
  exactly why (the provider's answer, the directory's error, the launch's claim).
- A failure on the hub's side (the directory or the provider does not answer, or refuses
  the hub's own credentials) is a 503 with that page, not a 500 and a traceback.
- LDAP: the directory is asked outside the hub's event loop and with a time limit
  (`directory_timeout`), so a directory that accepts connections and then stalls holds up
  only the student logging in, for at most that long, not every request of the hub.
  ldapauthenticator 2.0.2 binds with ldap3's blocking calls inside the event loop and sets
  no timeout.

Nothing is half-created: every failure is raised before JupyterHub adds the user.
One module each (ldap, oidc, lti), since a hub has only its own authenticator's package.
"""

from __future__ import annotations

import html

from traitlets import Unicode
from traitlets.config import Configurable


class LoginHelp(Configurable):
    """The `login_help` setting, shared by the three authenticators (set in their own
    sections: c.LDAPAuthenticator.login_help and so on)."""

    login_help = Unicode(
        "the hub's administrators",
        config=True,
        help="Whom students should tell when logging in fails (shown on the error page).",
    )


class HelpOnErrorPage:
    """A handler mixin: JupyterHub's error page, with a paragraph saying what to do and
    whom to ask (JupyterHub renders a handler's `extra_error_html` below the message)."""

    retry = "Go back to the login page and try again."

    _error_html = ""

    @property
    def extra_error_html(self) -> str:
        if self._error_html:  # JupyterHub's own, set when this handler starts a server
            return self._error_html
        helper = getattr(self.authenticator, "login_help", "the hub's administrators")
        return (
            f'<span class="formspawner-login-failed">Logging in did not work. {html.escape(self.retry)}'
            f" If it goes on, tell {html.escape(helper)}.</span>"
        )

    @extra_error_html.setter
    def extra_error_html(self, value: str) -> None:
        self._error_html = value
