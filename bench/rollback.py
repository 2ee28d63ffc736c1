#!/usr/bin/env python3
"""Measure ferry's rollbacks on the test remote (issue 5's figures), median of N runs.

  sudo tests/remote/ferry-remote start && bench/rollback.py

1. Automatic rollback: time from ferry declaring the health check failed (its `rollback` phase
   event) to the old release answering HTTP again.
2. Self-arming revert: ferry is killed (SIGKILL) while the health check runs; time from the kill,
   and from the arming of the timer, to the old release answering again, against confirm_timeout.
Uses remote user $BENCH_USER (default ferry12) and port 18121.
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REMOTE = os.path.join(ROOT, "tests", "remote", "ferry-remote")
USER = os.environ.get("BENCH_USER", "ferry12")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PORT = 18121
CONFIRM = 8


SERVER = """
import http.server, os, sys
here = os.path.dirname(os.path.realpath(__file__))
page = open(os.path.join(here, "index.html"), "rb").read()
healthy = os.path.exists(os.path.join(here, "healthz"))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/healthz" or healthy
        body = page if self.path == "/" else b"ok"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def env():
    out = subprocess.run([REMOTE, "env"], check=True, capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        vals[k] = shlex.split(v)[0] if v else ""
    return vals


def ssh(cmd):
    return subprocess.run([REMOTE, "ssh", USER, cmd], check=True, capture_output=True, text=True).stdout


def get():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1) as r:
            return r.read().decode()
    except Exception:
        return None


def wait_for(body, limit=60):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if get() == body:
            return time.monotonic()
        time.sleep(0.01)
    raise SystemExit(f"never served {body!r}")


def main():
    e = env()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ferry = os.path.join(ROOT, "target", "release", "ferry")
    ssh("systemctl --user stop rb.service 2>/dev/null; rm -rf ~/.local/share/ferry/rb ~/.config/systemd/user/rb.service; systemctl --user daemon-reload")
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/www")
    # The server reads its page and health file once, at start, from the release it was started
    # in (realpath resolves `current`): what it serves proves which release is running.
    with open(f"{d}/www/server.py", "w") as f:
        f.write(SERVER)
    with open(f"{d}/rb.service", "w") as f:
        f.write(f"[Service]\nExecStart=/usr/bin/python3 %h/.local/share/ferry/rb/current/www/server.py {PORT}\n")

    def config(health, health_timeout, start_timeout="5s", confirm=f"{CONFIRM}s"):
        files = "".join(
            f'[[services.rb.files]]\nsource = "www/{n}"\ndest = "www/{n}"\n'
            for n in sorted(os.listdir(f"{d}/www")))
        with open(f"{d}/deploy.toml", "w") as f:
            f.write(f'[hosts.h]\naddress = "{e["FERRY_TEST_HOST"]}"\nport = {e["FERRY_TEST_PORT"]}\n'
                    f'user = "{USER}"\nidentity = "{e["FERRY_TEST_KEY"]}"\nknown_hosts = "{e["FERRY_TEST_KNOWN_HOSTS"]}"\n'
                    f'[services.rb]\nunits = ["rb.service"]\nstart_timeout = "{start_timeout}"\n'
                    f'confirm_timeout = "{confirm}"\nsettle_time = "0.5s"\nkeep_releases = 3\n'
                    f'[services.rb.health]\n{health}\ntimeout = "{health_timeout}"\ninterval = "200ms"\n{files}')

    def release(version, healthy):
        with open(f"{d}/www/index.html", "w") as f:
            f.write(version)
        hz = f"{d}/www/healthz"
        if healthy:
            open(hz, "w").write("ok")
        elif os.path.exists(hz):
            os.remove(hz)

    http = f'http = "http://127.0.0.1:{PORT}/healthz"'
    rollbacks, reverts, since_arm = [], [], []
    for i in range(RUNS):
        good = f"good {i}"
        release(good, True)
        config(http, "2s")
        subprocess.run([ferry, "-q", "--config", f"{d}/deploy.toml", "deploy"], check=True)
        wait_for(good)
        # 1. health fails -> automatic rollback.
        release(f"bad {i}", False)
        config(http, "2s")
        p = subprocess.Popen([ferry, "--output", "json", "--config", f"{d}/deploy.toml", "deploy"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        t0 = None
        for line in p.stdout:
            ev = json.loads(line)
            if ev.get("phase") == "rollback":
                t0 = time.monotonic()
                break
        t1 = wait_for(good)
        p.wait()
        assert p.returncode == 4, p.returncode
        rollbacks.append(t1 - t0)
        # 2. ferry killed during the health check -> the host reverts by itself.
        release(f"unconfirmed {i}", True)
        config('command = "sleep 30"', "2s", start_timeout="2s")
        p = subprocess.Popen([ferry, "--config", f"{d}/deploy.toml", "deploy"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        armed = None
        for line in p.stderr:
            if "switching to" in line:
                armed = time.monotonic()  # the timer is armed just before this line
            if "running health checks" in line:
                break
        p.kill()
        killed = time.monotonic()
        p.wait()
        t = wait_for(good, limit=CONFIRM + 30)
        reverts.append(t - killed)
        since_arm.append(t - armed)
        print(f"run {i + 1}: rollback {rollbacks[-1]:.2f}s, self-revert {reverts[-1]:.2f}s after kill, "
              f"{since_arm[-1]:.2f}s after arming", file=sys.stderr)
    ssh("systemctl --user stop rb.service; rm -rf ~/.local/share/ferry/rb ~/.config/systemd/user/rb.service; systemctl --user daemon-reload")
    med = statistics.median
    print(f"\nmedian of {RUNS}:")
    print(f"  failed health check -> old release serving (automatic rollback): {med(rollbacks):.2f}s "
          f"(min {min(rollbacks):.2f}, max {max(rollbacks):.2f})")
    print(f"  ferry killed -> old release serving (self-arming revert):        {med(reverts):.2f}s after the kill, "
          f"{med(since_arm):.2f}s after arming; confirm_timeout {CONFIRM}s")


if __name__ == "__main__":
    main()
