"""JupyterHub spawners whose spawn form lets users choose, within admin policy,
a curated image and the environment variables of their server.

The rules (env, images, options) are plain Python; the spawner classes, which need
JupyterHub and DockerSpawner, are imported on first use.
"""

from .env import BUILTIN_DENIED, EnvPolicy, parse_env_text
from .errors import OptionError, PolicyError
from .images import ImageCatalog, ImageChoice
from .options import OptionSet

_SPAWNERS = ("FormDockerSpawner", "FormLocalProcessSpawner", "FormOptionsMixin")
_SWARM = ("FormSwarmSpawner",)
_LAUNCH = ("LaunchHandler", "launch_handlers")

__all__ = [
    "BUILTIN_DENIED",
    "EnvPolicy",
    "ImageCatalog",
    "ImageChoice",
    "OptionError",
    "OptionSet",
    "PolicyError",
    "parse_env_text",
    *_SPAWNERS,
    *_SWARM,
    *_LAUNCH,
]


def __getattr__(name):
    if name in _SPAWNERS:
        from . import spawner

        return getattr(spawner, name)
    if name in _SWARM:
        from . import swarm

        return getattr(swarm, name)
    if name in _LAUNCH:
        from . import launch

        return getattr(launch, name)
    raise AttributeError(f"module 'formspawner' has no attribute {name!r}")
