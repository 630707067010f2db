#!/bin/sh
# bench/soak.sh: the reliability scenarios of tests/test_reliability*.c in
# their full form (HANDOFF_SOAK=1: more kills, longer loads, more cycles,
# 2,000 slowloris connections) against the normal build, one at a time,
# then a report: bench/results/<YYYY-MM-DD>/reliability.md with one row
# per scenario (load held, faults injected, requests attempted, failed,
# lost, fds leaked, worst p99) and what each failure was.
#
# Bounded: each scenario has its own Criterion timeout (SOAK_TEST_TIMEOUT,
# default 900 s) and the whole run is cut at SOAK_TIMEOUT (default 3600 s).
# Loopback only. Exit status: 0 when every scenario passed its checks.
#
# Environment: BUILD (default build), SOAK_FILTER (default every
# reliability suite), SOAK_OUT (default bench/results/<today>).
set -eu

BUILD=${BUILD:-build}
SOAK_TIMEOUT=${SOAK_TIMEOUT:-3600}
SOAK_TEST_TIMEOUT=${SOAK_TEST_TIMEOUT:-900}
SOAK_FILTER=${SOAK_FILTER:-reliability*/*}
today=$(date +%Y-%m-%d)
SOAK_OUT=${SOAK_OUT:-bench/results/$today}

for f in "$BUILD/handoffd" "$BUILD/handoff-bench" "$BUILD/unit-tests"; do
    [ -x "$f" ] || { echo "soak.sh: $f not built (make soak builds it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/handoff-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
rows="$work/rows.tsv"
: >"$rows"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "soak.sh: load $load_before before the run"
if pgrep -x wrk >/dev/null 2>&1; then
    echo "soak.sh: warning: wrk is running (another benchmark?); figures may suffer" >&2
fi

started=$(date +%s)
status=0
HANDOFF_SOAK=1 HANDOFF_SOAK_REPORT="$rows" HANDOFFD="$BUILD/handoffd" \
    timeout --kill-after=30 "$SOAK_TIMEOUT" \
    "$BUILD/unit-tests" --jobs 1 --timeout "$SOAK_TEST_TIMEOUT" --verbose \
    --filter "$SOAK_FILTER" >"$work/tests.log" 2>&1 || status=$?
took=$(( $(date +%s) - started ))
sed 's/\x1b\[[0-9;]*m//g' "$work/tests.log" | grep -E '^\[(PASS|FAIL|SKIP)\]|Synthesis' |
    grep -v 'Test is disabled' >"$work/summary.log" || true
cat "$work/summary.log"

# The last run of a fuzz target, if any: LOG under $FUZZ_BUILD, a TITLE, the
# COMMAND that made it, and the PATTERN of lines that report a crash.
fuzz_section() {
    local log=${FUZZ_BUILD:-build-fuzz}/$1
    [ -f "$log" ] || return 0
    echo
    echo "## $2 (last \`$3\`, $(date -r "$log" '+%Y-%m-%d %H:%M'))"
    echo
    echo '```'
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
    grep -E "$4" "$log" || echo "(no crash, no check failed)"
    echo '```'
}

mkdir -p "$SOAK_OUT"
report="$SOAK_OUT/reliability.md"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with local changes)"
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)
verdict='every check passed'
[ "$status" -eq 0 ] || verdict='SOME CHECKS FAILED, see below'
{
    echo "# Reliability soak, $today"
    echo
    echo "\`make soak\` (bench/soak.sh): the scenarios of tests/test_reliability*.c in"
    echo "their full form (HANDOFF_SOAK=1), one at a time, against \`$BUILD/handoffd\`."
    echo
    echo "- commit: $commit"
    echo "- machine: $(nproc) CPUs ($cpu), Linux $(uname -r); load $load_before before the run"
    echo "- run: ${took} s, exit status $status ($verdict)"
    echo
    echo "| scenario | load held | faults injected | attempted | failed | lost |" \
         "fds leaked | worst p99 (ms) |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
    awk -F '\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
                   $1, $2, $3, $4, $5, $6, $7, $8 }' "$rows"
    echo
    echo "*failed*: attempts that got no answer; *lost*: failed beyond what the"
    echo "fault itself made impossible to serve (must be 0); *fds leaked*: fds"
    echo "left open in the master and workers once the load was gone, against"
    echo "their counts at start-up ('-': the server exited)."
    echo
    echo "## What failed, and why it could not be served"
    echo
    awk -F '\t' '{ printf "- **%s**: %s\n", $1, $9 }' "$rows"
    echo
    echo "## Test results"
    echo
    echo '```'
    cat "$work/summary.log"
    echo '```'
    fuzz_section fuzz.log "HTTP request fuzzing" "make fuzz" '^==[0-9]+==|deadly'
    fuzz_section ctl-fuzz.log "Control-message fuzzing" "make fuzz-ctl" \
        '^==[0-9]+==|deadly|fuzz_ctl:'
    if [ "$status" -ne 0 ]; then
        echo
        echo "Failures:"
        echo
        echo '```'
        sed 's/\x1b\[[0-9;]*m//g' "$work/tests.log" | grep -A3 'Assertion Failed' | head -n 80 || true
        echo '```'
    fi
} >"$report"
echo "soak.sh: wrote $report"
exit "$status"
