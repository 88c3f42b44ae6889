#!/usr/bin/env bash
# Per-phase times for `make test`.
#   timed.sh NAME CMD...   run CMD; append "NAME SECONDS EXIT" to $JHTEST_TIMES; exit as CMD did
#   timed.sh --summary     print the phases recorded so far, their sum and (with
#                          JHTEST_STARTED, seconds since the epoch) the wall-clock time
# Each phase also prints its line when it ends, so a log cut short still shows where the
# time went. With JHTEST_DEADLINE (seconds since the epoch; `make test` sets it) a phase
# still running at the deadline is stopped (exit 124) and the summary still prints: a hung
# test shows up as a failed phase, not as a CI run killed with nothing said.
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
               printf "%-24s %8d  (%d min %d s)\n", "sum of phases", total, total / 60, total % 60 }' "$times"
    # Phases run side by side (the quick tier beside testenv, then make test's two lanes)
    # each count in full in the sum.
    if [ -n "${JHTEST_STARTED:-}" ]; then
        wall=$(( $(date +%s) - JHTEST_STARTED ))
        printf '%-24s %8d  (%d min %d s)\n' "wall clock" "$wall" $((wall / 60)) $((wall % 60))
    fi
    exit 0
fi
name=$1; shift
mkdir -p "$(dirname "$times")"
start=$(date +%s)
if [ -n "${JHTEST_DEADLINE:-}" ]; then
    left=$(( JHTEST_DEADLINE - start ))
    if [ "$left" -le 0 ]; then
        echo "[make test] $name not started: the deadline (JHTEST_DEADLINE) has passed" >&2
        echo "$name 0 124" >>"$times"
        exit 124
    fi
    timeout -k 30 "$left" "$@"
else
    "$@"
fi
rc=$?
secs=$(( $(date +%s) - start ))
echo "$name $secs $rc" >>"$times"
[ "$rc" -eq 124 ] && [ -n "${JHTEST_DEADLINE:-}" ] && [ "$(date +%s)" -ge "$JHTEST_DEADLINE" ] \
    && echo "[make test] $name stopped at the deadline (JHTEST_DEADLINE)" >&2
echo "[make test] phase $name: $secs s, exit $rc" >&2
exit "$rc"
