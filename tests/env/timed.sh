#!/usr/bin/env bash
# Per-phase times for `make test`.
#   timed.sh NAME CMD...   run CMD; append "NAME SECONDS EXIT" to $JHTEST_TIMES; exit as CMD did
#   timed.sh --summary     print the phases recorded so far, their sum and (with
#                          JHTEST_STARTED, seconds since the epoch) the wall-clock time
# Each phase also prints its line when it ends, so a log cut short still shows where the
# time went. With JHTEST_DEADLINE (seconds since the epoch; `make test` sets it) a phase
# still running at the deadline is stopped (exit 124) and the summary still prints: a hung
# test shows up as a failed phase, not as a CI run killed with nothing said.
# Each phase's output is also kept in .cache/phase-logs/NAME.log; the summary ends with the
# lines that say why each failed phase failed (pytest's FAILED/E lines, Ansible's fatal
# lines), since CI shows only the end of a run's output and two lanes interleave it.
# With JHTEST_STOP (a file; `make test` sets it) a phase does not start once that file
# exists (exit 125), and a failed phase run with JHTEST_STOP_OTHERS=1 (the quick tier)
# writes its name there: the lanes stop at their next phase instead of running on for
# half an hour after a lint error.
set -uo pipefail
times=${JHTEST_TIMES:-.cache/test-times}
logs=$(dirname "$times")/phase-logs
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
    # 125: not started (JHTEST_STOP), so no log of this run to read.
    for failed in $(awk '$3 != 0 && $3 != 125 { print $1 }' "$times" | sort -u); do
        log=$logs/$failed.log
        [ -s "$log" ] || continue
        printf '\nwhy %s failed (from %s):\n' "$failed" "$log"
        # Colours off; pytest's summary and assertion lines, Ansible's fatal/failed tasks.
        sed 's/\x1b\[[0-9;]*m//g' "$log" \
            | grep -E '(^|[│ ])(FAILED|ERROR) |(^|[│ ])E  |fatal: |AssertionError|Timeout|timed out' \
            | grep -v 'RETRYING' | tail -n 60
    done
    exit 0
fi
name=$1; shift
mkdir -p "$(dirname "$times")" "$logs"
start=$(date +%s)
if [ -n "${JHTEST_STOP:-}" ] && [ -s "$JHTEST_STOP" ]; then
    echo "[make test] $name not started: $(head -1 "$JHTEST_STOP") failed" >&2
    echo "$name 0 125" >>"$times"
    exit 125
fi
if [ -n "${JHTEST_DEADLINE:-}" ]; then
    left=$(( JHTEST_DEADLINE - start ))
    if [ "$left" -le 0 ]; then
        echo "[make test] $name not started: the deadline (JHTEST_DEADLINE) has passed" >&2
        echo "$name 0 124" >>"$times"
        exit 124
    fi
    timeout -k 30 "$left" "$@" 2>&1 | tee "$logs/$name.log"
else
    "$@" 2>&1 | tee "$logs/$name.log"
fi
rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))
echo "$name $secs $rc" >>"$times"
[ "$rc" -ne 0 ] && [ "${JHTEST_STOP_OTHERS:-}" = 1 ] && [ -n "${JHTEST_STOP:-}" ] && echo "$name" >>"$JHTEST_STOP"
[ "$rc" -eq 124 ] && [ -n "${JHTEST_DEADLINE:-}" ] && [ "$(date +%s)" -ge "$JHTEST_DEADLINE" ] \
    && echo "[make test] $name stopped at the deadline (JHTEST_DEADLINE)" >&2
echo "[make test] phase $name: $secs s, exit $rc" >&2
exit "$rc"
