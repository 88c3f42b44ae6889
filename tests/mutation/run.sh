#!/usr/bin/env bash
# make mutation: mutmut over the modules that carry protections, then the template mutants
# of the rendered hub configuration; prints a JSON summary (docs/development.md).
#
# mutmut 3 imports the code it mutates from mutants/src, so it runs in a workspace of its
# own (.cache/mutation): formspawner's package under src/, the unit tests, and the role
# files those tests render. PYTHONPATH names the mutated copy, so that the tests'
# subprocesses (the rendered jupyterhub_config.py loaded as the hub loads it) import it
# too, not the editable install; the directory must exist before Python starts, or Python
# caches it as missing for the whole run.
#
#   tests/mutation/run.sh                  everything, then the summary
#   tests/mutation/run.sh show NAME        mutmut's own commands, in the workspace
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${MUTATION_WORKSPACE:-$root/.cache/mutation}
bin=$root/.venv/bin
mkdir -p "$work"
cd "$work"
export PYTHONPATH=$work/mutants/src
# The workspace lies inside the project's clone: a mutant that drops git's working directory
# (content.py's `cwd=`) must find no repository, not commit into the project's own (one did:
# six commits and a branch switch on main). Git looks no higher than the workspace.
export GIT_CEILING_DIRECTORIES=$(dirname "$work")
# The unit tests find the upstream docker-stacks files beside the clone, not the workspace.
export JHTEST_DOCKER_STACKS=${JHTEST_DOCKER_STACKS:-$(cd "$root/.." && pwd)/shared/upstream/docker-stacks}
if [ $# -gt 0 ]; then
  exec "$bin/mutmut" "$@"
fi
# Sources and tests are laid anew each run, and so is mutmut's state: it keeps a mutant
# that survived as survived when only the tests changed. MUTATION_INCREMENTAL=1 keeps the
# state (quicker while killing survivors; mutmut then retests only changed functions).
rm -rf src tests roles
[ "${MUTATION_INCREMENTAL:-0}" = 1 ] || rm -rf mutants
mkdir -p src mutants/src
cp -r "$root/files/formspawner/formspawner" src/
if [ -d mutants/src/formspawner ]; then
  # Kept from the last run (MUTATION_INCREMENTAL=1): mutmut lays out the package's data
  # files (the page templates) only when it makes mutants/ anew; the current ones go in.
  (cd src && find formspawner -type f ! -name '*.py' -exec cp --parents {} ../mutants/src/ \;)
fi
cp -r "$root/tests" tests
cp -r "$root/roles" roles
cp "$root/ansible.cfg" "$root/pytest.ini" "$root/tests/mutation/pyproject.toml" .
started=$(date +%s)
"$bin/mutmut" run --max-children "$(nproc)" | tr '\r' '\n' | grep -v '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] ' || true
mutmut_seconds=$(( $(date +%s) - started ))
"$bin/mutmut" results --all true >mutmut-results.txt
rc=0
env -u PYTHONPATH "$bin/python" "$root/tests/mutation/template_mutants.py" "$work" >template-results.txt || rc=$?
cat template-results.txt
# The kinds of weakening mutmut never tries (pattern alternatives, match modes, commands'
# arguments), generated from the code; the tests import the workspace's src/ copy.
env -u PYTHONPATH "$bin/python" "$root/tests/mutation/source_mutants.py" "$work" >source-results.txt || rc=$?
cat source-results.txt
"$bin/python" "$root/tests/mutation/summary.py" mutmut-results.txt template-results.txt \
  "$root/docs/development.md" "$mutmut_seconds" source-results.txt || rc=$?
exit $rc
