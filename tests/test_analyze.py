"""Tests of analyze.py: the clock model and the analysis on synthetic logs with
known offsets, drifts and corrections (exact figures), its handling of bad and
empty logs, and end to end against the real ./master and ./slave.

Run: cd tests && python3 -m unittest test_analyze -v"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import ROOT, SLAVE, WAIT_S, Run, final_spread_ns, free_port, read_log, wait_until
import analyze  # found on the path harness set
from berkeley import analysis, clock, logs, plot, units
from berkeley.units import NS_PER_MS as MS, NS_PER_S as S

ANALYZE = os.path.join(ROOT, "analyze.py")
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
    return {c.id: clock.ClockTrack(c.id, [json.loads(line) for line in c.lines]) for c in clocks}


def run_analyze(*args, timeout=WAIT_S):
    return subprocess.run([sys.executable, ANALYZE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class ClockModelTest(unittest.TestCase):
    def track(self, *events):
        return clock.ClockTrack("c", [dict(e, id="c") for e in events])

    def test_extrapolates_at_its_rate_forwards_and_backwards(self):
        t = self.track({"event": "start", "clock_ns": 10_000 + 7, "real_ns": 10_000, "rate_ppb": 1_000_000})
        self.assertEqual(t.offset_at(10_000), 7)
        self.assertEqual(t.offset_at(10_000 + 5_000), 7 + 5)   # 1000 ppm: 5 ns per 5 us
        self.assertEqual(t.offset_at(10_000 - 5_000), 7 - 5)   # before the first event
        self.assertEqual(t.offset_at(10_000 - 1_500), 7 - 2)   # floored, as clock.hpp floors

    def test_a_step_counts_after_it_but_not_just_before(self):
        t = self.track({"event": "start", "clock_ns": 100, "real_ns": 0, "rate_ppb": 0},
                       {"event": "adjust", "clock_ns": 1000 + 100 - 40, "real_ns": 1000, "round": 1,
                        "correction_ns": -40, "mode": "step", "rate_ppb": 0, "trim_ppb": 0})
        self.assertEqual(t.offset_at(999), 100)
        self.assertEqual(t.offset_at(1000, before_step=True), 100)
        self.assertEqual(t.offset_at(1000), 60)
        self.assertEqual(t.offset_at(5000, before_step=True), 60)

    def test_an_adjusts_rate_applies_from_it_on_until_the_next_adjust(self):
        t = self.track({"event": "start", "clock_ns": 0, "real_ns": 0, "rate_ppb": 1_000_000},
                       {"event": "adjust", "clock_ns": 1_000_000 + 1000, "real_ns": 1_000_000, "round": 1,
                        "correction_ns": 0, "mode": "step", "rate_ppb": -2_000_000, "trim_ppb": -3_000_000},
                       {"event": "adjust", "clock_ns": 3_000_000 - 3000, "real_ns": 3_000_000, "round": 2,
                        "correction_ns": 0, "mode": "step", "rate_ppb": -2_000_000, "trim_ppb": -3_000_000})
        self.assertEqual(t.offset_at(500_000), 500)
        self.assertEqual(t.offset_at(2_000_000), 1000 - 2000)
        self.assertEqual(t.offset_at(4_000_000), -3000 - 2000)
        # Only start and adjust events are anchors: a reply or a trim elsewhere changes nothing.
        t2 = self.track({"event": "start", "clock_ns": 0, "real_ns": 0, "rate_ppb": 1_000_000},
                        {"event": "reply", "clock_ns": 1_000_000 + 999_999, "real_ns": 1_000_000, "round": 1,
                         "rate_ppb": 5})
        self.assertEqual(t2.offset_at(2_000_000), 2000)

    SLEW = {"event": "adjust", "clock_ns": 1000 + 100, "real_ns": 1000, "round": 1, "correction_ns": -40,
            "mode": "slew", "rate_ppb": 0, "trim_ppb": 0, "slew_rate_ppb": 10_000_000}  # 1 %: 40 ns in 4000 ns

    def test_a_slew_ramps_in_without_a_jump_and_then_holds(self):
        t = self.track({"event": "start", "clock_ns": 100, "real_ns": 0, "rate_ppb": 0}, self.SLEW)
        # Floored: at 1050 the slew has put in -0.5 ns, at 4999 -39.99 ns.
        self.assertEqual([t.offset_at(x) for x in (999, 1000, 1050, 1100, 3000, 4999, 5000, 9000)],
                         [100, 100, 99, 99, 80, 60, 60, 60])
        self.assertEqual(t.offset_at(1000, before_step=True), 100)
        self.assertEqual(t.applied_at(1000), 5000)
        self.assertEqual(t.applied_at(0), 0)  # the start: nothing to apply

    def test_a_new_correction_discards_the_rest_of_a_slew(self):
        # At 2000 the slew has put in -10 of -40; a step of +5 from there.
        t = self.track({"event": "start", "clock_ns": 100, "real_ns": 0, "rate_ppb": 0}, self.SLEW,
                       {"event": "adjust", "clock_ns": 2000 + 95, "real_ns": 2000, "round": 2, "correction_ns": 5,
                        "mode": "step", "rate_ppb": 0, "trim_ppb": 0})
        self.assertEqual(t.offset_at(2000, before_step=True), 90)
        self.assertEqual([t.offset_at(x) for x in (2000, 5000, 9000)], [95, 95, 95])
        self.assertEqual(t.applied_at(1000), 2000)  # cut short by the next correction
        self.assertEqual(t.applied_at(2000), 2000)

    def test_rate_and_slew_are_floored_once_and_a_slews_end_rounded_up(self):
        # +10 % rate and +1 ns slewed at 30 %: 1 ns takes 3.33 ns, so it is all in at 4 ns.
        t = self.track({"event": "start", "clock_ns": 0, "real_ns": 0, "rate_ppb": 0},
                       {"event": "adjust", "clock_ns": 1000, "real_ns": 1000, "round": 1, "correction_ns": 1,
                        "mode": "slew", "rate_ppb": 100_000_000, "trim_ppb": 100_000_000,
                        "slew_rate_ppb": 300_000_000})
        # 2 ns: 0.2 + 0.6 -> 0; 3 ns: 0.3 + 0.9 -> 1 (floored apart it would be 0); 20 ns: 2 + 1.
        self.assertEqual([t.offset_at(1000 + x) for x in (2, 3, 20)], [0, 1, 3])
        self.assertEqual(t.applied_at(1000), 1004)

    def test_a_negative_slew_floors_towards_minus_infinity(self):
        slew = dict(self.SLEW, correction_ns=-1, slew_rate_ppb=300_000_000, clock_ns=1000)
        t = self.track({"event": "start", "clock_ns": 0, "real_ns": 0, "rate_ppb": 0}, slew)
        self.assertEqual([t.offset_at(1000 + x) for x in (0, 1, 4)], [0, -1, -1])

    def test_bad_slew_fields_are_refused(self):
        self.assertIsNone(logs.check_event(dict(self.SLEW, id="c")))
        self.assertIn("slew_rate_ppb", logs.check_event(dict(self.SLEW, id="c", slew_rate_ppb=0)))
        self.assertIn("unknown mode", logs.check_event(dict(self.SLEW, id="c", mode="smear")))

    def test_an_adjust_or_start_without_its_schema_fields_is_refused(self):
        for key in ("mode", "rate_ppb", "correction_ns"):
            adjust = dict(self.SLEW, id="c")
            del adjust[key]
            self.assertIn("'%s'" % key, logs.check_event(adjust))
        start = {"event": "start", "id": "c", "clock_ns": 0, "real_ns": 0, "offset_ns": 0, "rate_ppb": 0}
        self.assertIsNone(logs.check_event(start))
        self.assertIn("'rate_ppb'", logs.check_event({k: v for k, v in start.items() if k != "rate_ppb"}))

    def test_a_slew_replaced_by_a_step_at_a_new_rate(self):
        # What the integration tests replay: a reply is no anchor, the slew's rest
        # is discarded at the step, and the step's rate holds from it on.
        t = self.track({"event": "start", "clock_ns": 100, "real_ns": 0, "rate_ppb": 0},
                       {"event": "reply", "clock_ns": 600, "real_ns": 500, "round": 1, "probe": 1},
                       self.SLEW,
                       {"event": "adjust", "clock_ns": 2000 + 95, "real_ns": 2000, "round": 2, "correction_ns": 5,
                        "mode": "step", "rate_ppb": 2_000_000, "trim_ppb": 2_000_000})
        self.assertEqual([t.offset_at(x) for x in (-1000, 1000, 1100, 1999, 2000, 3000)],
                         [100, 100, 99, 90, 95, 97])  # 1999: -9.99 ns slewed, floored


class LogReaderTest(unittest.TestCase):
    """analyze.py's reader: whole logs, and logs still being written."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="analyze-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.path = os.path.join(self.dir, "c.log")
        self.warnings = []

    def line(self, event, **fields):
        return json.dumps(dict({"event": event, "id": "c", "clock_ns": 5, "real_ns": 3}, **fields)) + "\n"

    def append(self, text):
        with open(self.path, "a") as f:
            f.write(text)

    def test_a_tail_takes_a_line_once_it_is_whole_and_never_twice(self):
        tail = logs.LogTail(self.path, self.warnings.append)
        self.assertEqual(tail.read_new(), [])  # no file yet
        reply = self.line("reply", round=1)
        self.append(self.line("connected") + reply[:10])
        self.assertEqual([e["event"] for e in tail.read_new()], ["connected"])
        self.append(reply[10:] + "not json\n")
        self.assertEqual([e["event"] for e in tail.read_new()], ["reply"])
        self.assertEqual(tail.read_new(), [])
        self.assertEqual(len(self.warnings), 1)
        self.assertIn("c.log:3: skipped a corrupt line", self.warnings[0])

    def test_wait_for_leaves_the_events_after_it_for_the_next_read(self):
        self.append(self.line("connected") + self.line("round", round=1) + self.line("round_done", round=1))
        tail = logs.LogTail(self.path, self.warnings.append)
        self.assertEqual(tail.wait_for("round", 1)["round"], 1)
        self.assertEqual([e["event"] for e in tail.read_new()], ["round_done"])
        self.assertIsNone(tail.wait_for("round", 0.05))

    def test_wait_for_gives_up_when_the_writer_has_exited(self):
        exited = subprocess.Popen([sys.executable, "-c", "pass"])
        exited.wait()
        self.assertIsNone(logs.LogTail(self.path).wait_for("start", WAIT_S, exited))

    def test_a_whole_log_takes_an_unfinished_last_line_too(self):
        self.append(self.line("connected") + self.line("exit").rstrip("\n"))
        self.assertEqual([e["event"] for e in logs.read_events(self.path, self.warnings.append)],
                         ["connected", "exit"])
        self.assertEqual(logs.read_events(os.path.join(self.dir, "none.log")), [])
        self.assertEqual(self.warnings, [])


class FinalSpreadTest(unittest.TestCase):
    """tests/harness.py's final_spread_ns, which the integration tests judge by."""

    def test_final_spread_is_where_the_last_corrections_put_the_clocks(self):
        # Each clock's offset as its last correction began, plus what it had
        # left to slew; no free running after it.
        self.assertEqual(final_spread_ns([events_of(c) for c in slewing_run()]), 1008)
        # Each taken at its own last correction: here those are apart in time, so drift counts too.
        self.assertEqual(final_spread_ns([events_of(c) for c in synthetic_run()]), 350)


class AnalysisTest(unittest.TestCase):
    def test_spreads_with_the_master_log(self):
        r = analysis.analyse(tracks_of(*synthetic_run()), 1000)
        # Round 1 judged from the master's `round` event (1000 ms) to the last step (1012 ms).
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 50_000 + 20_000, 0), (988 * 50 + 988 * 20, 300)])
        self.assertEqual(r["final_spread_ns"], 300)
        self.assertTrue(r["synchronized"])

    def test_spreads_without_the_master_log(self):
        _, s1, s2 = synthetic_run()
        r = analysis.analyse(tracks_of(s1, s2), 1000)
        # "Before" is the earliest slave step (base + 11 ms), every clock before its own step.
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 1011 * 70, 0), (999 * 70, 300)])
        self.assertEqual({c: v["final_offset_ns"] for c, v in r["clocks"].items()}, {"slave-1": -150, "slave-2": 150})
        self.assertNotIn("estimation_error_ns", r)

    def test_initial_offsets_corrections_and_final_offsets(self):
        m, s1, s2 = synthetic_run()
        r = analysis.analyse(tracks_of(m, s1, s2), 1000)
        clocks = r["clocks"]
        self.assertEqual(list(clocks), ["master", "slave-1", "slave-2"])
        self.assertEqual([clocks[c]["initial_offset_ns"] for c in clocks], [0, 3 * S, -1500 * MS])
        self.assertEqual(clocks["slave-1"]["corrections_ns"], [c for _, c in s1.steps])
        self.assertEqual(clocks["slave-2"]["corrections_ns"], [2000 * MS + 20_240, 20_000 + 300])
        # They end at +0.5 s, +0.5 s and +0.5 s + 300 ns: the mean is 100 ns above the first two.
        self.assertEqual([clocks[c]["final_offset_ns"] for c in clocks], [-100, -100, 200])
        self.assertEqual(r["mean_offset_ns"], 500 * MS + 100)

    def test_estimation_errors(self):
        r = analysis.analyse(tracks_of(*synthetic_run()), 1000)
        self.assertEqual(r["estimation_error_ns"], {"slave-1": {"1": 1234, "2": 10},
                                                    "slave-2": {"1": -567, "2": -2000}})
        self.assertEqual([x["max_estimation_error_ns"] for x in r["rounds"]], [1234, 2000])
        self.assertEqual(r["clocks"]["slave-2"]["max_estimation_error_ns"], 2000)

    def test_verdict_names_the_furthest_clock(self):
        r = analysis.analyse(tracks_of(*synthetic_run()), 100)
        self.assertFalse(r["synchronized"])
        self.assertEqual(analysis.verdict(r), "NOT synchronized: spread 300 ns > tolerance 100 ns "
                                             "(furthest: slave-2, +200 ns from the mean)")

    def test_nothing_to_analyse(self):
        with self.assertRaises(analysis.NothingToAnalyse):
            analysis.analyse({}, 1000)

    def test_symlog_ticks(self):
        self.assertEqual([plot.symlog(v) for v in (0, 500, 1000, -MS, S)], [0, 0.5, 1, -4, 7])
        self.assertEqual([plot.tick_label(d) for d in (1, 4, 7, 8)], ["1 us", "1 ms", "1 s", "10 s"])


class SlewAnalysisTest(unittest.TestCase):
    """Slews, trims, a slew cut short (see slewing_run)."""

    def test_after_is_once_the_corrections_are_fully_applied(self):
        r = analysis.analyse(tracks_of(*slewing_run()), 1000)
        # Round 1: all stepped, the last at 1012 ms. Round 2: slave-1's slew is still running when
        # round 3 begins, so it is judged 1 ns before 3000 ms. Round 3: slave-2's slew ends at 3015 ms.
        self.assertEqual([x["after_real_ns"] - T0 for x in r["rounds"]], [1012 * MS, 3000 * MS - 1, 3015 * MS])
        self.assertEqual([x["before_real_ns"] - T0 for x in r["rounds"]], [1000 * MS, 2000 * MS, 3000 * MS])
        # Round 1 before: +3 s + 50 us against -1.5 s - 20 us. Round 2 before: slave-1's +10 ppm for
        # 988 ms. Round 2 after: the master +2 us in (500 ms + 2 us); slave-1, 500 ms + 9.99 us at
        # 2011 ms, 98.9 us into its -200 us; slave-2 stepped -1 us. Nothing changes until round 3
        # begins. Round 3 after: 500 ms + 1005 ns (master: +5 ns at +1 ppm, -1 us slewed) minus
        # 500 ms - 8 ns (slave-1, stepped).
        round2_after = 2000 - (9990 - 98_900)
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 70_000, 0), (9880, round2_after), (round2_after, 1013)])
        self.assertEqual(r["final_spread_ns"], 1013)
        self.assertEqual(r["final_real_ns"], T0 + 3015 * MS)
        self.assertFalse(r["synchronized"])  # the tolerance here is 1000 ns

    def test_without_the_master_log_the_next_round_begins_at_its_first_adjust(self):
        _, s1, s2 = slewing_run()
        r = analysis.analyse(tracks_of(s1, s2), 1000)
        # Round 2 is cut short 1 ns before slave-1's round-3 step at 3011 ms: the whole -100 us is in
        # (a step taken at 3011 ms itself would be counted, and the spread be 992 ns).
        self.assertEqual([x["after_real_ns"] - T0 for x in r["rounds"]], [1012 * MS, 3011 * MS - 1, 3015 * MS])
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 1011 * 70, 0), (9990, 89_010), (89_010, 517)])

    def test_final_offsets_corrections_and_estimation_errors(self):
        m, s1, s2 = slewing_run()
        r = analysis.analyse(tracks_of(m, s1, s2), 1000)
        clocks = r["clocks"]
        # At 3015 ms: 500 ms + 1005 ns, 500 ms - 8 ns, 500 ms + 509 ns (-1 us stepped, +9 ns at +3 ppm,
        # +1.5 us slewed); the mean is 500 ms + 502 ns.
        self.assertEqual([clocks[c]["final_offset_ns"] for c in clocks], [503, -510, 7])
        self.assertEqual(r["mean_offset_ns"], 500 * MS + 502)
        self.assertEqual([clocks[c]["drift_ppb"] for c in clocks], [0, 50_000, -20_000])
        self.assertEqual(clocks["slave-1"]["corrections_ns"], [-2_500_050_560, -200_000, 90_002])
        self.assertEqual(clocks["slave-1"]["correction_modes"], ["step", "slew", "step"])
        # The estimates were made while slave-1 slewed; the errors come out as they were put in.
        self.assertEqual(r["estimation_error_ns"], {"slave-1": {"3": 100}, "slave-2": {"3": -100}})

    def test_stepped_rounds_are_judged_at_their_last_step(self):
        r = analysis.analyse(tracks_of(*synthetic_run()), 1000)
        self.assertEqual([x["after_real_ns"] - T0 for x in r["rounds"]], [1012 * MS, 2012 * MS])
        self.assertEqual(r["clocks"]["slave-1"]["correction_modes"], ["step", "step"])
        self.assertNotIn("~", analyze.report(r, "logs"))

    def test_a_stubborn_clock_takes_part_and_is_named(self):
        # A third slave 1 s ahead that acknowledges its corrections and applies none (`ignored`).
        clocks = list(synthetic_run())
        stubborn = Clock("slave-3", 1 * S, 0)
        stubborn.log(0, "start", offset_ns=S, rate_ppb=0, seed=1)
        for rnd, base in ((1, 1000), (2, 2000)):
            stubborn.log(base + 13, "ignored", round=rnd, correction_ns=-S + 500 * MS)
        r = analysis.analyse(tracks_of(*clocks, stubborn), 1000)
        self.assertEqual([x["clocks"] for x in r["rounds"]], [["master", "slave-1", "slave-2", "slave-3"]] * 2)
        self.assertEqual(r["clocks"]["slave-3"]["correction_modes"], ["ignored", "ignored"])
        self.assertEqual(r["final_spread_ns"], 500 * MS)  # 1 s against the others' 0.5 s
        self.assertEqual([x["after_real_ns"] - T0 for x in r["rounds"]], [1013 * MS, 2013 * MS])
        report = analyze.report(r, "logs")
        self.assertIn("Corrections received (x ignored (not applied), the others stepped)", report)
        self.assertIn("x-500.000 ms", report)
        self.assertIn("NOT synchronized: spread 500.000 ms > tolerance 1.000 us (furthest: slave-3", report)

    def test_report_marks_slews(self):
        report = analyze.report(analysis.analyse(tracks_of(*slewing_run()), 1000), "logs")
        self.assertIn("after = once the round's corrections are fully applied, slews included", report)
        self.assertIn("Corrections received (~ slewed, the others stepped)", report)
        self.assertIn("~-200.000 us", report)
        self.assertIn("+90.002 us", report)

    def test_the_plot_draws_a_slew_as_a_ramp_and_a_step_as_a_jump(self):
        tracks = tracks_of(*slewing_run())
        samples = plot.plot_samples(tracks, T0, T0 + 5000 * MS)
        times = [t - T0 for t, _ in samples]
        # The master's 4 ms slew from 2010 ms: points along it, its end included, and no jump.
        ramp = [2010 * MS + k * 4 * MS // plot.SLEW_SAMPLES for k in range(plot.SLEW_SAMPLES + 1)]
        self.assertTrue(set(ramp) <= set(times))
        self.assertEqual(times.count(2010 * MS), 1)
        self.assertEqual(times.count(2012 * MS), 2)  # slave-2's step: before and after
        # Slave-1's slew is sampled until round 3's step cut it short at 3011 ms, not to its would-be
        # end at 4011 ms.
        self.assertIn(2011 * MS + 1000 * MS // plot.SLEW_SAMPLES, times)
        self.assertNotIn(2011 * MS + 2000 * MS * (plot.SLEW_SAMPLES - 1) // plot.SLEW_SAMPLES, times)
        master = [offs["master"] - offs["slave-2"] for t, offs in samples if 2010 * MS <= t - T0 <= 2011 * MS]
        self.assertEqual(master, sorted(master))  # rising, no step
        self.assertEqual(len(set(master)), len(master))


class CommandLineTest(unittest.TestCase):
    """analyze.py --from-logs on synthetic logs, as a user runs it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="analyze-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.clocks = synthetic_run()
        self.paths = [c.write(self.dir) for c in self.clocks]

    def test_report_json_and_plot(self):
        out_json, out_svg = os.path.join(self.dir, "r.json"), os.path.join(self.dir, "p.svg")
        p = run_analyze("--from-logs", self.dir, "--json", out_json, "--plot", out_svg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip().splitlines()[-1], "synchronized: spread 300 ns <= tolerance 1.000 ms")
        self.assertIn("slave-2", p.stdout)
        with open(out_json) as f:
            figures = json.load(f)
        self.assertEqual(figures["final_spread_ns"], 300)
        self.assertEqual(figures["tolerance_ns"], 1000 * 1000)
        self.assertEqual(figures["rounds"][1]["spread_before_ns"], 69160)
        self.assertEqual(figures["clocks"]["slave-2"]["final_offset_ns"], 200)
        series = [e for e in ET.parse(out_svg).iter() if e.get("class") == "series"]
        self.assertEqual(sorted(e.get("data-clock") for e in series), ["master", "slave-1", "slave-2"])

    def test_slewed_logs(self):
        for c in slewing_run():
            c.write(self.dir)
        out_svg = os.path.join(self.dir, "p.svg")
        p = run_analyze("--from-logs", self.dir, "--plot", out_svg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip().splitlines()[-1], "synchronized: spread 1.013 us <= tolerance 1.000 ms")
        self.assertEqual(p.stderr, "")
        ET.parse(out_svg)

    def test_not_synchronized_exits_1(self):
        p = run_analyze("--from-logs", self.dir, "--tolerance-us", "0.1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("NOT synchronized: spread 300 ns > tolerance 100 ns (furthest: slave-2", p.stdout)

    def test_options_take_their_value_after_a_space_or_an_equals_sign(self):
        p = run_analyze("--from-logs=" + self.dir, "--tolerance-us=0.1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("NOT synchronized: spread 300 ns > tolerance 100 ns", p.stdout)
        values = [("--host", "localhost"), ("--port", "9000"), ("--slave", "/bin/true"), ("--seed", "7"),
                  ("--offset-range", "10"), ("--drift-range", "5"), ("--timeout", "30"), ("--connect-timeout", "3"),
                  ("--tolerance-us", "20"), ("--plot", "p.svg"), ("--plot-scale", "linear"), ("--logs", "L"),
                  ("--master-log", "m.log"), ("--json", "r.json")]
        own_clocks = [[("--times", "3:25,2:50,0:00:00.5"), ("--drift", "-1.5"), ("--seed", "7")],
                      [("--offsets", "-1.5,0,+2"), ("--seed", "7")]]
        for given in [values] + own_clocks:
            spaced = analyze.parse_args(["3"] + [word for option, value in given for word in (option, value)])
            joined = analyze.parse_args(["3"] + ["%s=%s" % (option, value) for option, value in given])
            self.assertEqual(vars(spaced), vars(joined))
        self.assertEqual((joined.offsets, joined.times), (["-1.5", "0", "+2"], None))
        joined = analyze.parse_args(["3"] + ["%s=%s" % (option, value) for option, value in values])
        self.assertEqual((joined.port, joined.tolerance_us, joined.json), (9000, 20.0, "r.json"))
        self.assertEqual(vars(analyze.parse_args(["--from-logs", "D", "--seed", "1"])),
                         vars(analyze.parse_args(["--from-logs=D", "--seed=1"])))
        # Every option that takes a value is in the tables above.
        listed = set(re.findall(r"(--[a-z-]+) [A-Z{]", run_analyze("--help").stdout))
        self.assertEqual(listed, {option for option, _ in values + sum(own_clocks, [])} | {"--from-logs"})

    def test_version(self):
        p = run_analyze("--version")
        self.assertEqual((p.returncode, p.stdout), (0, "analyze.py (berkeley-sync) 1.0.0\n"))

    def test_a_corrupt_line_is_reported_and_skipped(self):
        with open(self.paths[1]) as f:
            lines = f.read().splitlines()
        lines.insert(2, lines[2][:25])  # a truncated copy of the first reply
        lines.append("not json at all")
        with open(self.paths[1], "w") as f:
            f.write("\n".join(lines) + "\n")
        out_json = os.path.join(self.dir, "r.json")
        p = run_analyze("--from-logs", self.dir, "--json", out_json)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("slave-1.log:3: skipped a corrupt line", p.stderr)
        self.assertIn("slave-1.log:%d:" % len(lines), p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        with open(out_json) as f:
            self.assertEqual(json.load(f)["final_spread_ns"], 300)

    def test_an_empty_directory_exits_1(self):
        empty = os.path.join(self.dir, "empty")
        os.mkdir(empty)
        p = run_analyze("--from-logs", empty)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nothing to analyse", p.stderr)
        self.assertNotIn("Traceback", p.stderr)

    def test_logs_without_adjust_events_exit_1(self):
        for path in self.paths:
            with open(path) as f:
                kept = [line for line in f if '"adjust"' not in line]
            with open(path, "w") as f:
                f.writelines(kept)
        p = run_analyze("--from-logs", self.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no round corrected two clocks or more", p.stderr)
        self.assertNotIn("Traceback", p.stderr)


class FormatTest(unittest.TestCase):
    """fmt_duration: the one format for durations, the C++ programs' too."""

    TABLE = [
        (0, "+0 ns"), (7, "+7 ns"), (-7, "-7 ns"), (999, "+999 ns"), (-999, "-999 ns"),
        (1000, "+1.000 us"), (-12_345, "-12.345 us"), (999_999, "+999.999 us"), (-999_999, "-999.999 us"),
        (MS, "+1.000 ms"), (1_500_000, "+1.500 ms"), (-1_500_000, "-1.500 ms"),
        (123_456_789, "+123.457 ms"), (123_456_499, "+123.456 ms"), (-123_456_500, "-123.457 ms"),
        (999_999_499, "+999.999 ms"), (999_999_500, "+0:00:01"), (-999_999_500, "-0:00:01"),  # 999.9995 ms
        (S, "+0:00:01"), (-S, "-0:00:01"), (S + 1, "+0:00:01"), (S + 500_000, "+0:00:01.001"),
        (59_900 * MS, "+0:00:59.900"), (59_999_999_500, "+0:01:00"), (4_508_406_000, "+0:00:04.508"),
        (-4_508_500_000, "-0:00:04.509"), (5 * 60 * S, "+0:05:00"), (-20 * 60 * S, "-0:20:00"),
        (15 * 60 * S, "+0:15:00"), (3600 * S, "+1:00:00"), (-3600 * S - 250 * MS, "-1:00:00.250"),
        (100_000 * S, "+27:46:40"), (2 ** 63 - 1, "+2562047:47:16.855"),
        (5_190 * MS, "+0:00:05.190"), (2_500 * MS, "+0:00:02.500"), (-2_890 * MS, "-0:00:02.890"),
        (S + 10 * MS, "+0:00:01.010"), (S + 499_999, "+0:00:01"),
    ]

    def test_the_table(self):
        for ns, text in self.TABLE:
            with self.subTest(ns=ns):
                self.assertEqual(units.fmt_duration(ns), text)

    def test_magnitudes_print_without_a_sign(self):
        for ns, text in self.TABLE:
            if ns >= 0:
                with self.subTest(ns=ns):
                    self.assertEqual(units.fmt_magnitude(ns), text[1:])
        self.assertEqual(units.fmt_magnitude(1001), "1.001 us")
        self.assertEqual(units.fmt_magnitude(35 * 60 * S), "0:35:00")
        self.assertEqual(units.fmt_magnitude(0), "0 ns")

    def test_time_of_day(self):
        day = 86_400 * S
        self.assertEqual(units.fmt_time_of_day(19 * day + (3 * 3600 + 25 * 60) * S + 150_999), "3:25:00.000150")
        self.assertEqual(units.fmt_time_of_day(-S), "23:59:59.000000")


class OwnClocksTest(unittest.TestCase):
    """--times, --offsets and --drift: what each slave is told."""

    def plans(self, *argv):
        return dict(analyze.plan_slaves(analyze.parse_args([str(a) for a in argv]), "L"))

    @staticmethod
    def value(argv, option):
        return argv[argv.index(option) + 1] if option in argv else None

    def test_times_reach_each_slave_as_its_time(self):
        plans = self.plans(2, "--times", "3:25,2:50:00.5", "--drift", 0, "--seed", 1)
        self.assertEqual([(self.value(a, "--time"), self.value(a, "--offset"), self.value(a, "--drift"))
                          for a in plans.values()], [("3:25", None, "0"), ("2:50:00.5", None, "0")])
        self.assertEqual(self.value(plans["slave-2"], "--log"), os.path.join("L", "slave-2.log"))

    def test_offsets_reach_each_slave_as_its_offset(self):
        plans = self.plans(3, "--offsets", "-1500,0,2500.25", "--seed", 1)
        self.assertEqual([(self.value(a, "--offset"), self.value(a, "--time")) for a in plans.values()],
                         [("-1500", None), ("0", None), ("2500.25", None)])

    def test_fixed_figures_leave_the_random_ones_as_the_seed_drew_them(self):
        drawn = self.plans(2, "--seed", 3)
        fixed = self.plans(2, "--seed", 3, "--drift", 0)
        self.assertEqual([self.value(a, "--offset") for a in drawn.values()],
                         [self.value(a, "--offset") for a in fixed.values()])
        self.assertNotEqual([self.value(a, "--drift") for a in drawn.values()], ["0", "0"])
        self.assertEqual(self.plans(2, "--seed", 3, "--drift-range", 0)["slave-1"][-3:],
                         fixed["slave-1"][-3:])  # --drift-range 0 is no drift too

    def test_a_wrong_count_or_value_is_an_error(self):
        for args, message in (((2, "--times", "3:25"), "--times gives 1 value(s) for 2 slave(s)"),
                              ((1, "--offsets", "1,2"), "--offsets gives 2 value(s) for 1 slave(s)"),
                              ((1, "--times", "24:00"), "'24:00' is not a time of day"),
                              ((1, "--times", "3:5"), "'3:5' is not a time of day"),
                              ((1, "--offsets", "1e3"), "'1e3' is not a number of ms"),
                              ((1, "--drift", "fast"), "'fast' is not a number of ppm"),
                              ((1, "--times", "3:25", "--offsets", "1"), "not both"),
                              ((1, "--offsets", "1", "--offset-range", "5"), "does not go with"),
                              ((1, "--drift", "0", "--drift-range", "5"), "not both")):
            with self.subTest(args=args):
                p = run_analyze(*args, "--slave", "/nonexistent")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertNotIn("Traceback", p.stderr)


class PlotScaleTest(unittest.TestCase):
    """The plot's offset axis: linear for the textbook's run, symlog for drifting clocks."""

    def test_the_choice(self):
        round1 = T0 + 1000 * MS
        self.assertEqual(plot.choose_scale(tracks_of(*textbook_run()), round1), "linear")
        self.assertEqual(plot.choose_scale(tracks_of(*textbook_run(rate_ppb=20_000)), round1), "symlog")
        self.assertEqual(plot.choose_scale(tracks_of(*synthetic_run()), round1), "symlog")
        # Of two scales: the master a few ms from the mean, the slaves an hour off.
        self.assertEqual(plot.choose_scale(tracks_of(*textbook_run(("3:00", "4:00", "2:00"))), round1),
                         "linear")  # the master exactly at the mean does not count
        self.assertEqual(plot.choose_scale(tracks_of(*textbook_run(("3:00", "4:00", "2:01"))), round1),
                         "symlog")  # 20 s against 40 min

    def test_linear_ticks(self):
        self.assertEqual(plot.linear_ticks(-17 * 60 * S, 21 * 60 * S), [k * 300 * S for k in range(-3, 5)])
        self.assertEqual(plot.linear_ticks(-17 * 60 * S, 34 * 60 * S), [k * 600 * S for k in range(-1, 4)])
        self.assertEqual(plot.linear_ticks(-3 * MS, 7 * MS), [k * MS for k in range(-3, 8)])
        self.assertEqual(plot.linear_ticks(-3 * MS, 8 * MS), [k * 2 * MS for k in range(-1, 5)])
        self.assertEqual(plot.linear_ticks(-3 * 86400 * S, 86400 * S * 30)[:2], [0, 5 * 86400 * S])

    def svg(self, clocks, *args):
        tracks = tracks_of(*clocks)
        return ET.fromstring(plot.draw_svg(tracks, analysis.analyse(tracks, 1000), *args))

    def test_the_textbook_plot(self):
        svg = self.svg(textbook_run())
        texts = [e.text for e in svg.iter() if e.get("class") == "tick"]
        # Round 1's steps come 1 ms apart: between them slave-2 is up to 16:40 below the mean.
        self.assertEqual(texts, ["-0:15:00", "-0:10:00", "-0:05:00", "0", "+0:05:00", "+0:10:00", "+0:15:00",
                                 "+0:20:00"])
        self.assertIn("linear scale", next(e.text for e in svg.iter() if e.get("class") == "axis-title"))
        series = [e for e in svg.iter() if e.get("class") == "series"]
        self.assertEqual([e.get("data-clock") for e in series], ["master", "slave-1", "slave-2"])
        # No line hides another: each its own dash pattern and markers, and its own points once they agree.
        self.assertEqual(len({e.get("stroke-dasharray") for e in series}), 3)
        self.assertEqual(len({e.get("points").split()[-1] for e in series}), 3)
        markers = [e for e in svg.iter() if e.get("class") == "markers"]
        self.assertEqual(len({tuple(child.tag for child in g) for g in markers}), 3)
        self.assertEqual([e.text for e in svg.iter() if e.get("class") == "legend"], ["master", "slave-1", "slave-2"])
        forced = self.svg(textbook_run(), "symlog")
        self.assertIn("symmetric log", next(e.text for e in forced.iter() if e.get("class") == "axis-title"))

    def test_the_report_reads_like_the_textbook(self):
        report = analyze.report(analysis.analyse(tracks_of(*textbook_run()), 1000), "logs")
        for reading in ("3:00:00.000000", "3:25:00.000000", "2:50:00.000000"):
            self.assertIn(reading, report)
        self.assertRegex(report, r"\n  1 +\+0:05:00 +-0:20:00 +\+0:15:00\n")  # corrections: signed
        self.assertRegex(report, r"\n  1 +3 +0:35:00 +14 ns +-\n")  # spreads: magnitudes, no sign
        self.assertTrue(report.endswith("\nsynchronized: spread 14 ns <= tolerance 1.000 us"))
        self.assertNotIn("client", report.lower())


class EndToEndTest(unittest.TestCase):
    """The real ./master, and analyze.py starting the real ./slave (both from
    BERKELEY_BIN_DIR when it is set)."""

    def setUp(self):
        self.run_ = Run()
        self.addCleanup(self.run_.close)

    def test_a_real_run_is_reported_plotted_and_reanalysed(self):
        r = self.run_
        m = r.master(3, "--rounds", 3, "--interval", 0.2)
        log_dir = os.path.join(r.dir, "slaves")
        out_svg, out_json = os.path.join(r.dir, "plot.svg"), os.path.join(r.dir, "figures.json")
        p = run_analyze(3, "--slave", SLAVE, "--port", m.port, "--logs", log_dir, "--master-log", r.log("master"), "--plot", out_svg,
                        "--json", out_json, "--timeout", WAIT_S, "--seed", 1, timeout=2 * WAIT_S)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(r.wait(m), 0)
        verdict = p.stdout.strip().splitlines()[-1]
        self.assertRegex(verdict, r"^synchronized: spread [0-9.]+ [nu]s <= tolerance 1\.000 ms$")
        self.assertIn("; logs in %s\n" % log_dir, p.stdout)  # kept (--logs), and the report says where
        self.assertIn("[slave-2] ", p.stdout)  # the slaves' output, streamed with their ids
        series = [e for e in ET.parse(out_svg).iter() if e.get("class") == "series"]
        self.assertEqual(sorted(e.get("data-clock") for e in series), ["master", "slave-1", "slave-2", "slave-3"])
        with open(out_json) as f:
            figures = json.load(f)
        self.assertEqual([x["round"] for x in figures["rounds"]], [1, 2, 3])
        expected = final_spread_ns([read_log(os.path.join(log_dir, "slave-%d.log" % i)) for i in (1, 2, 3)]
                                   + [read_log(r.log("master"))])
        self.assertAlmostEqual(figures["final_spread_ns"], expected, delta=1000)
        self.assertEqual(set(figures["estimation_error_ns"]), {"slave-1", "slave-2", "slave-3"})
        self.assertEqual(figures["log_dir"], log_dir)
        # The same logs, analysed again later, give the same verdict.
        again = run_analyze("--from-logs", log_dir, "--master-log", r.log("master"))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.strip().splitlines()[-1], verdict)

    def run_own_clocks(self, *args):
        r = self.run_
        m = r.master(2, "--rounds", 1, "--interval", 0.1)
        log_dir = os.path.join(r.dir, "slaves")
        p = run_analyze(2, "--slave", SLAVE, "--port", m.port, "--logs", log_dir, "--quiet", "--timeout", WAIT_S, *args,
                        timeout=2 * WAIT_S)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(r.wait(m), 0)
        return [read_log(os.path.join(log_dir, "slave-%d.log" % i))[0] for i in (1, 2)]

    def test_offsets_and_no_drift_reach_the_slaves(self):
        starts = self.run_own_clocks("--offsets=-1500,2500.5", "--drift", 0)
        self.assertEqual([(s["event"], s["offset_ns"], s["rate_ppb"]) for s in starts],
                         [("start", -1500 * MS, 0), ("start", 2500 * MS + 500_000, 0)])

    def test_times_reach_the_slaves(self):
        starts = self.run_own_clocks("--times", "3:25,2:50", "--drift", 0)
        # The clocks stand 35 minutes apart, whenever each started.
        apart = [s["clock_ns"] - s["real_ns"] for s in starts]
        self.assertAlmostEqual(apart[0] - apart[1], 35 * 60 * S, delta=2 * S)
        self.assertEqual([s["rate_ppb"] for s in starts], [0, 0])

    def analyze_in_own_tmpdir(self, *args):
        """analyze.py without --logs, its temporary directories made in a
        directory of this test's own; returns the run and what is left there.
        A file, pipe or process it leaves open is said on stderr."""
        tmp = os.path.join(self.run_.dir, "tmp")
        os.mkdir(tmp)
        p = subprocess.run([sys.executable, "-W", "always::ResourceWarning", ANALYZE, *map(str, args),
                            "--slave", SLAVE, "--quiet"],
                           capture_output=True, text=True, timeout=2 * WAIT_S, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, TMPDIR=tmp))
        return p, os.listdir(tmp)

    def test_without_logs_the_temporary_directory_is_removed_after_the_report(self):
        m = self.run_.master(2, "--rounds", 1, "--interval", 0.1)
        figures = os.path.join(self.run_.dir, "figures.json")
        p, left = self.analyze_in_own_tmpdir(2, "--port", m.port, "--timeout", WAIT_S, "--json", figures)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.run_.wait(m), 0)
        self.assertRegex(p.stdout.splitlines()[0], r"logs in .*/tmp/berkeley-analyze-\w+ \(temporary: removed after "
                                                   r"the report; --logs DIR keeps them\)$")
        self.assertEqual(left, [])
        self.assertNotIn("ResourceWarning", p.stderr)  # the slaves' pipes were closed too
        self.assertIn("; logs not kept (--logs DIR keeps them)\n", p.stdout)
        with open(figures) as f:
            self.assertIsNone(json.load(f)["log_dir"])

    def test_without_logs_and_without_a_master_nothing_is_left_either(self):
        p, left = self.analyze_in_own_tmpdir(1, "--port", free_port(), "--connect-timeout", 0.5)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("no master answered", p.stderr)
        self.assertEqual(left, [])

    def test_panes_without_tmux_say_so_and_stream(self):
        no_tmux = tempfile.mkdtemp(prefix="analyze-no-tmux-")
        self.addCleanup(shutil.rmtree, no_tmux, ignore_errors=True)
        port = free_port()
        p = subprocess.run([sys.executable, ANALYZE, "1", "--panes", "--slave", SLAVE, "--port", str(port),
                            "--connect-timeout", "0.5", "--logs", self.run_.dir],
                           capture_output=True, text=True, timeout=WAIT_S, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, PATH=no_tmux))
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        said = [line for line in p.stderr.splitlines() if "tmux" in line]
        self.assertEqual(said, ["analyze.py: --panes: tmux is not installed; the slaves' output is streamed here "
                                "instead"])
        self.assertIn("[slave-1] ", p.stderr)  # the prefixed stream
        self.assertIn("no master answered at 127.0.0.1:%d" % port, p.stderr)

    @unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
    def test_panes_run_each_slave_in_its_own_tmux_pane(self):
        r = self.run_
        sockets = tempfile.mkdtemp(prefix="tmux-")  # a tmux server of this test's own
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        env["TMUX_TMPDIR"] = sockets
        self.addCleanup(shutil.rmtree, sockets, ignore_errors=True)
        self.addCleanup(subprocess.run, ["tmux", "kill-server"], env=env, capture_output=True)
        m = r.master(2, "--rounds", 2, "--interval", 0.2)
        log_dir = os.path.join(r.dir, "slaves")
        p = subprocess.run([sys.executable, ANALYZE, "2", "--panes", "--slave", SLAVE, "--port", str(m.port),
                            "--logs", log_dir, "--times", "3:25,2:50", "--drift", "0", "--timeout", str(WAIT_S)],
                           capture_output=True, text=True, timeout=2 * WAIT_S, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(r.wait(m), 0)
        self.assertRegex(p.stdout.strip().splitlines()[-1], r"^synchronized: ")
        self.assertIn("watch them with  tmux attach -t berkeley-", p.stderr)
        self.assertNotIn("[slave-1]", p.stdout + p.stderr)  # not streamed here: in the panes
        for i in (1, 2):
            with open(os.path.join(log_dir, "slave-%d.out" % i)) as f:
                pane = f.read()
            self.assertIn("$ %s --host 127.0.0.1 --port %d --id slave-%d" % (SLAVE, m.port, i), pane)
            self.assertIn("slave-%d: connected to the master" % i, pane)
            self.assertEqual(read_log(os.path.join(log_dir, "slave-%d.log" % i))[-1]["event"], "exit")
        self.assertEqual(sorted(os.listdir(log_dir)), ["slave-1.log", "slave-1.out", "slave-2.log", "slave-2.out"])
        # One pane each, in one window (the slaves' exit is in their logs, above:
        # tmux may not have noted a pane's exit status yet when it is listed).
        panes = subprocess.run(["tmux", "list-panes", "-a", "-F", "#{window_name} #{pane_title}"],
                               env=env, capture_output=True, text=True).stdout.split("\n")
        self.assertEqual(sorted(filter(None, panes)), ["berkeley slave-1", "berkeley slave-2"])

    def test_no_master_is_a_clear_message_and_exit_2(self):
        port = free_port()
        p = run_analyze(3, "--slave", SLAVE, "--port", port, "--connect-timeout", 0.5, "--quiet", "--logs", self.run_.dir)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("no master answered at 127.0.0.1:%d" % port, p.stderr)
        self.assertIn("./master 3", p.stderr)
        self.assertNotIn("Traceback", p.stderr)

    def test_a_dead_master_is_not_a_missing_one(self):
        r = self.run_
        m = r.master(2, "--rounds", 0, "--interval", 0.2, "--no-failover")  # dead for good: nobody takes over
        log_dir = os.path.join(r.dir, "slaves")
        p = r.start([sys.executable, ANALYZE, "2", "--slave", SLAVE, "--port", str(m.port), "--connect-timeout", "1",
                     "--logs", log_dir, "--quiet"], "analyze", pipe=True)
        for ident in ("slave-1", "slave-2"):
            wait_until(lambda ident=ident: any(e["event"] == "adjust"
                                               for e in read_log(os.path.join(log_dir, ident + ".log"))),
                       ident + " to be corrected")
        m.kill()  # no BYE: the master dies
        m.wait()
        out, err = p.communicate(timeout=WAIT_S)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertIn("analyze.py: the slaves lost the master at 127.0.0.1:%d and gave up after 1 s" % m.port, err)
        self.assertNotIn("no master answered", err)
        self.assertRegex(out.strip().splitlines()[-1], r"^synchronized: ")

    def test_ctrl_c_stops_the_slaves_and_still_reports(self):
        log_dir = self.run_.dir
        p = self.run_.start([sys.executable, ANALYZE, "2", "--slave", SLAVE, "--port", str(free_port()),
                             "--connect-timeout", "60", "--logs", log_dir, "--quiet"], "analyze", pipe=True)
        for ident in ("slave-1", "slave-2"):
            wait_until(lambda ident=ident: read_log(os.path.join(log_dir, ident + ".log")), ident + " to start")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=WAIT_S)
        self.assertEqual(p.returncode, 1, out + err)  # nothing was synchronized: nothing to analyse
        self.assertIn("interrupted", err)
        self.assertIn("nothing to analyse", err)
        self.assertNotIn("Traceback", err)
        for ident in ("slave-1", "slave-2"):
            self.assertEqual(read_log(os.path.join(log_dir, ident + ".log"))[-1]["event"], "exit")


if __name__ == "__main__":
    unittest.main()
