"""Hand-made mutants of formspawner's protections, of the kinds mutmut never makes.

mutmut mutates function bodies with its own operators. A protection can also be weakened
where it does not look: one alternative of a module-level denial or redaction pattern
dropped, a full match turned into a prefix or substring match, a case-insensitive match
made case-sensitive, one argument of a git command or one variable of its environment
dropped. These mutants are generated from the code itself (every alternative, every call
site), so that a new entry is covered as soon as it is written; the fast tests named for
each module must fail for every one that is not equivalent.

Run by tests/mutation/run.sh inside the mutation workspace, on its copy of the package
(src/formspawner), the tests importing that copy (PYTHONPATH):
    python source_mutants.py WORKSPACE [--list] [--only TEXT]   (TEXT: part of the mutants' names)
Prints one line per mutant and a JSON summary; exits 1 if any mutant survived.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "src/formspawner"

# The fast tests that must kill a module's mutants.
TESTS = {
    "env.py": ["tests/unit/test_env.py"],
    "repo.py": ["tests/unit/test_repo.py"],
    "git.py": ["tests/unit/test_repo.py", "tests/unit/test_git.py"],
    "content.py": ["tests/unit/test_content.py"],
    "contentsync.py": ["tests/unit/test_content.py"],
    "images.py": ["tests/unit/test_images.py", "tests/unit/test_options.py"],
    "options.py": ["tests/unit/test_options.py"],
    "outbound.py": ["tests/unit/test_outbound.py"],
}

# Module-level collections whose every entry is a protection: (module, name).
ENTRY_LISTS = [
    ("env.py", "BUILTIN_DENIED"),
    ("contentsync.py", "FIXED_SETTINGS"),
    ("contentsync.py", "DRIVER_SETTINGS"),
]
# Not content.py's _ENV: that git works on the hub's own paths (its checkout and copies),
# never in a student's folder or on a URL; its settings keep it predictable, not safe.
# Module-level patterns whose every top-level alternative is a protection: (module, name).
ALTERNATIVES = [
    ("env.py", "SECRET_NAME_RE"),
    ("repo.py", "_TOKEN_RE"),
    ("contentsync.py", "REFUSED_SETTINGS"),
]
# Where names, hosts and paths are matched: every fullmatch may not become a search.
MATCHING = ["env.py", "repo.py", "images.py", "options.py", "contentsync.py", "outbound.py"]
# Functions that build an external command or its environment: (module, function).
COMMANDS = [
    ("git.py", "_git"),
    ("git.py", "_git_environment"),
    ("contentsync.py", "main"),
]

# Where a check lives in a request handler or a spawner hook (each refusal there made a
# no-op), which mutmut leaves alone (decorated handlers) or which only the integration tier
# reached: (module, the fast tests that must kill them).
HOOKS = {
    "launch.py": ["tests/unit/test_launch.py"],
    "spawner.py": [
        "tests/unit/test_option_context.py", "tests/unit/test_spawner_config.py", "tests/unit/test_named_servers.py",
        "tests/unit/test_ready.py", "tests/unit/test_launch.py", "tests/unit/test_spawner_hooks.py",
    ],
    "repolaunch.py": ["tests/unit/test_build.py", "tests/unit/test_repolaunch.py"],
}

TESTS.update(HOOKS)

# Modules whose git commands take user-derived arguments after `--`.
SEPARATED = ["git.py", "content.py", "contentsync.py"]

# Mutants that change nothing a test can observe, with the reason (the settings stay, as
# defence in depth). Keyed by the mutant's description.
EQUIVALENT = {
    "contentsync.py FIXED_SETTINGS without 'core.pager'": "git pages only to a terminal; the merge has none",
    "contentsync.py FIXED_SETTINGS without 'core.editor'": "git merge opens an editor only on a terminal",
    "contentsync.py FIXED_SETTINGS without 'sequence.editor'": "no rebase is ever run",
    "contentsync.py FIXED_SETTINGS without 'core.askpass'": "only file:// is fetched: nothing asks for a password",
    "contentsync.py FIXED_SETTINGS without 'core.sshcommand'": "only file:// is fetched (GIT_ALLOW_PROTOCOL)",
    "contentsync.py FIXED_SETTINGS without 'credential.helper'": "only file:// is fetched: no credential is asked",
    "contentsync.py FIXED_SETTINGS without 'core.alternaterefscommand'": "read only for a repository with alternates",
    "contentsync.py FIXED_SETTINGS without 'tag.gpgsign'": "the merge makes no tag",
    "contentsync.py FIXED_SETTINGS without 'gpg.program'": "commit.gpgsign is off: no program signs",
    "contentsync.py FIXED_SETTINGS without 'gc.auto'": "auto gc needs thousands of loose objects; its hook is off",
    "contentsync.py FIXED_SETTINGS without 'maintenance.auto'": "as gc.auto",
    "contentsync.py DRIVER_SETTINGS without 'filter\\\\.(.+)\\\\.required'": (
        "the filters are empty: required has nothing to run"
    ),
    "contentsync.py DRIVER_SETTINGS without 'merge\\\\.(.+)\\\\.recursive'": "used only for a virtual merge base",
    "contentsync.py DRIVER_SETTINGS without 'diff\\\\.(.+)\\\\.(command|textconv)'": (
        "the merge lists names only (git diff --name-only): no diff driver or textconv runs"
    ),
    "contentsync.py git_overrides() fullmatch #2 -> search": (
        "a search adds overrides of more keys (harmless ones): stricter, never weaker"
    ),
    "contentsync.py main without 'GIT_TERMINAL_PROMPT'": "only file:// is fetched: nothing prompts",
    "contentsync.py main without 'GIT_CONFIG_PARAMETERS'": (
        "the first of two: before the folder's own settings are read, the only git run is "
        "`git config --get`, which runs no program (the second, tested, covers the merge)"
    ),
    "contentsync.py main without 'GIT_PAGER'": "git pages only to a terminal",
    "contentsync.py main without 'GIT_EDITOR'": "git merge opens an editor only on a terminal",
    "contentsync.py main without 'GIT_ASKPASS'": "only file:// is fetched",
    "contentsync.py main without 'GIT_SSH_COMMAND'": "only file:// is fetched",
    "git.py _git_environment without 'LC_ALL'": "git's messages in another language: no protection",
    "git.py _git_environment without 'GIT_LFS_SKIP_SMUDGE'": "git-lfs is not installed where the hub runs",
}


@dataclass
class Mutant:
    module: str
    what: str
    start: tuple[int, int]  # (line, column) of the text replaced, 1-based lines
    end: tuple[int, int]
    replacement: str

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line.encode()))
        data = source.encode()
        begin = offsets[self.start[0] - 1] + self.start[1]
        finish = offsets[self.end[0] - 1] + self.end[1]
        return (data[:begin] + self.replacement.encode() + data[finish:]).decode()


def _module_assignment(tree: ast.Module, name: str) -> ast.expr:
    for node in tree.body:
        targets = getattr(node, "targets", None) or ([node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node.value
    raise LookupError(name)


def _without(node: ast.AST, source_lines: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The span of `node` and the comma after it (one element out of a literal)."""
    end_line, end_col = node.end_lineno, node.end_col_offset
    rest = source_lines[end_line - 1].encode()[end_col:].decode()
    match = re.match(r"\s*,", rest)
    if match:
        end_col += len(match.group(0).encode())
    return (node.lineno, node.col_offset), (end_line, end_col)


def _label(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Tuple) and node.elts:
        return _label(node.elts[0])
    if isinstance(node, ast.Call) and node.args:
        return _label(node.args[0])
    return ast.unparse(node)[:40]


def entry_mutants(module: str, name: str, tree, lines) -> list[Mutant]:
    value = _module_assignment(tree, name)
    if isinstance(value, ast.Dict):
        return [
            Mutant(module, f"{module} {name} without {_label(key)}", (key.lineno, key.col_offset),
                   _without(val, lines)[1], "")
            for key, val in zip(value.keys, value.values, strict=True)
        ]  # fmt: skip
    return [Mutant(module, f"{module} {name} without {_label(e)}", *_without(e, lines), "") for e in value.elts]


def _alternatives(pattern: str) -> tuple[int, int, list[str]]:
    """The alternatives of the shallowest `|`s in a regular expression: (where the group
    holding them starts and ends in `pattern`, the alternatives)."""
    depth, klass, escaped, bars, opens = 0, False, False, [], []
    group_of: dict[int, int] = {}
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif klass:
            klass = char != "]"
        elif char == "[":
            klass = True
        elif char == "(":
            opens.append(index)
            depth += 1
        elif char == ")":
            depth -= 1
            opens.pop()
        elif char == "|":
            bars.append((depth, index))
            group_of[index] = opens[-1] if opens else -1
    if not bars:
        return 0, len(pattern), [pattern]
    shallowest = min(depth for depth, _ in bars)
    at = [index for depth, index in bars if depth == shallowest]
    opening = group_of[at[0]]
    begin = 0 if opening < 0 else opening + (3 if pattern.startswith("(?:", opening) else 1)
    # The group's end: the first `)` at its depth after the last bar.
    finish, depth = len(pattern), 0
    if opening >= 0:
        index = at[-1]
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                index += 2
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    finish = index
                    break
                depth -= 1
            index += 1
    cuts = [begin, *(index + 1 for index in at), finish + 1]
    return begin, finish, [pattern[a : b - 1] for a, b in zip(cuts, cuts[1:], strict=False)]


def alternative_mutants(module: str, name: str, tree, lines) -> list[Mutant]:
    call = _module_assignment(tree, name)
    node = call.args[0]
    begin, finish, alternatives = _alternatives(node.value)
    mutants = []
    for number, part in enumerate(alternatives):
        rest = "|".join(a for n, a in enumerate(alternatives) if n != number)
        mutated = node.value[:begin] + rest + node.value[finish:]
        mutants.append(Mutant(module, f"{module} {name} without {part!r}", (node.lineno, node.col_offset),
                              (node.end_lineno, node.end_col_offset), repr(mutated)))
    return mutants


def matching_mutants(module: str, tree, lines) -> list[Mutant]:
    """Each fullmatch made a search (a prefix, suffix or substring then passes), named by its
    function and its number there (stable while other code moves); IGNORECASE dropped."""
    mutants = []
    scopes = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def scope_of(node) -> str:
        inside = [f for f in scopes if f.lineno <= node.lineno <= f.end_lineno]
        return min(inside, key=lambda f: f.end_lineno - f.lineno).name + "()" if inside else "module"

    seen: dict[str, int] = {}
    for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
        if isinstance(node, ast.Attribute) and node.attr == "fullmatch":
            line, col = node.end_lineno, node.end_col_offset - len("fullmatch")
            scope = scope_of(node)
            seen[scope] = seen.get(scope, 0) + 1
            what = f"{module} {scope} fullmatch #{seen[scope]} -> search"
            mutants.append(Mutant(module, what, (line, col), (line, node.end_col_offset), "search"))
        if isinstance(node, ast.Attribute) and node.attr == "IGNORECASE" and module == "env.py":
            scope = scope_of(node)
            seen[scope + " IGNORECASE"] = seen.get(scope + " IGNORECASE", 0) + 1
            what = f"{module} {scope} IGNORECASE #{seen[scope + ' IGNORECASE']} dropped"
            span = (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)
            mutants.append(Mutant(module, what, *span, "0"))
    return mutants


def command_mutants(module: str, function: str, tree, lines) -> list[Mutant]:
    found = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    mutants = []
    for node in ast.walk(found):
        if isinstance(node, ast.List):
            elements = node.elts
            for index, element in enumerate(elements):
                if isinstance(element, ast.Constant) and element.value == "-c" and index + 1 < len(elements):
                    setting = elements[index + 1]
                    start = (element.lineno, element.col_offset)
                    end = _without(setting, lines)[1]
                    mutants.append(Mutant(module, f"{module} {function} without -c {_label(setting)}", start, end, ""))
                if isinstance(element, ast.Constant) and element.value == "--":
                    mutants.append(Mutant(module, f"{module} {function} without '--'", *_without(element, lines), ""))
        if isinstance(node, ast.Assign) and _is_environ(getattr(node.targets[0], "value", None)):
            key = node.targets[0].slice
            mutants.append(Mutant(module, f"{module} {function} without {_label(key)}", (node.lineno, node.col_offset),
                                  (node.end_lineno, node.end_col_offset), "pass"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update" and (
            function == "_git_environment" or _is_environ(node.func.value)
        ):
            for keyword in node.keywords:
                if keyword.arg is None:
                    continue
                start = (keyword.lineno, keyword.col_offset)
                end = _without(keyword.value, lines)[1]
                mutants.append(Mutant(module, f"{module} {function} without {keyword.arg!r}", start, end, ""))
    return mutants


def _is_environ(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def separator_mutants(module: str, tree, lines) -> list[Mutant]:
    """Every `--` of a command list (what keeps a user-derived argument from being read as
    an option: BinderHub's CVE-2021-39159)."""
    return [
        Mutant(module, f"{module}:{element.lineno} without '--'", *_without(element, lines), "")
        for node in ast.walk(tree) if isinstance(node, ast.List)
        for element in node.elts if isinstance(element, ast.Constant) and element.value == "--"
    ]  # fmt: skip


def refusal_mutants(module: str, tree, lines) -> list[Mutant]:
    """Each `raise` of a request handler or spawner hook made `pass`: the refusal, or the
    error a user is shown, is gone."""
    scopes = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    mutants, seen = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            inside = [f for f in scopes if f.lineno <= node.lineno <= f.end_lineno]
            scope = min(inside, key=lambda f: f.end_lineno - f.lineno).name if inside else "module"
            seen[scope] = seen.get(scope, 0) + 1
            span = (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)
            mutants.append(Mutant(module, f"{module} {scope}() raise #{seen[scope]} removed", *span, "pass"))
    return mutants


def generate(package: Path) -> list[Mutant]:
    mutants: list[Mutant] = []
    parsed = {}

    def parse(module):
        if module not in parsed:
            source = (package / module).read_text()
            parsed[module] = (ast.parse(source), source.splitlines(keepends=True))
        return parsed[module]

    for module, name in ENTRY_LISTS:
        mutants += entry_mutants(module, name, *parse(module))
    for module, name in ALTERNATIVES:
        mutants += alternative_mutants(module, name, *parse(module))
    for module in MATCHING:
        mutants += matching_mutants(module, *parse(module))
    for module, function in COMMANDS:
        mutants += command_mutants(module, function, *parse(module))
    for module in SEPARATED:
        mutants += separator_mutants(module, *parse(module))
    for module in HOOKS:
        mutants += refusal_mutants(module, *parse(module))
    # The same description twice (two assignments of one variable): the later ones numbered.
    seen: dict[str, int] = {}
    for mutant in mutants:
        seen[mutant.what] = seen.get(mutant.what, 0) + 1
        if seen[mutant.what] > 1:
            mutant.what += f" #{seen[mutant.what]}"
    return mutants


def run_tests(workspace: Path, tests: list[str]) -> int:
    existing = [test for test in tests if (workspace / test).exists()]
    env = dict(os.environ, PYTHONPATH=str(workspace / "src"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist", *existing],
        cwd=workspace, capture_output=True, text=True, timeout=900, env=env,
    ).returncode  # fmt: skip


def main(workspace: Path, only_list: bool = False, only: str = "") -> int:
    started = time.monotonic()
    package = workspace / PACKAGE
    mutants = [mutant for mutant in generate(package) if only in mutant.what]
    if only_list:
        for mutant in mutants:
            print(mutant.what, "(equivalent)" if mutant.what in EQUIVALENT else "")
        return 0
    for tests in {tuple(t) for t in TESTS.values()}:
        if run_tests(workspace, list(tests)) != 0:
            print(f"source mutants: {' '.join(tests)} fail without any mutant; fix them first", file=sys.stderr)
            return 2
    survived, equivalent = [], []
    for mutant in mutants:
        if mutant.what in EQUIVALENT:
            equivalent.append(mutant.what)
            print(f"    equivalent {mutant.what}: {EQUIVALENT[mutant.what]}")
            continue
        target = package / mutant.module
        original = target.read_text()
        mutated = mutant.apply(original)
        try:
            compile(mutated, str(target), "exec")
        except SyntaxError as error:
            print(f"source mutants: {mutant.what} does not compile ({error}); fix the generator", file=sys.stderr)
            return 2
        target.write_text(mutated)
        try:
            killed = run_tests(workspace, TESTS[mutant.module]) != 0
        finally:
            target.write_text(original)
        print(f"    {'killed  ' if killed else 'SURVIVED'} {mutant.what}")
        if not killed:
            survived.append(mutant.what)
    summary = {"source_mutants": len(mutants), "equivalent": len(equivalent),
               "killed": len(mutants) - len(equivalent) - len(survived), "survived": survived,
               "seconds": round(time.monotonic() - started)}  # fmt: skip
    print(json.dumps(summary))
    return 1 if survived else 0


if __name__ == "__main__":
    options = sys.argv[2:]
    chosen = options[options.index("--only") + 1] if "--only" in options else ""
    sys.exit(main(Path(sys.argv[1]).resolve(), "--list" in options, chosen))
