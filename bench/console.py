#!/usr/bin/env python3
"""How fast the console's pages load with many devices in one domain (issue 8).

Starts Provisor (release build) on a fresh data directory (SQLite, or PostgreSQL with
--postgres URL), imports N users in one domain, each with a SIP account and a Yealink
phone (one CSV import), signs in as an operator, then loads each console page several
times and prints the median and worst time per page. Bounded: a fixed number of loads.

    bench/console.py --devices 100000
    bench/console.py --devices 100000 --postgres postgres://postgres@127.0.0.1:5432/test

Only the Python 3 standard library.
"""

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
TARGET = os.environ.get(
    "CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "provisor", "bench-target"))
DOMAIN = "big.example.com"
PASSWORD = "console-bench-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mac(i):
    return "001565%06x" % i


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=100_000)
    p.add_argument("--loads", type=int, default=7, help="loads of each page")
    p.add_argument("--postgres", help="a PostgreSQL URL of an empty database (default: SQLite)")
    p.add_argument("--binary", default=os.path.join(TARGET, "release", "provisor"))
    a = p.parse_args()
    if not os.path.exists(a.binary):
        subprocess.run(["cargo", "build", "--release", "-p", "provisor"], cwd=REPO, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    work = tempfile.mkdtemp(prefix="provisor-console-bench-")
    data = os.path.join(work, "data")
    port = free_port()
    cmd = [a.binary, "--data-dir", data]
    if a.postgres:
        cmd += ["--database-url", a.postgres]
    pw = os.path.join(work, "pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    subprocess.run(cmd + ["admin", "add", "bench", "--password-file", pw], check=True,
                   capture_output=True)
    log = open(os.path.join(work, "provisor.log"), "w")
    server = subprocess.Popen(cmd + ["serve", "--listen", "127.0.0.1:%d" % port],
                              stdout=log, stderr=log)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        token = open(os.path.join(data, "operator-token")).read().strip()

        def api(method, path, body=None, kind="application/json"):
            req = urllib.request.Request(base + path, data=body, method=method, headers={
                "Authorization": "Bearer " + token, "Content-Type": kind})
            return urllib.request.urlopen(req, timeout=3600).read()

        api("POST", "/api/v1/domains", b'{"name": "%s"}' % DOMAIN.encode())
        rows = ["username,sip_user,sip_password,registrar,mac,vendor,model,line"]
        rows += ["u%06d,%d,pw-%d,sip.example.com,%s,yealink,T54W,1" % (i, 100000 + i, i, mac(i))
                 for i in range(a.devices)]
        started = time.monotonic()
        api("POST", "/api/v1/domains/%s/import" % DOMAIN, "\n".join(rows).encode(), "text/csv")
        imported = time.monotonic() - started
        print("imported %d users, accounts and phones in %.1f s" % (a.devices, imported))
        if a.postgres:
            # Statistics as autovacuum would have them by now (the test clusters here run
            # without it; without statistics the planner scans).
            subprocess.run(["psql", a.postgres, "-qc", "ANALYZE"], check=True)

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        page = opener.open(base + "/console/signin").read().decode()
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf": csrf, "login": "bench", "password": PASSWORD})
        try:
            opener.open(base + "/console/signin", form.encode())
        except urllib.error.HTTPError as e:
            assert e.code == 303, e.code
        d = "/console/d/" + DOMAIN
        middle = mac(a.devices // 2)
        pages = [
            ("domains", "/console"),
            ("domain overview", d),
            ("users, first page", d + "/users"),
            ("users, a search", d + "/users?q=u0%s" % str(a.devices // 2)[:3]),
            ("users, a late page", d + "/users?after=%d" % (a.devices - 60)),
            ("user", d + "/users/u%06d" % (a.devices // 2)),
            ("devices, first page", d + "/devices"),
            ("devices by MAC", d + "/devices?mac=" + middle),
            ("devices by user", d + "/devices?user=u%06d" % (a.devices // 2)),
            ("devices by state (none)", d + "/devices?state=provisioned"),
            ("device with preview", d + "/devices/%s?file=%s.cfg" % (middle, middle)),
            ("rollouts", d + "/rollouts"),
            ("jobs", d + "/jobs"),
            ("templates", d + "/templates"),
            ("webhooks", d + "/webhooks"),
            ("audit log", d + "/audit"),
        ]
        print("| page | median ms | worst ms |")
        print("|---|---:|---:|")
        for name, path in pages:
            times = []
            for _ in range(a.loads):
                t = time.monotonic()
                r = opener.open(base + path)
                r.read()
                assert r.status == 200, (path, r.status)
                times.append((time.monotonic() - t) * 1000)
            print("| %s | %.1f | %.1f |" % (name, statistics.median(times), max(times)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
