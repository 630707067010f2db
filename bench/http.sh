#!/bin/sh
# bench/http.sh: handoffd's HTTP against nginx, same wrk command, same run.
#
# Both servers get 2 worker processes on loopback and answer every path
# with the same small fixed body (handoffd without --root; nginx with a
# `return 200` location). Rounds alternate the servers so that load from
# other users of the machine hits both alike. Two modes:
#   keep-alive   wrk -t1 -c$CONNS
#   close        wrk -t1 -c$CONNS -H 'Connection: close'  (connection per request)
# Printed: requests/s and p99 latency per server and mode (best of the
# rounds, and the mean), with handoffd/nginx ratios; socket errors and
# non-2xx counts.
#
# `bench/http.sh soak` instead runs wrk -t2 -c1000 -d30s once against
# handoffd alone and fails unless it ran clean.
#
# Environment: HANDOFFD (default build/handoffd), HANDOFFD_ARGS (more flags,
# default none), DURATION (default 10s), ROUNDS (default 2), CONNS (default
# 100), NGINX (default nginx).
# Loopback only. Not a test: nothing here is asserted except by `soak`.
set -eu

HANDOFFD=${HANDOFFD:-build/handoffd}
HANDOFFD_ARGS=${HANDOFFD_ARGS:-}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-100}
NGINX=${NGINX:-nginx}
BODY='hello from handoff'

work=$(mktemp -d /tmp/handoff-bench-http.XXXXXX)
hpid=""
npid=""
cleanup() {
    [ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null
    [ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "http.sh: wrk is not installed (.ci/deps.sh bench)" >&2; exit 1; }
[ -x "$HANDOFFD" ] || { echo "http.sh: $HANDOFFD not built (make)" >&2; exit 1; }

# free_port, wait_listening, wrk_summary.
. "$(dirname "$0")/lib.sh"

start_handoffd() {
    # shellcheck disable=SC2086 # HANDOFFD_ARGS is a list of flags
    "$HANDOFFD" --listen 127.0.0.1:0 --workers 2 --protocol http $HANDOFFD_ARGS \
        2>"$work/handoffd.log" &
    hpid=$!
    i=0
    while ! grep -q 'handoffd: listening' "$work/handoffd.log"; do
        i=$((i + 1))
        [ $i -gt 100 ] && { cat "$work/handoffd.log" >&2; exit 1; }
        sleep 0.05
    done
    hport=$(sed -n 's/.*listening {[^}]*:\([0-9]*\),.*/\1/p' "$work/handoffd.log" | head -n1)
}

start_nginx() {
    command -v "$NGINX" >/dev/null 2>&1 || return 1
    for attempt in 1 2 3; do
        nport=$(free_port) || return 1
        mkdir -p "$work/nginx/logs"
        cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log crit;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$nport;
        location / { default_type text/plain; return 200 "$BODY\n"; }
    }
}
EOF
        "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/start.log" &
        npid=$!
        wait_listening "$npid" "$nport" && return 0
        kill "$npid" 2>/dev/null
        wait "$npid" 2>/dev/null
        npid=""
        echo "http.sh: nginx did not start on port $nport (attempt $attempt)" >&2
    done
    return 1
}

# run_wrk PORT MODE OUT: one wrk run; prints "rps p99_ms errors non2xx".
run_wrk() {
    if [ "$2" = close ]; then
        wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H 'Connection: close' \
            "http://127.0.0.1:$1/" >"$3" 2>&1 || true
    else
        wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$1/" >"$3" 2>&1 || true
    fi
    wrk_summary "$3"
}

if [ "${1:-}" = soak ]; then
    start_handoffd
    echo "soak: wrk -t2 -c1000 -d30s against handoffd (2 workers) on 127.0.0.1:$hport"
    wrk -t2 -c1000 -d30s --latency "http://127.0.0.1:$hport/" | tee "$work/soak.txt"
    if grep -q -e 'Socket errors' -e 'Non-2xx' "$work/soak.txt"; then
        echo "soak: NOT clean" >&2
        exit 1
    fi
    echo "soak: clean (no socket errors, no non-2xx responses)"
    exit 0
fi

start_handoffd
have_nginx=1
start_nginx || { have_nginx=0; echo "http.sh: nginx not available; handoffd only" >&2; }

echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds alternating; handoffd :$hport" \
     "$( [ $have_nginx = 1 ] && echo "nginx :$nport" )"
: >"$work/results"
r=1
while [ $r -le "$ROUNDS" ]; do
    for mode in keepalive close; do
        # Alternate which server goes first from round to round.
        if [ $((r % 2)) = 1 ]; then order="handoffd nginx"; else order="nginx handoffd"; fi
        for srv in $order; do
            if [ $srv = nginx ]; then
                [ $have_nginx = 1 ] || continue
                port=$nport
            else
                port=$hport
            fi
            res=$(run_wrk "$port" "$mode" "$work/wrk-$srv-$mode-$r.txt")
            echo "$srv $mode $res" >>"$work/results"
            printf 'round %d %-9s %-8s %s\n' "$r" "$mode" "$srv" "$res" |
                awk '{ printf "%s %s %-9s %-8s %10.0f req/s  p99 %7.2f ms  errors %d  non-2xx %d\n",
                       $1, $2, $3, $4, $5, $6, $7, $8 }'
        done
    done
    r=$((r + 1))
done

echo "summary over $ROUNDS rounds (best req/s with its p99; mean req/s):"
awk -v have_nginx=$have_nginx '
    { k = $1 " " $2
      if (!(k in rps) || $3 > rps[k]) { rps[k] = $3; p99[k] = $4 }
      sum[k] += $3; n[k]++; err[k] += $5; bad[k] += $6 }
    END {
        split("keepalive close", modes, " ")
        for (i = 1; i <= 2; i++) {
            m = modes[i]; h = "handoffd " m; g = "nginx " m
            printf "%-9s handoffd %8.0f req/s p99 %7.2f ms, mean %8.0f req/s (errors %d, non-2xx %d)\n",
                   m, rps[h], p99[h], sum[h] / n[h], err[h], bad[h]
            if (have_nginx == 1) {
                printf "%-9s nginx    %8.0f req/s p99 %7.2f ms, mean %8.0f req/s (errors %d, non-2xx %d)\n",
                       m, rps[g], p99[g], sum[g] / n[g], err[g], bad[g]
                rr = (rps[g] > 0) ? rps[h] / rps[g] : 0
                mr = (sum[g] > 0) ? sum[h] / sum[g] : 0
                pr = (p99[g] > 0) ? p99[h] / p99[g] : 0
                goal = (m == "keepalive") ? "1.0x" : "0.9x"
                printf "%-9s handoffd/nginx: best req/s %.2fx, mean req/s %.2fx, p99 %.2fx (goal: req/s >= %s)\n",
                       m, rr, mr, pr, goal
            }
        }
    }' "$work/results"
