#!/usr/bin/python3
"""check_deploy: static checks of the deployment files that no Debian linter
covers (hadolint and kubeconform are not packaged): the Dockerfile's required
directives, compose.yaml's topology, haproxy.cfg's balancing and checks, and
the Kubernetes manifests' required fields. Run by tests/test_deploy.c.

usage: check_deploy.py [--root REPO] [--binary build/handoffd]
Exits 0 when every check passes, 1 (listing each failure) otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

import yaml  # Debian: python3-yaml

DOCKER_STOP_GRACE = 10  # seconds `docker stop` waits before SIGKILL
MASTER_GRACE = 1        # the master kills workers drain-timeout + 1 s in

failures = []
passed = 0


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
    return ok


def opt_value(args, name):
    """Value of --NAME in an argument list, or None."""
    args = [str(a) for a in args or []]
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", str(text).strip())
    if not m:
        return None
    v = float(m.group(1))
    return {"ms": v / 1000, "m": v * 60}.get(m.group(2), v)


def dockerfile_stages(text):
    """[(from_line, [instructions])] with line continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0].upper()
        if word == "FROM":
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def needed_packages(binary):
    """Debian packages of the shared libraries BINARY links directly."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    names = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    pkgs = {}
    for n in names:
        if n not in paths:
            pkgs[n] = None
            continue
        real = os.path.realpath(paths[n])
        r = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        if r.returncode != 0:  # merged /usr: dpkg knows the /lib path
            r = subprocess.run(["dpkg", "-S", real.replace("/usr/lib/", "/lib/", 1)],
                               capture_output=True, text=True)
        pkgs[n] = r.stdout.split(":", 1)[0] if r.returncode == 0 else None
    return pkgs


def check_dockerfile(root, binary):
    path = os.path.join(root, "docker", "Dockerfile")
    stages = dockerfile_stages(open(path).read())
    check(len(stages) >= 2, "Dockerfile: not multi-stage")
    if not stages:
        return
    check(re.match(r"FROM\s+debian:bookworm\s+AS\s+\w+", stages[0][0], re.I) is not None,
          "Dockerfile: build stage is not FROM debian:bookworm AS <name>")
    check(any("make install" in i for i in stages[0][1]),
          "Dockerfile: build stage does not run make install")
    final, body = stages[-1]
    check(re.match(r"FROM\s+debian:bookworm-slim\b", final, re.I) is not None,
          "Dockerfile: runtime stage is not debian:bookworm-slim")
    installs = " ".join(i for i in body if "apt-get install" in i)
    check(re.search(r"\S+-dev\b", installs) is None,
          "Dockerfile: runtime stage installs -dev packages")
    for pkg in ("libevent-core-2.1-7", "libevent-extra-2.1-7", "libhttp-parser2.9",
                "libsystemd0"):
        check(pkg in installs.split(), "Dockerfile: runtime stage lacks " + pkg)
    if binary:
        for lib, pkg in needed_packages(binary).items():
            if pkg in ("libc6",) or (pkg or "").startswith(("libasan", "libubsan")):
                continue
            check(pkg is not None and pkg in installs.split(),
                  "Dockerfile: handoffd needs %s (package %s), not installed at run time"
                  % (lib, pkg))
    users = [i.split(None, 1)[1] for i in body if i.upper().startswith("USER ")]
    uid = users[-1].split(":")[0] if users else ""
    check(uid.isdigit() and int(uid) != 0,
          "Dockerfile: runtime stage must end as a numeric non-root USER")
    check(any(i.upper().startswith("EXPOSE ") and "8080" in i for i in body),
          "Dockerfile: no EXPOSE 8080")
    check(any(i.upper().startswith("HEALTHCHECK ") and "/healthz" in i for i in body),
          "Dockerfile: no HEALTHCHECK on /healthz")
    check(any(re.fullmatch(r"STOPSIGNAL\s+SIGTERM", i, re.I) for i in body),
          "Dockerfile: STOPSIGNAL is not SIGTERM")
    cmd = [i for i in body if i.upper().startswith("CMD ")]
    drain = None
    if cmd:
        try:
            drain = seconds(opt_value(yaml.safe_load(cmd[-1][4:]), "--drain-timeout"))
        except yaml.YAMLError:
            drain = None
    check(drain is not None and drain + MASTER_GRACE < DOCKER_STOP_GRACE,
          "Dockerfile: CMD --drain-timeout (+%ds) must be under docker stop's %ds"
          % (MASTER_GRACE, DOCKER_STOP_GRACE))


def check_compose(root):
    doc = yaml.safe_load(open(os.path.join(root, "docker", "compose.yaml")))
    services = doc.get("services", {}) if isinstance(doc, dict) else {}
    handoff = {n: s for n, s in services.items()
               if isinstance(s, dict) and "--proxy-protocol" in (s.get("command") or [])}
    check(len(handoff) == 3, "compose: want 3 handoffd services with --proxy-protocol, got %d"
          % len(handoff))
    for name, s in handoff.items():
        drain = seconds(opt_value(s.get("command"), "--drain-timeout") or "")
        grace = seconds(s.get("stop_grace_period", DOCKER_STOP_GRACE))
        check(drain is not None and grace is not None and drain + MASTER_GRACE < grace,
              "compose: %s drain timeout must be under stop_grace_period" % name)
        check(opt_value(s.get("command"), "--admin") not in (None, "") and
              not opt_value(s.get("command"), "--admin").startswith("127."),
              "compose: %s admin must listen beyond loopback for HAProxy's checks" % name)
    hap = services.get("haproxy")
    if not check(isinstance(hap, dict), "compose: no haproxy service"):
        return
    check(any("haproxy.cfg" in str(v) for v in hap.get("volumes", [])),
          "compose: haproxy does not mount haproxy.cfg")
    env = hap.get("environment") or {}
    for k in ("HANDOFF_B1", "HANDOFF_B2", "HANDOFF_B3"):
        host = str(env.get(k, "")).rsplit(":", 1)[0]
        check(host in handoff, "compose: haproxy %s=%r is not a handoffd service" % (k, host))
    check(str(env.get("HANDOFF_CHECK", "http")) == "http",
          "compose: HAProxy must check /healthz (HANDOFF_CHECK=http)")


def check_haproxy(root):
    text = open(os.path.join(root, "docker", "haproxy.cfg")).read()
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    check("balance leastconn" in lines, "haproxy.cfg: no balance leastconn")
    check(any("send-proxy" in ln for ln in lines), "haproxy.cfg: no send-proxy to backends")
    check(any("/healthz" in ln for ln in lines), "haproxy.cfg: no /healthz check")
    check(len([ln for ln in lines if ln.startswith("server ")]) == 3,
          "haproxy.cfg: want 3 server lines")


def check_k8s(root):
    kdir = os.path.join(root, "docker", "k8s")
    docs = []
    for f in sorted(os.listdir(kdir)):
        if f.endswith((".yaml", ".yml")):
            docs += [d for d in yaml.safe_load_all(open(os.path.join(kdir, f))) if d]
    kinds = {d.get("kind"): d for d in docs}
    for k in ("Deployment", "Service", "PodDisruptionBudget"):
        check(k in kinds, "k8s: no " + k)
    dep = kinds.get("Deployment")
    if not dep:
        return
    check(dep.get("apiVersion") == "apps/v1", "k8s: Deployment apiVersion is not apps/v1")
    spec = dep.get("spec", {})
    replicas = spec.get("replicas")
    check(replicas == 3, "k8s: Deployment replicas is not 3")
    tmpl = spec.get("template", {})
    labels = tmpl.get("metadata", {}).get("labels", {})
    sel = spec.get("selector", {}).get("matchLabels", {})
    check(sel and all(labels.get(k) == v for k, v in sel.items()),
          "k8s: Deployment selector does not match its pod labels")
    pod = tmpl.get("spec", {})
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
          "k8s: pod securityContext must run as a non-root user")
    ctrs = pod.get("containers") or [{}]
    c = ctrs[0]
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        get = (c.get(probe) or {}).get("httpGet") or {}
        port = ports.get(get.get("port"), get.get("port"))
        check(get.get("path") == "/healthz" and port == 9090,
              "k8s: %s is not httpGet /healthz on the admin port 9090" % probe)
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        check(all(k in res.get(part, {}) for k in ("cpu", "memory")),
              "k8s: resources.%s needs cpu and memory" % part)
    csc = c.get("securityContext", {})
    check(csc.get("allowPrivilegeEscalation") is False,
          "k8s: container must set allowPrivilegeEscalation: false")
    args = c.get("args") or []
    drain = seconds(opt_value(args, "--drain-timeout") or "10")
    pre = 0
    cmd = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0] == "sleep":
        pre = seconds(cmd[1]) or 0
    tgp = pod.get("terminationGracePeriodSeconds", 30)
    check(drain is not None and pre + drain + MASTER_GRACE < tgp,
          "k8s: terminationGracePeriodSeconds %s must exceed preStop %ss + drain %ss + %ss"
          % (tgp, pre, drain, MASTER_GRACE))
    admin = opt_value(args, "--admin")
    check(admin is not None and not admin.startswith("127."),
          "k8s: --admin must listen on the pod IP for the kubelet's probes")
    svc = kinds.get("Service")
    if svc:
        ssel = svc.get("spec", {}).get("selector", {})
        check(ssel and all(labels.get(k) == v for k, v in ssel.items()),
              "k8s: Service selector does not match the pods")
        for p in svc.get("spec", {}).get("ports", []):
            t = p.get("targetPort")
            check(t in ports or t in ports.values(),
                  "k8s: Service targetPort %r is not a container port" % t)
    pdb = kinds.get("PodDisruptionBudget")
    if pdb:
        check(pdb.get("apiVersion") == "policy/v1", "k8s: PDB apiVersion is not policy/v1")
        psel = pdb.get("spec", {}).get("selector", {}).get("matchLabels", {})
        check(psel and all(labels.get(k) == v for k, v in psel.items()),
              "k8s: PDB selector does not match the pods")
        m = pdb.get("spec", {}).get("minAvailable")
        check(isinstance(m, int) and isinstance(replicas, int) and 0 < m < replicas,
              "k8s: PDB minAvailable must be between 1 and replicas - 1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--binary", default=None)
    a = ap.parse_args()
    for fn in (lambda: check_dockerfile(a.root, a.binary), lambda: check_compose(a.root),
               lambda: check_haproxy(a.root), lambda: check_k8s(a.root)):
        try:
            fn()
        except (OSError, yaml.YAMLError, subprocess.CalledProcessError,
                AttributeError, TypeError) as e:
            failures.append("cannot check: %s" % e)
    for f in failures:
        print("check_deploy: FAIL " + f)
    print("check_deploy: %d checks held, %d did not" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
