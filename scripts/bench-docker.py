#!/usr/bin/env python3
"""Start-event-to-routable latency of container discovery, for boma and Traefik side by side.

For each proxy: N times, start a labelled container (the project's FROM-scratch whoami image)
and poll the proxy with the container's Host header over a keep-alive connection until it
answers 200. Latency = time of the first 200 minus the engine's `start` event time (both on this
machine's clock). Prints a Markdown section with p50/p95/max; every container and the image are
removed at the end. 
Then the engine restart: a private engine (its own socket and data, `--live-restore`, so its
containers outlive it) serves one routed container in host network mode; while a client loads
that route, the engine is stopped for 3 s and started again, and a second container is started
as soon as it answers. Counted: requests that failed during the whole window (routes must be
kept throughout), and the time from the engine answering again to the new container being
routable (the resync). Usage: scripts/bench-docker.py BOMA_BINARY [N] > section.md
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = f"bench-{os.getpid()}"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_image():
    target = os.path.join(ROOT, "target", "testsrv")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    sh("cargo", "build", "--release", "-p", "boma-testsrv", "--target",
       "x86_64-unknown-linux-musl", cwd=ROOT, env=env)
    ctx = tempfile.mkdtemp()
    shutil.copy(os.path.join(target, "x86_64-unknown-linux-musl", "release", "whoami"), ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write('FROM scratch\nCOPY whoami /whoami\nENTRYPOINT ["/whoami"]\n')
    image = f"{TAG}:whoami"
    sh("docker", "build", "-q", "-t", image, ctx, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    shutil.rmtree(ctx)
    return image


class Events:
    """Start-event times (ns) by container id, from `docker events`."""

    def __init__(self):
        self.times = {}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", "type=container",
             "--filter", "event=start", "--filter", f"label=boma.bench={TAG}"],
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.cond:
                self.times[ev["id"]] = int(ev["timeNano"])
                self.cond.notify_all()

    def wait(self, cid, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: cid in self.times, timeout)
            return self.times.get(cid)


def poll_until_200(port, host, limit_s=10):
    deadline = time.time() + limit_s
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    while time.time() < deadline:
        try:
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.time_ns()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    return None


def measure(name, port, image, events, n):
    lat = []
    for i in range(n):
        host = f"{name}-{i}.bench"
        result = {}
        t = threading.Thread(target=lambda: result.update(t=poll_until_200(port, host)))
        t.start()
        cid = sh("docker", "run", "-d", "--label", f"boma.bench={TAG}", "--label",
                 f"traefik.http.routers.{name}{i}.rule=Host(`{host}`)", "--expose", "80", image)
        t.join()
        started = events.wait(cid)
        sh("docker", "rm", "-f", cid)
        if result.get("t") is None or started is None:
            print(f"{name}: container {i} never became routable", file=sys.stderr)
            continue
        lat.append((result["t"] - started) / 1e6)
    return sorted(lat)


class Engine:
    """A private Docker engine (own socket, data and exec roots, own bridge; no iptables), with
    `--live-restore` so that stopping it leaves its containers running. Not `--bridge none`: an
    engine started that way deletes the host's docker0, breaking the shared engine."""

    def __init__(self, work):
        self.work = work
        self.sock = os.path.join(work, "docker.sock")
        self.bridge = f"bomab{os.getpid() % 100000}"
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", "198.18.251.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self.args = ["dockerd", "--host", f"unix://{self.sock}", "--data-root",
                     os.path.join(work, "data"), "--exec-root", os.path.join(work, "exec"),
                     "--pidfile", os.path.join(work, "dockerd.pid"), "--bridge", self.bridge,
                     "--iptables=false", "--ip6tables=false", "--storage-driver", "vfs",
                     "--live-restore"]
        self.proc = None

    def docker(self, *args, **kw):
        return sh("docker", "-H", f"unix://{self.sock}", *args, **kw)

    def start(self):
        log = open(os.path.join(self.work, "dockerd.log"), "a")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.docker("version", "-f", "{{.Server.Version}}")
                return time.time_ns()
            except subprocess.CalledProcessError:
                time.sleep(0.02)
        raise RuntimeError("the private engine did not start; see dockerd.log in " + self.work)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Load:
    """Keep-alive GETs to one route from a few clients until stopped; counts the outcomes."""

    CLIENTS = 4

    def __init__(self, port, host):
        self.port, self.host = port, host
        self.ok = self.failed = 0
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(self.CLIENTS)]
        for t in self.threads:
            t.start()

    def connect(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def run(self):
        conn = None
        deadline = time.time() + 120  # bounded, whatever happens
        while self.running and time.time() < deadline:
            try:
                conn = conn or self.connect()
                conn.request("GET", "/", headers={"Host": self.host})
                resp = conn.getresponse()
                resp.read()
                good = resp.status == 200
            except (OSError, http.client.HTTPException):
                good = False
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join()


def restart_scenario(name, start_proxy, image):
    """Routes kept while the engine restarts, and how soon a new container is routable."""
    work = tempfile.mkdtemp(prefix="boma-engine-")
    engine = Engine(work)
    engine.start()
    proc = load = None
    try:
        subprocess.run(f"docker save {image} | docker -H unix://{engine.sock} load -q",
                       shell=True, check=True, capture_output=True)
        def run(router, port):
            return engine.docker(
                "run", "-d", "--network", "host", "-e", f"PORTS={port}", "--label",
                f"traefik.http.routers.{router}.rule=Host(`{router}.restart`)", "--label",
                f"traefik.http.services.{router}.loadbalancer.server.port={port}", image)
        run("first", free_port())
        port = free_port()
        proc = start_proxy(port, f"unix://{engine.sock}")
        if poll_until_200(port, "first.restart", 15) is None:
            raise RuntimeError(f"{name}: the first container never became routable")
        load = Load(port, "first.restart")
        time.sleep(1)
        engine.stop()
        time.sleep(3)
        up = engine.start()
        run("second", free_port())
        routable = poll_until_200(port, "second.restart", 15)
        time.sleep(1)
        load.stop()
        resync = None if routable is None else (routable - up) / 1e6
        return (name, load.ok, load.failed, resync)
    finally:
        if load:
            load.stop()
        if proc:
            proc.terminate()
            proc.wait()
        try:
            ids = engine.docker("ps", "-aq").split()
            if ids:
                engine.docker("rm", "-f", *ids)
        except subprocess.CalledProcessError:
            pass
        engine.stop()
        # dockerd leaves its own mounts (the data root, the default netns): deepest first.
        with open("/proc/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(work)]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        subprocess.run(["ip", "link", "del", engine.bridge], check=False)
        shutil.rmtree(work, ignore_errors=True)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_boma(binary, port, workdir, endpoint=None):
    cfg = os.path.join(workdir, "boma.toml")
    with open(cfg, "w") as f:
        f.write(f'[entryPoints.web]\naddress = "127.0.0.1:{port}"\n[providers.docker]\n')
        if endpoint:
            f.write(f'endpoint = "{endpoint}"\n')
        else:
            f.write(f'constraints = "Label(`boma.bench`, `{TAG}`)"\n')
    return subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run_traefik(port, endpoint=None):
    args = ["traefik", f"--entrypoints.web.address=127.0.0.1:{port}", "--providers.docker=true",
            "--log.level=ERROR"]
    if endpoint:
        args.append(f"--providers.docker.endpoint={endpoint}")
    else:
        args.append(f"--providers.docker.constraints=Label(`boma.bench`, `{TAG}`)")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    image = build_image()
    events = Events()
    rows = []
    work = tempfile.mkdtemp()
    try:
        for name, start in [("boma", lambda p: run_boma(binary, p, work)), ("traefik", run_traefik)]:
            port = free_port()
            proc = start(port)
            time.sleep(2)
            try:
                lat = measure(name, port, image, events, n)
            finally:
                proc.terminate()
                proc.wait()
            if lat:
                rows.append((name, len(lat), pct(lat, 50), pct(lat, 95), lat[-1]))
        restarts = [
            restart_scenario("boma", lambda p, e: run_boma(binary, p, work, e), image),
            restart_scenario("traefik", run_traefik, image),
        ]
    finally:
        events.proc.terminate()
        leftovers = sh("docker", "ps", "-aq", "--filter", f"label=boma.bench={TAG}").split()
        if leftovers:
            sh("docker", "rm", "-f", *leftovers)
        sh("docker", "rmi", "-f", image)
        shutil.rmtree(work)
    version = sh("docker", "version", "-f", "{{.Server.Version}}")
    print("## Container discovery: start event to routable\n")
    print(f"Docker engine {version}, the project's FROM-scratch whoami image; for each proxy, {n} "
          "containers started one after another, each polled through the proxy with its Host "
          "header until the first 200. Latency = first 200 minus the engine's `start` event "
          "time. Command: `scripts/bench-docker.py target/release/boma 50` (part of `make bench`).\n")
    print("| proxy | starts | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, count, p50, p95, mx in rows:
        print(f"| {name} | {count} | {p50:.1f} | {p95:.1f} | {mx:.1f} |")
    print("\nTraefik's figure is dominated by its 2 s providers throttle; boma inspects only the "
          "started container and applies the change at once (budget, DESIGN.md §6: 100 ms).")
    print("\n### Engine restart under load\n")
    print("A private engine (`--live-restore`, own socket) with one routed container in host "
          "network mode; four clients send keep-alive requests to that route without pause while "
          "the engine is stopped (SIGTERM), kept down 3 s and started again; a second container "
          "is started as soon as the engine answers. Failed = any answer but 200, or no answer, "
          "over the whole window. Resync = engine answering again to the second container's "
          "first 200 (includes starting it). Budget (issue 10): no failed request, resync within "
          "2 s.\n")
    print("| proxy | requests answered 200 | failed | resync ms |")
    print("|---|---:|---:|---:|")
    for name, ok, failed, resync in restarts:
        shown = "never" if resync is None else f"{resync:.0f}"
        print(f"| {name} | {ok} | {failed} | {shown} |")


if __name__ == "__main__":
    main()
