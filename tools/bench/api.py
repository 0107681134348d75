#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench api: the control API's cost to a running guest.

For each of --repeat interleaved pairs, migstress runs --seconds s with --api-socket,
once idle and once while a client makes --calls vm.info round trips over the socket
(one after another, as fast as they come back). Reports the round trip (median, p99,
max, in microseconds), the guest's throughput (words written and checked per second)
with and without the calls and their ratio, and s2vm's RSS with and without
--api-socket. Baselines are measured in the same run. --json prints one JSON object.
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


def run_guest(s2vm, image, seconds, sock, calls, lat, stats=False, pace_us=0):
    cmd = [s2vm, "run", image, "--mem", "256M"]
    if sock:
        cmd += ["--api-socket", "path=" + sock]
    if stats:
        cmd += ["--stats=json"]
    cmd += ["--", f"seconds={seconds}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if sock and calls:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                c = UnixConn(sock)
                c.request("GET", "/api/v1/vmm.ping")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                time.sleep(0.01)
        c = UnixConn(sock)  # one keep-alive connection, as libvirt's curl handle
        for _ in range(calls):
            t0 = time.perf_counter()
            c.request("GET", "/api/v1/vm.info")
            c.getresponse().read()
            lat.append((time.perf_counter() - t0) * 1e6)
            if pace_us:
                time.sleep(pace_us / 1e6)
        c.close()
    out, _ = p.communicate(timeout=seconds + 60)
    m = re.search(r"^report: migstress_words_checked=([0-9.e+]+)", out, re.M)
    if p.returncode or not m:
        sys.exit(f"bench api: the guest failed (exit {p.returncode})")
    rss = None
    for line in out.splitlines():
        if line.startswith("{"):
            rss = json.loads(line)["vmm"]["rss_anon_bytes"]
    return float(m.group(1)) / seconds, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--s2vm", default="build/vmm/s2vm")
    ap.add_argument("--images", default="build/guestos")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--pace-us", type=int, default=1000,
                    help="pause between calls (0: back to back; the client then competes "
                         "with the vCPU for the 2 cores)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    image = os.path.join(a.images, "migstress.elf")
    tmp = tempfile.mkdtemp(prefix="s2vm-bench-api-")
    lat, idle, busy = [], [], []
    for i in range(a.repeat):
        sock = os.path.join(tmp, f"s{i}.sock")
        idle.append(run_guest(a.s2vm, image, a.seconds, sock + "i", 0, lat)[0])
        busy.append(run_guest(a.s2vm, image, a.seconds, sock, a.calls, lat,
                              pace_us=a.pace_us)[0])
    rss_without = run_guest(a.s2vm, image, 1, None, 0, [], stats=True)[1]
    rss_with = run_guest(a.s2vm, image, 1, os.path.join(tmp, "r.sock"), 0, [], stats=True)[1]
    lat.sort()
    res = {
        "calls": len(lat),
        "round_trip_us": {"median": statistics.median(lat), "p99": lat[int(len(lat) * 0.99)],
                          "max": lat[-1]},
        "guest_words_per_s": {"idle_api": statistics.median(idle),
                              "during_calls": statistics.median(busy)},
        "guest_ratio": statistics.median(busy) / statistics.median(idle),
        "rss_anon_bytes": {"without_api": rss_without, "with_api": rss_with},
    }
    if a.json:
        print(json.dumps(res))
        return 0
    r = res["round_trip_us"]
    print(f"control API: {a.repeat} interleaved pairs of {a.seconds} s migstress runs, "
          f"{a.calls} vm.info calls per busy run, {a.pace_us} us apart (Python client, one "
          f"connection)")
    print(f"  vm.info round trip   median {r['median']:.0f} us, p99 {r['p99']:.0f} us, "
          f"max {r['max']:.0f} us   (target p99 < 1000 us: "
          f"{'PASS' if r['p99'] < 1000 else 'MISS'})")
    g = res["guest_words_per_s"]
    print(f"  guest throughput     {g['idle_api'] / 1e9:.3f} G words/s idle, "
          f"{g['during_calls'] / 1e9:.3f} G words/s during the calls: "
          f"{res['guest_ratio']:.3f} x (spread of the idle runs "
          f"{min(idle) / 1e9:.3f}-{max(idle) / 1e9:.3f})")
    d = (rss_with - rss_without) / 1024
    print(f"  VMM RSS (anon)       {rss_without >> 10} KiB without --api-socket, "
          f"{rss_with >> 10} KiB with: {d:+.0f} KiB (target < 1024 KiB: "
          f"{'PASS' if d < 1024 else 'MISS'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
