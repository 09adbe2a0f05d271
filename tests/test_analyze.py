"""Tests of analyze.py: the clock model and the analysis on synthetic logs with
known offsets, drifts and corrections (exact figures), its handling of bad and
empty logs, and end to end against the real ./master and ./slave.

Run: cd tests && python3 -m unittest test_analyze -v"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import ROOT, WAIT_S, Run, final_spread_ns, free_port, read_log, wait_until

sys.path.insert(0, ROOT)
import analyze  # noqa: E402

ANALYZE = os.path.join(ROOT, "analyze.py")
MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S  # host time of the synthetic run's start


class Clock:
    """A synthetic clock, written the way the binaries log: its true offset
    at T0 + t_ms is offset + t_ms * ns_per_ms + the corrections made so far."""

    def __init__(self, ident, offset_ns, rate_ppb):
        self.id, self.offset_ns, self.rate_ppb = ident, offset_ns, rate_ppb
        self.ns_per_ms = rate_ppb // 1000  # exact for these rates
        self.steps = []  # (t_ms, correction_ns)
        self.lines = []

    def offset(self, t_ms, before_step=False):
        done = sum(c for t, c in self.steps if t < t_ms or (t == t_ms and not before_step))
        return self.offset_ns + t_ms * self.ns_per_ms + done

    def log(self, t_ms, event, **fields):
        real = T0 + t_ms * MS
        line = {"event": event, "id": self.id, "clock_ns": real + self.offset(t_ms), "real_ns": real}
        line.update(fields)
        self.lines.append(json.dumps(line))

    def adjust(self, t_ms, rnd, correction_ns):
        self.steps.append((t_ms, correction_ns))
        self.log(t_ms, "adjust", round=rnd, correction_ns=correction_ns)

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


def tracks_of(*clocks):
    return {c.id: analyze.ClockTrack(c.id, [json.loads(line) for line in c.lines]) for c in clocks}


def run_analyze(*args, timeout=WAIT_S):
    return subprocess.run([sys.executable, ANALYZE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class ClockModelTest(unittest.TestCase):
    def track(self, *events):
        return analyze.ClockTrack("c", [dict(e, id="c") for e in events])

    def test_extrapolates_at_its_rate_forwards_and_backwards(self):
        t = self.track({"event": "start", "clock_ns": 10_000 + 7, "real_ns": 10_000, "rate_ppb": 1_000_000})
        self.assertEqual(t.offset_at(10_000), 7)
        self.assertEqual(t.offset_at(10_000 + 5_000), 7 + 5)   # 1000 ppm: 5 ns per 5 us
        self.assertEqual(t.offset_at(10_000 - 5_000), 7 - 5)   # before the first event
        self.assertEqual(t.offset_at(10_000 - 1_500), 7 - 2)   # floored, as clock.hpp floors

    def test_a_step_counts_after_it_but_not_just_before(self):
        t = self.track({"event": "start", "clock_ns": 100, "real_ns": 0, "rate_ppb": 0},
                       {"event": "adjust", "clock_ns": 1000 + 100 - 40, "real_ns": 1000, "round": 1,
                        "correction_ns": -40})
        self.assertEqual(t.offset_at(999), 100)
        self.assertEqual(t.offset_at(1000, before_step=True), 100)
        self.assertEqual(t.offset_at(1000), 60)
        self.assertEqual(t.offset_at(5000, before_step=True), 60)

    def test_a_later_rate_applies_from_its_event_on(self):
        t = self.track({"event": "start", "clock_ns": 0, "real_ns": 0, "rate_ppb": 1_000_000},
                       {"event": "trim", "clock_ns": 1_000_000 + 1000, "real_ns": 1_000_000, "rate_ppb": -2_000_000})
        self.assertEqual(t.offset_at(500_000), 500)
        self.assertEqual(t.offset_at(2_000_000), 1000 - 2000)


class AnalysisTest(unittest.TestCase):
    def test_spreads_with_the_master_log(self):
        r = analyze.analyse(tracks_of(*synthetic_run()), 1000)
        # Round 1 judged from the master's `round` event (1000 ms) to the last step (1012 ms).
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 50_000 + 20_000, 0), (988 * 50 + 988 * 20, 300)])
        self.assertEqual(r["final_spread_ns"], 300)
        self.assertTrue(r["synchronized"])

    def test_spreads_without_the_master_log(self):
        _, s1, s2 = synthetic_run()
        r = analyze.analyse(tracks_of(s1, s2), 1000)
        # "Before" is the earliest slave step (base + 11 ms), every clock before its own step.
        self.assertEqual([(x["spread_before_ns"], x["spread_after_ns"]) for x in r["rounds"]],
                         [(4500 * MS + 1011 * 70, 0), (999 * 70, 300)])
        self.assertEqual({c: v["final_offset_ns"] for c, v in r["clocks"].items()}, {"slave-1": -150, "slave-2": 150})
        self.assertNotIn("estimation_error_ns", r)

    def test_initial_offsets_corrections_and_final_offsets(self):
        m, s1, s2 = synthetic_run()
        r = analyze.analyse(tracks_of(m, s1, s2), 1000)
        clocks = r["clocks"]
        self.assertEqual(list(clocks), ["master", "slave-1", "slave-2"])
        self.assertEqual([clocks[c]["initial_offset_ns"] for c in clocks], [0, 3 * S, -1500 * MS])
        self.assertEqual(clocks["slave-1"]["corrections_ns"], [c for _, c in s1.steps])
        self.assertEqual(clocks["slave-2"]["corrections_ns"], [2000 * MS + 20_240, 20_000 + 300])
        # They end at +0.5 s, +0.5 s and +0.5 s + 300 ns: the mean is 100 ns above the first two.
        self.assertEqual([clocks[c]["final_offset_ns"] for c in clocks], [-100, -100, 200])
        self.assertEqual(r["mean_offset_ns"], 500 * MS + 100)

    def test_estimation_errors(self):
        r = analyze.analyse(tracks_of(*synthetic_run()), 1000)
        self.assertEqual(r["estimation_error_ns"], {"slave-1": {"1": 1234, "2": 10},
                                                    "slave-2": {"1": -567, "2": -2000}})
        self.assertEqual([x["max_estimation_error_ns"] for x in r["rounds"]], [1234, 2000])
        self.assertEqual(r["clocks"]["slave-2"]["max_estimation_error_ns"], 2000)

    def test_verdict_names_the_furthest_clock(self):
        r = analyze.analyse(tracks_of(*synthetic_run()), 100)
        self.assertFalse(r["synchronized"])
        self.assertEqual(analyze.verdict(r), "NOT synchronized: spread 0.3 us > tolerance 0.1 us "
                                             "(furthest: slave-2, +0.2 us from the mean)")

    def test_nothing_to_analyse(self):
        with self.assertRaises(analyze.NothingToAnalyse):
            analyze.analyse({}, 1000)

    def test_symlog_ticks(self):
        self.assertEqual([analyze.symlog(v) for v in (0, 500, 1000, -MS, S)], [0, 0.5, 1, -4, 7])
        self.assertEqual([analyze.tick_label(d) for d in (1, 4, 7, 8)], ["1 us", "1 ms", "1 s", "10 s"])


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
        self.assertEqual(p.stdout.strip().splitlines()[-1], "synchronized: spread 0.3 us <= tolerance 1000 us")
        self.assertIn("slave-2", p.stdout)
        with open(out_json) as f:
            figures = json.load(f)
        self.assertEqual(figures["final_spread_ns"], 300)
        self.assertEqual(figures["tolerance_ns"], 1000 * 1000)
        self.assertEqual(figures["rounds"][1]["spread_before_ns"], 69160)
        self.assertEqual(figures["clocks"]["slave-2"]["final_offset_ns"], 200)
        series = [e for e in ET.parse(out_svg).iter() if e.get("class") == "series"]
        self.assertEqual(sorted(e.get("data-clock") for e in series), ["master", "slave-1", "slave-2"])

    def test_not_synchronized_exits_1(self):
        p = run_analyze("--from-logs", self.dir, "--tolerance-us", "0.1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("NOT synchronized: spread 0.3 us > tolerance 0.1 us (furthest: slave-2", p.stdout)

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


class EndToEndTest(unittest.TestCase):
    """The real ./master, and analyze.py starting the real ./slave."""

    def setUp(self):
        self.run_ = Run()
        self.addCleanup(self.run_.close)

    def test_a_real_run_is_reported_plotted_and_reanalysed(self):
        r = self.run_
        m = r.master(3, "--rounds", 3, "--interval", 0.2)
        logs = os.path.join(r.dir, "slaves")
        out_svg, out_json = os.path.join(r.dir, "plot.svg"), os.path.join(r.dir, "figures.json")
        p = run_analyze(3, "--port", m.port, "--logs", logs, "--master-log", r.log("master"), "--plot", out_svg,
                        "--json", out_json, "--timeout", WAIT_S, "--seed", 1, timeout=2 * WAIT_S)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(r.wait(m), 0)
        verdict = p.stdout.strip().splitlines()[-1]
        self.assertRegex(verdict, r"^synchronized: spread [0-9.]+ us <= tolerance 1000 us$")
        self.assertIn("[slave-2] ", p.stdout)  # the slaves' output, streamed with their ids
        series = [e for e in ET.parse(out_svg).iter() if e.get("class") == "series"]
        self.assertEqual(sorted(e.get("data-clock") for e in series), ["master", "slave-1", "slave-2", "slave-3"])
        with open(out_json) as f:
            figures = json.load(f)
        self.assertEqual([x["round"] for x in figures["rounds"]], [1, 2, 3])
        expected = final_spread_ns([read_log(os.path.join(logs, "slave-%d.log" % i)) for i in (1, 2, 3)]
                                   + [read_log(r.log("master"))])
        self.assertAlmostEqual(figures["final_spread_ns"], expected, delta=1000)
        self.assertEqual(set(figures["estimation_error_ns"]), {"slave-1", "slave-2", "slave-3"})
        # The same logs, analysed again later, give the same verdict.
        again = run_analyze("--from-logs", logs, "--master-log", r.log("master"))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.strip().splitlines()[-1], verdict)

    def test_no_master_is_a_clear_message_and_exit_2(self):
        port = free_port()
        p = run_analyze(3, "--port", port, "--connect-timeout", 0.5, "--quiet", "--logs", self.run_.dir)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("no master answered at 127.0.0.1:%d" % port, p.stderr)
        self.assertIn("./master 3", p.stderr)
        self.assertNotIn("Traceback", p.stderr)

    def test_ctrl_c_stops_the_slaves_and_still_reports(self):
        logs = self.run_.dir
        p = subprocess.Popen([sys.executable, ANALYZE, "2", "--port", str(free_port()), "--connect-timeout", "60",
                              "--logs", logs, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.run_.procs.append(p)
        for ident in ("slave-1", "slave-2"):
            wait_until(lambda ident=ident: read_log(os.path.join(logs, ident + ".log")), ident + " to start")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=WAIT_S)
        self.assertEqual(p.returncode, 1, out + err)  # nothing was synchronized: nothing to analyse
        self.assertIn("interrupted", err)
        self.assertIn("nothing to analyse", err)
        self.assertNotIn("Traceback", err)
        for ident in ("slave-1", "slave-2"):
            self.assertEqual(read_log(os.path.join(logs, ident + ".log"))[-1]["event"], "exit")


if __name__ == "__main__":
    unittest.main()
