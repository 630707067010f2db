#!/bin/sh
# bench/c100k.sh: 100,000 idle keep-alive connections on one handoffd
# listener, and what they cost.
#
# handoffd runs --workers $WORKERS with HTTP on loopback; handoff-bench
# --mode hold opens $CONNS connections from 127.0.0.0/8 sources (it spreads
# them over as many client processes as its fd limit needs) and keeps them
# idle for $HOLD seconds. While they are held:
#   - set-up time: handoff-bench's establish time, and the wall time until
#     the admin /status live total reaches $CONNS;
#   - memory: summed VmRSS of master and workers, before and while held,
#     divided by the connections (the server warmed up first by a short
#     wrk run, so first-use code pages are not charged to connections);
#   - the admin /status page (per-worker counts, first socket pairs);
#   - wrk -t1 -c50 -d10s --latency against the same server: still answered?
# After the clients go: how close summed RSS gets to its start (polled for
# up to $SETTLE seconds). nginx, when installed, is measured the same way
# (same workers, reuseport, worker_connections and worker_rlimit_nofile from
# the fd limit, `return 200`).
#
# Writes $OUT (default bench/results/<date>/c100k.md) and prints it.
# Environment: HANDOFFD (default build/handoffd), HANDOFF_BENCH (default
# beside it), CONNS (100000), WORKERS (6), HOLD (35 s), SETTLE (15 s),
# NGINX (nginx; "none" to skip), QUIET_WAIT (seconds to wait for a quiet
# machine, 180). Loopback only. Not a test: nothing is asserted.
set -eu

HANDOFFD=${HANDOFFD:-build/handoffd}
BENCH=${HANDOFF_BENCH:-$(dirname "$HANDOFFD")/handoff-bench}
CONNS=${CONNS:-100000}
WORKERS=${WORKERS:-6}
HOLD=${HOLD:-35}
SETTLE=${SETTLE:-15}
NGINX=${NGINX:-nginx}
QUIET_WAIT=${QUIET_WAIT:-180}
OUT=${OUT:-bench/results/$(date +%F)/c100k.md}

work=$(mktemp -d /tmp/handoff-bench-c100k.XXXXXX)
spid=""
bpid=""
cleanup() {
    [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
    [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "c100k.sh: wrk is not installed (.ci/deps.sh bench)" >&2; exit 1; }
[ -x "$HANDOFFD" ] || { echo "c100k.sh: $HANDOFFD not built (make)" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "c100k.sh: $BENCH not built (make)" >&2; exit 1; }

# ---- helpers ---------------------------------------------------------------

# free_port, wait_listening, wrk_summary.
. "$(dirname "$0")/lib.sh"

# Summed VmRSS (KiB) of PID and its children.
rss_sum() {
    t=0
    for p in "$1" $(pgrep -P "$1" || true); do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        t=$((t + ${r:-0}))
    done
    echo "$t"
}

# "pid:KiB ..." for PID and its children.
rss_each() {
    for p in "$1" $(pgrep -P "$1" || true); do
        printf '%s:%s ' "$p" "$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)"
    done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wrk -t1 -c50 -d10s against PORT; prints wrk_summary's "rps p99_ms errors
# non2xx" and keeps the full output in $work/wrk-$2.txt.
run_wrk() {
    wrk -t1 -c50 -d10s --latency "http://127.0.0.1:$1/" >"$work/wrk-$2.txt" 2>&1 || true
    wrk_summary "$work/wrk-$2.txt"
}

# Field KEY=VALUE of handoff-bench's summary line in FILE.
bench_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | head -n1; }

# Poll summed RSS of PID until it is within 10% of BASE or SETTLE seconds
# pass; prints "KiB seconds".
settle_rss() {
    t0=$(now_ms)
    while :; do
        r=$(rss_sum "$1")
        el=$(($(now_ms) - t0))
        if [ $((r * 10)) -le $(($2 * 11)) ] || [ "$el" -ge $((SETTLE * 1000)) ]; then
            echo "$r $(awk -v m="$el" 'BEGIN { printf "%.1f", m / 1000 }')"
            return
        fi
        sleep 0.5
    done
}

# Wait until the hold client has CONNS connections established to PORT
# (counted by ss); prints the seconds waited, or "timeout".
wait_established() {
    t0=$(now_ms)
    while :; do
        n=$(ss -Htn state established "dport = :$1" | wc -l)
        [ "$n" -ge "$CONNS" ] && { awk -v m="$(($(now_ms) - t0))" 'BEGIN { printf "%.1f", m / 1000 }'; return; }
        [ $(($(now_ms) - t0)) -ge 60000 ] && { echo timeout; return; }
        sleep 0.2
    done
}

# ---- a quiet machine -------------------------------------------------------

# Quiet: 1-minute load under 1.5 and no wrk running (another load test).
# Other handoffd servers are only counted: idle ones cost nothing.
quiet_note="machine quiet (1-min load < 1.5, no wrk running)"
waited=0
while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    busy=$(pgrep -x wrk || true)
    if awk -v l="$load" 'BEGIN { exit !(l < 1.5) }' && [ -z "$busy" ]; then
        break
    fi
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
        quiet_note="machine NOT quiet after ${QUIET_WAIT}s wait (load $load; wrk processes: $(echo $busy | wc -w)); ran anyway"
        break
    fi
    sleep 10
    waited=$((waited + 10))
done
quiet_note="$quiet_note; $(pgrep -x handoffd | wc -l) other handoffd processes present"
echo "c100k.sh: $quiet_note" >&2
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- handoffd --------------------------------------------------------------

: >"$work/handoffd.log"
"$HANDOFFD" --listen 127.0.0.1:0 --workers "$WORKERS" --protocol http --admin 127.0.0.1:0 \
    --idle-timeout 300 --log-level warn 2>"$work/handoffd.log" &
spid=$!
i=0
while ! grep -q 'handoffd: listening' "$work/handoffd.log"; do
    i=$((i + 1))
    [ $i -gt 100 ] && { cat "$work/handoffd.log" >&2; exit 1; }
    sleep 0.05
done
hport=$(sed -n 's/.*listening {[^}]*:\([0-9]*\),.*/\1/p' "$work/handoffd.log" | head -n1)
admin=$(sed -n 's#.*handoffd: admin http://\([^ ]*\).*#\1#p' "$work/handoffd.log" | head -n1)
live() { curl -s "http://$admin/status?format=json" | sed -n 's/^"live":\([0-9]*\).*/\1/p'; }

# Warm up (code paths faulted in), let the sweep park and trim, then the base.
wrk -t1 -c50 -d1s "http://127.0.0.1:$hport/" >/dev/null 2>&1 || true
sleep 3
h_rss0=$(rss_sum "$spid")
h_each0=$(rss_each "$spid")

t0=$(now_ms)
"$BENCH" -m hold --proto http -t "127.0.0.1:$hport" -N "$CONNS" -d "$HOLD" -q \
    >"$work/hold-handoffd.txt" 2>"$work/hold-handoffd.err" &
bpid=$!
h_live_s=timeout
while [ $(($(now_ms) - t0)) -lt 60000 ]; do
    if [ "$(live)" = "$CONNS" ]; then
        h_live_s=$(awk -v m="$(($(now_ms) - t0))" 'BEGIN { printf "%.1f", m / 1000 }')
        break
    fi
    sleep 0.1
done
sleep 3 # the sweep has run since the last connection arrived
h_rss1=$(rss_sum "$spid")
h_each1=$(rss_each "$spid")
curl -s "http://$admin/status?limit=12" >"$work/status.txt"
h_wrk=$(run_wrk "$hport" handoffd)
h_live_after_wrk=$(live)
wait "$bpid" || true
bpid=""
h_settle=$(settle_rss "$spid" "$h_rss0")
h_each2=$(rss_each "$spid")
kill "$spid"
wait "$spid" 2>/dev/null || true
spid=""

h_est=$(bench_field "$work/hold-handoffd.txt" establish)
h_conn=$(bench_field "$work/hold-handoffd.txt" connected)
h_open=$(bench_field "$work/hold-handoffd.txt" open_at_end)
h_err=$(bench_field "$work/hold-handoffd.txt" errors)
h_per=$(awk -v a="$h_rss0" -v b="$h_rss1" -v n="$CONNS" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
h_rss2=${h_settle% *}
h_settle_s=${h_settle#* }
h_back=$(awk -v a="$h_rss0" -v c="$h_rss2" 'BEGIN { printf "%+.1f", (c - a) * 100 / a }')

# ---- nginx -----------------------------------------------------------------

n_done=no
if [ "$NGINX" != none ] && command -v "$NGINX" >/dev/null 2>&1; then
    nport=$(free_port)
    nofile=$(ulimit -Hn)
    mkdir -p "$work/nginx/logs"
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile $nofile;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log crit;
events { worker_connections $((nofile - 64)); }
http {
    access_log off;
    keepalive_requests 10000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$nport reuseport backlog=4096;
        location / { default_type text/plain; return 200 "hello from handoff\n"; }
    }
}
EOF
    "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/start.log" &
    spid=$!
    if wait_listening "$spid" "$nport"; then
        wrk -t1 -c50 -d1s "http://127.0.0.1:$nport/" >/dev/null 2>&1 || true
        sleep 3
        n_rss0=$(rss_sum "$spid")
        "$BENCH" -m hold --proto http -t "127.0.0.1:$nport" -N "$CONNS" -d "$HOLD" -q \
            >"$work/hold-nginx.txt" 2>"$work/hold-nginx.err" &
        bpid=$!
        n_est_s=$(wait_established "$nport")
        sleep 3
        n_rss1=$(rss_sum "$spid")
        n_wrk=$(run_wrk "$nport" nginx)
        wait "$bpid" || true
        bpid=""
        n_settle=$(settle_rss "$spid" "$n_rss0")
        n_rss2=${n_settle% *}
        n_settle_s=${n_settle#* }
        n_est=$(bench_field "$work/hold-nginx.txt" establish)
        n_conn=$(bench_field "$work/hold-nginx.txt" connected)
        n_per=$(awk -v a="$n_rss0" -v b="$n_rss1" -v n="$CONNS" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
        n_back=$(awk -v a="$n_rss0" -v c="$n_rss2" 'BEGIN { printf "%+.1f", (c - a) * 100 / a }')
        n_done=yes
    else
        echo "c100k.sh: nginx did not start" >&2
    fi
    [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
    spid=""
fi

# ---- report ----------------------------------------------------------------

set -- $h_wrk
h_rps=$1 h_p99=$2 h_werr=$3 h_non2xx=$4
mkdir -p "$(dirname "$OUT")"
{
    echo "# $CONNS idle connections ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "\`make bench-c100k\` (bench/c100k.sh) on $(uname -n): $(nproc) cores,"
    echo "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, fd limit $(ulimit -Hn) per process, $(uname -r)."
    echo "$quiet_note; load at start $load_start."
    echo
    echo "handoffd: \`--workers $WORKERS --protocol http --admin 127.0.0.1:0 --idle-timeout 300\`,"
    echo "clients: \`handoff-bench -m hold --proto http -N $CONNS -d $HOLD\` (127.x sources,"
    echo "$(sed -n 's/.*using \([0-9]*\) processes.*/\1/p' "$work/hold-handoffd.err" | head -n1) client processes)."
    echo
    echo "| figure | handoffd | nginx | goal |"
    echo "|---|---|---|---|"
    if [ "$n_done" = yes ]; then
        set -- $n_wrk
        n_rps=$1 n_p99=$2
        echo "| connections established (client) | $h_conn | $n_conn | $CONNS |"
        echo "| establish time (client) | $h_est | $n_est | < 10 s |"
        echo "| all live on the server | $h_live_s s (admin /status) | $n_est_s s (ss) | |"
        echo "| summed RSS idle, KiB | $h_rss0 | $n_rss0 | |"
        echo "| summed RSS holding, KiB | $h_rss1 | $n_rss1 | |"
        echo "| **bytes per idle connection** | **$h_per** | **$n_per** | ≤ 512 |"
        echo "| wrk -c50 while held: p99 | $h_p99 ms | $n_p99 ms | < 10 ms |"
        echo "| wrk -c50 while held: requests/s | $h_rps | $n_rps | |"
        echo "| RSS after the clients left, KiB | $h_rss2 ($h_back%, after $h_settle_s s) | $n_rss2 ($n_back%, after $n_settle_s s) | within 10% |"
    else
        echo "| connections established (client) | $h_conn | - | $CONNS |"
        echo "| establish time (client) | $h_est | - | < 10 s |"
        echo "| all live on the server | $h_live_s s (admin /status) | - | |"
        echo "| summed RSS idle, KiB | $h_rss0 | - | |"
        echo "| summed RSS holding, KiB | $h_rss1 | - | |"
        echo "| **bytes per idle connection** | **$h_per** | - | ≤ 512 |"
        echo "| wrk -c50 while held: p99 | $h_p99 ms | - | < 10 ms |"
        echo "| wrk -c50 while held: requests/s | $h_rps | - | |"
        echo "| RSS after the clients left, KiB | $h_rss2 ($h_back%, after $h_settle_s s) | - | within 10% |"
        echo
        echo "nginx not measured (not installed, or NGINX=none)."
    fi
    echo
    echo "handoffd hold client: open at end $h_open, errors $h_err; wrk socket errors"
    echo "$h_werr, non-2xx $h_non2xx; /status live after the wrk run: $h_live_after_wrk."
    echo
    echo "Per-process RSS (pid:KiB, master first): idle \`$h_each0\`;"
    echo "holding \`$h_each1\`; after \`$h_each2\`."
    echo
    echo "## admin /status while held"
    echo
    echo '```'
    cat "$work/status.txt"
    echo '```'
    echo
    echo "## wrk while held (handoffd)"
    echo
    echo '```'
    cat "$work/wrk-handoffd.txt"
    echo '```'
    echo
    echo "## hold client (handoffd)"
    echo
    echo '```'
    cat "$work/hold-handoffd.txt"
    echo '```'
    if [ "$n_done" = yes ]; then
        echo
        echo "nginx: \`worker_processes $WORKERS; worker_rlimit_nofile $(ulimit -Hn);"
        echo "worker_connections $(($(ulimit -Hn) - 64)); listen ... reuseport; return 200\`. nginx"
        echo "allocates its connection and event arrays for worker_connections at start, so"
        echo "part of its per-connection memory is in its idle RSS, not in the increase."
        echo
        echo '```'
        cat "$work/hold-nginx.txt"
        cat "$work/wrk-nginx.txt"
        echo '```'
    fi
} >"$OUT"
cat "$OUT"
