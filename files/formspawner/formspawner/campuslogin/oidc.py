"""oauthenticator's GenericOAuthenticator (OpenID Connect), whose failures say whom to ask
and whose log says why (formspawner.campuslogin)."""

from __future__ import annotations

from oauthenticator import generic, oauth2
from tornado import web
from tornado.httpclient import HTTPClientError

from . import HelpOnErrorPage, LoginHelp


class OAuthCallbackHandler(HelpOnErrorPage, oauth2.OAuthCallbackHandler):
    retry = "Go back to the login page and sign in again."


class GenericOAuthenticator(LoginHelp, generic.GenericOAuthenticator):
    callback_handler = OAuthCallbackHandler

    async def authenticate(self, handler, data=None, **kwargs):
        try:
            return await super().authenticate(handler, data, **kwargs)
        except web.HTTPError:
            raise
        except HTTPClientError as error:
            # oauthenticator has logged the provider's answer and the URL ("Error ...").
            if error.code == 599 or error.response is None:
                raise self._unreachable(error) from None
            self.log.error(
                "Login failed: the identity provider answered %s to the hub's request (%s). A 400 or 401"
                " from its token endpoint means it does not accept the hub's client_id and client_secret"
                " (jupyterhub_authenticator_config) or its callback URL (%s).",
                error.code, error.response.effective_url.split("?")[0], self.oauth_callback_url,
            )  # fmt: skip
            raise web.HTTPError(
                503,
                "Logging in failed: the campus sign-in did not accept the hub. This is not something you"
                f" can fix: tell {self.login_help}.",
            ) from None
        except OSError as error:  # refused, reset, timed out (TimeoutError is one)
            raise self._unreachable(error) from None

    def _unreachable(self, error: Exception) -> web.HTTPError:
        self.log.error(
            "Login failed: the identity provider did not answer (%s: %s; token_url %s)",
            type(error).__name__, error, self.token_url,
        )  # fmt: skip
        return web.HTTPError(
            503,
            "Logging in failed: the campus sign-in did not answer. Try again in a few minutes;"
            f" if it goes on, tell {self.login_help}.",
        )
