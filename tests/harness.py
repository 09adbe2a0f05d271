"""Helpers for the integration tests: start the real binaries on free
loopback ports, wait on what they log (never on sleeps), read their JSON-lines
logs and measure the true spread of their clocks against the host clock.

Every process started here is remembered and killed by PID at the end; no
other process is touched."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# BERKELEY_BIN_DIR runs the same tests against other builds (the sanitizer
# build in build/asan, say).
BIN_DIR = os.environ.get("BERKELEY_BIN_DIR", ROOT)
MASTER = os.path.join(BIN_DIR, "master")
SLAVE = os.path.join(BIN_DIR, "slave")
WAIT_S = 60  # generous: a loaded 2-core CI machine can be slow
NS_PER_S = 1_000_000_000


def free_port():
    """A port that was free a moment ago (for tests that must start slaves
    before the master; elsewhere the master binds port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_log(path):
    """The JSON objects of a log, skipping nothing silently: a bad line fails."""
    events = []
    if not os.path.exists(path):
        return events
    with open(path) as f:
        for line in f:
            if line.strip():
                events.append(json.loads(line))
    return events


def wait_until(predicate, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Run:
    """One test's processes and their logs in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-test-")
        self.procs = []

    def log(self, name):
        return os.path.join(self.dir, name + ".log")

    def start(self, argv, name):
        out = open(os.path.join(self.dir, name + ".out"), "w")
        err = open(os.path.join(self.dir, name + ".err"), "w")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        p.name = name
        self.procs.append(p)
        return p

    def output(self, name):
        with open(os.path.join(self.dir, name + ".out")) as f:
            out = f.read()
        with open(os.path.join(self.dir, name + ".err")) as f:
            return out, f.read()

    def master(self, n, *args, port=0, name="master"):
        argv = [MASTER, str(n), "--port", str(port), "--log", self.log(name), *map(str, args)]
        p = self.start(argv, name)
        if port == 0:
            start = wait_until(lambda: [e for e in read_log(self.log(name)) if e["event"] == "start"],
                               "the master to listen")
            p.port = start[0]["port"]
        else:
            p.port = port
        return p

    def slave(self, port, ident, *args):
        argv = [SLAVE, "--port", str(port), "--id", ident, "--log", self.log(ident), *map(str, args)]
        return self.start(argv, ident)

    def wait(self, p, timeout=WAIT_S):
        return p.wait(timeout=timeout)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()


def true_offset_at(events, t_real):
    """The clock's true offset (simulated minus host time) at host time t_real,
    from its last `start` or `adjust` event at or before t_real (before the
    first: backwards from it at its rate). From that event on the clock runs at
    the rate it logs (an adjust without rate_ppb keeps the rate), and a slewed
    adjust (mode "slew") adds its correction at slew_rate_ppb until all of it
    is in; a step (or an adjust without mode) is already in clock_ns."""
    anchors = [e for e in events if e["event"] in ("start", "adjust")] or events[:1]
    base, rate = anchors[0], anchors[0].get("rate_ppb", 0)
    for e in anchors[1:]:
        if e["real_ns"] > t_real:
            break
        base, rate = e, e.get("rate_ppb", rate)
    elapsed = t_real - base["real_ns"]
    slewed = 0  # in ns x 1e9, like the drift term: the sum is floored once
    if base.get("mode") == "slew" and elapsed > 0:
        slewed = min(abs(base["correction_ns"]) * NS_PER_S, elapsed * base["slew_rate_ppb"])
        slewed = slewed if base["correction_ns"] >= 0 else -slewed
    return base["clock_ns"] - base["real_ns"] + (elapsed * rate + slewed) // NS_PER_S


def applied_at(adjust):
    """Host time by which an adjust's correction is all in: at once for a step,
    at the end of the slew (rounded up to whole ns) for a slew."""
    if adjust.get("mode") != "slew":
        return adjust["real_ns"]
    return adjust["real_ns"] - (-abs(adjust["correction_ns"]) * NS_PER_S // adjust["slew_rate_ppb"])


def final_spread_ns(logs):
    """Largest minus smallest true offset of all clocks at one common host
    instant: once every clock's last correction is fully applied (the latest
    step, or the latest end of a slew, among their last adjusts)."""
    last_adjusts = []
    for events in logs:
        adjusts = [e for e in events if e["event"] == "adjust"]
        assert adjusts, "a clock was never adjusted"
        last_adjusts.append(adjusts[-1])
    t = max(applied_at(a) for a in last_adjusts)
    offsets = [true_offset_at(events, t) for events in logs]
    return max(offsets) - min(offsets)


class RawPeer:
    """A scripted peer speaking raw TCP: a misbehaving slave (connect) or,
    from an accepted socket, a misbehaving master."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(WAIT_S)
        self.buf = b""

    @classmethod
    def connect(cls, port):
        return cls(socket.create_connection(("127.0.0.1", port), timeout=WAIT_S))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        """The next line without its newline, or None at end of stream."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def lines_until_closed(self):
        """Everything the other side says until it closes the connection;
        then our end is closed too."""
        out = []
        while True:
            line = self.line()
            if line is None:
                self.close()
                return out
            out.append(line)

    def close(self):
        self.sock.close()


class RunTestCase(unittest.TestCase):
    """A test with its own Run, closed at the end, and its logs at hand."""

    def setUp(self):
        self.run_ = Run()
        self.addCleanup(self.run_.close)

    def events(self, name, kind=None):
        return [e for e in read_log(self.run_.log(name)) if kind is None or e["event"] == kind]
