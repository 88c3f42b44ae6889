"""JupyterHub spawners whose spawn form lets users choose, within admin policy,
a curated image and the environment variables of their server."""

from .env import BUILTIN_DENIED, EnvPolicy, parse_env_text
from .errors import OptionError, PolicyError
from .images import ImageCatalog, ImageChoice
from .options import OptionSet
from .spawner import FormDockerSpawner, FormLocalProcessSpawner, FormOptionsMixin

__all__ = [
    "BUILTIN_DENIED",
    "EnvPolicy",
    "FormDockerSpawner",
    "FormLocalProcessSpawner",
    "FormOptionsMixin",
    "ImageCatalog",
    "ImageChoice",
    "OptionError",
    "OptionSet",
    "PolicyError",
    "parse_env_text",
]
