# bench/lib.sh: shell helpers the bench scripts share (sourced, POSIX sh).

# A port below the ephemeral range that no socket uses, for nginx
# (handoffd picks its own with port 0).
free_port() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 12000))
        ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

# Wait up to 5 s for PID to listen on PORT; fails if it does not.
wait_listening() {
    i=0
    while kill -0 "$1" 2>/dev/null && ! ss -Htln "sport = :$2" | grep -q .; do
        i=$((i + 1))
        [ $i -gt 100 ] && break
        sleep 0.05
    done
    ss -Htln "sport = :$2" | grep -q .
}

# wrk --latency output in FILE as "rps p99_ms errors non2xx".
wrk_summary() {
    awk '
        /Requests\/sec:/ { rps = $2 }
        $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                      p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        /Non-2xx/ { non2xx = $NF }
        END { printf "%s %.3f %d %d\n", rps + 0, p99 + 0, err + 0, non2xx + 0 }' "$1"
}
