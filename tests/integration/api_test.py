#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The control API over its real Unix socket, against a running guest.

api_test.py --s2vm PATH --images DIR [--accel proc|kvm]

Starts migstress (which checks every word it wrote while its pages move) with
--api-socket, then drives every endpoint and every kind of bad input over AF_UNIX with
http.client: malformed JSON, wrong types, missing fields, unknown endpoints (404), wrong
methods (405), bodies over the limit (413), wrong states (409), a client that
disconnects mid-request, 100 concurrent clients, libvirt's chunked empty PUT with
"Expect: 100-continue". Then `s2vm ctl` for each command. The guest must keep running
untouched (0 mismatches) and exit 0 after vm.shutdown. Exit 0 pass, 1 fail, 77 skip.
"""
import argparse
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


def call(sock, method, ep, body=None, headers=None):
    c = UnixConn(sock)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, "/api/v1/" + ep, body=data, headers=headers or {})
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return r.status, doc, r


def wait_ready(sock, seconds=10):
    """Until the server answers (the socket file appears at bind, before listen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if call(sock, "GET", "vmm.ping")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return check(False, f"{sock}: the server did not answer within {seconds} s")


def expect(sock, method, ep, status, body=None, what=None, headers=None):
    st, doc, r = call(sock, method, ep, body, headers)
    ok = check(st == status, f"{what or method + ' ' + ep}: status {st}, want {status}: {doc}")
    if ok and status >= 400:
        check(isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"],
              f"{what or ep}: error body is not {{\"error\": \"...\"}}: {doc!r}")
    return doc, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s2vm", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--accel", default="proc")
    a = ap.parse_args()
    if a.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        return 77
    tmp = tempfile.mkdtemp(prefix="s2vm-api-")
    sock = os.path.join(tmp, "api.sock")
    cmd = [a.s2vm, "run", os.path.join(a.images, "migstress.elf"), "--accel", a.accel,
           "--mem", "128M", "--numa", "guest=0,size=64M,host=0",
           "--numa", "guest=1,size=64M,host=1", "--pool", "1=80M",
           "--balloon", "size=0", "--api-socket", "path=" + sock, "--", "seconds=25"]
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(sock)
    try:
        run(a, sock)
    finally:
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        print("--- s2vm stdout (tail)\n" + "\n".join(out.splitlines()[-4:]))
        print("--- s2vm stderr (tail)\n" + "\n".join(err.splitlines()[-6:]))
        check(p.returncode == 0, f"s2vm exit code {p.returncode}, want 0")
        check("0 mismatches" in out, "the guest did not report 0 mismatches")
        check("ERROR: AddressSanitizer" not in err and "WARNING: ThreadSanitizer" not in err,
              "a sanitizer report")
        check(not os.path.exists(sock), "the socket was not removed at exit")
    shutdown_test(a, "vm.shutdown")
    shutdown_test(a, "vmm.shutdown")
    reboot_test(a)
    mems_test(a)
    vmm_mode_test(a)
    print(f"api_test: {'FAIL' if FAILS else 'PASS'} ({len(FAILS)} failures)")
    return 1 if FAILS else 0


def run(a, sock):
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
          f"socket mode {oct(stat.S_IMODE(st.st_mode))}, want 0o600")

    doc, _ = expect(sock, "GET", "vmm.ping", 200)
    check(doc and doc.get("version", "").startswith("v") and int(doc["version"][1:].split(".")[0]) >= 15,
          f"vmm.ping version {doc} (libvirt wants v15 or later)")
    check(doc and doc.get("pid") > 0, "vmm.ping pid")
    doc, _ = expect(sock, "GET", "vm.info", 200)
    check(doc and doc["config"]["memory"]["size"] == 128 << 20, f"vm.info memory {doc}")
    check(doc and doc["config"]["cpus"]["boot_vcpus"] == 1, "vm.info vCPUs")
    check(doc and doc["state"] == "Running", f"vm.info state {doc and doc['state']}")
    doc, _ = expect(sock, "GET", "vm.counters", 200)
    check(isinstance(doc, dict) and "_balloon" in doc, f"vm.counters {doc}")
    doc, _ = expect(sock, "GET", "vm.memory", 200)
    check(doc and len(doc["memory"]["host_nodes"]) == 2, "vm.memory host nodes")

    # pause / resume, with libvirt's empty chunked PUT and Expect: 100-continue
    libvirt_put = {"Transfer-Encoding": "chunked", "Expect": "100-continue"}
    c = UnixConn(sock)
    c.putrequest("PUT", "/api/v1/vm.pause")
    for k, v in libvirt_put.items():
        c.putheader(k, v)
    c.endheaders()
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    r.read()
    c.close()
    check(r.status == 204, f"chunked vm.pause: {r.status}")
    doc, _ = expect(sock, "GET", "vm.info", 200)
    check(doc and doc["state"] == "Paused", "state after pause")
    expect(sock, "PUT", "vm.pause", 409, what="pause twice")
    expect(sock, "PUT", "vm.resume", 204)
    expect(sock, "PUT", "vm.resume", 409, what="resume when running")

    # migrate-memory: guest node, ranges, and every bad form
    # guest node 0 to host node 1, whose pool (80 MiB) holds guest node 1 already: past
    # the cap the rest is aborted (left where it is, counted), not an error
    doc, _ = expect(sock, "PUT", "vm.migrate-memory", 200, {"host_node": 1, "guest_node": 0})
    check(doc and doc["pages"] > 0 and doc["aborted_pages"] > 0 and
          doc["pages"] + doc["skipped_pages"] + doc["aborted_pages"] + doc["pinned_pages"] == 16384,
          f"migrate guest node 0 past the --pool cap: {doc}")
    doc = call(sock, "GET", "vm.memory")[1]
    check(doc and doc["migration"]["aborted_pages"] > 0, "the aborted pages are counted")
    doc, _ = expect(sock, "PUT", "vm.migrate-memory", 200, {"host_node": 0, "guest_node": 0})
    doc, _ = expect(sock, "PUT", "vm.migrate-memory", 200,
                    {"host_node": 1, "ranges": [{"gpa": 0x100000, "len": 0x200000}]})
    check(doc and doc["pages"] == 512, f"migrate a range: {doc}")
    bad = [
        ({"host_node": 1}, "neither guest_node nor ranges"),
        ({"host_node": 1, "guest_node": 0, "ranges": []}, "both"),
        ({"host_node": "1", "guest_node": 0}, "host_node a string"),
        ({"host_node": -1, "guest_node": 0}, "negative host_node"),
        ({"host_node": 7, "guest_node": 0}, "a host node that does not exist"),
        ({"host_node": 1, "guest_node": 5}, "a guest node that does not exist"),
        ({"host_node": 1, "ranges": [{"gpa": 1, "len": 4096}]}, "unaligned range"),
        ({"host_node": 1, "ranges": [{"gpa": 0, "len": 1 << 40}]}, "range past RAM"),
        ({"host_node": 1, "ranges": [{"gpa": 0}]}, "range without len"),
        ({"host_node": 1, "ranges": "all"}, "ranges a string"),
        ({"host_node": 1, "ranges": []}, "empty ranges"),
        ([1, 2], "an array body"),
        (b"{bad json", "malformed JSON"),
        (b"", "empty body"),
    ]
    for body, what in bad:
        expect(sock, "PUT", "vm.migrate-memory", 400, body, what="migrate-memory: " + what)
    expect(sock, "PUT", "vm.migrate-memory", 413, b"{" + b" " * (70 << 10) + b"}",
           what="a body over 64 KiB")

    # balloon target
    expect(sock, "PUT", "vm.resize", 204, {"desired_balloon": 8 << 20})
    expect(sock, "PUT", "vm.resize", 400, {"desired_balloon": 4097}, what="unaligned balloon")
    expect(sock, "PUT", "vm.resize", 400, {"desired_balloon": 1 << 40}, what="balloon > RAM")
    expect(sock, "PUT", "vm.resize", 400, {"desired_vcpus": 4}, what="vCPU hot-plug")

    # unknown endpoints, wrong methods
    expect(sock, "GET", "vm.nope", 404)
    c = UnixConn(sock)
    c.request("GET", "/nope")
    r = c.getresponse()
    r.read()
    check(r.status == 404, f"/nope: {r.status}")
    _, r = expect(sock, "POST", "vm.info", 405)
    check(r.getheader("Allow") == "GET", f"405 Allow header {r.getheader('Allow')}")
    expect(sock, "GET", "vm.pause", 405)
    expect(sock, "DELETE", "vmm.ping", 405)

    # a client that disconnects mid-request (headers promise a body that never comes)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"de")
    s.close()
    # ... and one that sends garbage
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"\x00\xff garbage \r\n\r\n")
    s.settimeout(1)
    try:
        s.recv(100)  # an error answer, or nothing until the server times it out
    except OSError:
        pass
    s.close()

    # 100 concurrent clients
    results = []

    def one(i):
        try:
            st, doc, _ = call(sock, "GET", "vm.info" if i % 2 else "vmm.ping")
            results.append(st)
        except Exception as e:  # noqa: BLE001 - any failure counts
            results.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check(results.count(200) == 100, f"100 concurrent clients: {sorted(set(map(str, results)))}")

    # vm.info round trips while the guest runs
    lat = []
    for _ in range(300):
        t0 = time.perf_counter()
        call(sock, "GET", "vm.info")
        lat.append(time.perf_counter() - t0)
    lat.sort()
    print(f"vm.info round trip: median {lat[len(lat) // 2] * 1e6:.0f} us, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us (300 calls, Python client)")

    # s2vm ctl: every command
    ctl = [a.s2vm, "ctl", "--api-socket", sock]
    for args, want in [(["ping"], "s2vm "), (["info"], "state      Running"),
                       (["counters"], "_balloon"), (["memory"], "host node"),
                       (["pause"], "done"), (["resume"], "done"),
                       (["migrate-memory", "0", "--guest-node", "0"], "moved"),
                       (["migrate-memory", "1", "--range", "0x400000:2M"], "moved 512 pages"),
                       (["balloon", "0"], "done"), (["--json", "ping"], '"pid"')]:
        r = subprocess.run(ctl + args, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and want in r.stdout,
              f"s2vm ctl {' '.join(args)}: rc {r.returncode}, stdout {r.stdout!r} stderr {r.stderr!r}")
    r = subprocess.run(ctl + ["resume"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "409" in r.stderr, f"s2vm ctl resume when running: {r.stderr!r}")
    r = subprocess.run([a.s2vm, "ctl", "--api-socket", sock + ".none", "ping"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "cannot reach" in r.stderr, f"s2vm ctl, no server: {r.stderr!r}")

    doc, _ = expect(sock, "GET", "vm.info", 200)
    check(doc and doc["state"] == "Running", "the guest still runs after all that")
    # the guest now runs to its end and reports what it checked (main() waits)


def libvirt_put(sock, ep, body=None):
    """A PUT as libvirt's ch driver sends it: chunked, with Expect: 100-continue."""
    c = UnixConn(sock)
    c.putrequest("PUT", "/api/v1/" + ep)
    c.putheader("Transfer-Encoding", "chunked")
    c.putheader("Expect", "100-continue")
    if body is not None:
        c.putheader("Content-Type", "application/json")
    c.endheaders()
    data = json.dumps(body).encode() if body is not None else b""
    if data:
        c.send(b"%x\r\n%s\r\n" % (len(data), data))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, raw


def vmm_mode_test(a):
    """`s2vm --api-socket` with no kernel, and `cloud-hypervisor` (a symlink) as libvirt runs
    it: vm.create and vm.boot build the VM; wrong orders get 409."""
    tmp = tempfile.mkdtemp(prefix="s2vm-api-")
    sock = os.path.join(tmp, "api.sock")
    ch = os.path.join(tmp, "cloud-hypervisor")
    os.symlink(os.path.abspath(a.s2vm), ch)
    r = subprocess.run([ch, "--version"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and r.stdout.startswith("cloud-hypervisor v") and
          int(r.stdout.split()[1][1:].split(".")[0]) >= 15 and "s2vm" in r.stdout,
          f"cloud-hypervisor --version: {r.stdout!r}")
    # libvirt hands over a listening socket: --api-socket fd=N
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(sock)
    ls.listen(16)
    p = subprocess.Popen([ch, "--api-socket", f"fd={ls.fileno()}"], pass_fds=[ls.fileno()],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ls.close()
    wait_ready(sock)
    expect(sock, "GET", "vm.info", 404, what="vm.info before vm.create")
    expect(sock, "PUT", "vm.boot", 409, what="vm.boot before vm.create")
    expect(sock, "PUT", "vm.pause", 409, what="vm.pause without a VM")
    for body, what in [(b"{}", "no kernel"), (b"{bad", "malformed"),
                       ({"memory": {"size": 3 << 20}, "payload": {"kernel": "/x"}}, "odd memory"),
                       ({"cpus": {"boot_vcpus": 0}, "payload": {"kernel": "/x"}}, "0 vCPUs"),
                       ({"memory": "lots", "payload": {"kernel": "/x"}}, "memory a string"),
                       ({"payload": {"kernel": "/x"}, "disks": [{"readonly": True}]}, "disk w/o path")]:
        expect(sock, "PUT", "vm.create", 400, body, what="vm.create: " + what)
    cfg = {"cpus": {"boot_vcpus": 2, "max_vcpus": 2}, "memory": {"size": 64 << 20},
           "kernel": {"path": os.path.join(os.path.abspath(a.images), "migstress.elf")},
           "cmdline": {"args": "seconds=3"}, "serial": {"mode": "Pty"}, "console": {"mode": "Off"}}
    st, raw = libvirt_put(sock, "vm.create", cfg)
    check(st == 204, f"vm.create (libvirt style): {st} {raw!r}")
    doc, _ = expect(sock, "GET", "vm.info", 200, what="vm.info after vm.create")
    check(doc and doc["state"] == "Created" and doc["config"]["memory"]["size"] == 64 << 20,
          f"vm.info after create: {doc}")
    expect(sock, "PUT", "vm.create", 409, cfg, what="vm.create twice")
    st, raw = libvirt_put(sock, "vm.boot")
    check(st == 204, f"vm.boot (libvirt style): {st} {raw!r}")
    doc, _ = expect(sock, "GET", "vm.info", 200, what="vm.info after vm.boot")
    check(doc and doc["state"] == "Running" and doc["config"]["cpus"]["boot_vcpus"] == 2,
          f"vm.info after boot: {doc}")
    expect(sock, "PUT", "vm.boot", 409, what="vm.boot twice")
    st, raw = libvirt_put(sock, "vm.pause")
    check(st == 204, f"vm.pause (libvirt style): {st}")
    st, raw = libvirt_put(sock, "vm.resume")
    check(st == 204, f"vm.resume (libvirt style): {st}")
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 0 and "2 vCPUs" in out and "0 mismatches" in out,
          f"the vm.create guest: exit {p.returncode}, stdout tail {out[-300:]!r}, stderr {err[-300:]!r}")
    # vmm.shutdown before any VM: exits 0
    p = subprocess.Popen([a.s2vm, "--api-socket", "path=" + sock + "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(sock + "2")
    expect(sock + "2", "PUT", "vmm.shutdown", 204, what="vmm.shutdown without a VM")
    p.wait(timeout=20)
    check(p.returncode == 0, f"vmm.shutdown without a VM: exit {p.returncode}")


def reboot_test(a):
    """vm.reboot: the VM stops and is built again from its config (fresh memory: the
    migration done before is gone), the guest starts over, the API keeps serving."""
    tmp = tempfile.mkdtemp(prefix="s2vm-api-")
    sock = os.path.join(tmp, "api.sock")
    p = subprocess.Popen([a.s2vm, "run", os.path.join(a.images, "migstress.elf"), "--accel",
                          a.accel, "--mem", "64M", "--vcpus", "2", "--balloon", "size=0",
                          "--pool", "1=64M", "--api-socket", sock, "--", "seconds=60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(sock)
        first = p.stdout.readline()
        check(first.startswith("migstress: 2 vCPU(s)"), f"reboot: first line {first!r}")
        doc, _ = expect(sock, "PUT", "vm.migrate-memory", 200, {"host_node": 1, "guest_node": 0},
                        what="reboot: migrate before")
        check(doc and doc.get("pages", 0) > 0, f"reboot: migration before: {doc}")
        expect(sock, "PUT", "vm.reboot", 204, what="vm.reboot")
        t0 = time.monotonic()
        # at once: the old VM is on its way out and must never be reported Running (a new
        # one could only be, if the client slept through the rebuild: it has moved nothing)
        st, doc, _ = call(sock, "GET", "vm.info")
        if st == 200:
            mst, mdoc, _ = call(sock, "GET", "vm.memory")
            check(mst == 200 and ((mdoc or {}).get("migration") or {}).get("pages") == 0,
                  f"vm.info right after vm.reboot: the old VM reported ({st} {doc})")
        else:
            check(st == 409 and "rebooting" in str((doc or {}).get("error")),
                  f"vm.info right after vm.reboot: {st} {doc}")
        state = None
        while time.monotonic() - t0 < 15:
            st, doc, _ = call(sock, "GET", "vm.info")
            check(st in (200, 409), f"vm.info while rebooting: {st} {doc}")
            if st == 200 and doc.get("state") == "Running":
                state = "Running"
                break
            time.sleep(0.02)
        check(state == "Running", f"vm.info after vm.reboot: not Running within 15 s ({doc})")
        again = p.stdout.readline()
        check(again.startswith("migstress: 2 vCPU(s)"),
              f"reboot: the guest did not start again: {again!r}")
        print(f"vm.reboot -> Running again in {(time.monotonic() - t0) * 1e3:.0f} ms")
        doc, _ = expect(sock, "GET", "vm.memory", 200, what="vm.memory after reboot")
        mig = (doc or {}).get("migration", {})
        check(mig.get("pages", -1) == 0, f"after reboot the VM is new (0 pages migrated): {mig}")
        expect(sock, "PUT", "vm.pause", 204, what="vm.pause after reboot")
        expect(sock, "PUT", "vm.resume", 204, what="vm.resume after reboot")
        expect(sock, "PUT", "vm.shutdown", 204, what="vm.shutdown after reboot")
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 0, f"reboot: s2vm exit {p.returncode}: {err[-400:]}")
    check("ERROR: AddressSanitizer" not in err and "WARNING: ThreadSanitizer" not in err,
          "reboot: a sanitizer report")
    check(not os.path.exists(sock), "reboot: the socket was not removed")


def mems_test(a):
    """Placement that follows Mems_allowed (libvirt's <numatune> through the cpuset cgroup):
    a host with one node cannot change the real set, so $S2VM_MEMS_ALLOWED_FILE stands in
    for it (the watcher reads it instead of /proc/self/status); the move itself is the
    real one: the guest's memory goes to the new node live and comes back, 0 mismatches."""
    tmp = tempfile.mkdtemp(prefix="s2vm-api-")
    sock = os.path.join(tmp, "api.sock")
    mems = os.path.join(tmp, "mems")

    def allow(nodes):
        with open(mems + ".new", "w") as f:
            f.write(nodes + "\n")
        os.rename(mems + ".new", mems)

    def placed(node, seconds=10):
        t0 = time.monotonic()
        doc = None
        while time.monotonic() - t0 < seconds:
            doc, _ = expect(sock, "GET", "vm.memory", 200, what="vm.memory (mems)")
            on = (doc or {}).get("memory", {}).get("guest_nodes", [{}])[0].get(
                "bytes_on_host_node", {})
            if on.get(str(node)) == 64 << 20:
                return (time.monotonic() - t0) * 1e3
            time.sleep(0.05)
        check(False, f"Mems_allowed -> {node}: the guest's memory did not move: {doc}")
        return None

    allow("0")
    env = dict(os.environ, S2VM_MEMS_ALLOWED_FILE=mems)
    p = subprocess.Popen([a.s2vm, "run", os.path.join(a.images, "migstress.elf"), "--accel",
                          a.accel, "--mem", "64M", "--vcpus", "2", "--api-socket", sock,
                          "--", "seconds=12"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(sock)
        placed(0, 2)
        allow("1")
        ms = placed(1)
        if ms is not None:
            print(f"Mems_allowed 0 -> 1: 64 MiB moved live in {ms:.0f} ms (polled)")
        allow("0-1")  # a wider set moves nothing
        time.sleep(0.6)
        placed(1, 1)
        allow("0")
        placed(0)
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 0 and "0 mismatches" in out,
          f"mems: exit {p.returncode}, stdout {out[-300:]!r}, stderr {err[-300:]!r}")
    check(err.count("the memory nodes allowed changed") == 3,
          f"mems: want 3 changes noticed: {err[-600:]!r}")
    check("moved 64 MiB of guest memory to host node 1" in err and
          "moved 64 MiB of guest memory to host node 0" in err, f"mems: {err[-600:]!r}")


def shutdown_test(a, ep):
    """vm.shutdown / vmm.shutdown stop a guest that would run for a minute, at once."""
    tmp = tempfile.mkdtemp(prefix="s2vm-api-")
    sock = os.path.join(tmp, "api.sock")
    p = subprocess.Popen([a.s2vm, "run", os.path.join(a.images, "migstress.elf"), "--accel",
                          a.accel, "--mem", "32M", "--api-socket", sock, "--", "seconds=60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_ready(sock)
    t0 = time.monotonic()
    expect(sock, "PUT", ep, 204)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
    check(p.returncode == 0 and time.monotonic() - t0 < 10,
          f"{ep}: s2vm exit {p.returncode} after {time.monotonic() - t0:.1f} s")
    check(not os.path.exists(sock), f"{ep}: the socket was not removed")


if __name__ == "__main__":
    sys.exit(main())
