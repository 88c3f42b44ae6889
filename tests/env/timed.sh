#!/usr/bin/env bash
# Per-phase times for `make test`.
#   timed.sh NAME CMD...   run CMD; append "NAME SECONDS EXIT" to $JHTEST_TIMES; exit as CMD did
#   timed.sh --summary     print the phases recorded so far, with the total
set -uo pipefail
times=${JHTEST_TIMES:-.cache/test-times}
if [ "${1:-}" = --summary ]; then
    [ -s "$times" ] || exit 0
    printf '\n%-24s %8s  %s\n' phase seconds result
    # A phase that ran more than once (testenv, a prerequisite of several) is summed.
    awk '!($1 in secs) { order[n++] = $1 }
         { secs[$1] += $2; if ($3 != 0) failed[$1] = $3; total += $2 }
         END { for (i = 0; i < n; i++) printf "%-24s %8d  %s\n", order[i], secs[order[i]],
                                              (order[i] in failed ? "FAILED (" failed[order[i]] ")" : "ok")
               printf "%-24s %8d  (%d min %d s)\n", "total", total, total / 60, total % 60 }' "$times"
    exit 0
fi
name=$1; shift
mkdir -p "$(dirname "$times")"
start=$(date +%s)
"$@"
rc=$?
echo "$name $(( $(date +%s) - start )) $rc" >>"$times"
exit "$rc"
