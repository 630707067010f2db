#!/usr/bin/env python3
"""compare.py: `make bench`. Regenerates the table of server designs of
UNP ch.30 (Stevens, Fenner, Rudoff: "Client/Server Design Alternatives") on
this machine: every handoffd model (pass, fork, accept, reuseport, and
iterative where it fits) runs the same protocols under the same load on
loopback, and nginx is a reference row for HTTP.

Measured per run: connections/s, requests/s, p50/p99 latency, server CPU
seconds (utime+stime of the master and every live worker or child, plus
cutime+cstime for reaped children, from /proc/PID/stat before and after),
peak server memory (RSS summed over the process tree, sampled during the
run), and at N held connections how they spread over the workers.

Output (--out, default bench/results/YYYY-MM-DD, or YYYY-MM-DD-quick with
--quick): results.csv (one row per run), report.md (tables, goal verdicts, a
paragraph generated from the figures), and gnuplot PNGs of throughput and
p99 against concurrency, one line per server.

Every server binds 127.0.0.1 port 0 (nginx gets an inherited socket bound
here to port 0); every run is bounded in time; every process started here
runs in its own process group and is killed on exit, error or Ctrl-C.
A model this handoffd build does not really implement (it starts, but with
another design's process structure) is detected and left out, with a note.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Server designs, in table order, with their section in UNP ch.30.
MODELS = ["pass", "fork", "accept", "reuseport", "iterative"]
DESIGN = {
    "iterative": ("iterative server, one client at a time", "§30.4"),
    "fork": ("concurrent server, one fork per client", "§30.5"),
    "accept": ("pre-forked, every child accepts (no lock)", "§30.6"),
    "reuseport": ("pre-forked, one SO_REUSEPORT listener each", "(Linux 3.9)"),
    "pass": ("pre-forked, descriptor passing", "§30.9"),
    "nginx": ("nginx 2 workers, `return 200` (reference)", ""),
}
NGINX_BODY = "hello from handoff\\n"  # handoffd's fixed HTTP body

# Workloads whose unit of work is a connection (the rest: a request).
PER_CONNECTION = ("churn", "http-close", "unp")

COLUMNS = [
    "workload", "tool", "protocol", "server", "concurrency", "round", "elapsed_s",
    "connections", "requests", "errors", "conn_per_s", "req_per_s", "p50_ms", "p99_ms",
    "server_cpu_s", "cpu_s_per_1k_conn", "cpu_s_per_1k_req", "client_cpu_s", "other_cpu_s",
    "peak_rss_mb", "peak_procs", "held", "pss_mb", "worker_conns", "spread_max_min", "note",
]

# wrk reports through this script so figures are exact, not rounded text.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"latency_us":{"p50":%.1f,"p90":%.1f,' ..
    '"p99":%.1f,"max":%.1f}}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# Source addresses (127.0.0.1..SOURCES) for loads whose client closes first
# (churn, unp). From one address, connect() takes its ports from the odd
# half of the ephemeral range and may reuse a port in TIME_WAIT only after
# a second (tcp_tw_reuse), which caps churn near 14,000 connections/s until
# the TIME_WAIT table overflows (tcp_max_tw_buckets): rates would depend
# on what earlier runs left behind. 16 addresses lift that cap.
SOURCES = 16

# Waiting for a quiet machine before each run: the busy CPUs tolerated
# (over QUIET_SAMPLE seconds) and the longest wait for one run.
QUIET_CPUS = 0.25
QUIET_SAMPLE = 0.5
QUIET_WAIT_RUN = 20.0
# A sweep point whose best round saw the rest of the machine keep more than
# this many CPUs busy is run once more at the end (within the plan's budget).
RERUN_CPUS = 0.4


class RunError(Exception):
    """A run that could not be set up or whose tool failed (not load errors)."""


# ---- plans -----------------------------------------------------------------

class Plan:
    """How long and how wide each kind of run is."""

    def __init__(self, name, duration, rounds, concurrency, unp, hold_conns, hold_secs,
                 models, workloads, headline):
        self.name = name                # full, quick or smoke
        self.duration = duration        # seconds per throughput run
        self.rounds = rounds            # interleaved repetitions; the best is reported
        self.concurrency = concurrency  # client counts for the sweeps
        self.unp = unp                  # (processes, loops, bytes) of UNP's own test
        self.hold_conns = hold_conns    # connections held for the spread measurement
        self.hold_secs = hold_secs      # how long they are held
        self.models = models            # handoffd models to try
        self.workloads = workloads      # workload names to run (subject to tools)
        self.headline = headline        # concurrency the goals are judged at
        self.workers = 2                # --workers / nginx worker_processes
        self.quiet_budget = {"full": 120.0, "quick": 15.0}.get(name, 0.0)  # s of waiting in all
        self.rerun_budget = {"full": 120.0}.get(name, 0.0)  # s of re-running noisy points


ALL_WORKLOADS = ["churn", "echo-keepalive", "http-keepalive", "http-close", "unp", "hold"]

PLANS = {
    "full": lambda: Plan("full", 5.0, 2, [10, 100, 1000], (5, 4000, 4000), 1000, 3.0,
                         MODELS, ALL_WORKLOADS, 100),
    "quick": lambda: Plan("quick", 1.0, 1, [10, 100, 1000], (5, 500, 4000), 1000, 1.0,
                          MODELS, ALL_WORKLOADS, 100),
    "smoke": lambda: Plan("smoke", 0.5, 1, [10], (2, 100, 4000), 50, 0.3,
                          ["pass"], ["churn", "echo-keepalive", "unp", "hold"], 10),
}


# ---- process groups: everything started here dies with us -------------------

class Reaper:
    """Every child runs in its own session (its own process group, pgid =
    its pid), so one killpg reaches the forked workers or children too."""

    def __init__(self):
        self.groups = []  # Popen objects whose group may still have members

    def add(self, proc):
        self.groups.append(proc)
        return proc

    def kill(self, proc, grace=2.0, sig=signal.SIGTERM):
        """Signal the leader, wait up to GRACE, then SIGKILL the group."""
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if proc in self.groups:
            self.groups.remove(proc)

    def kill_all(self):
        for proc in list(self.groups):
            self.kill(proc, grace=0.5)


REAPER = Reaper()


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ---- /proc -------------------------------------------------------------------

def proc_stat(pid):
    """(utime+stime+cutime+cstime in ticks, rss in bytes, zombie) of PID, or
    None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    # rest[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17, rss=24
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return ticks, int(rest[21]) * PAGE, rest[0] == b"Z"


def proc_children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return kids


def proc_tree(root):
    """ROOT and all its descendants (live or zombie)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(proc_children(pid))
    return out


def tree_sample(root):
    """(cpu seconds, rss bytes, live processes) summed over ROOT's tree. A
    process's reaped children are in its cutime/cstime, so the sum over the
    processes not yet reaped (zombies included) counts every descendant
    that ever ran exactly once."""
    ticks = rss = n = 0
    for pid in proc_tree(root):
        s = proc_stat(pid)
        if s is not None:
            ticks += s[0]
            rss += s[1]
            n += 0 if s[2] else 1
    return ticks / CLK_TCK, rss, n


def tree_pss(root):
    """Proportional set size summed over ROOT's tree, in bytes: each shared
    page divided among the processes sharing it, so unlike the RSS sum it
    does not count fork's shared pages once per child."""
    total = 0
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def socket_inodes(pid):
    out = set()
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for name in names:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def listen_inodes(port):
    """Inodes of the TCP sockets listening on PORT (any address). Asks ss
    (netlink, listeners only) first: /proc/net/tcp also lists every
    TIME_WAIT socket, up to tcp_max_tw_buckets of them after churn runs."""
    try:
        r = subprocess.run(["ss", "-Hlten", "sport = :%d" % port], capture_output=True, text=True,
                           timeout=10)
        if r.returncode == 0:
            return {int(x) for x in re.findall(r"\bino:(\d+)", r.stdout)}
    except (OSError, subprocess.TimeoutExpired):
        pass
    out = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        out.add(int(p[9]))
        except OSError:
            pass
    return out


class Sampler(threading.Thread):
    """Peak RSS and process count of a tree, sampled until stopped. The
    interval grows with the cost of a sample (fork trees of 1,000 children),
    so the sampler never takes more than ~5% of a core."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.peak_rss = 0
        self.peak_procs = 0
        self.halt = threading.Event()

    def sample(self):
        _, rss, n = tree_sample(self.root)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, n)

    def run(self):
        interval = 0.05
        while True:
            t0 = time.monotonic()
            self.sample()
            interval = max(0.05, 20 * (time.monotonic() - t0))
            if self.halt.wait(interval):
                return

    def stop(self):
        self.halt.set()
        self.join(timeout=10)
        self.sample()


# ---- servers -----------------------------------------------------------------

STARTUP = re.compile(r"handoffd: listening \{127\.0\.0\.1:(\d+), \*:\*\} model=(\S+) "
                     r"workers=(\d+) protocol=(\S+) pid=(\d+)")


class Server:
    """A server process tree under test: handoffd with one model, or nginx."""

    def __init__(self, name, workdir):
        self.name = name        # model name or "nginx"
        self.workdir = workdir  # scratch directory for logs and config
        self.proc = None        # Popen of the master
        self.port = 0           # listening port
        self.pid = 0            # master pid (the tree's root)
        self.idle_sockets = {}  # pid -> socket fds at idle (listeners aside), for the spread
        self.listeners = set()  # inodes of the sockets listening on port
        self.log_path = os.path.join(workdir, "%s.log" % name)

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return ""

    def workers(self):
        return proc_children(self.pid)

    def stop(self):
        if self.proc is not None:
            REAPER.kill(self.proc, grace=4.0)
            self.proc = None

    def record_idle(self):
        self.listeners = listen_inodes(self.port)
        for pid in [self.pid] + self.workers():
            self.idle_sockets[pid] = len(socket_inodes(pid) - self.listeners)

    def conn_sockets(self, pid):
        """Sockets of PID above its idle count, listeners aside: its open
        connections (a process born since idle, e.g. a fork child, counts
        all its sockets but the listener it may briefly hold)."""
        return max(0, len(socket_inodes(pid) - self.listeners) - self.idle_sockets.get(pid, 0))

    def busy_sockets(self):
        """Open connections over the whole tree."""
        return sum(self.conn_sockets(pid) for pid in proc_tree(self.pid))

    def settle(self, timeout=5.0):
        """Wait until the tree is back to its idle shape: no connection left
        open, no extra process. Returns whether it got there."""
        deadline = time.monotonic() + timeout
        nproc = len(self.idle_sockets)
        while time.monotonic() < deadline:
            if len(proc_tree(self.pid)) <= nproc and self.busy_sockets() == 0:
                return True
            time.sleep(0.05)
        return False


class Handoffd(Server):
    def __init__(self, tools, model, protocol, workers, workdir):
        super().__init__(model, workdir)
        self.argv = [tools.handoffd, "--listen", "127.0.0.1:0", "--model", model, "--protocol",
                     protocol, "--workers", str(workers), "--drain-timeout", "2",
                     "--log-level", "warn"] + tools.server_flags
        self.line_workers = -1  # workers= on the start-up line

    def start(self):
        log = open(self.log_path, "w")
        try:
            self.proc = REAPER.add(subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=log,
                                                    start_new_session=True))
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                m = STARTUP.search(f.read())
            if m:
                self.port, self.line_workers = int(m.group(1)), int(m.group(3))
                self.pid = int(m.group(5))
                if self.pid != self.proc.pid:
                    self.stop()
                    raise RunError("start-up line names pid %d, started %d" % (self.pid, self.proc.pid))
                self.record_idle()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RunError("handoffd %s did not start: %s" % (" ".join(self.argv[1:]), self.log_tail()))

    def verify(self):
        """Whether the running tree has this model's structure, from who holds
        which listening socket. Returns (ok, why)."""
        kids = self.workers()
        lis = listen_inodes(self.port)
        mine = socket_inodes(self.pid) & lis
        held = [socket_inodes(k) & lis for k in kids]
        m = self.name
        if m in ("fork", "iterative"):
            if kids:
                return False, "%d processes pre-forked at idle (%s pre-forks none)" % (len(kids), m)
            if not mine:
                return False, "the master holds no listening socket"
            return True, "one process at idle, holding the listener"
        if not kids:
            return False, "no worker processes"
        if m == "pass":
            if any(held) or not mine:
                return False, "workers hold a listening socket"
            return True, "only the master holds the listener"
        if m == "accept":
            if len(lis) == 1 and all(h == lis for h in held):
                return True, "every worker holds the one shared listener"
            return False, "%d listening sockets; %d of %d workers hold one" % (
                len(lis), sum(1 for h in held if h), len(kids))
        if m == "reuseport":
            if len(lis) >= 2 and all(held) and len(set().union(*held)) == len(kids):
                return True, "each worker holds its own of %d SO_REUSEPORT listeners" % len(lis)
            return False, "%d listening sockets; workers hold %s" % (
                len(lis), [len(h) for h in held])
        return False, "unknown model"


class Nginx(Server):
    """nginx with WORKERS worker processes answering every path with a fixed
    body. The listening socket is bound here to 127.0.0.1:0 and handed over
    through nginx's own inheritance (NGINX="fd;"), so no port is guessed."""

    def __init__(self, binary, workers, workdir):
        super().__init__("nginx", workdir)
        self.binary = binary
        self.workers_n = workers

    def start(self):
        d = os.path.join(self.workdir, "nginx")
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(4096)
            self.port = lsock.getsockname()[1]
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(workers=self.workers_n, dir=d, port=self.port,
                                          body=NGINX_BODY))
            env = dict(os.environ, NGINX="%d;" % lsock.fileno())
            log = open(self.log_path, "w")
            try:
                self.proc = REAPER.add(subprocess.Popen(
                    [self.binary, "-p", d, "-c", conf, "-e", os.path.join(d, "logs", "error.log")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=[lsock.fileno()], start_new_session=True))
            finally:
                log.close()
        finally:
            lsock.close()  # nginx has its copy
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if len(self.workers()) >= self.workers_n:
                time.sleep(0.1)  # workers finish their set-up
                self.record_idle()
                return
            time.sleep(0.02)
        self.stop()
        raise RunError("nginx did not start: %s" % self.log_tail())

    def verify(self):
        return True, "reference"

    def settle(self, timeout=1.0):
        """nginx keeps a few connections that wrk opened and closed unused
        as it exited in CLOSE_WAIT indefinitely (seen with 1.22: no read
        event, no timeout); they cost no CPU, so only the workers' being
        there again is waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(proc_tree(self.pid)) > len(self.idle_sockets):
            time.sleep(0.05)
        return True


NGINX_CONF = """worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log crit;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type "text/plain; charset=utf-8"; return 200 "{body}"; }}
    }}
}}
"""


# ---- load tools ----------------------------------------------------------------

def run_tool(argv, timeout):
    """Run a load tool in its own process group, killed at TIMEOUT."""
    proc = REAPER.add(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        REAPER.kill(proc, grace=0.5, sig=signal.SIGKILL)
        raise RunError("%s: still running after %.0f s" % (os.path.basename(argv[0]), timeout))
    finally:
        if proc.poll() is None:
            REAPER.kill(proc, grace=0.5)
        elif proc in REAPER.groups:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the tool's own children, if any
            except (ProcessLookupError, PermissionError):
                pass
            REAPER.groups.remove(proc)
    return proc.returncode, out, err


def bench_run(tools, port, args, timeout):
    argv = [tools.bench, "-t", "127.0.0.1:%d" % port, "--json", "-q"] + args
    rc, out, err = run_tool(argv, timeout)
    if rc != 0:
        raise RunError("handoff-bench %s: exit %d: %s" % (" ".join(args), rc, err.strip()[-400:]))
    try:
        return json.loads(out)
    except ValueError:
        raise RunError("handoff-bench %s: no JSON: %r" % (" ".join(args), out[-200:]))


def wrk_run(tools, port, conns, duration, close, timeout):
    argv = [tools.wrk, "-t1", "-c%d" % conns, "-d%ds" % max(1, round(duration)), "--timeout", "5s",
            "-s", tools.wrk_lua]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append("http://127.0.0.1:%d/" % port)
    rc, out, err = run_tool(argv, timeout)
    m = re.search(r"^WRKJSON (.*)$", out, re.M)
    if rc != 0 or not m:
        raise RunError("wrk: exit %d: %s" % (rc, (err or out).strip()[-400:]))
    return json.loads(m.group(1))


class Tools:
    """Paths of what the runs need; None where missing."""

    def __init__(self, args, workdir):
        self.handoffd = os.path.abspath(args.handoffd)
        self.bench = os.path.abspath(args.bench or os.path.join(os.path.dirname(self.handoffd),
                                                                "handoff-bench"))
        self.wrk = shutil.which("wrk")
        self.nginx = shutil.which("nginx") or (os.access("/usr/sbin/nginx", os.X_OK) and "/usr/sbin/nginx") or None
        self.gnuplot = shutil.which("gnuplot")
        self.wrk_lua = os.path.join(workdir, "report.lua")
        with open(self.wrk_lua, "w") as f:
            f.write(WRK_LUA)
        for path in (self.handoffd, self.bench):
            if not os.access(path, os.X_OK):
                raise RunError("%s is not built (make)" % path)
        self.protocols = self.find_protocols()

    def find_protocols(self):
        """Protocols this handoffd offers, from its --help; also which flags
        every run adds: the admin listener (a fixed default port) is off."""
        out = subprocess.run([self.handoffd, "--help"], capture_output=True, text=True, timeout=10)
        text = out.stdout + out.stderr
        self.server_flags = ["--admin", "off"] if re.search(r"--admin ADDR\|off", text) else []
        m = re.search(r"--protocol NAME\s+(.*)", text)
        return set(re.findall(r"[a-z]+", m.group(1).split("(")[0])) if m else set()


# ---- one measured run -------------------------------------------------------

def empty_row(workload, tool, protocol, server, concurrency, rnd):
    row = {c: "" for c in COLUMNS}
    row.update(workload=workload, tool=tool, protocol=protocol, server=server,
               concurrency=concurrency, round=rnd)
    return row


def fmt(x, digits=3):
    if x is None or x == "":
        return ""
    if isinstance(x, int):
        return str(x)
    return ("%%.%dg" % digits) % x if abs(x) < 1 else "%.*f" % (max(0, digits - len(str(int(abs(x))))), x)


def machine_busy():
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat:
    user, nice, system, irq, softirq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Usage:
    """What one run cost: the server's CPU and memory, the load tool's CPU,
    and the CPU everything else on the machine took meanwhile (other users'
    work, this script), which says how quiet the machine was."""

    def __init__(self):
        self.server_cpu = 0.0  # seconds, the server's process tree
        self.client_cpu = 0.0  # seconds, the load tool and its processes
        self.other_cpu = 0.0   # seconds, the rest of the machine
        self.peak_rss = 0      # bytes, summed over the server's tree
        self.peak_procs = 0    # processes in the server's tree
        self.settled = True    # the server went back to idle after the run


def measured(server, load):
    """Run LOAD() against SERVER; returns (load's result, Usage)."""
    u = Usage()
    cpu0, busy0, kids0 = tree_sample(server.pid)[0], machine_busy(), children_cpu()
    sampler = Sampler(server.pid)
    sampler.start()
    try:
        result = load()
    finally:
        u.settled = server.settle()
        sampler.stop()
    u.server_cpu = tree_sample(server.pid)[0] - cpu0
    u.client_cpu = children_cpu() - kids0  # the tool is the only child reaped meanwhile
    u.other_cpu = max(0.0, machine_busy() - busy0 - u.server_cpu - u.client_cpu)
    u.peak_rss, u.peak_procs = sampler.peak_rss, sampler.peak_procs
    return result, u


def fill_common(row, u, conns, reqs, errors, elapsed, p50_us, p99_us):
    cpu = u.server_cpu
    row.update(elapsed_s="%.3f" % elapsed, connections=conns, requests=reqs, errors=errors,
               conn_per_s="%.1f" % (conns / elapsed if elapsed > 0 else 0),
               req_per_s="%.1f" % (reqs / elapsed if elapsed > 0 else 0),
               p50_ms="%.3f" % (p50_us / 1000.0), p99_ms="%.3f" % (p99_us / 1000.0),
               server_cpu_s="%.2f" % cpu, client_cpu_s="%.2f" % u.client_cpu,
               other_cpu_s="%.2f" % u.other_cpu, peak_rss_mb="%.1f" % (u.peak_rss / 1048576.0),
               peak_procs=u.peak_procs)
    if conns > 0 and row["workload"] in PER_CONNECTION:
        row["cpu_s_per_1k_conn"] = "%.4f" % (cpu * 1000.0 / conns)
    if reqs > 0:
        row["cpu_s_per_1k_req"] = "%.4f" % (cpu * 1000.0 / reqs)
    if not u.settled:
        row["note"] = "server still busy 5 s after the run"


def bench_counts(j):
    """(connections completed, requests, errors, elapsed, p50, p99) from a
    handoff-bench JSON object."""
    return (j.get("connected", 0), j.get("ok", 0), j["errors"]["total"], j["elapsed_s"],
            j["latency_us"]["p50"], j["latency_us"]["p99"])


def run_one(ctx, workload, server_name, c, rnd):
    """Start a fresh server, measure one run, stop it. Returns a CSV row."""
    plan, tools = ctx.plan, ctx.tools
    proto = {"churn": "echo", "echo-keepalive": "echo", "unp": "unp", "hold": "echo"}.get(workload, "http")
    tool = "wrk" if workload.startswith("http-") else "handoff-bench"
    row = empty_row(workload, tool, proto, server_name, c, rnd)
    if server_name == "nginx":
        server = Nginx(tools.nginx, plan.workers, ctx.workdir)
    else:
        server = Handoffd(tools, server_name, proto, plan.workers, ctx.workdir)
    server.start()
    try:
        if server_name not in ctx.verified:
            ok, why = server.verify()
            ctx.verified[server_name] = (ok, why)
            if not ok:
                return None
        d = plan.duration
        if workload == "churn":
            load = lambda: bench_run(tools, server.port, ["-m", "churn", "-c", str(c), "-d", str(d),
                                                          "-S", str(SOURCES)], d + 30)
        elif workload == "echo-keepalive":
            load = lambda: bench_run(tools, server.port, ["-m", "keepalive", "-c", str(c), "-d", str(d)], d + 30)
        elif workload == "unp":
            p, loops, nbytes = plan.unp
            load = lambda: bench_run(tools, server.port, ["-m", "unp", "-p", str(p), "-l", str(loops),
                                                          "-b", str(nbytes), "-d", "120",
                                                          "-S", str(SOURCES)], 150)
        elif workload in ("http-keepalive", "http-close"):
            load = lambda: wrk_run(tools, server.port, c, d, workload == "http-close", d + 30)
        elif workload == "hold":
            return run_hold(ctx, server, row, c)
        else:
            raise RunError("unknown workload %s" % workload)
        j, u = measured(server, load)
        if tool == "wrk":
            errors = sum(j["errors"].values())
            reqs, elapsed = j["requests"], j["duration_us"] / 1e6
            conns = reqs if workload == "http-close" else c
            fill_common(row, u, conns, reqs, errors, elapsed, j["latency_us"]["p50"],
                        j["latency_us"]["p99"])
        else:
            fill_common(row, u, *bench_counts(j))
        if server.proc.poll() is not None:
            row["note"] = "server exited during the run: %s" % server.log_tail(3)
        return row
    finally:
        server.stop()


def run_hold(ctx, server, row, n):
    """Hold N idle connections; once they are all in, count each worker's
    connection sockets (its socket fds above its idle count)."""
    plan, tools = ctx.plan, ctx.tools
    counts = {}
    pss = []  # PSS of the tree once all connections are in

    def load():
        argv = [tools.bench, "-t", "127.0.0.1:%d" % server.port, "--json", "-q", "-m", "hold",
                "-N", str(n), "-d", str(plan.hold_secs)]
        proc = REAPER.add(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, start_new_session=True))
        try:
            deadline = time.monotonic() + plan.hold_secs + 20
            while time.monotonic() < deadline and proc.poll() is None:
                workers = server.workers()
                per = {w: server.conn_sockets(w) for w in workers}
                if sum(per.values()) >= n:
                    counts.update(per)
                    pss.append(tree_pss(server.pid))
                    break
                counts.clear()
                counts.update(per)  # best so far, if never complete
                time.sleep(0.05)
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RunError("handoff-bench hold: still running")
        finally:
            REAPER.kill(proc, grace=0.5)
        if proc.returncode != 0:
            raise RunError("handoff-bench hold: exit %d: %s" % (proc.returncode, err.strip()[-300:]))
        return json.loads(out)

    j, u = measured(server, load)
    h = j.get("hold", {})
    est = h.get("established", 0)
    fill_common(row, u, est, 0, j["errors"]["total"], j["elapsed_s"], j["connect_us"]["p50"],
                j["connect_us"]["p99"])
    row.update(requests="", req_per_s="", cpu_s_per_1k_req="", conn_per_s="",
               held=sum(counts.values()), pss_mb="%.1f" % (pss[0] / 1048576.0) if pss else "")
    if server.name in ("fork",):
        row["worker_conns"] = "one per child"
    elif counts:
        vals = sorted(counts.values(), reverse=True)
        row["worker_conns"] = " ".join(str(v) for v in vals)
        if vals[-1] > 0:
            row["spread_max_min"] = "%.3f" % (vals[0] / vals[-1])
        else:
            row["spread_max_min"] = "inf"
    if h.get("open_at_end", est) < est:
        row["note"] = "%d of %d closed by the server" % (est - h.get("open_at_end", 0), est)
    return row


# ---- the plan ------------------------------------------------------------------

class Context:
    def __init__(self, plan, tools, workdir, out):
        self.plan = plan          # sizes and durations
        self.tools = tools        # binaries
        self.workdir = workdir    # scratch
        self.out = out            # results directory
        self.rows = []            # every CSV row, in run order
        self.verified = {}        # server -> (ok, why) from its first start
        self.failures = []        # RunError messages
        self.skipped = []         # workloads left out, with why
        self.quiet_waited = 0.0   # seconds spent waiting for a quiet machine
        self.busy_starts = 0      # runs started while the machine was still busy
        self.reruns = 0           # sweep points run again because others were busy


def servers_for(ctx, workload):
    """Servers a workload runs against: the models that passed verification,
    iterative only where connections are short (it serves one at a time and
    would starve every other held or keep-alive connection), nginx only for
    HTTP."""
    plan = ctx.plan
    ms = [m for m in plan.models if ctx.verified.get(m, (True,))[0]]
    if workload in ("echo-keepalive", "http-keepalive", "hold"):
        ms = [m for m in ms if m != "iterative"]
    if workload.startswith("http-") and ctx.tools.nginx:
        ms.append("nginx")
    return ms


def choose_workloads(ctx):
    plan, tools = ctx.plan, ctx.tools
    chosen = []
    for w in plan.workloads:
        if w.startswith("http-"):
            if "http" not in tools.protocols:
                ctx.skipped.append((w, "this handoffd has no http protocol yet"))
                continue
            if not tools.wrk:
                ctx.skipped.append((w, "wrk is not installed (.ci/deps.sh bench)"))
                continue
        if w == "echo-keepalive" and plan.name != "smoke" and "http" in tools.protocols and tools.wrk:
            continue  # keep-alive is measured over HTTP with wrk instead
        chosen.append(w)
    return chosen


def log(msg):
    print(msg, flush=True)


def describe(row):
    w = row["workload"]
    if w == "hold":
        return "held %s, workers %s" % (row["held"], row["worker_conns"] or "-")
    rate = row["conn_per_s"] if w in PER_CONNECTION else row["req_per_s"]
    unit = "conn/s" if w in PER_CONNECTION else "req/s"
    return "%s %s p99 %s ms cpu %s s (client %s, other %s) rss %s MB errors %s" % (
        rate, unit, row["p99_ms"], row["server_cpu_s"], row["client_cpu_s"], row["other_cpu_s"],
        row["peak_rss_mb"], row["errors"])


def run_plan(ctx):
    plan = ctx.plan
    workloads = choose_workloads(ctx)
    # Verify each model once, up front, so that unimplemented ones never run.
    for m in plan.models:
        try:
            s = Handoffd(ctx.tools, m, "echo", plan.workers, ctx.workdir)
            s.start()
            try:
                ctx.verified[m] = s.verify()
            finally:
                s.stop()
        except RunError as e:
            ctx.verified[m] = (False, str(e))
        log("model %-9s %s: %s" % (m, "ok" if ctx.verified[m][0] else "LEFT OUT", ctx.verified[m][1]))
    sweeps = [w for w in workloads if w not in ("unp", "hold")]
    for rnd in range(1, plan.rounds + 1):
        for w in sweeps:
            for c in plan.concurrency:
                servers = servers_for(ctx, w)
                k = (rnd - 1) % max(1, len(servers))  # rotate who goes first each round
                for s in servers[k:] + servers[:k]:
                    one(ctx, w, s, c, rnd)
    rerun_noisy(ctx, sweeps)
    if "unp" in workloads:
        for s in servers_for(ctx, "unp"):
            one(ctx, "unp", s, plan.unp[0], 1)
    if "hold" in workloads:
        for s in servers_for(ctx, "hold"):
            one(ctx, "hold", s, plan.hold_conns, 1)


def busy_during(row):
    """CPUs the rest of the machine kept busy during the run of ROW."""
    e = num(row["elapsed_s"])
    return (num(row["other_cpu_s"]) or 0.0) / e if e else 0.0


def rerun_noisy(ctx, sweeps):
    """Once more, within the plan's rerun budget, each sweep point whose
    best round still ran beside other work (over RERUN_CPUS): the churn
    points the goals are judged at first, then the busiest."""
    plan = ctx.plan
    if plan.rerun_budget <= 0:
        return
    keys = {(r["workload"], r["server"], int(r["concurrency"])) for r in ctx.rows
            if r["workload"] in sweeps}
    todo = []
    for w, srv, c in keys:
        b = best(ctx.rows, w, srv, c)
        if b is not None and busy_during(b) > RERUN_CPUS:
            first = 0 if (w == "churn" and c == plan.headline) else 1
            todo.append((first, -busy_during(b), w, srv, c))
    if not todo:
        return
    todo.sort()
    log("re-running %d point%s measured beside other work (budget %.0f s)" % (
        len(todo), "" if len(todo) == 1 else "s", plan.rerun_budget))
    t0 = time.monotonic()
    for _, _, w, srv, c in todo:
        if time.monotonic() - t0 > plan.rerun_budget:
            break
        one(ctx, w, srv, c, plan.rounds + 1)
        ctx.reruns += 1


def wait_quiet(ctx):
    """Before a run, wait while the rest of the machine keeps more than
    QUIET_CPUS busy (other users of a shared machine), at most
    QUIET_WAIT_RUN seconds per run and the plan's quiet_budget in all."""
    if ctx.quiet_waited >= ctx.plan.quiet_budget:
        return  # budget spent (or none): no more sampling either
    waited = 0.0
    while True:
        b0, t0 = machine_busy(), time.monotonic()
        time.sleep(QUIET_SAMPLE)
        busy = (machine_busy() - b0) / (time.monotonic() - t0)
        waited += time.monotonic() - t0
        if busy <= QUIET_CPUS:
            break
        if waited >= QUIET_WAIT_RUN or ctx.quiet_waited + waited >= ctx.plan.quiet_budget:
            ctx.busy_starts += 1
            break
    ctx.quiet_waited += waited
    if ctx.quiet_waited >= ctx.plan.quiet_budget:
        log("  (waiting budget of %.0f s spent: later runs start without waiting)" % ctx.plan.quiet_budget)


def one(ctx, w, s, c, rnd):
    wait_quiet(ctx)
    t0 = time.monotonic()
    try:
        row = run_one(ctx, w, s, c, rnd)
    except RunError as e:
        ctx.failures.append("%s %s c=%s: %s" % (w, s, c, e))
        log("  %-14s %-9s c=%-5s FAILED: %s" % (w, s, c, e))
        return
    if row is None:
        log("  %-14s %-9s left out: %s" % (w, s, ctx.verified[s][1]))
        return
    ctx.rows.append(row)
    log("  %-14s %-9s c=%-5s r%d  %s  (%.1f s)" % (w, s, c, rnd, describe(row), time.monotonic() - t0))


# ---- aggregation ---------------------------------------------------------------

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def rate_of(row):
    w = row["workload"]
    return num(row["conn_per_s"] if w in PER_CONNECTION else row["req_per_s"])


def best(rows, workload, server, c=None):
    """The round with the highest throughput (noise from other users of the
    machine only ever lowers it), or None."""
    cand = [r for r in rows if r["workload"] == workload and r["server"] == server
            and (c is None or int(r["concurrency"]) == c)]
    if not cand:
        return None
    return max(cand, key=lambda r: rate_of(r) or 0)


def total_us_per_conn(r):
    """Server plus client CPU per connection of run R, in µs, or None."""
    sv, cl, n = num(r["server_cpu_s"]), num(r["client_cpu_s"]), num(r["connections"])
    return (sv + cl) * 1e6 / n if sv is not None and cl is not None and n else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def goals(ctx):
    """[(goal, measured text, verdict)] judged at the headline concurrency,
    with the ratio at every other concurrency for context."""
    rows, plan = ctx.rows, ctx.plan
    out = []

    def churn_ratio(other, need, what):
        parts, verdict, cpu = [], None, ""
        for c in plan.concurrency:
            a, b = best(rows, "churn", "pass", c), best(rows, "churn", other, c)
            r = ratio(rate_of(a) if a else None, rate_of(b) if b else None)
            if r is None:
                continue
            parts.append(("**%.2f×** at %d" if c == plan.headline else "%.2f× at %d") % (r, c))
            if c == plan.headline:
                verdict = "PASS" if r >= need else "FAIL"
                rc = ratio(num(b["cpu_s_per_1k_conn"]), num(a["cpu_s_per_1k_conn"]))
                if rc is not None:
                    cpu = "; server CPU per connection, %s/pass: %.2f× at %d" % (other, rc, c)
        if verdict is None:
            ok, why = ctx.verified.get(other, (False, "not part of this run"))
            if ok or not any(r["workload"] == "churn" for r in rows):
                why = "no churn runs of pass and %s at %d clients" % (other, plan.headline)
            out.append((what, "not measured (%s: %s)" % (other, why), "NOT MEASURED"))
        else:
            out.append((what, "pass/%s conn/s: %s clients%s" % (other, ", ".join(parts), cpu), verdict))

    churn_ratio("fork", 20.0, "pass churn ≥ 20× fork")
    churn_ratio("accept", 0.9, "pass churn ≥ 0.9× accept")
    churn_ratio("reuseport", 0.9, "pass churn ≥ 0.9× reuseport")
    hp, ha = best(rows, "hold", "pass"), best(rows, "hold", "accept")
    sp, sa = (num(hp["spread_max_min"]) if hp else None), (num(ha["spread_max_min"]) if ha else None)
    what = "pass spread max/min ≤ 1.10 at %d held, and better than accept" % plan.hold_conns
    if sp is None:
        out.append((what, "not measured", "NOT MEASURED"))
    else:
        text = "pass %.3f (%s)" % (sp, hp["worker_conns"])
        ok = sp <= 1.10
        if sa is not None:
            text += "; accept %.3f (%s)" % (sa, ha["worker_conns"])
            ok = ok and sp <= sa
        else:
            text += "; accept not measured (%s)" % ctx.verified.get("accept", (0, "not part of this run"))[1]
        out.append((what, text, "PASS" if ok else "FAIL"))
    return out


# ---- report ------------------------------------------------------------------------

def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s" % (cpu or platform.machine(), os.cpu_count() or 0, platform.release())


def git_rev():
    try:
        r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def mb(row, key="peak_rss_mb"):
    return "%.0f" % num(row[key]) if row and num(row[key]) is not None else "–"


def cell(x, f="{:,.0f}"):
    """X formatted (thousands separated by default), or a dash if missing."""
    if x is None:
        return "–"
    return f.format(x) if "{" in f else f % x


def servers_in(rows, workload):
    order = MODELS + ["nginx"]
    present = {r["server"] for r in rows if r["workload"] == workload}
    return [s for s in order if s in present]


def design_table(ctx):
    plan, rows = ctx.plan, ctx.rows
    c = plan.headline
    big = max(plan.concurrency)
    p, loops, nbytes = plan.unp
    unp_iter = best(rows, "unp", "iterative")
    base = num(unp_iter["server_cpu_s"]) if unp_iter else None
    lines = [
        "| server design | UNP ch.30 | UNP test: server CPU s | process control CPU s | "
        "churn conn/s (%d clients) | churn p99 ms | CPU s per 1,000 conn | peak RSS MB (churn, %d clients) | "
        "RSS (PSS) MB, %d held | spread max/min |" % (c, big, plan.hold_conns),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in MODELS:
        if not any(r["server"] == s for r in rows):
            continue
        u, ch, chb, h = (best(rows, "unp", s), best(rows, "churn", s, c), best(rows, "churn", s, big),
                         best(rows, "hold", s))
        ucpu = num(u["server_cpu_s"]) if u else None
        pc = ucpu - base if ucpu is not None and base is not None else None
        lines.append("| %s (`%s`) | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            DESIGN[s][0], s, DESIGN[s][1], cell(ucpu, "%.2f"),
            cell(pc, "%.2f") if s != "iterative" else ("0 (baseline)" if base is not None else "–"),
            cell(rate_of(ch) if ch else None), cell(num(ch["p99_ms"]) if ch else None, "%.2f"),
            cell(num(ch["cpu_s_per_1k_conn"]) if ch else None, "%.3f"), mb(chb),
            "%s (%s)" % (mb(h), mb(h, "pss_mb")) if h else "–",
            (h["spread_max_min"] or h["worker_conns"]) if h else "–"))
    lines.append("")
    lines.append("UNP test: %d client processes × %d connections each, %d bytes asked for per "
                 "connection (UNP used 5 × 500 × 4,000). Process control CPU = server CPU − the "
                 "iterative server's, as in UNP's figure 30.1: the cost of the design itself. "
                 "CPU s per 1,000 connections from the churn run (one 64-byte echo per connection). "
                 "Peak RSS during churn is sampled (at least 50 ms apart, more with many processes), "
                 "so it catches only some of fork's short-lived children; the held-connection "
                 "column is the steady memory figure. "
                 "RSS is summed over the master and every worker or child, so pages shared between "
                 "processes count once per process; PSS (from /proc/PID/smaps_rollup, once all held "
                 "connections are in) divides them among the processes sharing them." % (p, loops, nbytes))
    return lines


def sweep_table(ctx, workload):
    rows, plan = ctx.rows, ctx.plan
    servers = servers_in(rows, workload)
    if not servers:
        return []
    unit = "conn/s" if workload in ("churn", "http-close") else "req/s"
    per = "conn" if unit == "conn/s" else "req"
    head = "| server | " + " | ".join("%d clients: %s, p99 ms" % (c, unit) for c in plan.concurrency) + \
        " | CPU s per 1,000 %s (%d) | peak RSS MB (%d) | errors |" % (per, plan.headline, max(plan.concurrency))
    lines = [head, "|---|" + "--:|" * (len(plan.concurrency) + 3)]
    for s in servers:
        cells, errs = [], 0
        for c in plan.concurrency:
            r = best(rows, workload, s, c)
            if r is None:
                cells.append("–")
                continue
            errs += int(r["errors"] or 0)
            cells.append("%s, %s" % (cell(rate_of(r)), cell(num(r["p99_ms"]), "%.2f")))
        rh, rb = best(rows, workload, s, plan.headline), best(rows, workload, s, max(plan.concurrency))
        cpu = num(rh["cpu_s_per_1k_%s" % per]) if rh else None
        lines.append("| %s | %s | %s | %s | %d |" % (s, " | ".join(cells), cell(cpu, "%.3f"), mb(rb), errs))
    return lines


WORKLOAD_TITLE = {
    "churn": "Connection churn: connect, one 64-byte echo, close (handoff-bench -m churn)",
    "echo-keepalive": "Echo keep-alive: 64-byte requests back to back (handoff-bench -m keepalive)",
    "http-keepalive": "HTTP keep-alive (wrk -t1)",
    "http-close": "HTTP, one connection per request (wrk -t1 -H 'Connection: close')",
}


def paragraph(ctx):
    """What the figures show, in sentences built from the measured data."""
    rows, plan = ctx.rows, ctx.plan
    c, big, small = plan.headline, max(plan.concurrency), min(plan.concurrency)
    s = []
    busy = other_load(ctx)
    if busy > QUIET_CPUS:
        s.append("The machine was shared while this ran: the rest of it kept %.2f of its %d CPUs busy "
                 "on average, so rates moved from run to run by more than some of the differences "
                 "below; server CPU per connection is the steadier figure." % (busy, os.cpu_count() or 0))
    P = best(rows, "churn", "pass", c)
    if P:
        rp = rate_of(P)
        comp = []
        for other in ("fork", "accept", "reuseport", "iterative"):
            o = best(rows, "churn", other, c)
            if o:
                comp.append("%s %s (pass/%s %.2f×)" % (other, cell(rate_of(o)), other, rp / rate_of(o)))
        s.append("With %d clients each connecting, sending one 64-byte echo and closing, pass served "
                 "%s connections/s%s." % (c, cell(rp), (", against " + ", ".join(comp)) if comp else ""))
        F = best(rows, "churn", "fork", c)
        cp = num(P["cpu_s_per_1k_conn"])
        if F and cp and num(F["cpu_s_per_1k_conn"]):
            cf = num(F["cpu_s_per_1k_conn"])
            s.append("The server spent %.3f CPU s per 1,000 connections under pass and %.3f under fork: "
                     "a fork, exit and reap cost about %.0f µs of CPU per connection here, which is "
                     "what UNP's table charges to process control." % (cp, cf, (cf - cp) * 1000))
            tf, tp = total_us_per_conn(F), total_us_per_conn(P)
            if tf and tp:
                s.append("Client and server share these %d cores, so while they are saturated a "
                         "rate ratio cannot exceed the ratio of the total (server and client) CPU "
                         "per connection: %.0f µs for fork, %.0f µs for pass, a ceiling of %.1f× "
                         "for pass/fork here." % (os.cpu_count() or 0, tf, tp, tf / tp))
        for other in ("accept", "reuseport"):
            o = best(rows, "churn", other, c)
            if o and cp and num(o["cpu_s_per_1k_conn"]):
                co = num(o["cpu_s_per_1k_conn"])
                if abs(cp - co) < 0.0005:
                    s.append("Against %s, pass used the same CPU per connection (%.3f vs %.3f s per "
                             "1,000)." % (other, cp, co))
                    continue
                s.append("Against %s, pass used %.1f µs %s CPU per connection (%.3f vs %.3f s per 1,000)%s." % (
                    other, abs(cp - co) * 1000, "more" if cp > co else "less", cp, co,
                    ": the master's wake-ups and the SCM_RIGHTS hand-off are extra work %s avoids" % other
                    if cp > co else ""))
        I = best(rows, "churn", "iterative", c)
        top = max([rate_of(r) for r in (best(rows, "churn", m, c) for m in ("pass", "accept", "reuseport"))
                   if r] or [0])
        if I and top and rate_of(I) >= 0.85 * top:
            s.append("The iterative server, which serves one connection at a time in one process, "
                     "reached %.0f%% of the best pre-forked design's rate: at this concurrency the "
                     "rate is set by the client and the kernel's TCP set-up on these %d cores more "
                     "than by the server design, and the CPU per connection is the better measure "
                     "of each design's cost." % (100 * rate_of(I) / top, os.cpu_count() or 0))
        lo, hi = best(rows, "churn", "pass", small), best(rows, "churn", "pass", big)
        if lo and hi and lo is not hi:
            s.append("From %d to %d clients pass's churn rate went from %s to %s/s and its p99 from "
                     "%.2f to %.2f ms." % (small, big, cell(rate_of(lo)), cell(rate_of(hi)),
                                           num(lo["p99_ms"]), num(hi["p99_ms"])))
    hs = {m: best(rows, "hold", m) for m in MODELS}
    hs = {m: r for m, r in hs.items() if r}
    if hs:
        mem = ", ".join("%s %s MB (PSS %s)" % (m, mb(r), mb(r, "pss_mb")) for m, r in hs.items())
        s.append("Holding %d idle connections, the server's summed RSS was: %s." % (plan.hold_conns, mem))
        spreads = ["%s %s (max/min %s)" % (m, r["worker_conns"], r["spread_max_min"])
                   for m, r in hs.items() if r["spread_max_min"]]
        if spreads:
            s.append("Connections per worker at that point: %s." % "; ".join(spreads))
    for w, label in (("http-keepalive", "HTTP keep-alive"), ("http-close", "HTTP connection-per-request")):
        P, N = best(rows, w, "pass", c), best(rows, w, "nginx", c)
        if P and N:
            s.append("%s with %d connections: pass %s/s, nginx %s/s (%.2f×); p99 %.2f vs %.2f ms." % (
                label, c, cell(rate_of(P)), cell(rate_of(N)), rate_of(P) / rate_of(N),
                num(P["p99_ms"]), num(N["p99_ms"])))
    U = {m: best(rows, "unp", m) for m in MODELS}
    U = {m: r for m, r in U.items() if r}
    if "iterative" in U and len(U) > 1:
        base = num(U["iterative"]["server_cpu_s"])
        s.append("In UNP's own test the designs' process-control CPU over the iterative server was: %s s." %
                 ", ".join("%s %.2f" % (m, num(r["server_cpu_s"]) - base) for m, r in U.items()
                           if m != "iterative"))
    return " ".join(s) if s else "No comparable runs completed."


def write_report(ctx, started, finished, load_before, load_after, plots):
    plan = ctx.plan
    L = ["# handoff server designs, %s" % started.strftime("%Y-%m-%d"), ""]
    L.append("Generated by `bench/compare.py` (`make bench%s`) on %s; handoffd %s; %s plan, "
             "%d workers per pre-forked design, %s s per throughput run, best of %d round%s; "
             "load average %s before, %s after; %.1f minutes." % (
                 " QUICK=1" if plan.name == "quick" else "", machine(), git_rev(), plan.name,
                 plan.workers, fmt(plan.duration), plan.rounds, "s" if plan.rounds > 1 else "",
                 load_before, load_after, (finished - started).total_seconds() / 60))
    L.append("")
    L.append("Client and servers share this machine's cores over loopback, so every rate is for the "
             "whole system; the server CPU columns isolate the server's share. Raw rows: "
             "[results.csv](results.csv).")
    L.append("")
    L.append("## Designs (in the manner of UNP figure 30.1)")
    L.append("")
    L += design_table(ctx)
    L.append("")
    L.append("## Goals (ratios measured in this run, judged at %d clients)" % plan.headline)
    L.append("")
    L.append("| goal | measured | verdict |")
    L.append("|---|---|---|")
    for g, m, v in goals(ctx):
        L.append("| %s | %s | **%s** |" % (g, m, v))
    L.append("")
    L.append("## What the figures show")
    L.append("")
    L.append(paragraph(ctx))
    L.append("")
    for w in ("churn", "echo-keepalive", "http-keepalive", "http-close"):
        t = sweep_table(ctx, w)
        if not t:
            continue
        L.append("## %s" % WORKLOAD_TITLE[w])
        L.append("")
        L += t
        L.append("")
        for png in plots.get(w, []):
            L.append("![%s](%s)" % (png, png))
        L.append("")
    notes = []
    for m in plan.models:
        ok, why = ctx.verified.get(m, (False, "not tried"))
        if not ok:
            notes.append("- model `%s` left out: %s." % (m, why))
    for w, why in ctx.skipped:
        notes.append("- %s not run: %s." % (w, why))
    if ctx.tools.nginx is None and any(w.startswith("http-") for w in plan.workloads):
        notes.append("- nginx reference row missing: nginx is not installed (.ci/deps.sh bench).")
    for f in ctx.failures:
        notes.append("- failed: %s" % f)
    for r in ctx.rows:
        if r["note"]:
            notes.append("- %s %s %s clients: %s" % (r["workload"], r["server"], r["concurrency"], r["note"]))
        e, n = num(r["errors"]) or 0, (num(r["requests"]) or num(r["connections"]) or 0)
        if e > 0 and e > 0.001 * max(n, 1):
            notes.append("- %s %s %s clients: %d errors" % (r["workload"], r["server"], r["concurrency"], e))
    if notes:
        L.append("## Notes")
        L.append("")
        L += notes
        L.append("")
    L.append("## Method")
    L.append("")
    L.append("Servers: `handoffd %s` (M the model, P echo, http or unp as the load needs); "
             "nginx as in `NGINX_CONF` in compare.py. Clients: one handoff-bench process (unp: "
             "%d) or `wrk -t1`." % (" ".join(Handoffd(ctx.tools, "M", "P", plan.workers, ctx.workdir).argv[1:]),
                                     plan.unp[0]))
    L.append("")
    L.append("Churn and unp clients bind to %d source addresses (127.0.0.1–127.0.0.%d, `-S %d`): "
             "from one address the client's ports, reused no sooner than a second after TIME_WAIT "
             "(tcp_tw_reuse), cap churn near 14,000 connections/s until the TIME_WAIT table "
             "overflows, so rates would depend on what earlier runs left behind. wrk cannot; with "
             "`Connection: close` the server closes first and holds the TIME_WAIT instead."
             % (SOURCES, SOURCES, SOURCES))
    L.append("")
    L.append("Each run starts a fresh server on 127.0.0.1 port 0 and stops it afterwards. Server CPU "
             "is utime+stime of every process in the server's tree plus cutime+cstime (children "
             "already reaped, e.g. fork's), from /proc/PID/stat just before and after the run, once "
             "the server is idle again. Peak RSS is the largest sum of RSS over the tree, sampled "
             "every 50 ms or more during the run. The spread counts, in each worker, socket fds above "
             "its idle count once all %d connections of `handoff-bench -m hold` are in. Latency is "
             "per request (p99 from handoff-bench's histogram or wrk's). Throughput rows are the best "
             "of the rounds, interleaved across servers so that load from elsewhere hits all alike. "
             "other_cpu_s in the CSV is the CPU the rest of the machine used during a run "
             "(/proc/stat busy time minus server and client: other users, kernel threads such as "
             "ksoftirqd, this script): over the throughput runs it averaged %.2f of the %d CPUs "
             "(this script's own share: %.1f CPU s in all)."
             % (plan.hold_conns, other_load(ctx), os.cpu_count() or 0, harness_cpu()))
    if plan.quiet_budget > 0:
        L.append("")
        L.append("Before each run the script waited while the rest of the machine kept more "
                 "than %.2f CPUs busy (at most %.0f s per run, %.0f s in all): it waited %.0f s, "
                 "and %d run%s started with the machine still busy (after the budget was spent, "
                 "runs started without looking). Afterwards %d sweep point%s whose best round had "
                 "run beside more than %.1f busy CPUs of other work %s run once more (round %d in "
                 "the CSV; %.0f s budget)." % (
                     QUIET_CPUS, QUIET_WAIT_RUN, plan.quiet_budget, ctx.quiet_waited,
                     ctx.busy_starts, "" if ctx.busy_starts == 1 else "s", ctx.reruns,
                     "" if ctx.reruns == 1 else "s", RERUN_CPUS,
                     "was" if ctx.reruns == 1 else "were", plan.rounds + 1, plan.rerun_budget))
    with open(os.path.join(ctx.out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def other_load(ctx):
    """Average CPUs used by the rest of the machine over the throughput runs."""
    o = t = 0.0
    for r in ctx.rows:
        if r["workload"] not in ("unp", "hold") and num(r["other_cpu_s"]) is not None:
            o += num(r["other_cpu_s"])
            t += num(r["elapsed_s"]) or 0
    return o / t if t > 0 else 0.0


def harness_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_csv(ctx):
    with open(os.path.join(ctx.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in ctx.rows:
            w.writerow(r)


def write_plots(ctx):
    """Per sweep workload: a .dat table (concurrency × server) for rate and
    p99, and a PNG of each made by bench/plot.gp."""
    plots = {}
    if not ctx.tools.gnuplot:
        ctx.skipped.append(("plots", "gnuplot is not installed (.ci/deps.sh bench)"))
        return plots
    for w in ("churn", "echo-keepalive", "http-keepalive", "http-close"):
        servers = servers_in(ctx.rows, w)
        if not servers or len(ctx.plan.concurrency) < 2:
            continue
        unit = "connections/s" if w in ("churn", "http-close") else "requests/s"
        for kind, ylabel, key in (("throughput", unit, None), ("p99", "p99 latency (ms)", "p99_ms")):
            dat = os.path.join(ctx.out, "%s-%s.dat" % (w, kind))
            with open(dat, "w") as f:
                f.write("clients " + " ".join(servers) + "\n")
                for c in ctx.plan.concurrency:
                    vals = []
                    for s in servers:
                        r = best(ctx.rows, w, s, c)
                        v = (rate_of(r) if key is None else num(r[key])) if r else None
                        vals.append("?" if v is None else "%.3f" % v)
                    f.write("%d %s\n" % (c, " ".join(vals)))
            png = "%s-%s.png" % (w, kind)
            title = "%s: %s" % (w, "throughput" if kind == "throughput" else "p99 latency")
            r = subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'; ncols=%d; plottitle='%s'; "
                                "ylabel='%s'; logy=%d" % (dat, os.path.join(ctx.out, png), len(servers) + 1,
                                                           title, ylabel, 1 if kind == "p99" else 0),
                                os.path.join(HERE, "plot.gp")], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                ctx.failures.append("gnuplot %s: %s" % (png, r.stderr.strip()[-300:]))
                continue
            plots.setdefault(w, []).append(png)
    return plots


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description="Compare handoffd's server designs (UNP ch.30).")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs, under 2 minutes")
    mode.add_argument("--smoke", action="store_true", help="model pass only, tiny runs (make test)")
    ap.add_argument("--out", help="results directory (default bench/results/DATE[-quick])")
    ap.add_argument("--handoffd", default=os.environ.get("HANDOFFD", os.path.join(ROOT, "build", "handoffd")))
    ap.add_argument("--bench", default=os.environ.get("HANDOFF_BENCH"),
                    help="handoff-bench (default: beside handoffd)")
    ap.add_argument("--models", help="comma-separated subset of %s" % ",".join(MODELS))
    ap.add_argument("--workloads", help="comma-separated subset of %s" % ",".join(ALL_WORKLOADS))
    ap.add_argument("--concurrency", help="comma-separated client counts for the sweeps")
    ap.add_argument("--duration", type=float, help="seconds per throughput run")
    ap.add_argument("--rounds", type=int, help="interleaved repetitions (the best is reported)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--server-flags", default="",
                    help="extra handoffd flags for every run, e.g. '--pass-delay-us 0'")
    args = ap.parse_args()

    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]()
    if args.models:
        plan.models = [m for m in args.models.split(",") if m]
        bad = [m for m in plan.models if m not in MODELS]
        if bad:
            ap.error("unknown model(s): %s" % ", ".join(bad))
    if args.workloads:
        plan.workloads = [w for w in args.workloads.split(",") if w]
        bad = [w for w in plan.workloads if w not in ALL_WORKLOADS]
        if bad:
            ap.error("unknown workload(s): %s" % ", ".join(bad))
    try:
        if args.concurrency:
            plan.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        ap.error("--concurrency: comma-separated integers")
    if any(not 1 <= c <= 5000 for c in plan.concurrency):
        ap.error("--concurrency: 1 to 5000 clients")
    if plan.headline not in plan.concurrency:
        plan.headline = plan.concurrency[len(plan.concurrency) // 2]
    if args.duration is not None:
        if not 0.2 <= args.duration <= 300:
            ap.error("--duration: 0.2 to 300 seconds")
        plan.duration = args.duration
    if args.rounds is not None:
        if not 1 <= args.rounds <= 20:
            ap.error("--rounds: 1 to 20")
        plan.rounds = args.rounds
    started = datetime.datetime.now()
    out = args.out or os.path.join(HERE, "results", started.strftime("%Y-%m-%d") +
                                   ("-quick" if plan.name == "quick" else ""))
    os.makedirs(out, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    workdir = tempfile.mkdtemp(prefix="handoff-compare.")
    status = 0
    try:
        tools = Tools(args, workdir)
        tools.server_flags += shlex.split(args.server_flags)
        ctx = Context(plan, tools, workdir, out)
        load_before = loadavg()
        log("bench/compare.py: %s plan, results in %s (load average %s)" % (plan.name, out, load_before))
        run_plan(ctx)
        finished = datetime.datetime.now()
        write_csv(ctx)
        plots = {} if args.no_plots or args.smoke else write_plots(ctx)
        write_report(ctx, started, finished, load_before, loadavg(), plots)
        log("")
        for g, m, v in goals(ctx):
            log("%-13s %s: %s" % (v, g, m))
        log("wrote %s/results.csv and report.md (%.0f s)" % (out, (finished - started).total_seconds()))
        if ctx.failures:
            log("%d run(s) failed; see report.md" % len(ctx.failures))
            status = 1
    except RunError as e:
        print("compare.py: %s" % e, file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("compare.py: interrupted; servers and clients stopped", file=sys.stderr)
        status = 130
    finally:
        REAPER.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
