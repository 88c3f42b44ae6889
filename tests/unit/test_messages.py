"""Every refusal's whole text, as the admin (inventory) or the user (form, link, REST API)
reads it, and every limit accepted exactly at its value.

The other unit tests check that bad input is refused; these pin what the refusal says, so
a message that loses the name of the setting, the value or the limit fails here
(mutation testing, `make mutation`, showed messages changing unnoticed otherwise).
"""

import pytest

from formspawner import hubconfig
from formspawner.env import EnvPolicy, parse_env_text
from formspawner.errors import OptionError, PolicyError
from formspawner.images import ImageCatalog
from formspawner.options import OptionSet
from formspawner.repo import BaseImage, RepoPolicy, read_apt_packages

IMAGES = [
    {"name": "minimal", "image": "x/minimal:1", "default": True},
    {"name": "gpu", "image": "x/gpu:1", "groups": ["gpu-users"]},
]
CATALOG = ImageCatalog.from_config(IMAGES)
OPTIONS = OptionSet.from_config(["image", "env", "repo"], IMAGES, None)
POLICY = RepoPolicy()
ERRORS = {"PolicyError": PolicyError, "OptionError": OptionError, "ValueError": ValueError}

REFUSALS = [
    (
        "env-policy-unknown-key",
        lambda: EnvPolicy.from_config({"deny": []}),
        "PolicyError",
        "env_policy: unknown key(s) 'deny'; known keys are allow_pattern, defaults, deny_patterns, fixed, max_value_length, max_vars",
    ),
    (
        "env-policy-unknown-key-named-setting",
        lambda: EnvPolicy.from_config({"deny": []}, "course.env"),
        "PolicyError",
        "course.env: unknown key(s) 'deny'; known keys are allow_pattern, defaults, deny_patterns, fixed, max_value_length, max_vars",
    ),
    (
        "env-deny-not-list",
        lambda: EnvPolicy.from_config({"deny_patterns": "^AWS_"}),
        "PolicyError",
        "env_policy.deny_patterns must be a list of regular expressions",
    ),
    (
        "env-deny-bad-regex",
        lambda: EnvPolicy.from_config({"deny_patterns": ["^OK", "("]}),
        "PolicyError",
        "env_policy.deny_patterns[1] is not a valid regular expression (missing ), unterminated subpattern at position 0): '('",
    ),
    (
        "env-deny-empty",
        lambda: EnvPolicy.from_config({"deny_patterns": [""]}),
        "PolicyError",
        "env_policy.deny_patterns[0] must be a non-empty regular expression string, not ''",
    ),
    (
        "env-allow-not-text",
        lambda: EnvPolicy.from_config({"allow_pattern": 5}),
        "PolicyError",
        "env_policy.allow_pattern must be a non-empty regular expression string, not 5",
    ),
    (
        "env-max-vars-negative",
        lambda: EnvPolicy.from_config({"max_vars": -1}),
        "PolicyError",
        "env_policy.max_vars must be a whole number >= 0, not -1",
    ),
    (
        "env-max-vars-bool",
        lambda: EnvPolicy.from_config({"max_value_length": True}),
        "PolicyError",
        "env_policy.max_value_length must be a whole number >= 0, not True",
    ),
    (
        "env-fixed-not-mapping",
        lambda: EnvPolicy.from_config({"fixed": ["TZ"]}),
        "PolicyError",
        "env_policy.fixed must be a mapping of NAME: value",
    ),
    (
        "env-fixed-bad-name",
        lambda: EnvPolicy.from_config({"fixed": {"A B": "1"}}),
        "PolicyError",
        "env_policy.fixed: 'A B' is not a valid variable name",
    ),
    (
        "env-fixed-bad-value",
        lambda: EnvPolicy.from_config({"defaults": {"A": ["1"]}}),
        "PolicyError",
        "env_policy.defaults.A must be a string, not list",
    ),
    (
        "env-defaults-denied",
        lambda: EnvPolicy.from_config({"defaults": {"JUPYTERHUB_API_TOKEN": "x"}}),
        "PolicyError",
        "env_policy.defaults: Variable 'JUPYTERHUB_API_TOKEN' is reserved by the platform or denied by this hub's policy and cannot be set.",
    ),
    (
        "env-defaults-over-max",
        lambda: EnvPolicy.from_config({"max_vars": 1, "defaults": {"A": "1", "B": "2"}}),
        "PolicyError",
        "env_policy.defaults has more variables than max_vars (1)",
    ),
    (
        "env-not-object",
        lambda: EnvPolicy().check(["A=1"]),
        "OptionError",
        "'env' must be an object of NAME: value pairs, not list.",
    ),
    (
        "env-too-many",
        lambda: EnvPolicy(max_vars=2).check({"A": "1", "B": "2", "C": "3"}),
        "OptionError",
        "Too many variables: 3 given, this hub allows 2.",
    ),
    (
        "env-name-empty",
        lambda: EnvPolicy().check({"": "1"}),
        "OptionError",
        "Variable names must be non-empty text, not ''.",
    ),
    (
        "env-name-not-text",
        lambda: EnvPolicy().check_name(7),
        "OptionError",
        "Variable names must be non-empty text, not 'int'.",
    ),
    (
        "env-name-too-long",
        lambda: EnvPolicy().check_name("A" * 256),
        "OptionError",
        "Variable name 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...' is longer than 255 characters.",
    ),
    (
        "env-name-malformed",
        lambda: EnvPolicy().check_name("A B"),
        "OptionError",
        "Variable name 'A B' is not allowed: use ASCII letters, digits and underscores, with no spaces or '='.",
    ),
    (
        "env-name-denied",
        lambda: EnvPolicy().check_name("JUPYTERHUB_API_TOKEN"),
        "OptionError",
        "Variable 'JUPYTERHUB_API_TOKEN' is reserved by the platform or denied by this hub's policy and cannot be set.",
    ),
    (
        "env-name-fixed",
        lambda: EnvPolicy(fixed={"TZ": "UTC"}).check_name("tz"),
        "OptionError",
        "Variable 'tz' is reserved by the platform or denied by this hub's policy and cannot be set.",
    ),
    (
        "env-name-deny-pattern",
        lambda: EnvPolicy.from_config({"deny_patterns": ["^AWS_"]}).check_name("aws_key"),
        "OptionError",
        "Variable 'aws_key' is reserved by the platform or denied by this hub's policy and cannot be set.",
    ),
    (
        "env-name-not-allowed",
        lambda: EnvPolicy.from_config({"allow_pattern": "[A-Z_]+"}).check_name("lower"),
        "OptionError",
        "Variable name 'lower' does not match this hub's allowed pattern '[A-Z_]+'.",
    ),
    ("env-value-not-text", lambda: EnvPolicy().check({"A": 1}), "OptionError", "The value of A must be text, not int."),
    (
        "env-value-too-long",
        lambda: EnvPolicy(max_value_length=3).check({"A": "abcd"}),
        "OptionError",
        "The value of A is longer than this hub allows (3 characters).",
    ),
    (
        "env-value-control",
        lambda: EnvPolicy().check({"A": "a\nb"}),
        "OptionError",
        "The value of A contains a control character (such as NUL or a newline).",
    ),
    ("env-text-not-text", lambda: parse_env_text(None), "OptionError", "The environment field must be text."),
    (
        "env-text-too-long",
        lambda: parse_env_text("A=1234", max_length=5),
        "OptionError",
        "The environment field is too long (at most 5 characters).",
    ),
    (
        "env-text-nul",
        lambda: parse_env_text("A=\x00"),
        "OptionError",
        "The environment field contains a NUL character.",
    ),
    (
        "env-text-no-equals",
        lambda: parse_env_text("A=1\n\nJUSTANAME"),
        "OptionError",
        "Line 3 of the environment field is not NAME=value.",
    ),
    (
        "env-text-twice",
        lambda: parse_env_text("A=1\n# c\nA=2"),
        "OptionError",
        "Variable 'A' is set twice (lines 1 and 3).",
    ),
    (
        "images-not-list",
        lambda: ImageCatalog.from_config({"name": "a"}),
        "PolicyError",
        "images must be a list of image entries",
    ),
    (
        "images-entry-not-mapping",
        lambda: ImageCatalog.from_config(["a"]),
        "PolicyError",
        "images[0] must be a mapping with at least 'name' and 'image'",
    ),
    (
        "images-unknown-key",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "tag": "1", "colour": 2}]),
        "PolicyError",
        "images[0]: unknown key(s) 'colour', 'tag'; known keys are default, description, display_name, groups, image, name, resources",
    ),
    (
        "images-resources-bad-size",
        lambda: ImageCatalog.from_config([{"name": "ml", "image": "x/y:1", "resources": {"mem_limit": "8 GB"}}]),
        "PolicyError",
        "images[0] (ml).resources.mem_limit must be a size such as 512M or 8G, not '8 GB'",
    ),
    (
        "images-bad-name",
        lambda: ImageCatalog.from_config([{"name": "A b", "image": "x/y:1"}]),
        "PolicyError",
        "images[0].name must be a short slug (lower-case letters, digits, '.', '_', '-'), not 'A b'",
    ),
    (
        "images-bad-image",
        lambda: ImageCatalog.from_config([{"name": "a", "image": ""}]),
        "PolicyError",
        "images[0] (a).image must be an image reference such as quay.io/jupyter/minimal-notebook:TAG",
    ),
    (
        "images-display-not-text",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "display_name": 3}]),
        "PolicyError",
        "images[0] (a).display_name must be a string",
    ),
    (
        "images-description-not-text",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "description": 3}]),
        "PolicyError",
        "images[0] (a).description must be a string",
    ),
    (
        "images-groups-not-list",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "groups": "gpu"}]),
        "PolicyError",
        "images[0] (a).groups must be a list of JupyterHub group names",
    ),
    (
        "images-groups-empty-name",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "groups": [""]}]),
        "PolicyError",
        "images[0] (a).groups must be a list of JupyterHub group names",
    ),
    (
        "images-default-not-bool",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "default": "yes"}]),
        "PolicyError",
        "images[0] (a).default must be true or false",
    ),
    (
        "images-name-twice",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1"}, {"name": "a", "image": "x/y:2"}]),
        "PolicyError",
        "images: the name 'a' is used by more than one entry",
    ),
    (
        "images-two-defaults",
        lambda: ImageCatalog.from_config(
            [{"name": "a", "image": "x/y:1", "default": True}, {"name": "b", "image": "x/y:2", "default": True}]
        ),
        "PolicyError",
        "images: more than one entry is marked default (a, b)",
    ),
    (
        "images-default-grouped",
        lambda: ImageCatalog.from_config(
            [{"name": "a", "image": "x/y:1", "default": True, "groups": ["g"]}, {"name": "b", "image": "x/y:2"}]
        ),
        "PolicyError",
        "images: the default image 'a' is limited to groups; the default must be available to every user",
    ),
    (
        "images-none-for-some",
        lambda: ImageCatalog.from_config([{"name": "a", "image": "x/y:1", "groups": ["g"]}]),
        "PolicyError",
        "images: no default image: every entry is limited to groups, so some users would have none. Add an entry without groups or mark one default.",
    ),
    (
        "image-no-choice",
        lambda: ImageCatalog.from_config([]).choose("a", []),
        "OptionError",
        "This hub does not offer a choice of image.",
    ),
    ("image-not-text", lambda: CATALOG.choose(3, []), "OptionError", "'image' must be the name of an image, not int."),
    (
        "image-unknown",
        lambda: CATALOG.choose("nope", []),
        "OptionError",
        "Unknown image 'nope'. Choose one of: minimal.",
    ),
    (
        "image-other-group",
        lambda: CATALOG.choose("gpu", ["students"]),
        "OptionError",
        "Unknown image 'gpu'. Choose one of: minimal.",
    ),
    (
        "image-unknown-to-a-group-member",
        lambda: CATALOG.choose("nope", ["gpu-users"]),
        "OptionError",
        "Unknown image 'nope'. Choose one of: minimal, gpu.",
    ),
    (
        "options-unknown-piece",
        lambda: OptionSet.from_config(["image", "cmd", "gpu"], IMAGES, None),
        "PolicyError",
        "form_options: unknown option(s) 'cmd', 'gpu'; available: image, env, repo",
    ),
    (
        "options-twice",
        lambda: OptionSet.from_config(["env", "env"], IMAGES, None),
        "PolicyError",
        "form_options lists an option twice: ['env', 'env']",
    ),
    (
        "options-image-needs-container",
        lambda: OptionSet.from_config(["env", "image"], IMAGES, None, supports_image=False),
        "PolicyError",
        "form_options: 'image' needs a container spawner (FormDockerSpawner)",
    ),
    (
        "options-repo-needs-container",
        lambda: OptionSet.from_config(["repo"], IMAGES, None, supports_image=False),
        "PolicyError",
        "form_options: 'repo' needs a container spawner (FormDockerSpawner)",
    ),
    (
        "options-not-object",
        lambda: OPTIONS.check(["image"], []),
        "OptionError",
        'Options must be a JSON object such as {"image": "NAME"}.',
    ),
    (
        "options-unknown-key",
        lambda: OPTIONS.check({"cmd": "sh"}, []),
        "OptionError",
        "Unknown option 'cmd'. This hub accepts: image, env, repo.",
    ),
    (
        "options-unknown-key-none-offered",
        lambda: OptionSet.from_config([], IMAGES, None).check({"cmd": "sh"}, []),
        "OptionError",
        "Unknown option 'cmd'. This hub accepts: no options.",
    ),
    (
        "options-link-sets-env",
        lambda: OPTIONS.check({"env": {"A": "1"}}, [], from_link=True),
        "OptionError",
        "A link cannot set 'env': only image, repo may come from a link. Set it yourself on the spawn form.",
    ),
    (
        "options-link-sets-env-nothing-allowed",
        lambda: OptionSet.from_config(["env"], IMAGES, None).check({"env": {}}, [], from_link=True),
        "OptionError",
        "A link cannot set 'env': only nothing may come from a link. Set it yourself on the spawn form.",
    ),
    (
        "link-twice",
        lambda: OPTIONS.from_query({"image": ["a", "b"]}),
        "OptionError",
        "The link gives 'image' more than once.",
    ),
    (
        "link-ref-without-repo",
        lambda: OPTIONS.from_query({"ref": ["main"]}),
        "OptionError",
        "The link gives a ref or path but no repository (repo=https://...).",
    ),
    (
        "repo-policy-unknown-key",
        lambda: RepoPolicy.from_config({"hosts": []}),
        "PolicyError",
        "repo_policy: unknown key(s) 'hosts'; known keys are allow_private_hosts, allowed_hosts, build_cpus, build_memory, build_timeout, cache_max_images, cache_max_size, config_files, max_concurrent_builds, max_repo_size, min_free_disk, python_mismatch, resolve_timeout",
    ),
    (
        "repo-hosts-not-list",
        lambda: RepoPolicy.from_config({"allowed_hosts": "github.com"}),
        "PolicyError",
        "repo_policy.allowed_hosts must be a list of host names such as github.com",
    ),
    (
        "repo-host-upper",
        lambda: RepoPolicy.from_config({"allowed_hosts": ["GitHub.com"]}),
        "PolicyError",
        "repo_policy.allowed_hosts: 'GitHub.com' is not a lower-case host name (optionally with :port), such as github.com or git.example.edu:8443",
    ),
    (
        "repo-host-port-zero",
        lambda: RepoPolicy.from_config({"allowed_hosts": ["git.example.edu:0"]}),
        "PolicyError",
        "repo_policy.allowed_hosts: 'git.example.edu:0' is not a lower-case host name (optionally with :port), such as github.com or git.example.edu:8443",
    ),
    (
        "repo-host-port-too-big",
        lambda: RepoPolicy.from_config({"allowed_hosts": ["git.example.edu:65536"]}),
        "PolicyError",
        "repo_policy.allowed_hosts: 'git.example.edu:65536' is not a lower-case host name (optionally with :port), such as github.com or git.example.edu:8443",
    ),
    (
        "repo-config-files",
        lambda: RepoPolicy.from_config({"config_files": ["Dockerfile"]}),
        "PolicyError",
        "repo_policy.config_files must list some of apt.txt, environment.yml, Pipfile, requirements.txt, setup.py, "
        "pyproject.toml, postBuild, not ['Dockerfile']",
    ),
    (
        "repo-private-not-bool",
        lambda: RepoPolicy.from_config({"allow_private_hosts": "yes"}),
        "PolicyError",
        "repo_policy.allow_private_hosts must be true or false, not 'yes'",
    ),
    (
        "repo-timeout-too-small",
        lambda: RepoPolicy.from_config({"build_timeout": 9}),
        "PolicyError",
        "repo_policy.build_timeout must be a whole number of at least 10, not 9",
    ),
    (
        "repo-cpus-negative",
        lambda: RepoPolicy.from_config({"build_cpus": -1}),
        "PolicyError",
        "repo_policy.build_cpus must be a whole number of at least 0, not -1",
    ),
    (
        "repo-cache-images-zero",
        lambda: RepoPolicy.from_config({"cache_max_images": 0}),
        "PolicyError",
        "repo_policy.cache_max_images must be a whole number of at least 1, not 0",
    ),
    (
        "repo-concurrent-builds-zero",
        lambda: RepoPolicy.from_config({"max_concurrent_builds": 0}),
        "PolicyError",
        "repo_policy.max_concurrent_builds must be a whole number of at least 1, not 0",
    ),
    (
        "repo-concurrent-builds-in-another-setting",
        lambda: RepoPolicy.from_config({"max_concurrent_builds": "2"}, setting="c.FormDockerSpawner.repo_policy"),
        "PolicyError",
        "c.FormDockerSpawner.repo_policy.max_concurrent_builds must be a whole number of at least 1, not '2'",
    ),
    (
        "repo-resolve-timeout-bool",
        lambda: RepoPolicy.from_config({"resolve_timeout": True}),
        "PolicyError",
        "repo_policy.resolve_timeout must be a whole number of at least 1, not True",
    ),
    (
        "repo-size-words",
        lambda: RepoPolicy.from_config({"build_memory": "lots"}),
        "PolicyError",
        "repo_policy.build_memory must be a size such as 4g or 512m, not 'lots'",
    ),
    (
        "repo-size-zero",
        lambda: RepoPolicy.from_config({"cache_max_size": "0g"}),
        "PolicyError",
        "repo_policy.cache_max_size must be more than zero",
    ),
    (
        "repo-size-bool",
        lambda: RepoPolicy.from_config({"min_free_disk": False}),
        "PolicyError",
        "repo_policy.min_free_disk must be a size such as 4g or 512m, not False",
    ),
    (
        "repo-size-negative",
        lambda: RepoPolicy.from_config({"max_repo_size": -5}),
        "PolicyError",
        "repo_policy.max_repo_size must be more than zero",
    ),
    (
        "repo-not-object",
        lambda: POLICY.check("https://github.com/a/b"),
        "OptionError",
        'The repository must be given as {"url": "https://...", "ref": "main"}.',
    ),
    (
        "repo-unknown-field",
        lambda: POLICY.check({"url": "https://github.com/a/b", "branch": "x", "commit": "y"}),
        "OptionError",
        "Unknown repository field 'branch': use 'url' and 'ref'.",
    ),
    (
        "repo-url-not-text",
        lambda: POLICY.check({"url": 5}),
        "OptionError",
        "The repository URL must be text, not 'int'.",
    ),
    (
        "repo-ref-not-text",
        lambda: POLICY.check({"url": "https://github.com/a/b", "ref": ["main"]}),
        "OptionError",
        "The repository ref must be text, not 'list'.",
    ),
    (
        "repo-path-not-text",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": 1}),
        "OptionError",
        "The repository path must be text, not 'int'.",
    ),
    (
        "repo-ref-without-url",
        lambda: POLICY.check({"url": " ", "ref": "main"}),
        "OptionError",
        "A ref or path was given without a repository URL.",
    ),
    (
        "repo-path-without-url",
        lambda: POLICY.check({"path": "a.ipynb"}),
        "OptionError",
        "A ref or path was given without a repository URL.",
    ),
    (
        "repo-url-too-long",
        lambda: POLICY.check({"url": "https://github.com/" + "a" * 400}),
        "OptionError",
        "The repository URL is longer than 400 characters.",
    ),
    (
        "repo-url-not-ascii",
        lambda: POLICY.check({"url": "https://gïthub.com/a/b"}),
        "OptionError",
        "The repository URL may only hold printable ASCII characters without spaces (write an international host name in its xn-- form).",
    ),
    (
        "repo-url-http",
        lambda: POLICY.check({"url": "http://github.com/a/b"}),
        "OptionError",
        "Only https:// repository URLs are accepted, not 'http://github.com/a/b'.",
    ),
    (
        "repo-url-userinfo",
        lambda: POLICY.check({"url": "https://user:pw@github.com/a/b"}),
        "OptionError",
        "The repository URL must not hold a user name or password.",
    ),
    (
        "repo-url-query",
        lambda: POLICY.check({"url": "https://github.com/a/b?x=1"}),
        "OptionError",
        "The repository URL must not have a query (?), fragment (#) or parameters (;).",
    ),
    (
        "repo-url-bad-host",
        lambda: POLICY.check({"url": "https://github.com:99999/a/b"}),
        "OptionError",
        "Repositories from 'github.com:99999' are not allowed here. Allowed hosts: github.com, gitlab.com.",
    ),
    (
        "repo-url-malformed-host",
        lambda: POLICY.check({"url": "https://git_hub.com/a/b"}),
        "OptionError",
        "'git_hub.com' is not a host name this hub accepts.",
    ),
    (
        "repo-path-empty-part",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a//b.ipynb"}),
        "OptionError",
        "'a//b.ipynb' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "repo-url-other-host",
        lambda: POLICY.check({"url": "https://evil.example/a/b"}),
        "OptionError",
        "Repositories from 'evil.example' are not allowed here. Allowed hosts: github.com, gitlab.com.",
    ),
    (
        "repo-url-other-port",
        lambda: POLICY.check({"url": "https://github.com:8443/a/b"}),
        "OptionError",
        "Repositories from 'github.com:8443' are not allowed here. Allowed hosts: github.com, gitlab.com.",
    ),
    (
        "repo-url-dotdot",
        lambda: POLICY.check({"url": "https://github.com/a/../b"}),
        "OptionError",
        "The repository URL's path must be plain names separated by '/', such as /owner/repository (no '..', hidden names, escapes or backslashes).",
    ),
    (
        "repo-url-no-path",
        lambda: POLICY.check({"url": "https://github.com"}),
        "OptionError",
        "The repository URL's path must be plain names separated by '/', such as /owner/repository (no '..', hidden names, escapes or backslashes).",
    ),
    (
        "repo-url-too-deep",
        lambda: POLICY.check({"url": "https://github.com/" + "/".join("abcdefghijk")}),
        "OptionError",
        "The repository URL's path must be plain names separated by '/', such as /owner/repository (no '..', hidden names, escapes or backslashes).",
    ),
    (
        "repo-url-only-dotgit",
        lambda: POLICY.check({"url": "https://github.com/a/.git"}),
        "OptionError",
        "The repository URL's path must be plain names separated by '/', such as /owner/repository (no '..', hidden names, escapes or backslashes).",
    ),
    (
        "repo-ref-too-long",
        lambda: POLICY.check({"url": "https://github.com/a/b", "ref": "a" * 201}),
        "OptionError",
        "The ref is longer than 200 characters.",
    ),
    (
        "repo-ref-dash",
        lambda: POLICY.check({"url": "https://github.com/a/b", "ref": "-x"}),
        "OptionError",
        "'-x' is not a branch, tag or commit name: use letters, digits, '.', '_', '-', '+' and '/', not starting with '-' and without '..'.",
    ),
    (
        "repo-ref-lock",
        lambda: POLICY.check({"url": "https://github.com/a/b", "ref": "main.lock"}),
        "OptionError",
        "'main.lock' is not a branch, tag or commit name: use letters, digits, '.', '_', '-', '+' and '/', not starting with '-' and without '..'.",
    ),
    (
        "repo-ref-part-lock",
        lambda: POLICY.check({"url": "https://github.com/a/b", "ref": "a.lock/b"}),
        "OptionError",
        "'a.lock/b' is not a branch, tag or commit name: use letters, digits, '.', '_', '-', '+' and '/', not starting with '-' and without '..'.",
    ),
    (
        "repo-path-dotdot",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a/../../etc/passwd"}),
        "OptionError",
        "'a/../../etc/passwd' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "repo-path-dot",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a/./b"}),
        "OptionError",
        "'a/./b' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "repo-path-backslash",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a\\b"}),
        "OptionError",
        "'a\\\\b' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "repo-path-too-long",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a" * 256}),
        "OptionError",
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "repo-path-unprintable",
        lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a\tb"}),
        "OptionError",
        "'a?b' is not a path inside the repository: use names separated by '/', without '..' or backslashes.",
    ),
    (
        "apt-bad-package",
        lambda: read_apt_packages("vim\n# c\nrm -rf /"),
        "ValueError",
        "apt.txt line 3: 'rm -rf /' is not a Debian package name",
    ),
    (
        "apt-too-many",
        lambda: read_apt_packages("\n".join(f"p{i}" for i in range(201))),
        "ValueError",
        "apt.txt lists more than 200 packages",
    ),
    (
        "image-user-bad",
        lambda: BaseImage.from_inspect({"Id": "sha256:1", "Config": {"User": "a b"}}),
        "ValueError",
        "the image's user 'a b' cannot be used for a repository build",
    ),
    (
        "image-home-bad",
        lambda: BaseImage.from_inspect({"Id": "sha256:1", "Config": {"Env": ["HOME=rel/x"]}}),
        "ValueError",
        "the image's home or working directory 'rel/x' cannot be used for a build",
    ),
    (
        "image-workdir-bad",
        lambda: BaseImage.from_inspect({"Id": "sha256:1", "Config": {"WorkingDir": "/a b"}}),
        "ValueError",
        "the image's home or working directory '/a b' cannot be used for a build",
    ),
    (
        "extra-config-not-mapping",
        lambda: hubconfig.check_extra_config(["JupyterHub"]),
        "PolicyError",
        "extra_config must be a mapping of class names to settings",
    ),
    (
        "extra-config-bad-class",
        lambda: hubconfig.check_extra_config({"jupyterhub": {}}),
        "PolicyError",
        "extra_config: 'jupyterhub' is not a configurable class name (e.g. JupyterHub, Spawner, FormDockerSpawner)",
    ),
    (
        "extra-config-bad-traits",
        lambda: hubconfig.check_extra_config({"JupyterHub": {1: 2}}),
        "PolicyError",
        "extra_config.JupyterHub must be a mapping of trait names to values",
    ),
]


@pytest.mark.parametrize("call, error, message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_says_exactly_what_is_wrong(call, error, message):
    with pytest.raises(ERRORS[error]) as raised:
        call()
    assert type(raised.value) is ERRORS[error]
    assert str(raised.value) == message


ACCEPTED_AT_THE_LIMIT = [
    ("255-character variable name", lambda: EnvPolicy().check_name("A" * 255)),
    ("max_vars variables", lambda: EnvPolicy(max_vars=2).check({"A": "1", "B": "2"})),
    ("max_value_length value", lambda: EnvPolicy(max_value_length=3).check({"A": "abc"})),
    ("zero max_vars and max_value_length", lambda: EnvPolicy.from_config({"max_vars": 0, "max_value_length": 0})),
    ("as many defaults as max_vars", lambda: EnvPolicy.from_config({"max_vars": 2, "defaults": {"A": "1", "B": 2}})),
    ("form text of max_length", lambda: parse_env_text("A=123", max_length=5)),
    ("400-character URL", lambda: POLICY.check({"url": "https://github.com/" + "/".join(["a" * 100] * 3 + ["b" * 78])})),
    ("ten path segments", lambda: POLICY.check({"url": "https://github.com/" + "/".join("abcdefghij")})),
    ("200-character ref", lambda: POLICY.check({"url": "https://github.com/a/b", "ref": "a" * 200})),
    ("255-character path", lambda: POLICY.check({"url": "https://github.com/a/b", "path": "a" * 255})),
    ("ports 1 and 65535", lambda: RepoPolicy.from_config({"allowed_hosts": ["a.edu:1", "b.edu:65535"]})),
    ("build_timeout 10, build_cpus 0", lambda: RepoPolicy.from_config({"build_timeout": 10, "build_cpus": 0})),
    ("a size of one byte", lambda: RepoPolicy.from_config({"max_repo_size": 1})),
    ("200 apt packages", lambda: read_apt_packages("\n".join(f"p{i}" for i in range(200)))),
]


@pytest.mark.parametrize("call", [r[1] for r in ACCEPTED_AT_THE_LIMIT], ids=[r[0] for r in ACCEPTED_AT_THE_LIMIT])
def test_each_limit_is_accepted_at_its_value(call):
    call()


# -- values kept as given (each from a mutant that changed one and passed every other test)


def test_an_env_policy_keeps_its_fixed_values_and_defaults_as_text():
    policy = EnvPolicy.from_config({"fixed": {"TZ": "UTC"}, "defaults": {"OMP_NUM_THREADS": 1, "B": 2.5}})
    assert policy.fixed == {"TZ": "UTC"}
    assert policy.defaults == {"OMP_NUM_THREADS": "1", "B": "2.5"}


@pytest.mark.parametrize(
    "text, env",
    [
        ('A=""', {"A": ""}),
        ("A='x'", {"A": "x"}),
        ('A="x', {"A": '"x'}),
        ("A=XvalueX", {"A": "XvalueX"}),
        ("export   A=1\nB=2", {"A": "1", "B": "2"}),
    ],
)
def test_form_text_keeps_values_as_written_but_one_pair_of_quotes(text, env):
    assert parse_env_text(text) == env


def test_variables_become_form_text_one_per_line_with_secrets_withheld():
    from formspawner.env import format_env_text

    assert format_env_text({"A": "1", "DB_PASSWORD": "x", "B": "2"}) == ("A=1\nB=2", ["DB_PASSWORD"])


def test_an_image_entry_keeps_its_description_and_a_missing_one_is_empty():
    catalog = ImageCatalog.from_config([{"name": "a", "image": "x/a:1", "description": "Python"},
                                        {"name": "b", "image": "x/b:1"}])
    assert [c.description for c in catalog.choices] == ["Python", ""]
    assert bool(catalog) is True and bool(ImageCatalog.from_config([])) is False


def test_options_without_a_body_are_the_defaults_and_unknown_pieces_are_none():
    checked = OPTIONS.check(None, [])
    assert checked["image"].name == "minimal" and checked["env"] is None and checked["repo"] is None
    assert OPTIONS.piece("repo").key == "repo" and OPTIONS.piece("cmd") is None
