#!/bin/sh
# Install the Debian packages handoff needs for a purpose (build, test,
# bench), but only those missing. As root this runs apt-get; otherwise it
# prints the exact command to run and fails.
set -eu

purpose=${1:-build}
pkgs="gcc make pkg-config libc6-dev libevent-dev libhttp-parser-dev libsystemd-dev libinih-dev"
case "$purpose" in
    build) ;;
    test)  pkgs="$pkgs libcriterion-dev libjansson-dev clang-14 libclang-rt-14-dev" ;;
    valgrind) pkgs="$pkgs libcriterion-dev libjansson-dev valgrind" ;;
    bench) pkgs="$pkgs libcriterion-dev libjansson-dev wrk gnuplot-nox nginx-light" ;;
    fuzz)  pkgs="$pkgs clang-14 libclang-rt-14-dev" ;;
    *) echo "deps.sh: unknown purpose '$purpose' (build, test, valgrind, bench, fuzz)" >&2; exit 2 ;;
esac
# tests/test_deploy.c: haproxy for the loopback balancer test; docker-compose,
# python3-yaml and systemd (systemd-analyze) to validate the deployment files.
case "$purpose" in
    test) pkgs="$pkgs haproxy docker-compose python3-yaml systemd" ;;
esac

# bench/compare.py (make bench), and its smoke run in tests/test_compare.c.
case "$purpose" in
    test|bench) pkgs="$pkgs python3" ;;
esac

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "handoff needs these Debian packages:$missing" >&2
    echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
