#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""s2vm under a real libvirt: virsh and libvirt 9.0's Cloud Hypervisor (ch) driver.

libvirt_test.py --s2vm PATH --images DIR

Takes the libvirt built by tools/libvirt/build.sh (builds it when missing, about 3.5 min;
skips when the machine cannot build it), starts its ch daemon (virtchd) in a private
temp dir with a `cloud-hypervisor` symlink to s2vm on its PATH, and drives a migstress
guest with virsh: define, start, dominfo, vcpuinfo, suspend, resume, dumpxml + the
serial pty's console lines, reboot (the guest starts over on the same pty, same
process), shutdown, start again, destroy, undefine. Each step's
output is checked, and what s2vm did is checked on the host too (its process, its
vcpuN threads, their CPU time while paused, its exit). Prints `virsh start` to the
guest's first console line. See tools/libvirt/README.md. Exit 0 pass, 1 fail, 77 skip.

libvirt 9.0's ch driver has bugs of its own; where one hides a step, the test says so
(NOTE) and goes on with what can still be checked:
- `<serial type='pty'/>` alone is refused at define ("Console can only be enabled for
  a PTY": the stub <console> that HVM domains get for their first serial has no source,
  and the driver validates it as a pty). A serial whose target type makes no stub
  console (pci-serial) is taken; the driver ignores the target type and sends
  "serial": {"mode": "Pty"} all the same.
- The driver never watches the emulator process: after `shutdown` the domain stays
  "in shutdown" after s2vm has exited, and a `start` says "Domain is already active"
  until a `destroy`.
- `destroy` removes a *defined* domain from the daemon (virCHDomainRemoveInactive
  tests vm->persistent the wrong way round), so the domain has to be defined again,
  and `undefine` after a `destroy` finds nothing.
"""
import argparse
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD_SH = os.path.join(ROOT, "tools", "libvirt", "build.sh")
DOM = "s2vm-libvirt-test"
NCPUS = 2
MEM_MIB = 128
FAILS = []
NOTES = []
WATCHES = []  # every PtyWatch, stopped before the cleanup


class E:
    first_line_ms = []  # `virsh start` to the guest's first console line, per start


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def note(what):
    NOTES.append(what)
    print(f"NOTE: {what}", flush=True)


def libvirt_prefix():
    """The install prefix, building libvirt if needed. Returns (prefix, None) or
    (None, exit code)."""
    r = subprocess.run([BUILD_SH, "--print-prefix"], capture_output=True, text=True)
    if r.returncode == 0:
        return r.stdout.strip(), None
    if r.returncode != 1:
        print(f"libvirt_test: {BUILD_SH} --print-prefix: exit {r.returncode}: {r.stderr.strip()}")
        return None, 1
    print("libvirt_test: libvirt is not built yet; building it (about 3.5 min)", flush=True)
    r = subprocess.run([BUILD_SH], stdout=subprocess.PIPE, text=True)  # progress on stderr
    if r.returncode == 77:
        print("SKIP: libvirt cannot be built on this machine (reason above)")
        return None, 77
    if r.returncode != 0 or not r.stdout.strip():
        print(f"libvirt_test: {BUILD_SH} failed (exit {r.returncode})")
        return None, 1
    return r.stdout.strip().splitlines()[-1], None


class Env:
    """The private directories, the user everything runs as, and the command runners."""

    def __init__(self, s2vm, images, prefix):
        self.prefix = prefix
        self.tmp = tempfile.mkdtemp(prefix="s2vm-libvirt-")
        os.chmod(self.tmp, 0o755)
        self.bin = os.path.join(self.tmp, "bin")
        self.home = os.path.join(self.tmp, "home")
        self.run = os.path.join(self.home, "run")  # XDG_RUNTIME_DIR
        for d in (self.bin, self.home, self.run):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.run, 0o700)
        self.ch = os.path.join(self.bin, "cloud-hypervisor")
        os.symlink(os.path.abspath(s2vm), self.ch)
        self.s2vm_real = os.path.realpath(s2vm)
        self.kernel = os.path.join(os.path.abspath(images), "migstress.elf")
        self.log = os.path.join(self.tmp, "virtchd.log")
        self.sock = os.path.join(self.run, "libvirt", "virtchd-sock")
        self.pidfile = os.path.join(self.run, "libvirt", "virtchd.pid")
        self.env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": self.home,
                    "XDG_RUNTIME_DIR": self.run,
                    "XDG_CONFIG_HOME": os.path.join(self.home, "config"),
                    "XDG_CACHE_HOME": os.path.join(self.home, "cache")}
        # As root there is no session daemon: ch:///session?mode=direct from root goes to
        # the system socket under the prefix (shared by every test on the machine, and
        # never autospawned). So as root, the daemon and virsh run as nobody (like
        # README's setpriv --reuid=nobody --regid=nogroup --clear-groups): a session
        # daemon whose sockets, state and pid file are all in this temp dir.
        self.user = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            for root, dirs, files in os.walk(self.home):
                for n in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)
        self.uri = "ch:///session?mode=direct"
        self.daemon = None

    def as_user(self, cmd, **kw):
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                              timeout=kw.pop("timeout", 60), **self.user, **kw)

    def virsh(self, *args, timeout=60):
        cmd = [os.path.join(self.prefix, "bin", "virsh"), "-c", self.uri] + list(args)
        t0 = time.monotonic()
        try:
            r = self.as_user(cmd, timeout=timeout)
        except subprocess.TimeoutExpired:
            check(False, f"virsh {' '.join(args)}: no answer in {timeout} s")
            return 124, "", ""
        ms = (time.monotonic() - t0) * 1e3
        out = (r.stdout + r.stderr).strip()
        print(f"$ virsh {' '.join(args)}  (exit {r.returncode}, {ms:.0f} ms)" +
              ("".join("\n    " + ln for ln in out.splitlines()) if out else ""), flush=True)
        return r.returncode, r.stdout, r.stderr

    def start_daemon(self):
        """virtchd as README's commands run it: no --timeout (a definition lives only as
        long as the daemon), logging to a file; ch modules at debug level, so the log says
        which vcpuN threads libvirt found."""
        env = dict(self.env, LIBVIRT_LOG_OUTPUTS="1:stderr", LIBVIRT_LOG_FILTERS="1:ch.ch_")
        logf = open(self.log, "wb")
        self.daemon = subprocess.Popen([os.path.join(self.prefix, "sbin", "virtchd")], env=env,
                                       stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                       **self.user)
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.daemon.poll() is None:
            if os.path.exists(self.sock) and os.path.exists(self.pidfile):
                return True
            time.sleep(0.05)
        return check(False, f"virtchd did not create {self.sock} within 20 s "
                     f"(exit {self.daemon.poll()}); log tail:\n{self.log_tail()}")

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=15):
        return "\n".join(ln for ln in self.log_text().splitlines()[-n:])

    def cleanup(self):
        # the daemon, by its pid file (the Popen pid is the same process; the pid file is
        # what README names, and it is written by the daemon once it is up)
        pid = None
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = self.daemon.pid if self.daemon and self.daemon.poll() is None else None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.daemon:
            try:
                self.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print("libvirt_test: virtchd ignored SIGTERM for 15 s; killing it")
                self.daemon.kill()
                self.daemon.wait()
        # any s2vm this test's daemon started (argv[0] is our symlink), by pid
        left = [p for p in s2vm_pids(self.ch) if proc_state(p) != "Z"]
        for p in left:
            print(f"libvirt_test: killing leftover s2vm {p}")
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in left:  # reaped by init once the daemon is gone
            wait_exit(p, 5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def s2vm_pids(ch):
    """Processes whose argv[0] is the `cloud-hypervisor` symlink of this test (zombies too)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if argv0 == ch.encode():
            out.append(int(d))
    return out


def proc_state(pid):
    """'R', 'S', 'Z', ... or None once the process is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def exit_status(pid):
    """A zombie's wait status (/proc/PID/stat field 52), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[49]) if fields[0] == "Z" else None
    except (OSError, IndexError, ValueError):
        return None


def vcpu_threads(pid):
    """{N: tid} of the process's threads named vcpuN (as libvirt finds them)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        m = re.fullmatch(r"vcpu(\d+)", comm)
        if m:
            out[int(m.group(1))] = int(t)
    return out


def cpu_ticks(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def field(text, name):
    m = re.search(rf"^{re.escape(name)}:\s*(.*?)\s*$", text, re.M)
    return m.group(1) if m else None


class PtyWatch(threading.Thread):
    """From `virsh start` on: finds the pty master s2vm (argv[0] = our symlink) opens,
    opens its slave (from /proc/PID/fdinfo's tty-index) and reads the console lines, with
    the time of the first one. Does not touch the pty's termios."""

    def __init__(self, ch, t0, find_for=15.0):
        super().__init__(daemon=True)
        WATCHES.append(self)
        self.ch, self.t0, self.find_for = ch, t0, find_for
        self.path = None
        self.first_line_ms = None
        self.data = b""
        self.echo = None
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def find(self):
        for pid in s2vm_pids(self.ch):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link not in ("/dev/ptmx", "/dev/pts/ptmx"):
                        continue
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        m = re.search(r"^tty-index:\s*(\d+)", f.read(), re.M)
                except OSError:
                    continue
                if m:
                    return f"/dev/pts/{m.group(1)}"
        return None

    def run(self):
        deadline = self.t0 + self.find_for
        while not self.stop.is_set() and time.monotonic() < deadline and not self.path:
            self.path = self.find()
            if not self.path:
                time.sleep(0.002)
        if self.path:
            self.read(self.path)

    def read(self, path):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            print(f"libvirt_test: cannot open {path}: {e}", flush=True)
            return
        try:
            import termios
            self.echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
        except Exception:  # noqa: BLE001 - informational only
            pass
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([fd], [], [], 0.05)
                if not r:
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the master is closed (s2vm exited)
                    break
                if not chunk:
                    break
                with self.lock:
                    self.data += chunk
                    if self.first_line_ms is None and b"\n" in self.data:
                        self.first_line_ms = (time.monotonic() - self.t0) * 1e3
        finally:
            os.close(fd)

    def lines(self):
        with self.lock:
            text = self.data.decode(errors="replace")
        return [ln.rstrip("\r") for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]


def domain_xml(e):
    # type='kvm': the only type the ch driver takes ('ch' is "invalid domain type").
    # The serial's target type: see the module docstring (pci-serial makes no stub console).
    return f"""<domain type='kvm'>
  <name>{DOM}</name>
  <memory unit='MiB'>{MEM_MIB}</memory>
  <vcpu>{NCPUS}</vcpu>
  <os>
    <type>hvm</type>
    <kernel>{e.kernel}</kernel>
    <cmdline>seconds=20</cmdline>
  </os>
  <devices>
    <emulator>{e.ch}</emulator>
    <serial type='pty'>
      <target type='pci-serial'/>
    </serial>
  </devices>
</domain>
"""


def define(e, path):
    rc, out, err = e.virsh("define", path)
    return check(rc == 0 and f"Domain '{DOM}' defined" in out, f"define: exit {rc}: {out}{err}")


def listed(e):
    rc, out, err = e.virsh("list", "--all")
    check(rc == 0 and "Name" in out, f"list --all: exit {rc}: {out}{err}")
    for ln in out.splitlines():
        f = ln.split(None, 2)
        if len(f) == 3 and f[1] == DOM:
            return f[2].strip()
    return None


def domstate(e):
    rc, out, err = e.virsh("domstate", DOM)
    return out.strip() if rc == 0 else None


def dominfo(e, state):
    """dominfo's fields against the definition; returns s2vm's pid (the Id) or None."""
    rc, out, err = e.virsh("dominfo", DOM)
    if not check(rc == 0, f"dominfo: exit {rc}: {err}"):
        return None
    check(field(out, "Name") == DOM, f"dominfo Name: {field(out, 'Name')}")
    check(field(out, "State") == state, f"dominfo State: {field(out, 'State')!r}, want {state!r}")
    check(field(out, "CPU(s)") == str(NCPUS), f"dominfo CPU(s): {field(out, 'CPU(s)')!r}")
    for k in ("Max memory", "Used memory"):
        check(field(out, k) == f"{MEM_MIB * 1024} KiB", f"dominfo {k}: {field(out, k)!r}, "
              f"want {MEM_MIB * 1024} KiB")
    ident = field(out, "Id")
    return int(ident) if ident and ident.isdigit() else None


def started(e, what):
    """`virsh start`, with the pty watcher running from just before it."""
    t0 = time.monotonic()
    watch = PtyWatch(e.ch, t0)
    watch.start()
    rc, out, err = e.virsh("start", DOM)
    start_ms = (time.monotonic() - t0) * 1e3
    ok = check(rc == 0 and f"Domain '{DOM}' started" in out, f"{what}: exit {rc}: {out}{err}")
    return ok, watch, start_ms


def s2vm_process_checks(e, pid, what):
    if not check(pid is not None, f"{what}: dominfo has no Id"):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        exe = os.path.realpath(f"/proc/{pid}/exe")
    except OSError as ex:
        check(False, f"{what}: dominfo Id {pid} is no process: {ex}")
        return
    check(argv[0] == e.ch.encode() and b"--api-socket" in argv and exe == e.s2vm_real,
          f"{what}: process {pid} is not s2vm run as cloud-hypervisor: {argv} ({exe})")


def wait_exit(pid, seconds, reaped=False):
    """Until the process is a zombie (or gone; with @reaped, only gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st = proc_state(pid)
        if st is None or (st == "Z" and not reaped):
            return True
        time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s2vm", required=True)
    ap.add_argument("--images", required=True)
    a = ap.parse_args()
    prefix, rc = libvirt_prefix()
    if prefix is None:
        return rc
    print(f"libvirt: {prefix}")
    # meson's timeout sends SIGTERM: unwind through the cleanup below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    t_all = time.monotonic()
    e = Env(a.s2vm, a.images, prefix)
    try:
        run(e)
    except Exception as ex:  # noqa: BLE001 - report, then clean up
        import traceback
        traceback.print_exc()
        check(False, f"exception: {ex!r}")
    finally:
        for w in WATCHES:
            w.stop.set()
        if FAILS:
            print(f"--- virtchd log ({e.log}), tail:\n{e.log_tail(40)}")
        e.cleanup()
    check(not [p for p in s2vm_pids(e.ch) if proc_state(p) != "Z"],
          "an s2vm outlived the cleanup")
    print(f"libvirt_test: {time.monotonic() - t_all:.1f} s, {len(NOTES)} notes")
    if FAILS:
        print(f"libvirt_test: FAIL ({len(FAILS)} failed checks)")
        for f in FAILS:
            print(f"  - {f.splitlines()[0]}")
        return 1
    print("libvirt_test: PASS")
    return 0


def run(e):
    # the unprivileged user must reach the kernel and s2vm
    r = e.as_user(["sh", "-c", 'test -r "$1" && test -x "$2"', "sh", e.kernel, e.ch])
    if r.returncode != 0:
        check(False, f"{e.kernel} or {e.ch} is not readable/executable by the user the "
              f"daemon runs as ({e.user or 'this user'})")
        return
    r = subprocess.run([e.ch, "--version"], capture_output=True, text=True, timeout=10)
    m = re.match(r"cloud-hypervisor (v\d+\.\d+\.\d+)", r.stdout)
    if not check(m, f"cloud-hypervisor --version: {r.stdout!r}"):
        return
    if not e.start_daemon():
        return

    rc, out, err = e.virsh("version")
    want = m.group(1)[1:]
    check(rc == 0 and f"Running hypervisor: CH {want}" in out,
          f"virsh version: exit {rc}, want 'Running hypervisor: CH {want}': {out}{err}")

    # ---- define
    xml = os.path.join(e.tmp, "dom.xml")
    with open(xml, "w") as f:
        f.write(domain_xml(e))
    os.chmod(xml, 0o644)
    if not define(e, xml):
        return
    st = listed(e)
    check(st == "shut off", f"list --all after define: {DOM} is {st!r}, want 'shut off'")

    # ---- start
    log_mark = len(e.log_text())
    ok, watch, start_ms = started(e, "start")
    if not ok:
        watch.stop.set()
        return
    print(f"virsh start: {start_ms:.0f} ms")
    try:
        first_run(e, watch, start_ms, log_mark)
    finally:
        watch.stop.set()
        watch.join(5)

    # ---- s2vm's own boot, to tell what libvirt adds (timings are reported, not asserted)
    own = own_boot_ms(e)
    if own is not None and E.first_line_ms:
        print(f"s2vm's own boot (s2vm run -> first console line, median of 5): {own:.0f} ms; "
              f"libvirt adds {E.first_line_ms[0] - own:.0f} ms (virsh start -> first line "
              f"{E.first_line_ms[0]:.0f} ms; target < 100 ms beyond the own boot)")

    # ---- second start + destroy
    st = listed(e)
    if st is None:
        note("libvirt 9.0's ch driver dropped the defined domain at destroy "
             "(virCHDomainRemoveInactive): defining it again")
        if not define(e, xml):
            return
    log_mark = len(e.log_text())
    ok, watch, _ = started(e, "second start")
    watch.stop.set()
    if not ok:
        return
    pid = dominfo(e, "running")
    s2vm_process_checks(e, pid, "second start")
    if pid:
        vcpus_check(e, pid, log_mark, "second start")
    rc, out, err = e.virsh("destroy", DOM)
    check(rc == 0 and f"Domain '{DOM}' destroyed" in out, f"destroy: exit {rc}: {out}{err}")
    if pid:
        check(wait_exit(pid, 10, reaped=True),
              f"destroy: s2vm {pid} still there 10 s later (state {proc_state(pid)})")
    watch.join(5)
    st = domstate(e)
    if st is None:
        note("after destroy the domain is gone (libvirt 9.0's ch driver removes defined "
             "domains at destroy); undefine has nothing left to remove")
        check(listed(e) is None, "list --all shows the domain domstate cannot find")
    else:
        check(st == "shut off", f"domstate after destroy: {st!r}, want 'shut off'")
        rc, out, err = e.virsh("undefine", DOM)
        check(rc == 0 and f"Domain '{DOM}' has been undefined" in out,
              f"undefine: exit {rc}: {out}{err}")
        check(listed(e) is None, "list --all still shows the domain after undefine")
    left = [p for p in s2vm_pids(e.ch) if proc_state(p) != "Z"]
    check(not left, f"s2vm processes left after destroy: {left}")

    # the daemon log: nothing s2vm caused
    bad = [ln for ln in e.log_text().splitlines()
           if re.search(r"curl_easy_perform|Unable to (connect|read)|failed to (create|boot|"
                        r"shutdown|pause|resume)|response code|Response code", ln)]
    check(not bad, "virtchd logged errors talking to s2vm:\n" + "\n".join(bad[:10]))


def vcpus_check(e, pid, log_mark, what):
    """vcpuinfo: NCPUS vCPUs, each a vcpuN thread of s2vm, and libvirt found them all in its
    one look at /proc/PID/task/*/comm right after vm.boot answered (it never looks again;
    a vCPU it missed has tid 0: vcpuinfo reports the whole process for it, vcpupin pins a
    daemon thread, and with none found vcpuinfo fails). Returns {N: tid}."""
    rc, out, err = e.virsh("vcpuinfo", DOM)
    nums = re.findall(r"^VCPU:\s*(\d+)", out, re.M)
    states = re.findall(r"^State:\s*(\S+)", out, re.M)
    check(rc == 0 and nums == [str(i) for i in range(NCPUS)] and states == ["running"] * NCPUS,
          f"{what}: vcpuinfo: exit {rc}, vCPUs {nums}, states {states}: {err.strip()}")
    threads = vcpu_threads(pid)
    check(sorted(threads) == list(range(NCPUS)) and len(set(threads.values())) == NCPUS,
          f"{what}: s2vm's threads named vcpuN: {threads}, want vcpu0..vcpu{NCPUS - 1}")
    # the look that counts is the first after vm.boot (later ones, for iothreads, are not
    # kept); it ends at the "Setting emulator tuning" step
    log = e.log_text()[log_mark:].split("Setting emulator tuning", 1)[0]
    found = {int(c): int(t) for c, t in re.findall(r"vcpu(\d+) -> tid: (\d+)", log)}
    mismatch = [ln for ln in log.splitlines() if "Mismatch in the number of cpus" in ln]
    check(not mismatch and found == threads,
          f"{what}: libvirt did not find every vCPU thread when vm.boot answered (it looks "
          f"once): it found {found}, s2vm has {threads}" +
          ("; daemon log: " + mismatch[0].split(": ", 1)[-1] if mismatch else ""))
    return threads


def own_boot_ms(e, runs=5):
    """s2vm's own boot, for comparison with `virsh start`: the same guest, memory and vCPUs
    run directly (as the daemon's user), spawn to its first console line; the median of
    @runs, or None."""
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen([e.ch, "--mem", f"{MEM_MIB}M", "--vcpus", str(NCPUS), e.kernel,
                              "--", "seconds=1"], env=e.env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, **e.user)
        line = p.stdout.readline()
        if line:
            times.append((time.monotonic() - t0) * 1e3)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()
        check(p.returncode == 0 and line.startswith(b"migstress: "),
              f"s2vm run migstress.elf directly: exit {p.returncode}, first line {line!r}")
    return sorted(times)[len(times) // 2] if times else None


def first_run(e, watch, start_ms, log_mark):
    # ---- dominfo: the definition, and the process behind it
    pid = dominfo(e, "running")
    s2vm_process_checks(e, pid, "start")
    if pid is None:
        return

    threads = vcpus_check(e, pid, log_mark, "start")
    # ---- suspend / resume (and the vCPU threads really stop)
    rc, out, err = e.virsh("suspend", DOM)
    check(rc == 0 and f"Domain '{DOM}' suspended" in out, f"suspend: exit {rc}: {out}{err}")
    dominfo(e, "paused")
    check(domstate(e) == "paused", "domstate after suspend")
    if threads:
        time.sleep(0.1)
        t1 = {c: cpu_ticks(pid, t) for c, t in threads.items()}
        time.sleep(0.5)
        t2 = {c: cpu_ticks(pid, t) for c, t in threads.items()}
        busy = {c: t2[c] - t1[c] for c in threads if t1[c] is not None and t2[c] is not None}
        check(busy and max(busy.values()) <= 2,
              f"paused vCPU threads used CPU: {busy} ticks in 0.5 s")
    rc, out, err = e.virsh("resume", DOM)
    check(rc == 0 and f"Domain '{DOM}' resumed" in out, f"resume: exit {rc}: {out}{err}")
    dominfo(e, "running")
    check(domstate(e) == "running", "domstate after resume")
    if threads:
        t1 = {c: cpu_ticks(pid, t) for c, t in threads.items()}
        time.sleep(0.5)
        t2 = {c: cpu_ticks(pid, t) for c, t in threads.items()}
        busy = {c: t2[c] - t1[c] for c in threads if t1[c] is not None and t2[c] is not None}
        check(busy and min(busy.values()) > 0,
              f"resumed vCPU threads used no CPU: {busy} ticks in 0.5 s")

    # ---- dumpxml: the serial pty, and the guest's console on it
    rc, out, err = e.virsh("dumpxml", DOM)
    check(rc == 0 and f"<name>{DOM}</name>" in out and f"<emulator>{e.ch}</emulator>" in out
          and f"<kernel>{e.kernel}</kernel>" in out and f"<vcpu placement='static'>{NCPUS}</vcpu>"
          in out, f"dumpxml: exit {rc}: {err}")
    m = re.search(r"<serial type='pty'>\s*<source path='(/dev/pts/\d+)'/>", out)
    if not m:
        why = [ln.split(": ", 2)[-1] for ln in e.log_text()[log_mark:].splitlines()
               if "virCHProcessUpdateConsole" in ln]
        check("<serial type='pty'>" in out, "dumpxml lost the serial")
        note("no serial pty in dumpxml (s2vm does not report vm.info config.serial.file "
             f"yet: {why[0] if why else 'nothing in the daemon log'}): console check skipped")
    else:
        path = m.group(1)
        if watch.path is None:
            # the watcher did not find the master among s2vm's fds: read the slave now
            note(f"the pty master was not seen among s2vm's fds; reading {path} from now on")
            watch.stop.set()
            watch.join(5)
            watch = PtyWatch(e.ch, watch.t0)
            watch.path = path
            watch.start()
        else:
            check(watch.path == path, f"dumpxml's pty {path} is not s2vm's ({watch.path})")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("migstress:" in ln for ln in watch.lines()):
            time.sleep(0.05)
        lines = watch.lines()
        print("console (pty):" + "".join("\n    " + ln for ln in lines[:5]))
        check(any(ln.startswith("migstress: ") for ln in lines),
              f"no migstress line on the pty {path} within 10 s: {lines[:5]}")
        if watch.first_line_ms is not None:
            print(f"virsh start -> first console line: {watch.first_line_ms:.0f} ms "
                  f"(virsh start itself: {start_ms:.0f} ms)")
            E.first_line_ms.append(watch.first_line_ms)
        if watch.echo:
            note(f"the pty {path} echoes (ECHO set): input to the guest would see its own "
                 "output; a cloud-hypervisor pty is raw")

        # ---- reboot: vm.reboot; the same process builds the VM again, the guest starts
        # over on the same pty (libvirt read its path once)
        starts = sum(ln.startswith("migstress: ") and "writing" in ln for ln in watch.lines())
        t0 = time.monotonic()
        rc, out, err = e.virsh("reboot", DOM)
        check(rc == 0 and f"Domain '{DOM}' is being rebooted" in out,
              f"reboot: exit {rc}: {out}{err}")
        while time.monotonic() - t0 < 15 and sum(
                ln.startswith("migstress: ") and "writing" in ln for ln in watch.lines()) <= starts:
            time.sleep(0.05)
        again = sum(ln.startswith("migstress: ") and "writing" in ln for ln in watch.lines())
        check(again > starts, f"reboot: the guest did not start again on {path} within 15 s "
              f"({starts} starts before, {again} after)")
        if again > starts:
            print(f"virsh reboot -> the guest's first line again: "
                  f"{(time.monotonic() - t0) * 1e3:.0f} ms")
        check(domstate(e) == "running", "domstate after reboot")
        check(dominfo(e, "running") == pid, "reboot: another s2vm process (want the same)")

    # ---- shutdown: vm.shutdown, s2vm exits
    rc, out, err = e.virsh("shutdown", DOM)
    check(rc == 0 and f"Domain '{DOM}' is being shutdown" in out, f"shutdown: exit {rc}: {out}{err}")
    t0 = time.monotonic()
    exited = wait_exit(pid, 20)
    check(exited, f"shutdown: s2vm {pid} still runs 20 s later (state {proc_state(pid)})")
    status = exit_status(pid) if exited else None
    if status is not None:  # a zombie until libvirt reaps it (at destroy)
        check(status == 0, f"shutdown: s2vm exited with wait status {status:#x}, want 0")
    st = None
    while time.monotonic() - t0 < 20:
        st = domstate(e)
        if st == "shut off" or (exited and st == "in shutdown"):
            break
        time.sleep(0.5)
    if st == "in shutdown" and exited:
        note(f"s2vm exited (wait status {status}) {time.monotonic() - t0:.1f} s after shutdown; domstate stays "
             "'in shutdown' (libvirt 9.0's ch driver never watches the process): destroy "
             "to get it to 'shut off'")
        rc, out, err = e.virsh("start", DOM)
        check(rc != 0 and "already active" in err, f"start while 'in shutdown': exit {rc}: {out}{err}")
        rc, out, err = e.virsh("destroy", DOM)
        check(rc == 0 and f"Domain '{DOM}' destroyed" in out, f"destroy after shutdown: exit {rc}: {out}{err}")
        check(wait_exit(pid, 5, reaped=True), f"s2vm {pid} not reaped by destroy")
    else:
        check(st == "shut off", f"domstate after shutdown: {st!r}, want 'shut off'")


if __name__ == "__main__":
    sys.exit(main())
