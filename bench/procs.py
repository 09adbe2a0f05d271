"""bench/procs.py - the processes a benchmark starts, their logs, and /proc.

Every process is started through Procs, remembered, and stopped by its own
PID at the end; nothing else is touched. Every wait has a deadline. Logs are
tailed from a kept offset, so a growing log is never read twice.
Standard library only; Linux only (/proc).
"""

import json
import os
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASTER = os.path.join(ROOT, "master")
SLAVE = os.path.join(ROOT, "slave")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_PER_S = 1_000_000_000
POLL_S = 0.005  # how often a wait looks at a log
STOP_GRACE_S = 3  # after SIGTERM, before SIGKILL


class BenchError(Exception):
    """A run could not be measured: a program failed, or a wait timed out."""


class LogTail:
    """The events appended to a JSON-lines log since the last read_new()."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""

    def read_new(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # an unfinished last line waits for its end
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # analyze.py reports corrupt lines when it reads the whole log
        return events


def proc_status(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB, ...} of a live process; {} once it has exited."""
    values = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Vm"):
                    key, value = line.split(":", 1)
                    values[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def proc_cpu_ns(pid):
    """User + system CPU time of a process so far (clock-tick resolution), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) * NS_PER_S // CLK_TCK


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except (FileNotFoundError, ProcessLookupError):
        return None


class Monitor(threading.Thread):
    """Samples processes every period_s while they run: the largest VmRSS seen,
    the last VmHWM read, and (host time, CPU ns) pairs for each."""

    def __init__(self, procs, period_s=0.01):
        super().__init__(daemon=True)
        self.procs, self.period_s = procs, period_s
        self.max_rss_kib = {p.name: 0 for p in procs}
        self.last_hwm_kib = {p.name: 0 for p in procs}
        self.cpu = {p.name: [] for p in procs}
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            alive = False
            for p in self.procs:
                if p.returncode is not None:
                    continue
                status = proc_status(p.pid)
                if "VmRSS" not in status:  # exited (a zombie keeps no memory figures)
                    continue
                alive = True
                self.max_rss_kib[p.name] = max(self.max_rss_kib[p.name], status["VmRSS"])
                self.last_hwm_kib[p.name] = status.get("VmHWM", self.last_hwm_kib[p.name])
                cpu = proc_cpu_ns(p.pid)
                if cpu is not None:
                    self.cpu[p.name].append((time.time_ns(), cpu))
            if not alive:
                return
            self.done.wait(self.period_s)

    def stop(self):
        self.done.set()
        self.join(timeout=5)

    def cpu_between(self, name, t0_real_ns, t1_real_ns):
        """CPU ns a process used between two host times (nearest samples), or None."""
        samples = self.cpu[name]
        if not samples:
            return None
        before = [c for t, c in samples if t <= t0_real_ns] or [samples[0][1]]
        after = [c for t, c in samples if t >= t1_real_ns] or [samples[-1][1]]
        return after[0] - before[-1]


class Procs:
    """The processes of one benchmark, their output and logs in log_dir."""

    def __init__(self, log_dir):
        self.dir = log_dir
        self.procs = []
        os.makedirs(log_dir, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv, name):
        with open(self.path(name + ".out"), "w") as out, open(self.path(name + ".err"), "w") as err:
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        p.name = name
        self.procs.append(p)
        return p

    def stderr_of(self, p):
        with open(self.path(p.name + ".err"), errors="replace") as f:
            return " / ".join(f.read().strip().splitlines()[:2])[:300]  # the error, not the usage after it

    def master(self, n, name, flags, timeout_s=10):
        """./master N on a free port; returns once it has logged `start`
        (p.port, p.log, p.tail set; the tail has consumed the start event)."""
        p = self.start([MASTER, str(n), "--port", "0", "--log", self.path(name + ".log"), *flags], name)
        p.log, p.tail = self.path(name + ".log"), LogTail(self.path(name + ".log"))
        deadline = time.monotonic() + timeout_s
        while True:
            for e in p.tail.read_new():
                if e.get("event") == "start":
                    p.port = e["port"]
                    return p
            if p.poll() is not None:
                raise BenchError("%s exited with %d before listening: %s" % (name, p.returncode, self.stderr_of(p)))
            if time.monotonic() > deadline:
                raise BenchError("%s did not log `start` within %g s" % (name, timeout_s))
            time.sleep(POLL_S)

    def slaves(self, port, count, name, flags, log=True, ident="slave"):
        """One ./slave process running `count` slaves ident-1..ident-count."""
        argv = [SLAVE, "--port", str(port), "--id", ident, "--count", str(count), "--quiet", *flags]
        if log:
            argv += ["--log", self.path(name + ".log")]
        p = self.start(argv, name)
        p.log = self.path(name + ".log") if log else None
        return p

    def wait(self, p, deadline):
        """Wait for p to exit by a time.monotonic() deadline; it must exit 0."""
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError("%s still running after the time allowed" % p.name) from None
        if p.returncode != 0:
            raise BenchError("%s exited with %d: %s" % (p.name, p.returncode, self.stderr_of(p)))

    def stop_all(self):
        """SIGTERM, then SIGKILL, to every process started here that still runs."""
        running = [p for p in self.procs if p.poll() is None]
        for p in running:
            p.terminate()
        for p in running:
            try:
                p.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
