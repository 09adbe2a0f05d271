"""Helpers for the integration tests: start the real binaries on free
loopback ports, wait on what they log (never on sleeps), read their JSON-lines
logs and measure the true spread of their clocks against the host clock.

The log reader, the clock model and the process launcher are those of
berkeley/, analyze.py's too (the repo root is put on sys.path, so tests can
import berkeley and analyze): every process started here is remembered and
stopped by PID at the end; no other process is touched."""

import os
import socket
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from berkeley.clock import ClockTrack, anchor_of  # noqa: E402
from berkeley.logs import LogTail  # noqa: E402
from berkeley.processes import MasterDidNotStart, Processes  # noqa: E402

# BERKELEY_BIN_DIR runs the same tests against other builds (the sanitizer
# build in build/asan, say).
BIN_DIR = os.environ.get("BERKELEY_BIN_DIR", ROOT)
MASTER = os.path.join(BIN_DIR, "master")
SLAVE = os.path.join(BIN_DIR, "slave")
WAIT_S = 60  # generous: a loaded 2-core CI machine can be slow


def free_port():
    """A port that was free a moment ago (for tests that must start slaves
    before the master; elsewhere the master binds port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_line(message):
    """The tests' warn for the log reader: a bad log line fails the test
    instead of being skipped."""
    raise AssertionError("unusable log line: " + message)


def read_log(path):
    """The events of a log ([] before it exists), skipping nothing silently.
    Its writer may be running: a last line not yet whole is not read (one
    write(2) a line, but a reader can see a write half done), so that a test
    never takes a line being written for a corrupt one."""
    return LogTail(path, warn=bad_line).read_new()


def wait_until(predicate, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Run(Processes):
    """One test's processes, their output and their logs in a temporary directory."""

    def __init__(self):
        super().__init__(tempfile.mkdtemp(prefix="berkeley-test-"))

    def log(self, name):
        return self.path(name + ".log")

    def master(self, n, *args, port=0, name="master", **start_args):
        """./master N ARGS logging to NAME.log: on a free port, returning once
        it listens (p.port, p.log, p.tail), or on the port given, at once."""
        if port == 0:
            try:
                return self.start_master([MASTER, n, *args], name, WAIT_S, bad_line, **start_args)
            except MasterDidNotStart as e:
                raise AssertionError(str(e)) from None
        p = self.start([MASTER, str(n), "--port", str(port), "--log", self.log(name), *map(str, args)], name,
                       **start_args)
        p.port = port
        return p

    def slave(self, port, ident, *args):
        argv = [SLAVE, "--port", str(port), "--id", ident, "--log", self.log(ident), *map(str, args)]
        return self.start(argv, ident)

    def wait(self, p, timeout=WAIT_S):
        return p.wait(timeout=timeout)


def final_spread_ns(logs):
    """Largest minus smallest of where each clock's last correction puts it
    (one list of events each): its true offset as that correction began, plus
    what it still had to slew. Replayed with the clock model (berkeley/clock.py). (Not
    the offsets at the end of the longest slew: a 20 ms slew takes 40 s at
    500 ppm, and 40 s of free running would weigh each clock's rate trim,
    learned from a few 0.2 s rounds, more than the corrections under test.)"""
    targets = []
    for i, events in enumerate(logs):
        track = ClockTrack(str(i), events)
        adjusts = [e for e in track.events if e["event"] == "adjust"]
        assert adjusts, "a clock was never adjusted"
        last = anchor_of(adjusts[-1])
        targets.append(last.offset_ns + last.slew_ns)
    return max(targets) - min(targets)


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
