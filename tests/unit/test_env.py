"""Rules for users' environment variables (formspawner.env)."""

import os
import re
from pathlib import Path

import pytest

from formspawner.env import (
    BUILTIN_DENIED,
    EnvPolicy,
    format_env_text,
    merge_environment,
    parse_env_text,
)
from formspawner.errors import OptionError, PolicyError

POLICY = EnvPolicy.from_config(
    {
        "deny_patterns": ["^AWS_"],
        "max_vars": 5,
        "max_value_length": 20,
        "defaults": {"OMP_NUM_THREADS": 1},
        "fixed": {"TZ": "Europe/Berlin"},
    }
)


def test_parse_env_text_reads_name_value_lines_ignoring_blanks_and_comments():
    text = "# my settings\n\nFOO=bar\n  BAZ = qux \nURL=https://x.org/?a=b&c=d\n"
    assert parse_env_text(text) == {"FOO": "bar", "BAZ": " qux", "URL": "https://x.org/?a=b&c=d"}


def test_parse_env_text_accepts_export_prefix_and_strips_one_pair_of_quotes():
    assert parse_env_text("export A=\"x y\"\nB='1'\nC=\"unbalanced'") == {
        "A": "x y",
        "B": "1",
        "C": "\"unbalanced'",
    }


def test_parse_env_text_keeps_empty_values_and_equals_signs_inside_values():
    assert parse_env_text("EMPTY=\nEQ=a=b==c") == {"EMPTY": "", "EQ": "a=b==c"}


def test_parse_env_text_handles_windows_line_endings():
    assert parse_env_text("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


@pytest.mark.parametrize("text", ["JUSTANAME", "=value", "  = x"])
def test_parse_env_text_refuses_a_line_without_name_and_equals(text):
    with pytest.raises(OptionError, match="Line 1 .* not NAME=value"):
        parse_env_text(text)


def test_parse_env_text_refuses_a_name_set_twice_naming_both_lines():
    with pytest.raises(OptionError, match="set twice .*lines 1 and 3"):
        parse_env_text("A=1\nB=2\nA=3")


def test_parse_env_text_refuses_nul_and_overlong_text():
    with pytest.raises(OptionError, match="NUL"):
        parse_env_text("A=x\x00y")
    with pytest.raises(OptionError, match="too long"):
        parse_env_text("A=" + "x" * 100, max_length=50)


def test_parse_env_text_refuses_non_text():
    with pytest.raises(OptionError):
        parse_env_text(["A=1"])


def test_ten_thousand_lines_parse_and_then_fail_the_count_limit_cleanly():
    env = parse_env_text("\n".join(f"V{i}=x" for i in range(10_000)))
    assert len(env) == 10_000
    with pytest.raises(OptionError, match="Too many variables: 10000 given, this hub allows 5"):
        POLICY.check(env)


@pytest.mark.parametrize(
    "name",
    [
        "JUPYTERHUB_API_TOKEN",
        "jupyterhub_api_token",
        "JupyterHub_Api_Url",
        "JPY_API_TOKEN",
        "JUPYTER_IMAGE_SPEC",
        "JUPYTER_CONFIG_DIR",
        "IPYTHONDIR",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "pythonpath",
        "CONDA_DIR",
        "VIRTUAL_ENV",
        "R2D_ENTRYPOINT",
        "MEM_LIMIT",
        "CPU_LIMIT",
        "LD_PRELOAD",
        "ld_library_path",
        "NB_USER",
        "NB_UID",
        "nb_umask",
        "GRANT_SUDO",
        "grant_sudo",
        "CHOWN_HOME",
        "PATH",
        "Path",
        "HOME",
        "USER",
        "SHELL",
    ],
)
def test_builtin_denials_hold_in_any_case(name):
    with pytest.raises(OptionError, match="reserved by the platform or denied"):
        POLICY.check({name: "x"})


def test_builtin_denials_cannot_be_lifted_by_an_allow_everything_policy():
    policy = EnvPolicy.from_config({"allow_pattern": ".*", "deny_patterns": []})
    for pattern in BUILTIN_DENIED:
        name = pattern.replace(".*", "X").replace("?", "")
        with pytest.raises(OptionError):
            policy.check({name: "x"})


def test_fixed_names_are_denied_to_users_in_any_case():
    for name in ("TZ", "tz"):
        with pytest.raises(OptionError, match="denied"):
            POLICY.check({name: "UTC"})


def test_admin_deny_patterns_deny_every_name_they_start():
    with pytest.raises(OptionError):
        POLICY.check({"AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(OptionError):
        POLICY.check({"aws_region": "x"})
    assert POLICY.check({"MY_AWS_THING": "x"}) == {"MY_AWS_THING": "x"}


def test_allow_pattern_must_match_the_whole_name():
    policy = EnvPolicy.from_config({"allow_pattern": "[A-Z]+$"})
    assert policy.check({"ABC": "1"}) == {"ABC": "1"}
    # re.match would accept the prefix "ABC" of "ABC_1"; fullmatch does not.
    with pytest.raises(OptionError, match="does not match"):
        policy.check({"ABC_1": "1"})


@pytest.mark.parametrize(
    "name", ["WITH SPACE", "A=B", "ÜNICODE", "NAME\n", "\tTAB", "", "A" * 256, "1LEADINGDIGIT", "dash-name"]
)
def test_malformed_names_are_refused(name):
    with pytest.raises(OptionError):
        POLICY.check({name: "x"})


def test_values_are_limited_in_length_and_control_characters():
    assert POLICY.check({"A": "x" * 20, "B": "tab\tok", "C": "ünïcødé ✓"})["A"] == "x" * 20
    with pytest.raises(OptionError, match="longer than this hub allows"):
        POLICY.check({"A": "x" * 21})
    for bad in ("nul\x00", "new\nline", "cr\r", "esc\x1b[31m", "del\x7f"):
        with pytest.raises(OptionError, match="control character"):
            POLICY.check({"A": bad})


def test_a_megabyte_value_is_refused_with_a_message():
    with pytest.raises(OptionError, match="longer"):
        EnvPolicy.from_config({}).check({"BIG": "x" * 1_000_000})


@pytest.mark.parametrize("value", [1, None, ["x"], {"a": "b"}, True])
def test_values_must_be_text(value):
    with pytest.raises(OptionError, match="must be text"):
        POLICY.check({"A": value})


@pytest.mark.parametrize("env", [["A=1"], "A=1", 5, None])
def test_env_must_be_an_object(env):
    with pytest.raises(OptionError, match="'env' must be an object"):
        POLICY.check(env)


def test_error_messages_never_contain_the_value():
    secret = "hunter2-very-secret"
    for env in ({"PATH": secret}, {"A": secret + "\x00"}, {"A": secret * 10}):
        with pytest.raises(OptionError) as caught:
            POLICY.check(env)
        assert secret not in str(caught.value)


def test_html_in_names_is_not_echoed_raw_beyond_a_short_repr():
    with pytest.raises(OptionError) as caught:
        POLICY.check({"<script>alert(1)</script>" * 10: "x"})
    assert len(str(caught.value)) < 300


def test_user_layer_uses_defaults_until_the_user_sends_env_and_fixed_always_wins():
    assert POLICY.user_layer(None) == {"OMP_NUM_THREADS": "1", "TZ": "Europe/Berlin"}
    assert POLICY.user_layer({"A": "1"}) == {"A": "1", "TZ": "Europe/Berlin"}
    assert POLICY.user_layer({"OMP_NUM_THREADS": "4"})["OMP_NUM_THREADS"] == "4"


def test_platform_variables_override_user_variables():
    merged = merge_environment({"A": "user", "JUPYTERHUB_API_URL": "evil"}, {"JUPYTERHUB_API_URL": "real"})
    assert merged == {"A": "user", "JUPYTERHUB_API_URL": "real"}


def test_format_env_text_withholds_secret_looking_names():
    text, withheld = format_env_text({"A": "1", "GITHUB_TOKEN": "t", "db_password": "p", "API_KEY": "k"})
    assert text == "A=1"
    assert withheld == ["GITHUB_TOKEN", "db_password", "API_KEY"]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"allow_pattern": "["}, "env_policy.allow_pattern is not a valid regular expression"),
        ({"deny_patterns": ["ok", "(unclosed"]}, r"env_policy.deny_patterns\[1\] is not a valid"),
        ({"deny_patterns": "^AWS_"}, "deny_patterns must be a list"),
        ({"max_vars": "50"}, "env_policy.max_vars must be a whole number"),
        ({"max_value_length": -1}, "env_policy.max_value_length must be a whole number"),
        ({"fixed": ["TZ"]}, "env_policy.fixed must be a mapping"),
        ({"fixed": {"TZ": None}}, "env_policy.fixed.TZ must be a string"),
        ({"defaults": {"PATH": "/x"}}, "env_policy.defaults: .*reserved"),
        ({"defaults": {"TZ": "UTC"}, "fixed": {"TZ": "UTC"}}, "env_policy.defaults: .*denied"),
        ({"allowpattern": "x"}, "unknown key.*'allowpattern'"),
    ],
)
def test_policy_errors_name_the_setting(config, message):
    with pytest.raises(PolicyError, match=message):
        EnvPolicy.from_config(config)


def test_default_allow_pattern_is_the_documented_one():
    assert EnvPolicy().allow_pattern.pattern == "[A-Za-z_][A-Za-z0-9_]*"
    assert re.fullmatch(EnvPolicy().allow_pattern, "OMP_NUM_THREADS")


def test_unparsed_text_withholds_secret_lines_read_the_way_the_parser_reads_them():
    from formspawner.env import withhold_secret_lines

    text, withheld = withhold_secret_lines("A=1\nexport\tDB_PASSWORD=x\n  API_KEY = y\nBROKEN\n# TOKEN comment")
    assert text == "A=1\nBROKEN\n# TOKEN comment"
    assert withheld == ["DB_PASSWORD", "API_KEY"]


# The docker-stacks images' start files, unchanged from upstream (shared with the project
# beside its clone, as CI has it; JHTEST_DOCKER_STACKS names another copy).
DOCKER_STACKS = Path(
    os.environ.get("JHTEST_DOCKER_STACKS", Path(__file__).resolve().parents[3] / "shared/upstream/docker-stacks")
)
# Read by the start files but harmless in a user's hands, each with its reason.
STARTUP_VARIABLES_USERS_MAY_SET = {"NO_COLOR": "turns off colour in the start script's own log lines"}


def variables_the_start_files_read() -> dict[str, set[str]]:
    if not DOCKER_STACKS.is_dir():
        pytest.fail(f"{DOCKER_STACKS} is missing: the upstream docker-stacks files (shared/upstream) are needed")
    names: dict[str, set[str]] = {}
    for path in sorted(DOCKER_STACKS.rglob("*")):
        if not path.is_file() or path.name in ("Dockerfile", "LICENSE.md", "README.md", "initial-condarc"):
            continue
        text = path.read_text()
        found = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", text))
        found |= set(re.findall(r"""environ(?:\.get)?\s*[\[(]\s*["']([A-Z_][A-Z0-9_]*)""", text))
        found |= set(re.findall(r"""["']([A-Z_][A-Z0-9_]*)["']\s+in\s+os\.environ""", text))
        found |= set(re.findall(r"""getenv\(\s*["']([A-Z_][A-Z0-9_]*)""", text))
        for name in found:
            names.setdefault(name, set()).add(path.name)
    return names


def test_every_variable_the_docker_stacks_start_files_act_on_is_denied():
    """Evidence from upstream: start.sh (as root: users, ownership, sudo), the hooks,
    start-notebook.py and start-singleuser.py (the command line), jupyter_server_config.py
    (certificates, umask) and the health check."""
    read = variables_the_start_files_read()
    assert {"GRANT_SUDO", "NOTEBOOK_ARGS", "NB_UID", "_START_SH_EXECUTED"} <= set(read)  # the parser works
    allowed = sorted(n for n in read if not POLICY.is_denied(n) and n not in STARTUP_VARIABLES_USERS_MAY_SET)
    assert allowed == [], {n: sorted(read[n]) for n in allowed}


@pytest.mark.parametrize(
    "name",
    [
        # shells and the login
        "BASH_ENV", "ENV", "BASH_FUNC_ls%%", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS",
        "CDPATH", "GLOBIGNORE", "BASH_XTRACEFD", "LOGNAME", "PWD", "USER", "SHELL", "HOME", "PATH",
        # the C library and its resolver
        "GCONV_PATH", "LOCPATH", "GLIBC_TUNABLES", "MALLOC_CHECK_", "LD_AUDIT", "HOSTALIASES", "NLSPATH",
        "RES_OPTIONS", "LOCALDOMAIN", "RESOLV_HOST_CONF",
        # Python's other installers
        "MAMBA_ROOT_PREFIX", "CONDA_PREFIX", "VIRTUAL_ENV", "PYTHONSTARTUP",
        # other runtimes
        "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERLLIB", "PERL5LIB", "PERLOPT", "PERL5DB", "RUBYOPT",
        "RUBYLIB", "R_PROFILE_USER", "R_ENVIRON_USER", "R_LIBS_USER", "R_HOME", "JULIA_DEPOT_PATH",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
        # git, run by the server's extensions
        "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "GIT_SSH_COMMAND", "GIT_SSH", "GIT_EXEC_PATH",
        "GIT_ASKPASS", "SSH_ASKPASS", "GIT_PROXY_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_TEMPLATE_DIR",
        # the platform's own
        "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "R2D_ENTRYPOINT",
        "MEM_LIMIT", "CPU_LIMIT", "NB_UID", "GRANT_SUDO", "CHOWN_HOME", "JOVYAN_UID", "CP_OPTS",
        # docker-stacks and GPU runtimes
        "NOTEBOOK_ARGS", "GEN_CERT", "_START_SH_EXECUTED", "JUPYTER_ENV_VARS_TO_UNSET",
        "DOCKER_STACKS_JUPYTER_CMD", "RESTARTABLE", "NVIDIA_VISIBLE_DEVICES", "nvidia_driver_capabilities",
        # NVIDIA's legacy rule: CUDA_VERSION without NVIDIA_REQUIRE_CUDA means every GPU
        "CUDA_VERSION", "cuda_version", "NVIDIA_REQUIRE_CUDA", "NVIDIA_REQUIRE_ARCH", "NVIDIA_DISABLE_REQUIRE",
    ],
)
def test_variables_that_load_code_or_change_how_a_server_starts_are_denied(name):
    with pytest.raises(OptionError, match="reserved by the platform or denied"):
        POLICY.check({name: "x"})


@pytest.mark.parametrize("name", ["GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL", "ENVIRONMENT", "OMP_NUM_THREADS", "LANG"])
def test_ordinary_names_near_the_denied_ones_stay_allowed(name):
    assert POLICY.check({name: "x"}) == {name: "x"}


@pytest.mark.parametrize("value", ["a\x85b", "a\x9bb", "a\u2028b", "a\u2029b", "a\x7fb"])
def test_values_with_c1_controls_or_unicode_line_separators_are_refused(value):
    with pytest.raises(OptionError, match="control character"):
        POLICY.check({"A": value})


def test_tabs_and_non_ascii_letters_stay_allowed_in_values():
    assert POLICY.check({"A": "tab\there", "B": "Zoë Ünïcode"}) == {"A": "tab\there", "B": "Zoë Ünïcode"}


@pytest.mark.parametrize(
    # One name per alternative of SECRET_NAME_RE, matching no other (tests/mutation/source_mutants.py).
    "name", ["GITHUB_TOKEN", "DB_SECRET", "db_password", "API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "OAUTH_BEARER"]
)
def test_each_secret_looking_name_is_withheld_from_the_form(name):
    assert format_env_text({name: "v", "PLAIN": "1"}) == ("PLAIN=1", [name])


@pytest.mark.parametrize("name", ["A=B", "A B", "A\tB", "Ä"])
def test_a_name_with_an_equals_sign_or_white_space_is_refused_whatever_the_allow_pattern(name):
    """The shape check holds for the whole name, even where the admin's allow pattern takes anything."""
    permissive = EnvPolicy.from_config({"allow_pattern": ".+"})
    with pytest.raises(OptionError, match="is not allowed: use ASCII letters"):
        permissive.check({name: "x"})


@pytest.mark.parametrize("section", ["defaults", "fixed"])
def test_a_policy_variable_name_that_is_not_a_name_is_refused_at_start_up(section):
    with pytest.raises(PolicyError, match="is not a valid variable name"):
        EnvPolicy.from_config({section: {"OK_NAME=x": "1"}})
