"""The spawners: thin layers that call the option pieces and talk to Docker."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hashlib
import inspect
import json
import os

import docker.errors
import docker.types
from dockerspawner import DockerSpawner
from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool, Dict, Enum, HasTraits, Integer, List, Unicode, default, observe, validate

from . import build, content, courses, git, identity, outbound, quota, repolaunch, resources, schedule
from .env import merge_environment
from .errors import LaunchConfirmation, OptionError, PolicyError, RepoRefused, UserFacingError, as_http_error
from .events import EventLog
from .form import link_summary, render_form
from .images import Resources
from .labels import IMAGE_REPOSITORY, OPTIONS_LABEL, USER_LABEL
from .options import OptionSet
from .repo import BaseImage

# The settings the option pieces are built from, named as the inventory keys.
POLICY_TRAITS = ("form_options", "images", "env_policy", "repo_policy")


class FormOptionsMixin(HasTraits):
    """The spawn-form options for any Spawner: image (container spawners) and env.

    Put it first in the bases, before the Spawner class it extends.
    """

    form_options = List(
        Unicode(),
        default_value=["image", "env"],
        config=True,
        help="""Which options the spawn form shows, in order: any of 'image', 'env', 'repo'.
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

    repo_policy = Dict(
        config=True,
        help="""Repository launches (the 'repo' option), as on Binder:
        {allowed_hosts: [github.com, gitlab.com] (host or host:port; https only),
        allow_private_hosts: false (hosts resolving to private or loopback addresses are refused),
        config_files: [apt.txt, environment.yml, requirements.txt, setup.py, pyproject.toml,
        postBuild] (which files a repository may use; the others Binder knows are named in the
        build log as not used), build_timeout: 900 (seconds, fetch and build together),
        build_memory: 4g, build_cpus: half the host's CPUs (the last N cores; 0 = no limit),
        max_concurrent_builds: half the host's CPUs (later builds wait in line), cache_max_images: 30 (built images
        kept; least recently launched go first, never one in use), cache_max_size: 50g (the
        built images' own layers, beyond their base images), min_free_disk: 10g (kept free
        where Docker keeps images: a build first removes old builds, then is refused),
        resolve_timeout: 30 (seconds for git ls-remote and for checking that a commit id is on a
        branch or tag), max_repo_size: 500m (the fetch, and the files it would check out)}.""",
    )

    form_env = Dict(
        help="The user's variables (defaults or user values, then fixed) applied at the last start.",
    )

    launch_links = Bool(
        False,
        config=True,
        help="""Offer a "Copy launch link" helper on the form, pointing at /hub/launch.
        Needs formspawner's launch page: c.JupyterHub.extra_handlers = formspawner.launch_handlers().""",
    )

    repo_request = None

    @validate(*POLICY_TRAITS)
    def _check_policy(self, proposal):
        # Build the whole set with the proposed value, so a typo fails as the config
        # loads, with the setting's name in the message.
        values = {name: getattr(self, name) for name in POLICY_TRAITS}
        values[proposal.trait.name] = proposal.value
        self._options_from(values)
        return proposal.value

    @classmethod
    def _options_from(cls, values: dict) -> OptionSet:
        """The option pieces from the four policy settings (a dict of the traits' names),
        for this spawner class (images only where it has an image; GPUs as it asks for them)."""
        return OptionSet.from_config(
            values.get("form_options", cls.class_traits()["form_options"].default()),
            values.get("images", []),
            values.get("env_policy", {}),
            values.get("repo_policy", {}),
            supports_image=cls._supports_image(),
            gpus=cls._gpus(),
        )

    @classmethod
    def check_config(cls, section) -> None:
        """Check a config section (e.g. c.FormDockerSpawner) at hub start.

        jupyterhub_config.py calls this so that a broken policy stops the hub from
        starting, instead of failing the first user's spawn.
        """
        cls._options_from({name: section[name] for name in POLICY_TRAITS if name in section})

    @classmethod
    def _supports_image(cls) -> bool:
        return cls.class_traits().get("image") is not None

    @classmethod
    def _gpus(cls) -> str:
        """How a choice may ask for GPUs: "devices" (Docker's device requests on one host:
        a count, all, or device ids), "count" (a number of a swarm's generic resources),
        "" (not at all)."""
        return ""

    # The chosen image's resources (its `resources` entry), set by the image piece.
    choice_resources = Resources()

    _option_set = None

    @property
    def option_set(self) -> OptionSet:
        """The pieces built from the policy traits, once (rebuilt when a trait changes)."""
        if self._option_set is None:
            self._option_set = self._options_from({name: getattr(self, name) for name in POLICY_TRAITS})
        return self._option_set

    @observe(*POLICY_TRAITS)
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

    def server_state(self) -> str:
        """For the home page and the form: running, stopped, or never started (JupyterHub
        records a server's last activity when it stops, so a server without one never ran)."""
        if self.active:
            return "running"
        orm = getattr(self, "orm_spawner", None)
        return "stopped" if getattr(orm, "last_activity", None) is not None else "not started yet"

    def server_summary(self) -> list[tuple[str, str]]:
        """What this server runs or last ran, as (label, value) rows for the home page:
        the image with its resources and the repository, as the user chose them; nothing
        for a server that never started (it has made no choice yet)."""
        if self.server_state() == "not started yet":
            return []
        try:
            checked = self.option_set.check(self.user_options or {}, self._user_groups())
        except OptionError:
            return [("Options", "no longer allowed by this hub")]
        rows = link_summary(checked)
        image = checked.get("image")
        if image is not None and image.resources:
            rows.insert(1, ("Resources", image.resources.summary()))
        if self.storage_summary():
            rows.append(("Storage at its last start", self.storage_summary()))
        return rows

    def storage_summary(self) -> str:
        """"1.2 GB of 5 GB used (24%)" at the server's last start; "" without a quota."""
        usage = getattr(self, "storage_usage", None)
        return quota.describe(*usage) if usage else ""

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
        launch_url = None
        if self.launch_links and getattr(self, "hub", None) is not None:
            launch_url = self.hub.base_url.rstrip("/") + "/launch"
        link, self._pending_link = self._pending_link, None
        return render_form(
            option_set, previous, self._user_groups(), launch_url, link, self._other_servers(),
            self._content_storage() if "repo" in self.form_options else None,
        )  # fmt: skip

    def _content_storage(self) -> str | None:
        """Where a launched repository's files are kept; None: in the server only."""
        return None

    def _other_servers(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """With named servers on: the user's other servers, for the form (name, state, choices)."""
        user = getattr(self, "user", None)
        if not getattr(user, "allow_named_servers", False):
            return []
        rows = []
        for row in user.all_spawners(include_default=True):
            if row.name == self.name:
                continue
            spawner = user.spawners[row.name]  # stopped ones are database rows: their spawner
            if isinstance(spawner, FormOptionsMixin):
                rows.append((row.name or "default", spawner.server_state(), spawner.server_summary()))
        return rows

    _pending_form_input = None
    _pending_link = None

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
        """A link to /hub/spawn with options never starts anything by itself: the form
        comes back filled in from the link, and the user's own Start button submits it
        (a page someone else controls must not spawn or build for a user)."""
        options, checked = self.link_options(query_data)
        self._pending_form_input = options
        self._pending_link = link_summary(checked)
        raise LaunchConfirmation()

    def link_options(self, query_data) -> tuple[dict, dict]:
        """A launch link's options and their checked values, checked as links are (no env);
        400 otherwise."""
        try:
            options = self.option_set.from_query(query_data)
        except OptionError as error:
            raise as_http_error(error) from None
        return options, self.check_options(options, from_link=True)

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _apply_form_options

    def get_env(self):
        return merge_environment(self.form_env, super().get_env())

    def reset_applied_options(self) -> None:
        """Undo what the last start's options changed beyond the pieces' own traits."""

    async def prepare_options(self) -> None:
        """Work the checked options need before start (e.g. resolving a repository's ref)."""


async def _apply_form_options(spawner, user_options):
    """Checked again at every start: stored options are reused for bodyless, admin and
    implicit spawns, and the policy may have changed since they were stored."""
    checked = spawner.check_options(user_options)
    spawner.reset_applied_options()
    spawner.option_set.apply(spawner, checked)
    await spawner.prepare_options()


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

    # What the user's storage held and its quota at the server's last start (bytes).
    storage_usage: tuple[int, int] | None = None

    @default("remove")
    def _default_remove(self):
        return True

    @classmethod
    def _gpus(cls) -> str:
        return "devices"

    pids_limit = Integer(
        0,
        config=True,
        help="""The most processes a user's server may run (0 = no limit); a chosen image's
        resources.pids_limit is used over it.""",
    )

    storage_quota = Integer(
        0,
        config=True,
        help="""The most bytes a user's storage (home_volume; each named server's own with
        server_storage 'server') may hold (0 = no quota); a chosen image's
        resources.storage_quota is used over it. Set by quota_socket's service before the
        server starts, on new volumes and on volumes made before.""",
    )

    layer_quota = Integer(
        0,
        config=True,
        help="""The most bytes a server may write outside its volumes (its container's writable
        layer: /tmp, pip install, conda environments) (0 = no quota); a chosen image's
        resources.layer_quota is used over it. Docker's storage_opt size: the btrfs storage
        driver, or overlay2 on XFS mounted with project quotas.""",
    )

    quota_socket = Unicode(
        "",
        config=True,
        help="""The Unix socket of the root service that sets storage quotas (formspawner.quotad,
        systemd's jupyterhub-quota.socket); '' when storage quotas are off.""",
    )

    min_free_disk = Integer(
        0,
        config=True,
        help="""Bytes the hub keeps free on the filesystem of docker_data_root: a start or a
        build is refused while less is free (0 = no check).""",
    )

    docker_data_root = Unicode(
        "/var/lib/docker",
        config=True,
        help="""Where Docker keeps images, containers and volumes (min_free_disk's filesystem).""",
    )

    repo_cache_file = Unicode(
        "formspawner-repo-cache.json",
        config=True,
        help="""Where the hub records when each repository image was last launched (for the
        cache's least-recently-launched eviction). Relative to the hub's working directory.""",
    )

    repo_work_dir = Unicode(
        "formspawner-builds",
        config=True,
        help="""Where repository builds put their checkout and build context while they run
        (a private directory, made if missing). Relative to the hub's working directory:
        on disk, not in /tmp, which may be memory (tmpfs).""",
    )

    image_healthcheck = Bool(
        False,
        config=True,
        help="""Keep the image's own HEALTHCHECK on users' servers. Off by default: the
        docker-stacks images check every 3 s with two Python processes, which on an idle
        host costs more CPU than the servers themselves (benchmarks/healthcheck.py), nothing
        in the hub reads the result (the hub polls the container and its proxy route), and
        on Swarm a check failing on a busy node kills the task, which is never restarted.""",
    )

    ca_bundle = Unicode(
        "",
        config=True,
        help=f"""A CA bundle on the hub's host (a PEM file holding the public CAs and the
        campus's, e.g. /etc/ssl/certs/ca-certificates.crt once the campus CA is added) for
        users' servers and repository builds, whose images know only public CAs: mounted
        read-only at {outbound.CA_PATH} in servers (on Swarm: the same path on every node),
        copied into builds, and named by {", ".join(outbound.CA_VARIABLES)}. "" = none.""",
    )

    proxy_env = Dict(
        config=True,
        help="""The campus's HTTP(S) proxy for users' servers and repository builds:
        {http_proxy: "http://proxy.example.edu:3128", https_proxy: ..., no_proxy: "localhost,.example.edu"}.
        Set in servers in both cases (HTTP_PROXY too); builds get them as Docker's predefined
        build arguments, which are not stored in the image. Users can read them in their server.""",
    )

    build_network = Unicode(
        "",
        config=True,
        help="""The Docker network repository builds run their steps on ("" = Docker's default
        bridge). A network of their own lets a firewall tell builds apart (the role's network
        policy applies to its subnet); the engine's classic builder takes a network name.""",
    )

    start_slots = Integer(
        0,
        config=True,
        help="""How many servers may be starting at once (created, not yet answering), for all
        users of this hub; the others wait their turn in order, and their spawn page says so.
        In a lecture's burst, servers started all at once share the CPU and are all ready
        late, together; a few at a time, half the class is ready in about half the time and
        the last no later (benchmarks/README.md, finding 6). Pulls and repository builds do
        not hold a slot. 0 = no limit.""",
    )

    start_slot_seconds = Integer(
        20,
        config=True,
        help="""How long one server may hold its start slot while it does not answer yet: after
        that the next in line starts too (the hub still waits for this one up to http_timeout).""",
    )

    home_volume = Unicode(
        "",
        config=True,
        help="""The entry of `volumes` that holds the user's files (e.g. jupyterhub-user-{username}):
        the one server_storage='server' gives each named server a copy of its own.""",
    )

    server_storage = Enum(
        ["user", "server"],
        default_value="user",
        config=True,
        help="""With named servers (JupyterHub.allow_named_servers): 'user' mounts the user's
        one home_volume in each of their servers (files shared between them); 'server' gives
        each named server its own volume, home_volume's name + '--' + the server's name
        (escaped as container names are). The default server keeps home_volume itself.
        A named server's volume is kept when the server is deleted.""",
    )

    home_volume_moved_into = Unicode(
        "",
        config=True,
        help="""Whole-home storage, switched to from a volume mounted at a folder of the home:
        that folder's name (e.g. 'work'), with home_volume now mounted at the image's home.
        Before a user's first start after the switch, a short container of their image moves
        what the volume holds into that folder (every path stays: work/lab1 is still
        work/lab1) and copies the image's home where the volume has nothing of that name
        (dotfiles); nothing is overwritten or removed, and a stopped move resumes at the
        next start (homemigrate.py). Volumes done are recorded in home_volume_record.
        "" = no switch.""",
    )

    home_volume_record = Unicode(
        "formspawner-whole-home.txt",
        config=True,
        help="""The volumes home_volume_moved_into has moved, one a line (relative to the hub's
        working directory). Losing it costs one short container per user: a moved volume
        is marked inside too, and is never moved twice.""",
    )

    helper_timeout = Integer(
        300,
        config=True,
        help="""Seconds a short container of a launch (the merge of a repository into the user's
        storage, the whole-home move) may take, its wait for one of the hub's helper threads
        included: then it is removed, and the start fails with a message saying so (the next
        start runs it again). At most one runs per user at a time, four in all.""",
    )

    user_ids = Enum(
        ["image", "distinct"],
        default_value="image",
        config=True,
        help="""Whose id a user's server runs as. 'image': the image's user (docker-stacks'
        jovyan, 1000) for everyone. 'distinct': each hub user's own id, given at their first
        start from first_uid on, recorded in uid_record and never given to anyone else; the
        server runs as that id with group 0 (docker-stacks' start.sh names it in /etc/passwd,
        which the images let group 0 write) and group 100 (users: the images' home and
        conda), still with no capability and no privilege gain. Before a start, a short
        container gives the user's volume to their id (what the image's user or an earlier
        id owned), once per volume (volume_owner_record).""",
    )

    first_uid = Integer(
        200000,
        config=True,
        help="""With user_ids 'distinct': the first user's id; the next users get the ids after
        every id given so far. Above the host's own accounts and the images' users.""",
    )

    uid_record = Unicode(
        "formspawner-uids.json",
        config=True,
        help="""With user_ids 'distinct': the hub's record of each user's id (relative to the
        hub's working directory). Back it up with the database: a user's files are owned by
        their id.""",
    )

    volume_owner_record = Unicode(
        "formspawner-volume-owners.txt",
        config=True,
        help="""With user_ids 'distinct': the volumes already given to their user's id, one
        "volume id" a line (relative to the hub's working directory). Losing it costs one
        short container per volume at its next start.""",
    )

    courses = List(
        Dict(),
        config=True,
        help="""Courses: [{name, gid: the course's group on the host, path: its folder on the
        host (root and that group, mode 2775), mount: where servers see it, staff_groups,
        student_groups: JupyterHub groups, images: choices its members are offered (the
        hub's configuration adds the course's groups to them)}]. A member's server mounts
        the folder: staff read-write, joining the gid; students read-only; others not at all.""",
    )

    @validate("courses")
    def _check_courses(self, proposal):
        courses.from_config(proposal.value, f"{type(self).__name__}.courses")
        return proposal.value

    @property
    def course_list(self) -> list[courses.Course]:
        return courses.from_config(self.courses)

    # The user's id for this start (user_ids 'distinct'), else None.
    uid: int | None = None

    @validate("first_uid")
    def _check_first_uid(self, proposal):
        return identity.check_first_uid(proposal.value)

    def storage_suffix(self) -> str:
        """What tells this server's storage apart from the user's: '' or '--SERVER'."""
        if self.server_storage == "server" and self.name:
            return "--" + self.template_namespace()["servername"]
        return ""

    @validate("ca_bundle", "proxy_env")
    def _check_outbound(self, proposal):
        values = {"ca_bundle": self.ca_bundle, "proxy_env": self.proxy_env, proposal.trait.name: proposal.value}
        outbound.Outbound.from_config(values["ca_bundle"], values["proxy_env"], type(self).__name__)
        return proposal.value

    @classmethod
    def check_config(cls, section) -> None:
        super().check_config(section)
        bundle, proxy = section.get("ca_bundle", ""), section.get("proxy_env", {})
        checked = outbound.Outbound.from_config(bundle, proxy, cls.__name__)
        if checked.ca_bundle and not os.path.isfile(checked.ca_bundle):
            raise PolicyError(f"{cls.__name__}.ca_bundle: {checked.ca_bundle} is not a file on this host")

    @property
    def outbound_policy(self) -> outbound.Outbound:
        return outbound.Outbound.from_config(self.ca_bundle, self.proxy_env, type(self).__name__)

    @property
    def grant(self) -> resources.Grant:
        """What this server gets: the chosen image's resources over the hub's settings."""
        return resources.grant(
            self.choice_resources, mem_limit=self.mem_limit, mem_guarantee=self.mem_guarantee,
            cpu_limit=self.cpu_limit, cpu_guarantee=self.cpu_guarantee, pids_limit=self.pids_limit,
            storage_quota=self.storage_quota, layer_quota=self.layer_quota,
        )  # fmt: skip

    def get_env(self):
        env = super().get_env()
        env.update(self.outbound_policy.server_env())  # the admin's, over the user's values
        env.update(resources.environment(self.grant))
        if self.uid is not None:
            # What start.sh compares with the id it runs as (else it warns that it cannot
            # change them without root).
            env.update({"NB_UID": str(self.uid), "NB_GID": "0"})
        return env

    @property
    def volume_binds(self):
        binds = super().volume_binds
        suffix = self.storage_suffix()
        if suffix and self.home_volume:
            home = self.format_volume_name(self.home_volume, self)
            binds = {(source + suffix if source == home else source): bind for source, bind in binds.items()}
        if self.uid is not None and self.home_volume:
            # The owner helper made the volume (Docker copied the image's files into it
            # there): an emptied volume must not get the image's folder again, whose owner
            # Docker would copy onto the volume's top (the image's user, not the student).
            home = self.format_volume_name(self.home_volume, self)
            storage = (home, home + suffix)
            binds = {
                source: ({**bind, "mode": bind.get("mode", "rw") + ",nocopy"} if source in storage else bind)
                for source, bind in binds.items()
            }
        return {**binds, **self.outbound_policy.server_binds()}

    async def check_allowed(self, image):
        # DockerSpawner.start hands user_options['image'] (a choice's name) to this
        # hook; the image option has already checked it and set self.image.
        return self.image

    # -- repository launches -----------------------------------------------------

    # What a repository launch changes for one start, restored before the next.
    _REPO_SETTINGS = ("image", "notebook_dir", "default_url", "start_timeout")
    _saved_settings = None
    _repo_commit = None

    @property
    def repo_policy_checked(self):
        return self.option_set.piece("repo").policy

    def reset_applied_options(self) -> None:
        self._progress_reset()
        if self._saved_settings:
            for name, value in self._saved_settings.items():
                setattr(self, name, value)
        self._saved_settings = None
        self.repo_request = None
        self._repo_commit = None

    async def prepare_options(self) -> None:
        """Resolve the repository's ref to a commit now, so a missing repository or branch
        is a 400 on the form and the REST API, not a failed start."""
        if self.repo_request is None:
            return
        policy = self.repo_policy_checked
        self._saved_settings = {name: getattr(self, name) for name in self._REPO_SETTINGS}
        self.emit_progress(2, f"Looking up {self.repo_request.ref} in {self.repo_request.url}")
        try:
            self._repo_commit = await schedule.launch_io.run(
                self.user.name, 3 * policy.resolve_timeout, lambda _: git.resolve_commit(self.repo_request, policy)
            )
        except schedule.Busy as error:
            busy = OptionError(f"Looking up {self.repo_request.url} did not start: {error}. Try again.")
            raise as_http_error(busy) from None
        except OptionError as error:
            raise as_http_error(error) from None
        # A build may take longer than a start normally may; a plain start keeps its limit.
        self.start_timeout = self.start_timeout + policy.build_timeout

    def _launch_context(self) -> repolaunch.LaunchContext:
        """What a repository launch (and a helper container) gets from this spawner."""
        return repolaunch.LaunchContext(
            user=self.user.name, log_name=self._log_name, log=self.log, client=self.client,
            emit_progress=self.emit_progress, docker=self.docker, pull_image=self.pull_image,
            publish_image=self._publish_image, work_dir=self.repo_work_dir, cache_file=self.repo_cache_file,
            helper_timeout=self.helper_timeout, build_network=self.build_network,
            outbound=self.outbound_policy, host_config=dict(self.extra_host_config),
            run_as=resources.run_as(self.uid),
        )  # fmt: skip

    def _apply_plan(self, plan: repolaunch.Plan) -> None:
        self.image, self.notebook_dir, self.default_url = plan.image, plan.notebook_dir, plan.default_url

    async def _content_synchronised(self, launch: repolaunch.RepoLaunch, started):
        """After the container started: wait for the merge; a failed merge stops the server,
        a folder other than the one the server was told to open restarts it there."""
        try:
            folder = await launch.sync
        except BaseException:
            await self._discard_container()
            raise
        plan = launch.opened_in(folder, self.image)
        if plan.default_url == self.default_url:
            return started
        self._apply_plan(plan)
        await self._discard_container()
        return await self._start_container()

    async def _image_for_storage_helper(self, change: str) -> BaseImage:
        """The server's image, pulled, for a short container that changes the user's volume
        (what `change` says is done to it); refused while another of the user's servers
        mounts that volume, naming them."""
        sharing = self._running_servers_sharing_storage()
        if sharing:
            raise build.BuildError(
                f"Your storage is being {change}, which needs your other servers stopped first "
                f"(they use the same storage): {', '.join(sharing)}. Stop them, then start this one."
            )
        await self.pull_image(self.image)
        try:
            return BaseImage.from_inspect(await self.docker("inspect_image", self.image))
        except ValueError as error:
            raise build.BuildError(f"The image {self.image} cannot be used: {error}.") from None

    async def _move_volume_into_home(self) -> None:
        """home_volume_moved_into: the user's volume turned into a whole home, once."""
        storage = self._content_storage()
        if storage is None:
            return
        source = next(s for s, b in self.volume_binds.items() if b.get("bind", "").rstrip("/") == storage)
        record = os.path.abspath(self.home_volume_record)
        done = await asyncio.to_thread(_read_lines, record)
        if source in done:
            return
        base = await self._image_for_storage_helper("moved to your whole home")
        try:
            await self.docker("inspect_volume", source)
            new, mount = [], "/mnt/formspawner-volume"
        except docker.errors.NotFound:
            # A new user: mounted at the home, Docker copies the image's home into the new
            # volume (with its owners, so the image's user may write there); only marked.
            new, mount = ["--new"], base.home
        binds = {source: {"bind": mount, "mode": "rw"}, content.MIGRATE: {"bind": content.MIGRATE_MOUNT, "mode": "ro"}}
        folder = self.home_volume_moved_into
        command = [content.MIGRATE_MOUNT, "--volume", mount, "--home", base.home, "--folder", folder, *new]
        what = "Moving your storage to your whole home"
        ctx = self._launch_context()
        # As whoever owns the files: the image's user, until the volume is given to the user's id.
        user = ctx.run_as if self.uid is not None and not self._volume_to_give else base.user
        result = await repolaunch.run_helper(ctx, what, self.image, user, command, binds, 3)
        self.log.info("Volume %s holds the whole home now (%s)", source, result)
        await asyncio.to_thread(_append_line, record, source)

    async def _own_id(self) -> None:
        """user_ids 'distinct': the user's id for this start (given at their first), and
        whether their volume is still to be given to it (a volume not there yet will be
        made: given at once, even where a volume of that name was given before)."""
        self.uid = None
        self._volume_to_give = False
        volume = self._storage_volume()
        if self.user_ids != "distinct":
            return
        path = os.path.abspath(self.uid_record)
        self.uid = await asyncio.to_thread(identity.uid_for, path, self.user.name, self.first_uid)
        if volume is None or self._content_storage() is None:
            return
        try:
            await self.docker("inspect_volume", volume)
        except docker.errors.NotFound:
            self._volume_to_give = True
            return
        record = await asyncio.to_thread(_read_lines, os.path.abspath(self.volume_owner_record))
        self._volume_to_give = f"{volume} {self.uid}" not in record

    _volume_to_give = False

    async def _storage_owned(self) -> None:
        """user_ids 'distinct': the user's volume given to their id, once per volume (a
        stopped run is run again at the next start)."""
        volume = self._storage_volume()
        storage = self._content_storage()
        if not self._volume_to_give or volume is None or storage is None:
            return
        base = await self._image_for_storage_helper("given your own user id")
        # Mounted where the server mounts it: a new volume gets the image's files there, as
        # the server's own mount would give them.
        binds = {volume: {"bind": storage, "mode": "rw"}, content.OWNER: {"bind": content.OWNER_MOUNT, "mode": "ro"}}
        command = [content.OWNER_MOUNT, "--volume", storage, "--uid", str(self.uid)]
        command += ["--previous", base.user.split(":", 1)[0]]
        what = "Giving your storage your own user id"
        ctx = self._launch_context()
        # Root with the two capabilities the change of owners needs, and nothing else.
        confinement = {**ctx.confinement, "cap_add": list(resources.OWNER_CAPABILITIES), "group_add": []}
        result = await repolaunch.run_helper(ctx, what, self.image, "0:0", command, binds, 12, confinement)
        self.log.info("Volume %s belongs to %s's id %s now (%s)", volume, self._log_name, self.uid, result)
        await asyncio.to_thread(_append_line, os.path.abspath(self.volume_owner_record), f"{volume} {self.uid}")
        self._volume_to_give = False

    def _storage_volume(self) -> str | None:
        """The name of the volume that holds this server's storage (home_volume)."""
        if not self.home_volume:
            return None
        name = self.format_volume_name(self.home_volume, self)
        binds = self.volume_binds
        return next((source for source in (name + self.storage_suffix(), name) if source in binds), None)

    def get_state(self):
        state = super().get_state()
        if self.storage_usage:
            state["storage_usage"] = list(self.storage_usage)
        return state

    def load_state(self, state):
        super().load_state(state)
        usage = state.get("storage_usage")
        if isinstance(usage, list) and len(usage) == 2 and all(isinstance(n, int) for n in usage):
            self.storage_usage = (usage[0], usage[1])

    async def _storage_under_quota(self) -> None:
        """The granted storage_quota on the server's volume, before the container exists.
        The service moves a volume made before quotas into its quota only when no container
        mounts it; until then the server starts without it (logged, and counted in the
        metrics). Any other failure stops the start: the admin's limit is not skipped."""
        size = self.grant.storage_quota
        volume = self._storage_volume()
        if not size or not self.quota_socket or volume is None:
            return
        self.emit_progress(15, "Checking your storage")
        await self.docker("create_volume", name=volume)
        try:
            used, limit = await quota.limit(self.quota_socket, volume, size)
        except quota.VolumeInUse as error:
            # A volume made before quotas, still mounted (another of the user's servers, a
            # kept container): the user's files stay where they are; the quota comes at a
            # start when nothing uses it.
            self.log.warning("Quota of %s not set yet: %s", volume, error)
            return
        except quota.QuotaUnavailable as error:
            self.log.error("Quota of %s not set: %s", volume, error)
            raise UserFacingError(
                "Your storage could not be put under its quota, so your server was not started. "
                "Please tell the hub's admins (the hub's log says why)."
            ) from None
        self.storage_usage = (used, limit)
        self.log.info("Storage %s: %s", volume, quota.describe(used, limit))
        if limit and used >= limit * 0.9:
            self.emit_progress(20, f"Your storage is almost full: {quota.describe(used, limit)}")

    def _running_servers_sharing_storage(self) -> list[str]:
        """The user's other running servers that mount this server's volume (named servers
        with server_storage 'user')."""
        user = getattr(self, "user", None)
        if self.server_storage != "user" or not getattr(user, "allow_named_servers", False):
            return []
        return sorted(
            name or "default"
            for name, spawner in user.spawners.items()
            if name != self.name and spawner is not self and (spawner.active or spawner.pending)
        )

    async def _discard_container(self) -> None:
        await self.stop_object()
        await self.remove_object()

    # -- course content in the user's storage ------------------------------------

    def _content_storage(self) -> str | None:
        """Where the server mounts the user's storage (home_volume), if it has one there."""
        if not self.home_volume:
            return None
        name = self.format_volume_name(self.home_volume, self)
        binds = self.volume_binds
        for source in (name + self.storage_suffix(), name):
            bind = binds.get(source)
            if bind and bind.get("mode", "rw").split(",")[0] == "rw" and bind.get("bind", "").startswith("/"):
                return bind["bind"].rstrip("/") or "/"
        return None

    async def _publish_image(self, tag: str) -> str:
        """The reference the server runs a repository image as (here: where it was built)."""
        return tag

    # -- progress --------------------------------------------------------------

    @property
    def _progress(self) -> EventLog:
        """The spawn page's progress events, made on first use."""
        if "_progress_log" not in self.__dict__:
            self._progress_log = EventLog()
        return self._progress_log

    def _progress_reset(self):
        # The spawn page may already be following progress() (it connects while the
        # options are applied): keep following the same log, from a new list of events.
        self._progress.restart()

    @property
    def _progress_events(self) -> list[dict]:
        return self._progress.events

    def emit_progress(self, progress: int, message: str) -> None:
        """Record a progress event for the spawn page. `message` is shown as text."""
        self._progress.append({"progress": progress, "message": message})

    async def progress(self):
        async for event in self._progress.follow():
            yield event

    # -- lifecycle -------------------------------------------------------------

    def _options_fingerprint(self) -> str:
        chosen = {"image": self.image, "env": self.form_env}
        if self.uid is not None:
            chosen["uid"] = self.uid
        if self.choice_resources:
            chosen["resources"] = dataclasses.asdict(self.choice_resources)
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()

    async def start(self):
        """What a start does: the storage moved once (whole-home switch), the repository
        launched (its image, its files merged while the container starts), the container
        started in its turn and answering."""
        launch = None
        try:
            quota.check_free_space(self.docker_data_root, self.min_free_disk, "starting a server or a build")
            await self._own_id()
            await self._storage_under_quota()
            if self.home_volume_moved_into:
                await self._move_volume_into_home()
            await self._storage_owned()
            if self.repo_request is not None:
                commit, ref_name = self._repo_commit
                launch = repolaunch.RepoLaunch(
                    self._launch_context(), self.repo_request, commit, ref_name, self.repo_policy_checked
                )
                try:
                    self._apply_plan(await launch.prepare(self.image, self._content_storage(), self.volume_binds))
                except RepoRefused as error:
                    # Known before anything was built, and the user's to change: a 400 with
                    # its message (the REST API, the form) when it comes within the hub's
                    # slow_spawn_timeout; later, the spawn page's failure says the same.
                    self.emit_progress(100, f"The repository {self.repo_request.url} was refused: {error}")
                    raise as_http_error(error) from None
            started = await self._start_container()
            if launch is not None and launch.sync is not None:
                started = await self._content_synchronised(launch, started)
            return started
        finally:
            if launch is not None:
                launch.end()

    async def _start_container(self):
        if not self.remove:
            obj = await self.get_object()
            labels = (obj or {}).get("Config", {}).get("Labels") or {}
            if obj and labels.get(OPTIONS_LABEL) != self._options_fingerprint():
                self.log.info("Options changed for %s: recreating its container", self._log_name)
                await self.remove_object()
        # The pull before the line: a long one must not hold up the servers behind it.
        await self.pull_image(self.image)
        schedule.starts.set_limit(self.start_slots)
        answering = None
        try:
            async with schedule.starts.held(_StartTurn(self)):
                with traits_set(self, pull_policy="skip"):
                    started = await super().start()
                answering = asyncio.ensure_future(self._answering(started))
                # A server slow to answer gives its slot to the next after start_slot_seconds.
                await asyncio.wait([answering], timeout=self.start_slot_seconds)
            await answering
        finally:
            if answering is not None and not answering.done():
                answering.cancel()  # the start was cancelled (start_timeout, a stop)
        return started

    async def _answering(self, started) -> None:
        """Return once the server answers as the hub checks it (any answer below 500 from its
        /api), checked every READY_INTERVAL, so that the hub's own wait passes at its first try.
        That wait backs off to up to 5 s between tries (jupyterhub.utils.exponential_backoff):
        in a lecture's burst a server stood ready ~1.7 s on average before the hub noticed
        (benchmarks/README.md, finding 6). A container that stops first, or a server silent
        for http_timeout, ends the start with a message for the user."""
        if self.internal_ssl or not isinstance(started, tuple) or self.server is None:
            return  # the hub's wait, with its TLS context, checks alone
        ip, port = started
        ip = "127.0.0.1" if ip in ("", "0.0.0.0") else ip
        url = f"http://{'[' + ip + ']' if ':' in ip else ip}:{port}" + url_path_join(self.server.base_url, "api")
        # A client of its own: the hub's shared one (JupyterHub 5 calls the proxy with it)
        # keeps its few connections for the hub.
        client = AsyncHTTPClient(force_instance=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        state_due = loop.time() + STATE_INTERVAL
        try:
            while loop.time() < deadline:
                # A closed port is refused at once: a try costs the hub about a millisecond.
                try:
                    answer = await client.fetch(url, raise_error=False, follow_redirects=False, request_timeout=2)
                except (OSError, HTTPClientError):  # refused, reset, or timed out (599)
                    answer = None
                if answer is not None and answer.code < 500:
                    return
                if loop.time() >= state_due:
                    status = await self.poll()
                    if status is not None:
                        raise UserFacingError(
                            f"Your server stopped before it answered ({status}). If it happens again, "
                            "choose another image or tell the hub's admins: the hub's log has the details."
                        )
                    state_due = loop.time() + STATE_INTERVAL
                await asyncio.sleep(READY_INTERVAL)
        finally:
            client.close()
        raise UserFacingError(
            f"Your server started but did not answer within {self.http_timeout} seconds. Try again; "
            "if it happens again, tell the hub's admins."
        )

    async def create_object(self):
        self.emit_progress(60, f"Creating your container from {self.image}")
        fingerprint = self._options_fingerprint()
        granted = await self._with_layer_of_image(self.grant)

        def create_extras(extra):
            extra.setdefault("labels", {}).update({OPTIONS_LABEL: fingerprint, USER_LABEL: self.user.name})
            if self.uid is not None:
                extra["user"] = resources.run_as(self.uid)
            if not self.image_healthcheck:
                # An admin's own healthcheck in extra_create_kwargs is kept.
                extra.setdefault("healthcheck", dict(NO_HEALTHCHECK))

        def host_extras(extra):
            # DockerSpawner removes the container itself when the server stops. Docker's
            # AutoRemove would also remove it when dockerd restarts under live-restore
            # (moby#46308, Docker before 24.0.8, e.g. Debian 12's 20.10): every user's
            # server would die with an engine upgrade.
            extra.setdefault("auto_remove", False)
            period = extra.get("cpu_period", resources.CPU_PERIOD)
            extra.update(resources.over_extra(extra, granted, self.choice_resources, period))
            if self.uid is not None:
                extra.update(resources.identity_groups(extra))
            # The user's course folders: the server's own mounts, not its helpers'.
            binds, gids = courses.mounts_for(self.course_list, self._user_groups())
            if binds:
                extra.setdefault("binds", {}).update(binds)
                extra.update(resources.group_add(extra, gids))

        # DockerSpawner merges its extra_* settings last: what is built here is handed over
        # through them, for this call only.
        with traits_set(
            self,
            extra_create_kwargs=_extended(self.extra_create_kwargs, create_extras),
            extra_host_config=_extended(self.extra_host_config, host_extras),
        ):
            return await super().create_object()

    _storage_driver: str | None = None

    async def _with_layer_of_image(self, granted: resources.Grant) -> resources.Grant:
        """layer_quota is what the server may write. Docker's btrfs driver limits the
        container's whole snapshot, the image's layers included: there the image's size is
        added (overlay2 on XFS counts only what the container writes)."""
        if granted.layer_quota is None:
            return granted
        if FormDockerSpawner._storage_driver is None:
            FormDockerSpawner._storage_driver = (await self.docker("info")).get("Driver", "")
        if FormDockerSpawner._storage_driver != "btrfs":
            return granted
        size = (await self.docker("inspect_image", self.image)).get("Size") or 0
        return dataclasses.replace(granted, layer_quota=granted.layer_quota + size)

    async def start_object(self):
        self.emit_progress(80, "Starting your container")
        await super().start_object()

    async def pull_image(self, image):
        """Pull as DockerSpawner does, streaming the pull's progress to the spawn page."""
        if self.pull_policy == "skip" or image.startswith(f"{IMAGE_REPOSITORY}/"):
            return  # a repository image exists only here; it was just built or found
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

        # Not on DockerSpawner's executor: its one thread makes every Docker call of every
        # user, and a pull of gigabytes would hold them all up.
        await asyncio.wrap_future(schedule.pulls.submit(pull))
        self.emit_progress(55, f"Pulled image {image}")


class _StartTurn:
    """A server waiting for a start slot: its spawn page hears its place in line."""

    def __init__(self, spawner):
        self.spawner = spawner

    def waiting(self, place: int, limit: int) -> None:
        note = f"servers start {limit} at a time, so that each is ready sooner"
        self.spawner.emit_progress(58, f"{schedule.START_WAITING}: number {place} in line ({note})")


@contextlib.contextmanager
def traits_set(spawner, **values):
    """Traits set for one call into DockerSpawner's code, the configured values back after."""
    configured = {name: getattr(spawner, name) for name in values}
    for name, value in values.items():
        setattr(spawner, name, value)
    try:
        yield configured
    finally:
        for name, value in configured.items():
            setattr(spawner, name, value)


def _extended(configured, extend):
    """DockerSpawner's extra_* settings (a dict, or a callable of the spawner), with
    `extend` applied to a copy of what they give."""

    async def extended(spawner):
        extra = spawner._eval_if_callable(configured)
        if inspect.isawaitable(extra):
            extra = await extra
        extra = copy.deepcopy(extra or {})
        extend(extra)
        return extra

    return extended


# Docker's "no health check": the image's HEALTHCHECK is not run (API field names, which
# docker-py passes on as they are for services and reads for containers).
NO_HEALTHCHECK = {"Test": ["NONE"]}

# Seconds between two checks that a starting server answers, and that its container still runs.
READY_INTERVAL = 0.1
STATE_INTERVAL = 2.0


def _split_reference(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    # A registry with a port (host:5000/name) has a colon before the last slash.
    if ":" in image.rsplit("/", 1)[-1]:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


def _read_lines(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8") as lines:
            return {line.strip() for line in lines if line.strip()}
    except FileNotFoundError:
        return set()


def _append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
