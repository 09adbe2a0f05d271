"""bench/procs.py - the processes a benchmark starts, and what /proc says of them.

Processes are started and stopped through berkeley/processes.py's Processes
(each remembered and stopped by its own PID at the end; nothing else is
touched); a master's port is read from its log by Processes.start_master,
whose LogTail then follows the log from a kept offset. Every wait has a
deadline. Standard library only; Linux only (/proc).
"""

import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from berkeley.processes import MasterDidNotStart, Processes  # noqa: E402

# BERKELEY_BIN_DIR benchmarks other builds, as it tests them in tests/harness.py.
BIN_DIR = os.environ.get("BERKELEY_BIN_DIR", ROOT)
MASTER = os.path.join(BIN_DIR, "master")
SLAVE = os.path.join(BIN_DIR, "slave")


class BenchError(Exception):
    """A run could not be measured: a program failed, or a wait timed out."""


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
                cpu = Processes.cpu_ns(p)
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


class Procs(Processes):
    """The processes of one benchmark, their output and logs in log_dir; the
    logs' unusable lines go to warn."""

    def __init__(self, log_dir, warn):
        os.makedirs(log_dir, exist_ok=True)
        super().__init__(log_dir)
        self.warn = warn

    def master(self, n, name, flags, timeout_s=10):
        """./master N on a free port; returns once it has logged `start`
        (p.port, p.log, p.tail set; the tail has consumed the start event)."""
        try:
            return self.start_master([MASTER, n, *flags], name, timeout_s, self.warn)
        except MasterDidNotStart as e:
            raise BenchError(str(e)) from None

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
