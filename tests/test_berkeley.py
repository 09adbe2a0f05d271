"""Tests of berkeley/, what analyze.py, the tests and the benchmarks share:
the clock model, the log reader, the analysis and the plot on synthetic logs
with known answers (tests/synthetic.py); the verdict on runs across faults;
the duration formats; the process launcher with stand-in programs written in Python and with the real
./master: children stopped by PID, their pipes closed, a master started on a
free port.

Run: cd tests && python3 -m unittest test_berkeley -v"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import xml.etree.ElementTree as ET

from harness import MASTER, WAIT_S
from berkeley import analysis, logs, plot, units
from berkeley.clock import ClockTrack
from berkeley.processes import MasterDidNotStart, Processes
from berkeley.units import NS_PER_MS as MS, NS_PER_S as S
from berkeley.verdict import Story
from synthetic import T0, failover_run, slewing_run, stubborn_run, synthetic_run, textbook_run, tracks_of

class ClockModelTest(unittest.TestCase):
    def track(self, *events):
        return ClockTrack("c", [dict(e, id="c") for e in events])

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
    """The log reader: whole logs, and logs still being written."""

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

    def test_several_logs_are_grouped_by_clock_and_each_file_is_read_once(self):
        self.append(self.line("start", offset_ns=0, rate_ppb=0) + self.line("exit"))
        other = os.path.join(self.dir, "other.log")
        with open(other, "w") as f:
            f.write(self.line("connected", id="d") + self.line("start", offset_ns=0, rate_ppb=0))
        alias = os.path.join(self.dir, "alias.log")
        os.symlink(self.path, alias)
        by_id = logs.read_logs([self.path, other, alias, self.path], self.warnings.append)
        self.assertEqual({c: [e["event"] for e in events] for c, events in by_id.items()},
                         {"c": ["start", "exit"], "d": ["connected"]})
        # Clock c in a second file: the first file's is kept, and the second is named.
        self.assertEqual(self.warnings, ["%s: clock c was already read from %s; ignoring it here" % (other, self.path)])


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

    def test_a_takeover(self):
        r = analysis.analyse(tracks_of(*failover_run()), 1000)
        self.assertEqual([x["clocks"] for x in r["rounds"]], [["master", "slave-1", "slave-2"]] * 2
                         + [["slave-1", "slave-2"]])
        # No master from the old one's last event (2020 ms) to the new one's first round (2800 ms).
        self.assertEqual(r["takeovers"], [{"clock": "slave-1", "epoch": 2, "after_round": 2, "first_round": 3,
                                           "no_master_ns": 780 * MS, "spread_before_ns": 300,
                                           "spread_after_ns": 100}])
        self.assertFalse(r["clocks"]["master"]["in_final_round"])
        self.assertEqual(analysis.analyse(tracks_of(*synthetic_run()), 1000)["takeovers"], [])

    def test_nothing_to_analyse(self):
        with self.assertRaises(analysis.NothingToAnalyse):
            analysis.analyse({}, 1000)


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

    def test_a_stubborn_clock_takes_part_and_is_named(self):
        r = analysis.analyse(tracks_of(*stubborn_run()), 1000)
        self.assertEqual([x["clocks"] for x in r["rounds"]], [["master", "slave-1", "slave-2", "slave-3"]] * 2)
        self.assertEqual(r["clocks"]["slave-3"]["correction_modes"], ["ignored", "ignored"])
        self.assertEqual(r["final_spread_ns"], 500 * MS)  # 1 s against the others' 0.5 s
        self.assertEqual([x["after_real_ns"] - T0 for x in r["rounds"]], [1013 * MS, 2013 * MS])
        self.assertEqual(r["furthest"], "slave-3")


class PlotTest(unittest.TestCase):
    """The plot: its offset axis (linear for the textbook's run, symlog for drifting
    clocks), its ticks, slews drawn as ramps and steps as jumps."""

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

    def test_a_dead_master_is_drawn_until_it_died_and_the_takeover_is_marked(self):
        tracks = tracks_of(*failover_run())
        result = analysis.analyse(tracks, 1000)
        died = T0 + 2020 * MS
        self.assertEqual(plot.clock_ends(tracks, result), {"master": died})  # the others exited, or ran on
        samples = plot.plot_samples(tracks, T0, T0 + 3000 * MS, plot.clock_ends(tracks, result))
        self.assertEqual(max(t for t, offs in samples if "master" in offs), died)
        self.assertTrue(all(len(offs) == 2 for t, offs in samples if t > died))  # the mean without it
        svg = ET.fromstring(plot.draw_svg(tracks, result))
        self.assertEqual([e.text for e in svg.iter() if "takes over" in (e.text or "")],
                         ["slave-1 takes over (epoch 2)"])

    def test_symlog_ticks(self):
        self.assertEqual([plot.symlog(v) for v in (0, 500, 1000, -MS, S)], [0, 0.5, 1, -4, 7])
        self.assertEqual([plot.tick_label(d) for d in (1, 4, 7, 8)], ["1 us", "1 ms", "1 s", "10 s"])

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


class FormatTest(unittest.TestCase):
    """fmt_duration: the one format for durations, the C++ programs' too; times of day."""

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


class VerdictTest(unittest.TestCase):
    """berkeley/verdict.py on hand-written logs: roles over time, and each
    check failing with what was seen, or passing."""

    M, S1, S3 = "10.0.0.1:80", "10.0.0.2:81", "10.0.0.4:83"

    @staticmethod
    def ev(name, t_ms, who, offset_ns=0, **fields):
        real = T0 + t_ms * MS
        return {"event": name, "id": who, "clock_ns": real + offset_ns, "real_ns": real, **fields}

    def slave(self, who, serving, *later):
        ev = self.ev
        return [ev("start", 0, who, offset_ns=0, rate_ppb=0), ev("serving", 1, who, address=serving),
                ev("connected", 1, who, master=self.M), ev("plan", 2, who, epoch=1, round=1, successors=""),
                ev("adjust", 3, who, round=1, correction_ns=0, mode="step", rate_ppb=0)] + list(later)

    def split_run(self, merge_at_ms=None):
        """A master, s1 and s3: from 1000 ms s1 and s3 both take over as
        epoch 2 (a split), s1 following s3 again from merge_at_ms."""
        ev = self.ev
        master = [ev("start", 0, "master", offset_ns=0, rate_ppb=0, epoch=1, role="master", port=80)]
        s3 = self.slave("s3", self.S3, ev("lost", 900, "s3", reason="silence"), ev("electing", 900, "s3", epoch=1),
                        ev("takeover", 1000, "s3", epoch=2, round=5, address=self.S3),
                        ev("start", 1000, "s3", offset_ns=0, rate_ppb=0, epoch=2, role="master", port=83))
        s1 = self.slave("s1", self.S1, ev("lost", 900, "s1", reason="silence"), ev("electing", 900, "s1", epoch=1),
                        ev("takeover", 1000, "s1", epoch=2, round=5, address=self.S1))
        if merge_at_ms:
            s1 += [ev("connected", merge_at_ms, "s1", master=self.S3), ev("reply", merge_at_ms + 1, "s1", round=9)]
        return Story({"master": master, "s1": s1, "s3": s3}, {"master": self.M})

    def test_a_slave_follows_a_master_once_it_speaks_and_a_takeover_makes_a_master(self):
        story = self.split_run()
        kinds = [(r.real_ns - T0) // MS for r in story.roles["s1"]], [r.kind for r in story.roles["s1"]]
        self.assertEqual(kinds, ([0, 1, 2, 900, 900, 1000], ["adrift", "adrift", "slave", "adrift", "adrift", "master"]))
        self.assertEqual(story.role_at("s1", T0 + 2 * MS).master, self.M)
        self.assertEqual(story.groups_at(T0 + 500 * MS), "master (epoch 1) leads s1 s3")
        self.assertEqual(story.groups_at(T0 + 950 * MS), "master (epoch 1) leads nobody; s1 electing; s3 electing")

    def test_two_masters_of_one_epoch_are_named_with_who_followed_them(self):
        problems = self.split_run().one_master_per_epoch()
        self.assertEqual(problems, ["epoch 2 had 2 masters: s1 at 10.0.0.2:81 (s1 is it from +1.00 s); "
                                    "s3 at 10.0.0.4:83 (s3 is it from +1.00 s)"])
        self.assertEqual(self.split_run(merge_at_ms=1500).one_master_per_epoch(), [
            problems[0][:-1] + ", s1 follows it from +1.50 s)"], "a merge later does not undo the split")
        ev = self.ev
        one = Story({"master": [ev("start", 0, "master", rate_ppb=0, offset_ns=0, epoch=1, role="master", port=80)],
                     "s1": self.slave("s1", self.S1)}, {"master": self.M})
        self.assertEqual(one.one_master_per_epoch(), [])

    def test_one_group_after_a_heal_by_its_deadline_or_what_there_was(self):
        heal, deadline, end = (T0 + t * MS for t in (1200, 1600, 3000))
        self.assertEqual(self.split_run().one_group(heal, deadline, end), [
            "not one group at heal + 0.40 s (the deadline): master (epoch 1) leads nobody; s1 (epoch 2) leads nobody;"
            " s3 (epoch 2) leads nobody; still not at the end (heal + 1.80 s): master (epoch 1) leads nobody;"
            " s1 (epoch 2) leads nobody; s3 (epoch 2) leads nobody"])
        late = self.split_run(merge_at_ms=2000).one_group(heal, deadline, end)
        self.assertEqual(len(late), 1)
        self.assertTrue(late[0].endswith("still not at the end (heal + 1.80 s): master (epoch 1) leads nobody; "
                                         "s3 (epoch 2) leads s1"), late)
        self.assertEqual(self.split_run().felt(T0 + 800 * MS, heal), [])
        self.assertEqual(self.split_run().felt(T0 + 100 * MS, T0 + 800 * MS),
                         ["nobody lost its master from +0.10 s to +0.80 s; then master (epoch 1) leads s1 s3"])

    def test_a_merge_by_the_deadline_passes_and_a_later_one_is_timed(self):
        ev = self.ev
        logs = {"master": [ev("start", 0, "master", offset_ns=0, rate_ppb=0, epoch=1, role="master", port=80)],
                "s1": self.slave("s1", self.S1, ev("lost", 900, "s1", reason="x"), ev("connected", 1700, "s1", master=self.M),
                                 ev("plan", 1701, "s1", epoch=1, round=9, successors=""))}
        story = Story(logs, {"master": self.M})
        heal, end = T0 + 1200 * MS, T0 + 3000 * MS
        self.assertEqual(story.one_group(heal, T0 + 1800 * MS, end), [])
        self.assertEqual(story.one_group(heal, T0 + 1600 * MS, end), [
            "not one group at heal + 0.40 s (the deadline): master (epoch 1) leads nobody; "
            "s1 lost: x; one group from heal + 0.50 s on"])

    def test_a_clock_in_step_that_steps_back_or_reads_earlier_is_named(self):
        ev = self.ev
        first_back = [ev("start", 0, "s1", offset_ns=0, rate_ppb=0),
                      ev("adjust", 10, "s1", offset_ns=-5 * MS, round=1, correction_ns=-5 * MS, mode="step", rate_ppb=0)]
        self.assertEqual(Story({"s1": first_back}).no_step_back(), [], "the first correction may step back")
        back = first_back + [
            ev("adjust", 20, "s1", offset_ns=-7 * MS, round=2, correction_ns=-2 * MS, mode="step", rate_ppb=0),
            ev("reply", 30, "s1", offset_ns=-7 * MS, round=3),
            ev("reply", 31, "s1", offset_ns=-9 * MS, round=3)]
        self.assertEqual(Story({"s1": back}).no_step_back(), [
            "s1 stepped back 2000000 ns in round 2 at +0.02 s",
            "s1's clock read 1000000 ns earlier at its reply (+0.03 s) than at its reply before"])

    def test_clocks_apart_at_an_instant_are_told_from_their_median(self):
        ev = self.ev
        logs = {n: [ev("start", 0, n, offset_ns=off, rate_ppb=0)] for n, off in (("a", 0), ("b", 2000), ("c", 9000))}
        self.assertEqual(Story(logs).clocks_agree(T0 + 5 * MS, 10_000), [])
        self.assertEqual(Story(logs).clocks_agree(T0 + 5 * MS, 5_000), [
            "the clocks spread 9.0 us (bound 5.0 us) at +0.01 s; each from their median: a -2.0 us, b +0.0 us, c +7.0 us"])


class ProcessesTest(unittest.TestCase):
    """Processes: every child stopped by its own PID, and nothing left open."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.said = []
        self.procs = Processes(self.dir, grace_s=0.5, say=self.said.append)
        self.addCleanup(self.procs.close)

    def test_close_stops_every_child_and_closes_the_pipes(self):
        piped = self.procs.start([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                 "piped", pipe=True)
        self.assertEqual(piped.stdout.readline(), "up\n")
        stubborn = self.procs.start([sys.executable, "-c", "import signal, time; "
                                     "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                                     "time.sleep(60)"], "stubborn")
        deadline = time.monotonic() + WAIT_S
        while self.procs.output("stubborn")[0] != "up\n" and time.monotonic() < deadline:
            time.sleep(0.01)  # until it ignores SIGTERM
        self.procs.close("the test ends")
        self.assertEqual((piped.returncode, stubborn.returncode), (-signal.SIGTERM, -signal.SIGKILL))
        self.assertTrue(piped.stdout.closed and piped.stderr.closed)
        self.assertEqual(self.said, ["stopping piped (pid %d): the test ends" % piped.pid,
                                     "stopping stubborn (pid %d): the test ends" % stubborn.pid,
                                     "killing stubborn (pid %d)" % stubborn.pid])
        self.procs.close()  # twice: nothing more to do
        self.assertEqual(len(self.said), 3)

    def test_a_child_that_has_exited_is_not_signalled(self):
        done = self.procs.start([sys.executable, "-c", "print('bye')"], "done")
        self.assertEqual(done.wait(WAIT_S), 0)
        self.procs.stop_all()
        self.assertEqual(self.said, [])
        self.assertEqual(self.procs.output("done"), ("bye\n", ""))


# A stand-in for ./master: it takes --port and --log as the real one does,
# logs `start` with the port it was "given" (4242 for --port 0), a line at a
# time, then a `round`, and idles until it is stopped.
FAKE_MASTER = textwrap.dedent("""
    import json, sys, time
    args = sys.argv[1:]
    log, port = args[args.index("--log") + 1], int(args[args.index("--port") + 1]) or 4242
    def event(name, **fields):
        now = time.time_ns()
        return json.dumps(dict({"event": name, "id": "master", "clock_ns": now, "real_ns": now}, **fields)) + "\\n"
    start = event("start", port=port, slaves=1, offset_ns=0, rate_ppb=0, seed=1)
    with open(log, "w") as f:
        f.write(start[:20]); f.flush(); time.sleep(0.2)   # a reader must wait for the whole line
        f.write(start[20:] + event("round", round=1)); f.flush()
        time.sleep(60)
""")


class StartMasterTest(unittest.TestCase):
    """Processes.start_master: a master on a free port, and the port it took."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.procs = Processes(self.dir, grace_s=1)
        self.addCleanup(self.procs.close)
        self.fake = os.path.join(self.dir, "fake_master.py")
        with open(self.fake, "w") as f:
            f.write(FAKE_MASTER)
        self.warnings = []

    def test_the_port_comes_from_the_start_event_and_the_tail_reads_on_after_it(self):
        p = self.procs.start_master([sys.executable, self.fake, 3, "--quiet"], "m", WAIT_S, self.warnings.append)
        self.assertEqual(p.port, 4242)
        self.assertEqual(p.log, os.path.join(self.dir, "m.log"))
        self.assertEqual(p.args[-4:], ["--port", "0", "--log", p.log])  # added after the caller's flags
        self.assertIn("--quiet", p.args)
        self.assertEqual([e["event"] for e in p.tail.read_new()], ["round"])  # start consumed, nothing lost
        self.assertIs(self.procs.children[-1], p)
        self.assertEqual(self.warnings, [])

    def test_an_earlier_masters_log_is_not_read_for_this_one(self):
        with open(os.path.join(self.dir, "m.log"), "w") as f:
            f.write(json.dumps({"event": "start", "id": "master", "clock_ns": 1, "real_ns": 1, "port": 1,
                                "offset_ns": 0, "rate_ppb": 0}) + "\n")
        self.assertEqual(self.procs.start_master([sys.executable, self.fake], "m", WAIT_S).port, 4242)

    def test_a_master_that_exits_first_is_named_with_its_error(self):
        code = "import sys; sys.exit('master: no such option: --bogus\\nusage: master N ...')"
        with self.assertRaises(MasterDidNotStart) as caught:
            self.procs.start_master([sys.executable, "-c", code], "m", WAIT_S)
        self.assertEqual(str(caught.exception),
                         "m exited with 1 before listening: master: no such option: --bogus / usage: master N ...")

    def test_a_silent_master_is_given_up_on_and_still_stopped(self):
        t0 = time.monotonic()
        with self.assertRaises(MasterDidNotStart) as caught:
            self.procs.start_master([sys.executable, "-c", "import time; time.sleep(60)"], "m", 0.3)
        self.assertLess(time.monotonic() - t0, WAIT_S / 2)
        self.assertEqual(str(caught.exception), "m did not log `start` within 0.3 s")
        p = self.procs.children[-1]
        self.assertIsNone(p.poll())  # remembered, so that stop_all stops it
        self.procs.stop_all()
        self.assertIsNotNone(p.poll())

    @unittest.skipUnless(os.access(MASTER, os.X_OK), "%s is not built (make compile)" % MASTER)
    def test_the_real_master_listens_on_the_port_it_logs(self):
        p = self.procs.start_master([MASTER, 1, "--rounds", 0], "master", WAIT_S, self.warnings.append)
        self.assertGreater(p.port, 0)
        with socket.create_connection(("127.0.0.1", p.port), timeout=WAIT_S):
            pass
        self.assertEqual(self.warnings, [])


if __name__ == "__main__":
    unittest.main()
