"""Synthetic logs with known answers for the tests of berkeley/ and of
analyze.py: clocks written the way ./master and ./slave log, whole ms and
whole ppm, so that every true offset is an exact number of ns."""

import json
import os

from berkeley.clock import ClockTrack
from berkeley.units import NS_PER_MS as MS, NS_PER_S as S

T0 = 1_700_000_000 * S  # host time of the synthetic run's start


class Clock:
    """A synthetic clock, written the way the binaries log. Times are whole ms
    after T0 and rates whole ppm, so every offset is a whole number of ns. From
    each correction on, the clock gains rate_ppb / 1000 ns per ms and, while a
    slew is in progress, slew_ppb / 1000 ns per ms more until it is all in."""

    def __init__(self, ident, offset_ns, rate_ppb):
        self.id, self.offset_ns, self.rate_ppb = ident, offset_ns, rate_ppb
        self.anchors = [(0, offset_ns, rate_ppb, 0, 0)]  # (t_ms, offset there, rate_ppb, slew_ns, slew_ppb)
        self.steps = []  # (t_ms, correction_ns)
        self.lines = []

    def offset(self, t_ms, before_step=False):
        since = [a for a in self.anchors if a[0] < t_ms or (a[0] == t_ms and not before_step)] or self.anchors[:1]
        t0, offset, rate, slew, slew_ppb = since[-1]
        ramp = min(abs(slew), (t_ms - t0) * slew_ppb // 1000)
        return offset + (t_ms - t0) * rate // 1000 + (ramp if slew >= 0 else -ramp)

    def log(self, t_ms, event, **fields):
        real = T0 + t_ms * MS
        line = {"event": event, "id": self.id, "clock_ns": real + self.offset(t_ms), "real_ns": real}
        line.update(fields)
        self.lines.append(json.dumps(line))

    def adjust(self, t_ms, rnd, correction_ns, mode="step", rate_ppb=None, slew_ppb=500_000):
        """A correction, stepped or slewed; without rate_ppb the rate is unchanged."""
        before = self.offset(t_ms, before_step=True)
        rate = self.anchors[-1][2] if rate_ppb is None else rate_ppb
        if mode == "slew":
            self.anchors.append((t_ms, before, rate, correction_ns, slew_ppb))
        else:
            self.anchors.append((t_ms, before + correction_ns, rate, 0, 0))
        self.steps.append((t_ms, correction_ns))
        fields = {"round": rnd, "correction_ns": correction_ns, "mode": mode, "rate_ppb": rate,
                  "trim_ppb": rate - self.rate_ppb}
        if mode == "slew":
            fields["slew_rate_ppb"] = slew_ppb
        self.log(t_ms, "adjust", **fields)

    def write(self, directory):
        path = os.path.join(directory, self.id + ".log")
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        return path


def synthetic_run():
    """Master (0 ppb), slave-1 (+50 ppm), slave-2 (-20 ppm). Round 1 makes all
    three meet exactly at +0.5 s; round 2 leaves slave-2 300 ns ahead. The
    master's estimates are off by known amounts."""
    m, s1, s2 = Clock("master", 0, 0), Clock("slave-1", 3 * S, 50_000), Clock("slave-2", -1500 * MS, -20_000)
    m.log(0, "start", port=1, slaves=2, offset_ns=0, rate_ppb=0, seed=1)
    for s in (s1, s2):
        s.log(0, "start", offset_ns=s.offset_ns, rate_ppb=s.rate_ppb, seed=1)
    errors = {1: {"slave-1": 1234, "slave-2": -567}, 2: {"slave-1": 10, "slave-2": -2000}}
    meet = 500 * MS
    for rnd, base, extra in ((1, 1000, 0), (2, 2000, 300)):
        m.log(base, "round", round=rnd)
        for k, s in enumerate((s1, s2)):
            s.log(base + 1 + k, "reply", round=rnd, probe=1)
            s.log(base + 3 + k, "reply", round=rnd, probe=2)  # the last reply: where errors are judged
            true = s.offset(base + 3 + k) - m.offset(base + 3 + k)
            m.log(base + 5, "estimate", slave=s.id, round=rnd, estimate_ns=true + errors[rnd][s.id],
                  rtt_ns=1000, correction_ns=0, included=True)
        # Corrections chosen so that at base + 12 ms (the last step) they meet.
        m.adjust(base + 10, rnd, meet - m.offset(base + 12, before_step=True))
        s1.adjust(base + 11, rnd, meet - s1.offset(base + 12, before_step=True))
        s2.adjust(base + 12, rnd, meet + extra - s2.offset(base + 12, before_step=True))
    for c in (m, s1, s2):
        c.log(2100, "exit", code=0, reason="done")
    return m, s1, s2


def slewing_run():
    """Slews and trims. Master (0 ppm), slave-1 (+50 ppm), slave-2 (-20 ppm).
    Round 1 steps all three to +0.5 s at 1012 ms and trims slave-1 to +10 ppm
    and slave-2 to 0. Round 2: the master slews +2 us at 500 ppm (done at
    2014 ms); slave-1 slews -200 us at 100 ppm, which would take 2 s: round 3
    begins at 3000 ms with it still slewing, and its step at 3011 ms discards
    the rest; slave-1 is trimmed to 0; slave-2 steps -1 us. Round 3: the
    master slews -1 us (done at 3012 ms) and is trimmed to +1 ppm; slave-1
    steps +90.002 us; slave-2 slews +1.5 us (done at 3015 ms), trimmed to +3 ppm.
    The master's round-3 estimates are off by +100 and -100 ns."""
    m, s1, s2 = Clock("master", 0, 0), Clock("slave-1", 3 * S, 50_000), Clock("slave-2", -1500 * MS, -20_000)
    m.log(0, "start", port=1, slaves=2, offset_ns=0, rate_ppb=0, seed=1)
    for s in (s1, s2):
        s.log(0, "start", offset_ns=s.offset_ns, rate_ppb=s.rate_ppb, seed=1)
    m.log(1000, "round", round=1)
    m.adjust(1010, 1, 500 * MS, "step", rate_ppb=0)
    s1.adjust(1011, 1, -2_500_050_560, "step", rate_ppb=10_000)  # to 500 ms - 10 ns, +10 ns by 1012 ms
    s2.adjust(1012, 1, 2_000_020_240, "step", rate_ppb=0)
    m.log(2000, "round", round=2)
    m.adjust(2010, 2, 2000, "slew", rate_ppb=0)
    s1.adjust(2011, 2, -200_000, "slew", rate_ppb=0, slew_ppb=100_000)
    s2.adjust(2012, 2, -1000, "step", rate_ppb=0)
    m.log(3000, "round", round=3)
    for k, (s, error) in enumerate(((s1, 100), (s2, -100))):
        s.log(3003 + k, "reply", round=3, probe=1)
        m.log(3005, "estimate", slave=s.id, round=3, estimate_ns=s.offset(3003 + k) - m.offset(3003 + k) + error,
              rtt_ns=1000, correction_ns=0, included=True)
    m.adjust(3010, 3, -1000, "slew", rate_ppb=1000)
    s1.adjust(3011, 3, 90_002, "step", rate_ppb=0)
    s2.adjust(3012, 3, 1500, "slew", rate_ppb=3000)
    for c in (m, s1, s2):
        c.log(3100, "exit", code=0, reason="done")
    return m, s1, s2


def textbook_run(readings=("3:00", "3:25", "2:50"), rate_ppb=0):
    """The textbook's example: as round 1 begins (1000 ms) the master reads
    readings[0] and slave-1, slave-2 the others (times of day, UTC); round 1
    steps every clock to their average, round 2 corrects them by a few ns."""
    def seconds(text):
        h, m = text.split(":")
        return (int(h) * 60 + int(m)) * 60
    at_round1_s = (T0 // S + 1) % 86400  # the host's time of day at 1000 ms
    clocks = [Clock(ident, (seconds(text) - at_round1_s) * S, rate_ppb)
              for ident, text in zip(("master", "slave-1", "slave-2"), readings)]
    for c in clocks:
        c.log(0, "start", offset_ns=c.offset_ns, rate_ppb=rate_ppb, seed=1)
    m = clocks[0]
    for rnd, base in ((1, 1000), (2, 2000)):
        m.log(base, "round", round=rnd)
        average = sum(c.offset(base + 10) for c in clocks) // len(clocks)
        for k, c in enumerate(clocks):
            c.adjust(base + 10 + k, rnd, average - c.offset(base + 10 + k, before_step=True) + (k - 1) * 7)
    return clocks


def events_of(c):
    return [json.loads(line) for line in c.lines]


def tracks_of(*clocks):
    return {c.id: ClockTrack(c.id, [json.loads(line) for line in c.lines]) for c in clocks}


def failover_run():
    """Master, slave-1 (+2 s) and slave-2 (-1 s), no drift. Rounds 1 and 2
    by the master bring all three to +0.5 s (slave-2 300 ns above after
    round 2); the master's last event is at 2020 ms, with no `exit`: it
    died. At 2500 ms slave-1 takes over (epoch 2, after round 2) and runs
    round 3 at 2800 ms, which leaves slave-2 100 ns above it."""
    m, s1, s2 = Clock("master", 0, 0), Clock("slave-1", 2 * S, 0), Clock("slave-2", -S, 0)
    m.log(0, "start", port=1, slaves=2, offset_ns=0, rate_ppb=0, seed=1)
    for s in (s1, s2):
        s.log(0, "start", offset_ns=s.offset_ns, rate_ppb=0, seed=1)
    meet = 500 * MS
    for rnd, base, extra in ((1, 1000, 0), (2, 2000, 300)):
        m.log(base, "round", round=rnd)
        for k, c in enumerate((m, s1, s2)):
            c.adjust(base + 10 + k, rnd, meet + (extra if c is s2 else 0) - c.offset(base + 10 + k, before_step=True))
    m.log(2020, "round_done", round=2)
    s1.log(2500, "takeover", epoch=2, round=2, old_master="127.0.0.1:1", address="127.0.0.1:2")
    s1.log(2800, "round", round=3)
    s1.adjust(2810, 3, 0)
    s2.adjust(2811, 3, meet + 100 - s2.offset(2811, before_step=True))
    for c in (s1, s2):
        c.log(2900, "exit", code=0, reason="done")
    return m, s1, s2


def stubborn_run():
    """synthetic_run and a third slave 1 s ahead that acknowledges its
    corrections and applies none (`ignored`)."""
    clocks = list(synthetic_run())
    stubborn = Clock("slave-3", 1 * S, 0)
    stubborn.log(0, "start", offset_ns=S, rate_ppb=0, seed=1)
    for rnd, base in ((1, 1000), (2, 2000)):
        stubborn.log(base + 13, "ignored", round=rnd, correction_ns=-S + 500 * MS)
    return clocks + [stubborn]
