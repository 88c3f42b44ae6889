"""The spawners: thin layers that call the option pieces and talk to Docker."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json

import docker.errors
from dockerspawner import DockerSpawner
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Dict, HasTraits, List, Unicode, default, observe, validate

from .env import merge_environment
from .errors import OptionError, as_http_error
from .form import render_form
from .options import OptionSet

OPTIONS_LABEL = "org.formspawner.options"


class FormOptionsMixin(HasTraits):
    """The spawn-form options for any Spawner: image (container spawners) and env.

    Put it first in the bases, before the Spawner class it extends.
    """

    form_options = List(
        Unicode(),
        default_value=["image", "env"],
        config=True,
        help="""Which options the spawn form shows, in order: any of 'image', 'env'.
        An option not listed here is refused when sent through the REST API.""",
    )

    images = List(
        Dict(),
        config=True,
        help="""The curated images users may choose from. Each entry:
        {name: slug users send, display_name, image: the image reference,
        description, default: true (optional; else the first entry without groups),
        groups: [JupyterHub groups that may see it] (optional)}.
        Empty means no choice: the spawner's configured image is used and any
        requested image is refused.""",
    )

    env_policy = Dict(
        config=True,
        help="""What environment variables users may set:
        {allow_pattern: regex a name must fully match (default ^[A-Za-z_][A-Za-z0-9_]*$),
        deny_patterns: [regexes anchored at the start of the name, added to the built-in
        denials], max_vars: 50, max_value_length: 4096,
        defaults: {NAME: value} prefilled in the form, users may change or remove them,
        fixed: {NAME: value} always set, users cannot override them}.
        The built-in denials (JUPYTERHUB_*, JPY_*, JUPYTER_*, PYTHON*, LD_*, NB_*, PATH,
        HOME, ...) cannot be lifted.""",
    )

    form_env = Dict(
        help="The user's variables (defaults or user values, then fixed) applied at the last start.",
    )

    @validate("form_options", "images", "env_policy")
    def _check_policy(self, proposal):
        # Build the whole set with the proposed value, so a typo fails as the config
        # loads, with the setting's name in the message.
        values = {"form_options": self.form_options, "images": self.images, "env_policy": self.env_policy}
        values[proposal.trait.name] = proposal.value
        OptionSet.from_config(supports_image=self._supports_image(), **values)
        return proposal.value

    @classmethod
    def check_config(cls, section) -> None:
        """Check a config section (e.g. c.FormDockerSpawner) at hub start.

        jupyterhub_config.py calls this so that a broken policy stops the hub from
        starting, instead of failing the first user's spawn.
        """
        OptionSet.from_config(
            section.get("form_options", cls.class_traits()["form_options"].default()),
            section.get("images", []),
            section.get("env_policy", {}),
            supports_image=cls._supports_image(),
        )

    @classmethod
    def _supports_image(cls) -> bool:
        return cls.class_traits().get("image") is not None

    _option_set = None

    @property
    def option_set(self) -> OptionSet:
        """The pieces built from the policy traits, once (rebuilt when a trait changes)."""
        if self._option_set is None:
            self._option_set = OptionSet.from_config(
                self.form_options, self.images, self.env_policy, supports_image=self._supports_image()
            )
        return self._option_set

    @observe("form_options", "images", "env_policy")
    def _policy_changed(self, change):
        self._option_set = None

    def _user_groups(self) -> list[str]:
        user = getattr(self, "user", None)
        return [g.name for g in getattr(user, "groups", None) or []]

    def check_options(self, user_options, from_link: bool = False) -> dict:
        """The one validation path; a policy violation becomes JupyterHub's 400."""
        try:
            return self.option_set.check(user_options, self._user_groups(), from_link=from_link)
        except OptionError as error:
            raise as_http_error(error) from None

    # -- JupyterHub's hooks ------------------------------------------------------

    async def get_options_form(self):
        option_set = self.option_set
        if not option_set.pieces:
            return ""
        previous = self._pending_form_input or {}
        self._pending_form_input = None
        if not previous:
            orm = getattr(self, "orm_spawner", None)
            previous = (orm.user_options if orm is not None else None) or self.user_options or {}
        return render_form(option_set, previous, self._user_groups())

    _pending_form_input = None

    @default("options_from_form")
    def _default_options_from_form(self):
        return self._options_from_form

    def _options_from_form(self, form_data):
        try:
            options = self.option_set.from_form(form_data)
        except OptionError as error:
            # Unparsable input: show the form again with the text as typed.
            self._pending_form_input = {
                key: values[0] for key, values in form_data.items() if key in self.option_set.keys and values
            }
            raise as_http_error(error) from None
        try:
            self.check_options(options)
        except Exception:
            # Shown again with the error: keep what the user typed rather than the
            # last stored options (secret-looking values are withheld as always).
            self._pending_form_input = options
            raise
        return options

    def options_from_query(self, query_data):
        try:
            options = self.option_set.from_query(query_data)
        except OptionError as error:
            raise as_http_error(error) from None
        self.check_options(options, from_link=True)
        return options

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _apply_form_options

    def get_env(self):
        return merge_environment(self.form_env, super().get_env())


def _apply_form_options(spawner, user_options):
    """Checked again at every start: stored options are reused for bodyless, admin and
    implicit spawns, and the policy may have changed since they were stored."""
    checked = spawner.check_options(user_options)
    spawner.option_set.apply(spawner, checked)


class FormLocalProcessSpawner(FormOptionsMixin, LocalProcessSpawner):
    """LocalProcessSpawner with the env option (no images: there is no container)."""

    form_options = List(Unicode(), default_value=["env"], config=True, help=FormOptionsMixin.form_options.help)


class FormDockerSpawner(FormOptionsMixin, DockerSpawner):
    """DockerSpawner whose users choose a curated image and their environment variables.

    Containers are removed when servers stop (`remove = True`): the user's files live in
    the named volume, and every start runs exactly the image and variables just chosen.
    With `remove = False`, a stopped container is reused only if it was created with the
    same options; otherwise it is recreated (DockerSpawner issue #423).
    """

    @default("remove")
    def _default_remove(self):
        return True

    async def check_allowed(self, image):
        # DockerSpawner.start hands user_options['image'] (a choice's name) to this
        # hook; the image option has already checked it and set self.image.
        return self.image

    # -- progress --------------------------------------------------------------

    def _progress_reset(self):
        self._progress_events = []
        self._progress_signal = asyncio.Event()

    def emit_progress(self, progress: int, message: str) -> None:
        """Record a progress event for the spawn page. `message` is shown as text."""
        if not hasattr(self, "_progress_events"):
            self._progress_reset()
        self._progress_events.append({"progress": progress, "message": message})
        self._progress_signal.set()

    async def progress(self):
        if not hasattr(self, "_progress_events"):
            self._progress_reset()
        sent = 0
        while True:
            while sent < len(self._progress_events):
                yield self._progress_events[sent]
                sent += 1
            self._progress_signal.clear()
            await self._progress_signal.wait()

    # -- lifecycle -------------------------------------------------------------

    def _options_fingerprint(self) -> str:
        chosen = {"image": self.image, "env": self.form_env}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()

    async def start(self):
        self._progress_reset()
        if not self.remove:
            obj = await self.get_object()
            labels = (obj or {}).get("Config", {}).get("Labels") or {}
            if obj and labels.get(OPTIONS_LABEL) != self._options_fingerprint():
                self.log.info("Options changed for %s: recreating its container", self._log_name)
                await self.remove_object()
        return await super().start()

    async def create_object(self):
        self.emit_progress(60, f"Creating your container from {self.image}")
        configured = self.extra_create_kwargs
        fingerprint = self._options_fingerprint()

        async def with_options_label(spawner):
            extra = spawner._eval_if_callable(configured)
            if inspect.isawaitable(extra):
                extra = await extra
            extra = copy.deepcopy(extra or {})
            extra.setdefault("labels", {})[OPTIONS_LABEL] = fingerprint
            return extra

        self.extra_create_kwargs = with_options_label
        try:
            return await super().create_object()
        finally:
            self.extra_create_kwargs = configured

    async def start_object(self):
        self.emit_progress(80, "Starting your container")
        await super().start_object()

    async def pull_image(self, image):
        """Pull as DockerSpawner does, streaming the pull's progress to the spawn page."""
        if self.pull_policy == "skip":
            return
        if self.pull_policy.lower() != "always":
            try:
                await self.docker("inspect_image", image)
                return
            except docker.errors.NotFound:
                if self.pull_policy == "never":
                    raise
        repo, tag = _split_reference(image)
        self.emit_progress(5, f"Pulling image {image}")
        loop = asyncio.get_running_loop()

        def pull():
            layers: dict[str, tuple[int, int]] = {}
            last = -1
            for event in self.client.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise RuntimeError(f"Pulling {image} failed: {event['error']}")
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total"):
                    layers[event["id"]] = (detail.get("current", 0), detail["total"])
                done = sum(c for c, _ in layers.values())
                total = sum(t for _, t in layers.values())
                percent = int(100 * done / total) if total else 0
                if percent != last:
                    last = percent
                    message = f"Pulling image {image}: {percent}% of {total / 1e6:.0f} MB"
                    loop.call_soon_threadsafe(self.emit_progress, 5 + percent // 2, message)

        await asyncio.wrap_future(self.executor.submit(pull))
        self.emit_progress(55, f"Pulled image {image}")


def _split_reference(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    # A registry with a port (host:5000/name) has a colon before the last slash.
    if ":" in image.rsplit("/", 1)[-1]:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"
