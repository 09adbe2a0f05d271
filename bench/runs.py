"""bench/runs.py - the runs the benchmark families share, each judged from
its logs: one master and one `./slave --count N` process (SyncRun, sections
1-4 and 9), and a master with slaves of their own flags, one process each
(Group, sections 7 and 8), several groups at once (run_groups). Starting and
stopping them is procs.py's; what each family measures is its own file's.
"""

import collections
import itertools
import time

from procs import BenchError, Monitor, proc_status
from berkeley.analysis import MASTER_ID, NothingToAnalyse, analyse  # found on the path procs set
from berkeley.clock import ClockTrack
from berkeley.logs import read_events, read_logs
from berkeley.units import NS_PER_MS

CONNECT_S_PER_SLAVE = 0.01  # generous time for the slaves to connect, beyond a fixed 20 s
ROUND_S_PER_SLAVE = 0.0002  # generous time a round may take per slave, beyond its interval


# ---------------------------------------------------------------------------
# One synchronization run: a master and one ./slave --count N process
#
# Offsets: the master starts at offset 0 and every slave at -(N+1) s, with
# --max-skew 0 (every reading counts). Round 1's average is then -N s, so
# every slave is corrected by about +1 s and the master by about -N s: all
# steps. With random offsets within +/-5 s, a clock that lands within 128 ms
# of the average is slewed at 500 ppm for up to 256 s, and every later round
# would measure that slew instead of the precision.

def sync_flags(n, seed, rounds, interval_s, extra=()):
    master = ["--rounds", str(rounds), "--interval", str(interval_s), "--offset", "0", "--max-skew", "0",
              "--seed", str(seed), "--quiet", *extra]
    slaves = ["--offset", str(-(n + 1) * 1000), "--seed", str(seed + 1000), *extra]
    return master, slaves


class SyncRun:
    """A master for N slaves and one slave process, started at once; finish()
    waits for both to exit and analyses their logs."""

    def __init__(self, procs, name, n, master_flags, slave_flags, monitor=False):
        self.procs, self.name, self.n = procs, name, n
        self.master = procs.master(n, name + "-master", master_flags)
        self.baseline_kib = proc_status(self.master.pid).get("VmRSS")  # right after `start`
        self.slaves = procs.slaves(self.master.port, n, name + "-slaves", slave_flags)
        self.monitor = Monitor([self.master, self.slaves]) if monitor else None
        if self.monitor:
            self.monitor.start()

    def finish(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        try:
            self.procs.wait(self.master, deadline)
            self.procs.wait(self.slaves, deadline + 10)
        finally:
            if self.monitor:
                self.monitor.stop()
        logs = read_logs([self.master.log, self.slaves.log], warn=self.procs.warn)
        tracks = {c: ClockTrack(c, ev) for c, ev in logs.items() if ev}
        self.tracks = tracks
        self.result = analyse(tracks, NS_PER_MS)
        self.master_events = tracks[MASTER_ID].events
        return self

    def rounds(self, event):
        """The master's events of one kind, by round number."""
        return {e["round"]: e for e in self.master_events if e["event"] == event}

    def rtts(self, r=None):
        return [e["rtt_ns"] for e in self.master_events
                if e["event"] == "estimate" and (r is None or e["round"] == r)]


def run_timeout_s(n, rounds, interval_s):
    return 20 + n * CONNECT_S_PER_SLAVE + rounds * (interval_s + n * ROUND_S_PER_SLAVE)


# ---------------------------------------------------------------------------
# Groups of one master and slaves with flags of their own (7 and 8)

class Group:
    """A master and its slaves, one ./slave process each so that each has an
    offset, a drift or a fault of its own, all started at once. finish()
    waits for every one to exit and replays their logs: .tracks by clock id,
    .honest (the master first) and .faulty (clock ids), .starts (the master's
    round starts, host time by round)."""

    def __init__(self, procs, name, master_flags, honest, faulty, timeout_s):
        """honest and faulty: a list of flags for each slave."""
        self.procs, self.name = procs, name
        self.deadline = time.monotonic() + timeout_s
        self.master = procs.master(len(honest) + len(faulty), name + "-master", master_flags)
        self.slaves = []
        for kind, flag_lists in (("h", honest), ("f", faulty)):
            for i, flags in enumerate(flag_lists):
                ident = "%s-%s%d" % (name, kind, i + 1)
                self.slaves.append((kind, procs.slaves(self.master.port, 1, ident, flags, ident=ident)))

    def finish(self):
        self.procs.wait(self.master, self.deadline)
        for _, p in self.slaves:
            self.procs.wait(p, self.deadline + 10)
        self.tracks, self.honest, self.faulty = {}, [MASTER_ID], []
        for kind, p in [("h", self.master)] + self.slaves:
            events = read_events(p.log, self.procs.warn)
            if not events:
                raise BenchError("%s logged nothing" % p.name)
            clock_id = events[0]["id"]
            self.tracks[clock_id] = ClockTrack(clock_id, events)
            if p is not self.master:
                (self.honest if kind == "h" else self.faulty).append(clock_id)
        self.starts = {e["round"]: e["real_ns"] for e in self.tracks[MASTER_ID].events
                       if e["event"] == "round"}
        return self

    def offsets(self, ids, t):
        """The true offsets of clocks `ids` at host time t, just before any step at t."""
        return [self.tracks[c].offset_at(t, before_step=True) for c in ids]

    def spread(self, ids, t):
        offsets = self.offsets(ids, t)
        return max(offsets) - min(offsets)


def run_groups(rows, start, finish, at_once):
    """start(row) -> Group for each row, at most at_once running together;
    finish(row, group or the BenchError that stopped it) in the rows' order,
    the next row starting as each one is finished."""
    rows, running = iter(rows), collections.deque()

    def launch(row):
        try:
            running.append((row, start(row)))
        except BenchError as e:
            running.append((row, e))

    for row in itertools.islice(rows, at_once):
        launch(row)
    while running:
        row, group = running.popleft()
        if not isinstance(group, BenchError):
            try:
                group = group.finish()
            except (BenchError, NothingToAnalyse) as e:
                group = BenchError(str(e))
        finish(row, group)
        following = next(rows, None)
        if following is not None:
            launch(following)
