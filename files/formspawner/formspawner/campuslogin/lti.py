"""jupyterhub-ltiauthenticator's LTI13Authenticator, whose refused launches say whom to ask
and whose log says why, a skewed clock named (formspawner.campuslogin)."""

from __future__ import annotations

from ltiauthenticator.lti13 import auth as lti13_auth
from ltiauthenticator.lti13 import handlers as lti13_handlers
from tornado import web

from ..launch import start_on_arrival
from . import HelpOnErrorPage, LoginHelp

# Why a launch was refused, for the log: ltiauthenticator's messages are PyJWT's.
_CLOCK_HINT = (
    " The platform's clock and the hub's differ (check that both keep time with NTP), or the"
    " student's browser held the launch too long."
)


class LTI13LoginInitHandler(HelpOnErrorPage, lti13_handlers.LTI13LoginInitHandler):
    retry = "Go back to your course and open the link again."


class LTI13CallbackHandler(HelpOnErrorPage, lti13_handlers.LTI13CallbackHandler):
    retry = "Go back to your course and open the link again."

    async def redirect_to_next_url(self, user):
        """A course's link that is a launch link starts the student's server on arrival
        (formspawner.launch.start_on_arrival); any other target is where they land."""
        next_url = self.get_next_url(user)
        self.redirect(await start_on_arrival(self, user, next_url) or next_url)

    async def post(self):
        try:
            return await super().post()
        except web.HTTPError as error:
            reason = error.log_message or ""
            clock = any(word in reason for word in ("not yet valid", "expired", "too long ago"))
            self.log.warning(
                "LTI launch refused (%s): %s.%s", error.status_code, reason, _CLOCK_HINT if clock else ""
            )
            raise


class LTI13Authenticator(LoginHelp, lti13_auth.LTI13Authenticator):
    login_handler = LTI13LoginInitHandler
    callback_handler = LTI13CallbackHandler
