"""The two kinds of error: the ones a user causes and the ones an admin causes.

Pure Python: the rules modules (env, images, options) import nothing from JupyterHub,
so the Ansible role can run them on the controller to check inventory.
"""


class OptionError(ValueError):
    """A user's options break the policy. The message is shown to the user as is,
    so it names the problem and never echoes a variable's value."""


class PolicyError(ValueError):
    """The admin's configuration is unusable. Raised when the config is loaded,
    naming the setting, so a typo fails at hub start and not at the first spawn."""


def as_http_error(error: Exception):
    """The 400 JupyterHub shows on the form and returns from the REST API.

    JupyterHub 6 has SpawnException (a policy failure, kept apart in its metrics);
    JupyterHub 5 passes a tornado HTTPError through to the user the same way.
    """
    try:
        from jupyterhub.spawner import SpawnException
    except ImportError:
        from tornado.web import HTTPError

        # "%s" with an argument: JupyterHub formats log_message % args, so a "%" in the
        # message must not be read as a format; and a `reason` would replace the message.
        http_error = HTTPError(400, "%s", str(error))
    else:
        http_error = SpawnException(str(error), reason="invalid-options", status_code=400)
    # What JupyterHub's pages show (as text): the sentence alone, without the
    # exception's class and status that str() would add.
    http_error.jupyterhub_message = str(error)
    return http_error


class UserFacingError(RuntimeError):
    """A start failed for a reason the user should read: JupyterHub shows
    `jupyterhub_message` on the spawn page as text, without the exception's class."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


class BuildError(UserFacingError):
    """A repository could not be fetched or built."""


class RepoRefused(BuildError):
    """The repository asks for what this hub or the chosen image cannot give, found before
    anything is built (both binder folders, environment.yml without conda, a language or
    Python the image lacks, a checkout over the size limit, a file that does not parse):
    the user's to change, so a 400 with this message, as an option error is."""


class LaunchConfirmation(Exception):
    """Not an error: a launch link's options, shown on the spawn form for the user to start.

    The form itself shows what the link asks for (escaped by the form's template);
    JupyterHub shows no error above it, as the message is empty.
    """

    jupyterhub_message = ""

    def __init__(self):
        super().__init__("a launch link's options are shown on the form for the user to start")


def refuse_unknown_keys(config, known: set[str], setting: str) -> None:
    """An admin's typo in a policy's keys is refused, naming the setting and the known keys."""
    unknown = sorted(set(config) - known)
    if unknown:
        raise PolicyError(
            f"{setting}: unknown key(s) {', '.join(map(repr, unknown))}; known keys are {', '.join(sorted(known))}"
        )


def describe(value: object, limit: int = 40) -> str:
    """A short, printable rendering of user input for an error message."""
    text = value if isinstance(value, str) else type(value).__name__
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text if len(text) <= limit else text[:limit] + "...")
