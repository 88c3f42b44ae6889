"""Environment variables users load into their server, within the admin's policy.

Pure functions over plain data: the spawners call them, tests call them directly.
Values are user data and may be secrets: no message built here contains a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import OptionError, PolicyError, describe, refuse_unknown_keys

# Names the platform owns or that load code or change how a server starts, read by
# what runs in the images before the user's own code: JupyterHub, DockerSpawner,
# jupyter-server, the docker-stacks start scripts (some as root), the shells, the C
# library, the other language runtimes, and on the host the GPU runtime's hook. A
# user-set value would make the platform lie to itself, run code in the start chain,
# or reach past the container (GRANT_SUDO, NVIDIA_VISIBLE_DEVICES). No policy can lift
# them. Matched against the whole name, ignoring case, so that `jupyterhub_api_token`
# or `Path` do not slip through on a case-insensitive consumer.
BUILTIN_DENIED = (
    # JupyterHub, jupyter-server, IPython, the Python and conda environments.
    r"JUPYTERHUB_.*",
    r"JPY_.*",
    r"JUPYTER_.*",
    r"IPYTHONDIR",
    r"PYTHON.*",
    r"CONDA_.*",
    r"MAMBA_.*",
    r"VIRTUAL_ENV",
    r"R2D_.*",
    r"MEM_.*",
    r"CPU_.*",
    # docker-stacks' start chain (start.sh runs hooks and, as root, changes users,
    # ownership and sudo rights; start-notebook.py / start-singleuser.py build the
    # command line): every variable the upstream scripts act on.
    r"NB_.*",
    r"GRANT_SUDO",
    r"CHOWN_.*",
    r"JOVYAN_.*",
    r"NOTEBOOK_ARGS",
    r"GEN_CERT",
    r"RESTARTABLE",
    r"DOCKER_STACKS_.*",
    r"_START_SH_EXECUTED",
    r"CP_OPTS",
    # The process's identity and where it looks for programs.
    r"PATH",
    r"HOME",
    r"USER",
    r"LOGNAME",
    r"SHELL",
    r"PWD",
    # Shells: start-up files, imported functions and options (bash, dash, sh).
    r"BASH_ENV",
    r"ENV",
    r"BASH_FUNC_.*",
    r"SHELLOPTS",
    r"BASHOPTS",
    r"PS4",
    r"PROMPT_COMMAND",
    r"IFS",
    r"CDPATH",
    r"GLOBIGNORE",
    r"BASH_XTRACEFD",
    # The C library and the loader: preloads, modules, tunables, resolver files.
    r"LD_.*",
    r"GCONV_PATH",
    r"LOCPATH",
    r"NLSPATH",
    r"GLIBC_TUNABLES",
    r"MALLOC_.*",
    r"HOSTALIASES",
    r"RES_OPTIONS",
    r"LOCALDOMAIN",
    r"RESOLV_.*",
    # Other runtimes in the images: options and library paths they load code from.
    r"NODE_OPTIONS",
    r"NODE_PATH",
    r"PERL5?OPT",
    r"PERL5?LIB",
    r"PERL5DB",
    r"RUBYOPT",
    r"RUBYLIB",
    r"R_PROFILE.*",
    r"R_ENVIRON.*",
    r"R_LIBS.*",
    r"R_HOME",
    r"JULIA_.*",
    r"JAVA_TOOL_OPTIONS",
    r"_JAVA_OPTIONS",
    r"JDK_JAVA_OPTIONS",
    r"CLASSPATH",
    # Git (run by the server's extensions): config and commands from the environment.
    # GIT_AUTHOR_* and GIT_COMMITTER_* stay the user's to set.
    r"GIT_CONFIG.*",
    r"GIT_SSH.*",
    r"GIT_EXEC_PATH",
    r"GIT_ASKPASS",
    r"SSH_ASKPASS",
    r"GIT_PROXY_COMMAND",
    r"GIT_EXTERNAL_DIFF",
    r"GIT_TEMPLATE_DIR",
    # GPU runtimes: the NVIDIA container runtime's hook reads these on the host
    # (NVIDIA_VISIBLE_DEVICES, NVIDIA_REQUIRE_*, NVIDIA_DISABLE_REQUIRE), and its legacy
    # rule gives every GPU to a container with CUDA_VERSION set and no NVIDIA_REQUIRE_CUDA.
    r"NVIDIA_.*",
    r"CUDA_VERSION",
)
_BUILTIN_DENIED_RE = re.compile("|".join(f"(?:{p})" for p in BUILTIN_DENIED), re.IGNORECASE)

# Names that look like they hold a secret: their values are not written back into the
# form when it is shown again (a shared screen or a screenshot must not leak them).
SECRET_NAME_RE = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL|AUTH", re.IGNORECASE)

# Whatever the allow pattern says: printable ASCII, no `=`, no white space.
_WELL_FORMED_NAME_RE = re.compile(r"[!-<>-~]+")
MAX_NAME_LENGTH = 255
# Control characters other than tab have no business in a variable's value: C0, DEL, C1
# (NEL among them) and Unicode's line and paragraph separators, which some readers
# take for a line break.
_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

POLICY_KEYS = {"allow_pattern", "deny_patterns", "max_vars", "max_value_length", "defaults", "fixed"}


@dataclass(frozen=True)
class EnvPolicy:
    """The admin's rules for user variables (the `env_policy` trait, checked)."""

    allow_pattern: re.Pattern = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    deny_patterns: tuple[re.Pattern, ...] = ()
    max_vars: int = 50
    max_value_length: int = 4096
    defaults: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping | None, setting: str = "env_policy") -> EnvPolicy:
        """Check the admin's policy; raise PolicyError naming the setting otherwise."""
        config = dict(config or {})
        refuse_unknown_keys(config, POLICY_KEYS, setting)
        kwargs = {}
        if "allow_pattern" in config:
            kwargs["allow_pattern"] = _compile(config["allow_pattern"], f"{setting}.allow_pattern")
        deny = config.get("deny_patterns") or []
        if not isinstance(deny, (list, tuple)):
            raise PolicyError(f"{setting}.deny_patterns must be a list of regular expressions")
        kwargs["deny_patterns"] = tuple(
            _compile(p, f"{setting}.deny_patterns[{i}]", re.IGNORECASE) for i, p in enumerate(deny)
        )
        for key in ("max_vars", "max_value_length"):
            if key in config:
                value = config[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise PolicyError(f"{setting}.{key} must be a whole number >= 0, not {value!r}")
                kwargs[key] = value
        fixed = _admin_vars(config.get("fixed"), f"{setting}.fixed")
        defaults = _admin_vars(config.get("defaults"), f"{setting}.defaults")
        policy = cls(**kwargs, fixed=fixed)
        # Defaults are prefilled into the form and sent back by the user, so each one
        # must pass the rules users are held to; otherwise nobody could submit the form.
        for name in defaults:
            try:
                policy.check_name(name)
            except OptionError as error:
                raise PolicyError(f"{setting}.defaults: {error}") from None
        if len(defaults) > policy.max_vars:
            raise PolicyError(f"{setting}.defaults has more variables than max_vars ({policy.max_vars})")
        return cls(**kwargs, fixed=fixed, defaults=defaults)

    def is_denied(self, name: str) -> bool:
        if _BUILTIN_DENIED_RE.fullmatch(name):
            return True
        if name.upper() in {f.upper() for f in self.fixed}:
            return True
        # Deny patterns are anchored at the start of the name: `^AWS_` denies every
        # AWS_ name. Matching more than the whole-name reading is the safe direction.
        return any(p.match(name) for p in self.deny_patterns)

    def check_name(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise OptionError(f"Variable names must be non-empty text, not {describe(name)}.")
        if len(name) > MAX_NAME_LENGTH:
            raise OptionError(f"Variable name {describe(name)} is longer than {MAX_NAME_LENGTH} characters.")
        if not _WELL_FORMED_NAME_RE.fullmatch(name):
            raise OptionError(
                f"Variable name {describe(name)} is not allowed: use ASCII letters, digits and "
                "underscores, with no spaces or '='."
            )
        if self.is_denied(name):
            raise OptionError(
                f"Variable {describe(name)} is reserved by the platform or denied by this hub's policy "
                "and cannot be set."
            )
        if not self.allow_pattern.fullmatch(name):
            raise OptionError(
                f"Variable name {describe(name)} does not match this hub's allowed pattern "
                f"{self.allow_pattern.pattern!r}."
            )
        return name

    def check(self, user_env: object) -> dict[str, str]:
        """The user's variables if they all pass the policy; OptionError otherwise."""
        if not isinstance(user_env, Mapping):
            raise OptionError(
                f"'env' must be an object of NAME: value pairs, not {type(user_env).__name__}."
            )
        if len(user_env) > self.max_vars:
            raise OptionError(f"Too many variables: {len(user_env)} given, this hub allows {self.max_vars}.")
        checked = {}
        for name, value in user_env.items():
            self.check_name(name)
            if not isinstance(value, str):
                raise OptionError(f"The value of {name} must be text, not {type(value).__name__}.")
            if len(value) > self.max_value_length:
                raise OptionError(
                    f"The value of {name} is longer than this hub allows ({self.max_value_length} characters)."
                )
            if _CONTROL_RE.search(value):
                raise OptionError(f"The value of {name} contains a control character (such as NUL or a newline).")
            checked[name] = value
        return checked

    def user_layer(self, user_env: Mapping[str, str] | None) -> dict[str, str]:
        """What the user's options contribute to the server's environment.

        `None` (the user never sent `env`) means the admin's defaults; a dict given by
        the user replaces them (the form starts prefilled with them, so removing a line
        removes the default). Fixed variables always win over user values.
        """
        layer = dict(self.defaults) if user_env is None else dict(user_env)
        layer.update(self.fixed)
        return layer

    @property
    def max_text_length(self) -> int:
        """A bound on the form's text before it is parsed at all."""
        return self.max_vars * (self.max_value_length + MAX_NAME_LENGTH + 2) + 64 * 1024


def merge_environment(user_layer: Mapping[str, str], platform: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: the platform's variables over the user's.

    The image's own ENV sits below both (Docker applies it first). Never route user
    values through Spawner.environment: it is applied above JupyterHub's own variables.
    """
    merged = dict(user_layer)
    merged.update(platform)
    return merged


def parse_env_text(text: object, max_length: int | None = None) -> dict[str, str]:
    """Parse the form's `NAME=value` lines into a dict.

    Blank lines and lines starting with `#` are ignored; `export NAME=value` is
    accepted; the value is everything after the first `=`, with one pair of matching
    surrounding quotes removed. A line without `=` or a name set twice is an error
    that names the line.
    """
    if not isinstance(text, str):
        raise OptionError("The environment field must be text.")
    if max_length is not None and len(text) > max_length:
        raise OptionError(f"The environment field is too long (at most {max_length} characters).")
    if "\x00" in text:
        raise OptionError("The environment field contains a NUL character.")
    env: dict[str, str] = {}
    seen_on: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = _split_assignment(line)
        if not sep or not name:
            raise OptionError(f"Line {number} of the environment field is not NAME=value.")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if name in seen_on:
            raise OptionError(
                f"Variable {describe(name)} is set twice (lines {seen_on[name]} and {number})."
            )
        seen_on[name] = number
        env[name] = value
    return env


def format_env_text(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The form's text for env, and the names left out because they look secret."""
    lines, withheld = [], []
    for name, value in env.items():
        if SECRET_NAME_RE.search(name):
            withheld.append(name)
        else:
            lines.append(f"{name}={value}")
    return "\n".join(lines), withheld


def _split_assignment(line: str) -> tuple[str, str, str]:
    """A form line read as (name, "=", value): an `export ` prefix is dropped, the name
    stripped, the value kept as written. No "=" gives an empty separator."""
    line = line.strip()
    if line.startswith("export ") or line.startswith("export\t"):
        line = line[len("export") :]  # the name is stripped below
    name, sep, value = line.partition("=")
    return name.strip(), sep, value


def withhold_secret_lines(text: str) -> tuple[str, list[str]]:
    """Raw form text with the lines of secret-looking names left out, and those names."""
    kept, withheld = [], []
    for line in text.splitlines():
        name, sep, _ = _split_assignment(line)
        if sep and SECRET_NAME_RE.search(name):
            withheld.append(name)
        else:
            kept.append(line)
    return "\n".join(kept), withheld


def _compile(pattern: object, setting: str, flags: int = 0) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise PolicyError(f"{setting} must be a non-empty regular expression string, not {pattern!r}")
    try:
        return re.compile(pattern, flags)
    except re.error as error:
        raise PolicyError(f"{setting} is not a valid regular expression ({error}): {pattern!r}") from None


def _admin_vars(value: object, setting: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{setting} must be a mapping of NAME: value")
    result = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _WELL_FORMED_NAME_RE.fullmatch(name):
            raise PolicyError(f"{setting}: {name!r} is not a valid variable name")
        # Inventory often says `OMP_NUM_THREADS: 1`; a number means its decimal text.
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise PolicyError(f"{setting}.{name} must be a string, not {type(item).__name__}")
        result[name] = str(item)
    return result
