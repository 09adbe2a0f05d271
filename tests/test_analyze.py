"""Tests of analyze.py: its text report on synthetic logs with known answers,
its command line (--from-logs, the options, what each slave is told), and end
to end against the real ./master and ./slave (launching, --panes, no master,
a master that died, Ctrl-C, the temporary log directory). What it shares with
the tests and the benchmarks (berkeley/) is tested in test_berkeley.py.

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
from berkeley import analysis
from berkeley.units import NS_PER_MS as MS, NS_PER_S as S
from synthetic import events_of, slewing_run, stubborn_run, synthetic_run, textbook_run, tracks_of

ANALYZE = os.path.join(ROOT, "analyze.py")


def run_analyze(*args, timeout=WAIT_S):
    return subprocess.run([sys.executable, ANALYZE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class FinalSpreadTest(unittest.TestCase):
    """tests/harness.py's final_spread_ns, which the integration tests judge by."""

    def test_final_spread_is_where_the_last_corrections_put_the_clocks(self):
        # Each clock's offset as its last correction began, plus what it had
        # left to slew; no free running after it.
        self.assertEqual(final_spread_ns([events_of(c) for c in slewing_run()]), 1008)
        # Each taken at its own last correction: here those are apart in time, so drift counts too.
        self.assertEqual(final_spread_ns([events_of(c) for c in synthetic_run()]), 350)


class ReportTest(unittest.TestCase):
    """The text report's marks and formats, on synthetic runs."""

    def test_report_marks_slews(self):
        report = analyze.report(analysis.analyse(tracks_of(*slewing_run()), 1000), "logs")
        self.assertIn("after = once the round's corrections are fully applied, slews included", report)
        self.assertIn("Corrections received (~ slewed, the others stepped)", report)
        self.assertIn("~-200.000 us", report)
        self.assertIn("+90.002 us", report)

    def test_stepped_rounds_have_no_slew_mark(self):
        self.assertNotIn("~", analyze.report(analysis.analyse(tracks_of(*synthetic_run()), 1000), "logs"))

    def test_a_stubborn_clock_is_marked_and_named(self):
        report = analyze.report(analysis.analyse(tracks_of(*stubborn_run()), 1000), "logs")
        self.assertIn("Corrections received (x ignored (not applied), the others stepped)", report)
        self.assertIn("x-500.000 ms", report)
        self.assertIn("NOT synchronized: spread 500.000 ms > tolerance 1.000 us (furthest: slave-3", report)

    def test_the_report_reads_like_the_textbook(self):
        report = analyze.report(analysis.analyse(tracks_of(*textbook_run()), 1000), "logs")
        for reading in ("3:00:00.000000", "3:25:00.000000", "2:50:00.000000"):
            self.assertIn(reading, report)
        self.assertRegex(report, r"\n  1 +\+0:05:00 +-0:20:00 +\+0:15:00\n")  # corrections: signed
        self.assertRegex(report, r"\n  1 +3 +0:35:00 +14 ns +-\n")  # spreads: magnitudes, no sign
        self.assertTrue(report.endswith("\nsynchronized: spread 14 ns <= tolerance 1.000 us"))
        self.assertNotIn("client", report.lower())

    def test_logs_not_kept_are_said_so(self):
        report = analyze.report(analysis.analyse(tracks_of(*synthetic_run()), 1000), None)
        self.assertIn("; logs not kept (--logs DIR keeps them)\n", report)


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
