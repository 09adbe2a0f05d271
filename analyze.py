#!/usr/bin/env python3
"""analyze.py - run N Berkeley slaves against a running ./master and show,
from their JSON-lines logs, how well the run synchronized their clocks.

    ./master 3 --log master.log              (one terminal)
    python3 analyze.py 3 --master-log master.log   (another)
    python3 analyze.py 2 --times 3:25,2:50 --drift 0 --panes
                                             (each slave its own clock and tmux pane)
    python3 analyze.py --from-logs DIR       (analyse logs of an earlier run)

The truth comes from the logs alone, never from the master's estimates: every
process logs its simulated clock together with the host clock read at the same
instant, and all processes share the host clock, so a clock's true offset at an
instant is clock_ns - real_ns. From its `start` and each `adjust` event on, a
clock runs at the rate that event logs; a correction is stepped (a jump) or
slewed (a ramp, until all of it is in). The report gives the true spread
(largest minus smallest offset, all clocks at one common instant) before every
round and once its corrections are fully applied, each clock's corrections,
and the final verdict.

Layout: the text report (fmt_optional and table beside berkeley/units.py's
durations), launching the slaves (their output streamed here, or each slave
in a tmux pane), main(). What the tests (tests/harness.py) and the benchmarks
(bench/) judge by too lives in berkeley/ beside this file: the log reader
(logs.py), the clock model (clock.py), the analysis and its verdict
(analysis.py), the SVG picture (plot.py) and the process launcher
(processes.py). Standard library only.
"""

import argparse
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from berkeley.analysis import MASTER_ID, NothingToAnalyse, analyse, verdict
from berkeley.clock import ClockTrack
from berkeley.logs import read_events, read_logs
from berkeley.plot import draw_svg
from berkeley.processes import STOP_GRACE_S, Processes
from berkeley.units import NS_PER_US, fmt_duration, fmt_magnitude, fmt_time_of_day

VERSION = "1.0.0"  # the C++ programs' PROGRAM_VERSION
UNREACHABLE = "could not reach the master at"  # what ./slave prints when it gives up


def warn(message):
    """analyze.py's own warnings, and the lines its log reader skips."""
    print("analyze.py: warning: " + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The text report

def fmt_optional(ns, fmt=fmt_duration):
    return "-" if ns is None else fmt(ns)


def table(headers, rows):
    """Columns padded to fit: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    lines = []
    for row in [headers] + rows:
        cells = [str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def report(result, log_dir):
    """The report as text; log_dir None: the logs were not kept."""
    clocks, rounds = result["clocks"], result["rounds"]
    has_master = MASTER_ID in clocks
    where = "logs in %s" % log_dir if log_dir else "logs not kept (--logs DIR keeps them)"
    out = ["", "Berkeley synchronization: %d clock(s), %d round(s); %s" % (len(clocks), len(rounds), where)]
    if not has_master:
        out.append("(no master log: the spreads are among the slaves only; --master-log adds the master)")
    out += ["", "Clocks (reading = the time of day the clock showed as round 1 began, UTC;",
            "        true offset = simulated clock minus host clock)"]
    headers = ["clock", "drift", "reading at round 1", "initial offset", "final offset from mean"] \
        + (["max |est. error|"] if has_master else [])
    rows = []
    for c, info in clocks.items():
        final = fmt_duration(info["final_offset_ns"]) + ("" if info["in_final_round"] else " (left)")
        reading = info["round1_clock_ns"]
        row = [c, "%+.3f ppm" % (info["drift_ppb"] / 1000), "-" if reading is None else fmt_time_of_day(reading),
               fmt_duration(info["initial_offset_ns"]), final]
        if has_master:
            row.append(fmt_optional(info.get("max_estimation_error_ns"), fmt_magnitude) if c != MASTER_ID else "-")
        rows.append(row)
    out.append(table(headers, rows))
    out += ["", "Rounds (true spread = largest minus smallest offset, every clock at one instant;",
            "        before = at the round's start, after = once the round's corrections are fully applied,"
            " slews included)"]
    headers = ["round", "clocks", "spread before", "spread after"] + (["max |est. error|"] if has_master else [])
    rows = [[r["round"], len(r["clocks"]), fmt_magnitude(r["spread_before_ns"]), fmt_magnitude(r["spread_after_ns"])]
            + ([fmt_optional(r.get("max_estimation_error_ns"), fmt_magnitude)] if has_master else []) for r in rounds]
    out.append(table(headers, rows))
    modes = {mode for info in clocks.values() for mode in info["correction_modes"]}
    marks = ["~ slewed"] * ("slew" in modes) + ["x ignored (not applied)"] * ("ignored" in modes)
    out += ["", "Corrections received" + (" (%s, the others stepped)" % ", ".join(marks) if marks else "")]
    mark = {"slew": "~", "ignored": "x"}
    rows = [[r["round"]] + [mark.get(info["correction_modes"][i], "") + fmt_optional(info["corrections_ns"][i])
                            for info in clocks.values()]
            for i, r in enumerate(rounds)]
    out.append(table(["round"] + list(clocks), rows))
    for t in result.get("takeovers", []):
        out += ["", "Takeover: %s became the master (epoch %d) after round %d%s; the group had no master for %s;"
                % (t["clock"], t["epoch"], t["after_round"],
                   ", and ran round %d first" % t["first_round"] if t["first_round"] else " (it ran no round)",
                   fmt_optional(t["no_master_ns"], fmt_magnitude)),
                "          spread after round %d: %s; after its first round: %s"
                % (t["after_round"], fmt_optional(t["spread_before_ns"], fmt_magnitude),
                   fmt_optional(t["spread_after_ns"], fmt_magnitude))]
    out += ["", "The ensemble ended %s from the host clock: Berkeley agrees on an average, not on true time."
            % fmt_duration(result["mean_offset_ns"]), verdict(result)]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Launching processes: analyze.py's slaves, and the tests' and benchmarks'
# masters and slaves

def plan_slaves(args, log_dir):
    """(id, argv) of slave-1..slave-N. Each one's clock: --times (its time of
    day, passed as --time), --offsets (passed as --offset), or an offset drawn
    within +/- --offset-range; its drift: --drift, or one drawn within
    +/- --drift-range. The draws come from --seed and are made whatever is
    fixed, so one seed gives the same random figures with or without them."""
    rng = random.Random(args.seed)
    plans = []
    for i in range(1, args.n + 1):
        ident = "slave-%d" % i
        offset_ms = rng.uniform(-args.offset_range, args.offset_range)
        drift_ppm = rng.uniform(-args.drift_range, args.drift_range)
        if args.times:
            clock = ["--time", args.times[i - 1]]
        else:
            clock = ["--offset", args.offsets[i - 1] if args.offsets else "%.3f" % offset_ms]
        drift = args.drift if args.drift is not None else "%.3f" % drift_ppm
        argv = [args.slave, "--host", args.host, "--port", str(args.port), "--id", ident, *clock, "--drift", drift,
                "--log", os.path.join(log_dir, ident + ".log"), "--connect-timeout", "%g" % args.connect_timeout]
        plans.append((ident, argv + (["--quiet"] if args.quiet else [])))
    return plans


PRINT_LOCK = threading.Lock()


def stream(pipe, ident, dest, errors):
    for line in pipe:
        if dest is sys.stderr:
            errors.append(line)
        with PRINT_LOCK:  # one write per line, so other writers cannot split it
            dest.write("[%s] %s\n" % (ident, line.rstrip("\n")))
            dest.flush()


def stop_on_interrupt(stop):
    """After a Ctrl-C: stop the slaves (by `stop(why)`) and go on to report
    what was logged; a second Ctrl-C must not cut that clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("\nanalyze.py: interrupted; reporting what was logged so far", file=sys.stderr)
    stop("interrupted")


def stream_slaves(plans, args, say):
    """Run the slaves as children whose output is streamed here, each line
    prefixed [slave-i], by one thread per pipe, until all exit or --timeout
    (procs remembers each at once, so that a Ctrl-C midway still stops those
    started). Returns {id: (exit status, what it wrote to stderr)}."""
    procs = Processes(say=say)
    readers = []
    try:
        for ident, argv in plans:
            p = procs.start(argv, ident, pipe=True)
            p.errors = []
            for pipe, dest in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                readers.append(threading.Thread(target=stream, args=(pipe, ident, dest, p.errors), daemon=True))
                readers[-1].start()
        if not procs.wait_all(args.timeout):
            procs.stop_all("still running after %g s (--timeout)" % args.timeout)
    except KeyboardInterrupt:
        stop_on_interrupt(procs.stop_all)
    except OSError as e:
        procs.stop_all("could not start them all")
        sys.exit("analyze.py: cannot run %s: %s (build it with: make compile)" % (args.slave, e.strerror or e))
    for t in readers:
        if t.ident is not None:  # a Ctrl-C can come between creating a reader and starting it
            t.join()
    procs.close()  # every slave has exited and every reader is done: their pipes too
    return {p.name: (p.returncode, "".join(p.errors)) for p in procs.children}


class TmuxPanes:
    """The slaves in the panes of one tmux window, each pane running the
    slave's own command line (shown at its top), as the C assignment's one
    terminal per process. Inside tmux the window opens in the current session;
    outside, in a new detached session to attach to. Every pane waits for a
    go-file before it execs its slave, so that the window is fully laid out
    (and set to keep a pane whose process exited, with its exit status) before
    any slave can exit. Slaves are stopped through their terminals (Ctrl-C,
    then closing the pane), never by a PID this process does not own. The
    window stays when the run ends, for its output to be read; each pane's
    text is also saved as DIR/slave-i.out."""

    NAME = "berkeley"
    GO = ".panes-go"  # in the log directory while the panes are opened

    def __init__(self, log_dir, say):
        self.log_dir, self.say = log_dir, say
        self.panes = {}  # id -> tmux pane id (%N)
        self.window = self.session = None

    @staticmethod
    def tmux(*words):
        """tmux's output, or OSError with its own message."""
        p = subprocess.run(["tmux", *words], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            raise OSError(p.stderr.strip() or "tmux %s failed" % words[0])
        return p.stdout.strip()

    def tmux_to_pane(self, *words):
        """A command for a pane that may have gone meanwhile (closed by hand): then nothing to do."""
        try:
            self.tmux(*words)
        except OSError:
            pass

    def open(self, plans):
        """Lay out one pane per slave and let them start; OSError when tmux
        cannot (the window is then closed again, no slave having started)."""
        go = os.path.join(self.log_dir, self.GO)
        if os.path.exists(go):
            os.remove(go)
        where = ["-c", os.getcwd(), "-P", "-F", "#{window_id} #{pane_id}"]
        try:
            for i, (ident, argv) in enumerate(plans):
                script = 'while [ ! -e %s ]; do sleep 0.05; done; printf "%%s\\n\\n" %s; exec %s' % (
                    shlex.quote(go), shlex.quote("$ " + shlex.join(argv)), shlex.join(argv))
                command = shlex.join(["sh", "-c", script])
                if i > 0:
                    created = self.tmux("split-window", "-d", "-t", self.panes[plans[i - 1][0]], *where, command)
                    self.tmux("select-layout", "-t", self.window, "tiled")  # room for the next split
                elif os.environ.get("TMUX"):
                    created = self.tmux("new-window", "-n", self.NAME, *where, command)
                else:
                    self.session = "%s-%d" % (self.NAME, os.getpid())
                    created = self.tmux("new-session", "-d", "-s", self.session, "-n", self.NAME,
                                        "-x", "200", "-y", "50", *where, command)
                self.window, self.panes[ident] = created.split()
                if i == 0:
                    self.tmux("set-option", "-w", "-t", self.window, "remain-on-exit", "on")
                    self.tmux("set-option", "-w", "-t", self.window, "pane-border-status", "top")
                self.tmux("select-pane", "-t", self.panes[ident], "-T", ident)
                self.tmux("pipe-pane", "-t", self.panes[ident], "exec cat > " + shlex.quote(self.out_path(ident)))
        except (OSError, KeyboardInterrupt):
            if self.window:  # its panes are still waiting for the go-file: no slave has started
                self.tmux_to_pane("kill-window", "-t", self.window)
            raise
        open(go, "w").close()
        where = "tmux session %s: watch them with  tmux attach -t %s" % (self.session, self.session) \
            if self.session else "tmux window %s (%s) of this session" % (self.NAME, self.window)
        self.say("the slaves run in the panes of %s" % where)

    def states(self):
        """{id: (dead, exit status or None)}; a pane closed by hand counts as dead."""
        try:
            lines = self.tmux("list-panes", "-t", self.window, "-F",
                              "#{pane_id} #{pane_dead} #{pane_dead_status}").splitlines()
        except OSError:  # the window is gone
            lines = []
        found = {words[0]: words[1:] for words in (line.split() for line in lines)}
        states = {}
        for ident, pane in self.panes.items():
            dead, *status = found.get(pane, ["1"])
            states[ident] = (dead == "1", int(status[0]) if status and status[0].lstrip("-").isdigit() else None)
        return states

    def wait(self, timeout_s):
        """Wait until every slave has exited or timeout_s has passed; True if all exited."""
        deadline = time.monotonic() + timeout_s
        while not all(dead for dead, _ in self.states().values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, why):
        """Ctrl-C to every slave still running, and close the panes of those
        still running STOP_GRACE_S later (tmux hangs up on them)."""
        running = [ident for ident, (dead, _) in self.states().items() if not dead]
        for ident in running:
            self.say("stopping %s: %s" % (ident, why))
            self.tmux_to_pane("send-keys", "-t", self.panes[ident], "C-c")
        if running and not self.wait(STOP_GRACE_S):
            for ident, (dead, _) in self.states().items():
                if not dead:
                    self.say("closing the pane of %s" % ident)
                    self.tmux_to_pane("kill-pane", "-t", self.panes[ident])

    def out_path(self, ident):
        return os.path.join(self.log_dir, ident + ".out")

    def outcomes(self):
        """{id: (exit status, what the slave wrote)}. tmux copies all of a
        pane's output to DIR/id.out (pipe-pane: the whole of it, however small
        the pane or short its history); the copy is closed here and its
        terminal's \r\n made \n."""
        results = {}
        for ident, (_, status) in self.states().items():
            self.tmux_to_pane("pipe-pane", "-t", self.panes[ident])  # no command: close the copy
            try:
                with open(self.out_path(ident), errors="replace", newline="") as f:
                    text = f.read().replace("\r\n", "\n")
                with open(self.out_path(ident), "w") as f:
                    f.write(text)
            except FileNotFoundError:
                text = ""
            results[ident] = (status, text)
        return results


def pane_slaves(plans, args, log_dir, say):
    """stream_slaves, with each slave in a tmux pane; None when that cannot
    be (no tmux, or tmux could not make the panes), having said why in one line."""
    if shutil.which("tmux") is None:
        say("--panes: tmux is not installed; the slaves' output is streamed here instead")
        return None
    if shutil.which(args.slave) is None:
        sys.exit("analyze.py: cannot run %s: not an executable file (build it with: make compile)" % args.slave)
    panes = TmuxPanes(os.path.abspath(log_dir), say)
    try:
        panes.open(plans)
    except OSError as e:
        say("--panes: tmux could not open the panes (%s); the slaves' output is streamed here instead" % e)
        return None
    except KeyboardInterrupt:
        sys.exit("\nanalyze.py: interrupted before the slaves started")
    try:
        if not panes.wait(args.timeout):
            panes.stop("still running after %g s (--timeout)" % args.timeout)
    except KeyboardInterrupt:
        stop_on_interrupt(panes.stop)
    results = panes.outcomes()
    os.remove(os.path.join(panes.log_dir, TmuxPanes.GO))
    if panes.session:
        say("the panes stay in tmux session %s until you close it:  tmux kill-session -t %s"
            % (panes.session, panes.session))
    return results


def run_slaves(args, log_dir, kept):
    """Run the slaves to the end, logging to log_dir (kept: the user's
    --logs, else a temporary directory removed after the report), or exit 2."""
    print("analyze.py: starting %d slave(s) for the master at %s:%d (seed %d), logs in %s%s"
          % (args.n, args.host, args.port, args.seed, log_dir,
             "" if kept else " (temporary: removed after the report; --logs DIR keeps them)"), flush=True)

    def say(message):
        print("analyze.py: " + message, file=sys.stderr, flush=True)

    plans = plan_slaves(args, log_dir)
    outcomes = (pane_slaves(plans, args, log_dir, say) if args.panes else None) or stream_slaves(plans, args, say)
    logged = {ident: read_events(os.path.join(log_dir, ident + ".log"), warn=lambda message: None)
              for ident, _ in plans}
    gave_up = outcomes and all(status == 1 and (UNREACHABLE in text or any(
        UNREACHABLE in e.get("reason", "") for e in logged.get(ident, []) if e["event"] == "exit"))
        for ident, (status, text) in outcomes.items())
    if gave_up and any(e["event"] == "connected" for events in logged.values() for e in events):
        say("the slaves lost the master at %s:%d and gave up after %g s (--connect-timeout); "
            "reporting what they logged" % (args.host, args.port, args.connect_timeout))
    elif gave_up:
        print("analyze.py: no master answered at %s:%d within %g s. Start one first, in another terminal:\n"
              "    ./master %d --port %d --log master.log\nthen run this again." %
              (args.host, args.port, args.connect_timeout, args.n, args.port), file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------------------
# main

TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d\d)(?::(\d\d)(?:\.\d{0,9})?)?")  # as ./slave --time takes it
DECIMAL = r"[+-]?(?:\d+(?:\.\d{0,%d})?|\.\d{1,%d})"  # as the C++ options take a number (parse_decimal)


def split_list(p, args, option, n, valid, what):
    """The comma-separated values of --times or --offsets, one per slave, each checked by valid."""
    values = getattr(args, option.strip("-"))
    if values is None:
        return None
    items = [v.strip() for v in values.split(",")]
    if n is not None and len(items) != n:
        p.error("%s gives %d value(s) for %d slave(s): give exactly one per slave" % (option, len(items), n))
    bad = [v for v in items if not valid(v)]
    if bad:
        p.error("%s: %r is not %s" % (option, bad[0], what))
    return items


def valid_time(text):
    m = TIME_OF_DAY.fullmatch(text)
    return bool(m) and int(m[1]) <= 23 and int(m[2]) <= 59 and int(m[3] or 0) <= 59


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run N Berkeley slaves against a running ./master and judge the run from the logs.",
        epilog="The textbook's example (master 3:00, slaves 3:25 and 2:50): ./master 2 --time 3:00 --drift 0 "
               "--log master.log, then  python3 analyze.py 2 --times 3:25,2:50 --drift 0 --master-log master.log")
    p.add_argument("--version", action="version", version="analyze.py (berkeley-sync) " + VERSION)
    p.add_argument("n", nargs="?", type=int, help="number of slaves to start")
    p.add_argument("--from-logs", metavar="DIR", help="analyse the *.log files in DIR; start nothing")
    p.add_argument("--host", default="127.0.0.1", help="the master's address [127.0.0.1]")
    p.add_argument("--port", type=int, default=8080, help="the master's port [8080]")
    p.add_argument("--slave", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "slave"),
                   help="the slave binary [./slave next to this script]")
    p.add_argument("--seed", type=int, default=None, help="seed for the slaves' offsets and drifts [random]")
    p.add_argument("--times", metavar="HH:MM[:SS[.frac]],...",
                   help="each slave's clock as a time of day (UTC), one per slave, e.g. 3:25,2:50 "
                        "(passed to each slave as --time)")
    p.add_argument("--offsets", metavar="MS,MS,...",
                   help="each slave's clock offset in ms, one per slave, e.g. 2500,-1500 "
                        "(passed to each slave as --offset)")
    p.add_argument("--offset-range", type=float, default=None, metavar="MS",
                   help="without --times or --offsets: random offsets within +/-MS [5000]")
    p.add_argument("--drift", metavar="PPM", help="every slave's drift, in ppm: --drift 0 for none "
                                                  "[random within --drift-range]")
    p.add_argument("--drift-range", type=float, default=None, metavar="PPM",
                   help="without --drift: random drifts within +/-PPM [50]")
    p.add_argument("--timeout", type=float, default=120, metavar="SEC", help="stop the slaves after SEC [120]")
    p.add_argument("--connect-timeout", type=float, default=10, metavar="SEC",
                   help="slaves give up when no master answers for SEC [10]")
    p.add_argument("--panes", action="store_true",
                   help="run each slave in its own pane of one tmux window (a new tmux session when not "
                        "inside tmux); without tmux, say so and stream their output here")
    p.add_argument("--tolerance-us", type=float, default=1000, metavar="US", help="largest final spread [1000]")
    p.add_argument("--plot", metavar="FILE.svg", help="draw the offsets over time as SVG")
    p.add_argument("--plot-scale", choices=("auto", "linear", "symlog"), default="auto",
                   help="the plot's offset axis: linear, symlog (symmetric log), or auto: linear when no clock "
                        "drifts and the first offsets are of one scale [auto]")
    p.add_argument("--logs", metavar="DIR", help="keep the slaves' logs in DIR [a temporary directory, removed after the report]")
    p.add_argument("--master-log", metavar="FILE", help="the master's --log file: adds the master and its estimates")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.add_argument("--quiet", action="store_true", help="do not echo the slaves' output")
    args = p.parse_args(join_list_values(sys.argv[1:] if argv is None else argv))
    if (args.n is None) == (args.from_logs is None):
        p.error("give either N (slaves to start) or --from-logs DIR")
    if args.n is not None and args.n < 1:
        p.error("N must be at least 1")
    if args.times is not None and args.offsets is not None:
        p.error("give each slave's clock by --times or by --offsets, not both")
    if (args.times is not None or args.offsets is not None) and args.offset_range is not None:
        p.error("--offset-range draws offsets at random: it does not go with --times or --offsets")
    if args.drift is not None and args.drift_range is not None:
        p.error("give --drift (every slave's drift) or --drift-range (random drifts), not both")
    args.times = split_list(p, args, "--times", args.n, valid_time, "a time of day HH:MM[:SS[.frac]] (0:00 to 23:59)")
    args.offsets = split_list(p, args, "--offsets", args.n, re.compile(DECIMAL % (6, 6)).fullmatch,
                              "a number of ms (at most 6 decimals)")
    if args.drift is not None and not re.fullmatch(DECIMAL % (3, 3), args.drift):
        p.error("--drift: %r is not a number of ppm (at most 3 decimals)" % args.drift)
    args.offset_range = 5000 if args.offset_range is None else args.offset_range
    args.drift_range = 50 if args.drift_range is None else args.drift_range
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2 ** 31)
    return args


def join_list_values(argv):
    """--offsets -500,200 as --offsets=-500,200: argparse would take a value
    that starts with '-' and is not one plain number for an option."""
    argv, joined = list(argv), []
    while argv:
        word = argv.pop(0)
        if word in ("--offsets", "--times", "--drift") and argv:
            word += "=" + argv.pop(0)
        joined.append(word)
    return joined


def main(argv=None):
    args = parse_args(argv)
    if args.from_logs is not None:
        if not os.path.isdir(args.from_logs):
            print("analyze.py: %s is not a directory" % args.from_logs, file=sys.stderr)
            return 2
        return judge_logs(args, args.from_logs)
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
        run_slaves(args, args.logs, kept=True)
        return judge_logs(args, args.logs)
    log_dir = tempfile.mkdtemp(prefix="berkeley-analyze-")
    try:  # however the run ends: the report, an error, or Ctrl-C before the slaves started
        run_slaves(args, log_dir, kept=False)
        return judge_logs(args, log_dir, kept=False)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


def judge_logs(args, log_dir, kept=True):
    """Analyse the *.log files in log_dir (and --master-log); write --json and
    --plot, print the report; the exit status. kept=False: log_dir goes once
    this returns, so the report and --json name no directory."""
    paths = sorted(glob.glob(os.path.join(log_dir, "*.log")))
    if args.master_log:
        if not os.path.isfile(args.master_log):
            print("analyze.py: no master log at %s" % args.master_log, file=sys.stderr)
            return 2
        paths.append(args.master_log)
    tracks = {c: ClockTrack(c, events) for c, events in read_logs(paths, warn).items() if events}
    if MASTER_ID in tracks and len(tracks) > 1:  # a master log from another run would spoil every figure
        first, last = tracks[MASTER_ID].events[0]["real_ns"], tracks[MASTER_ID].events[-1]["real_ns"]
        if not any(first <= e["real_ns"] <= last for c, t in tracks.items() if c != MASTER_ID for e in t.events):
            warn("the master's log and the slaves' logs do not overlap in time: are they from the same run?")
    try:
        result = analyse(tracks, round(args.tolerance_us * NS_PER_US))
    except NothingToAnalyse as e:
        print("analyze.py: nothing to analyse in %s: %s" % (log_dir if kept else "the slaves' logs", e),
              file=sys.stderr)
        return 1
    result["log_dir"] = log_dir if kept else None
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        with open(args.plot, "w") as f:
            f.write(draw_svg(tracks, result, args.plot_scale))
    print(report(result, log_dir if kept else None))
    return 0 if result["synchronized"] else 1


if __name__ == "__main__":
    sys.exit(main())
