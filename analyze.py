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

Layout: reading logs (whole, or following one still being written), the clock
model, the analysis (pure functions), the text report (one duration format,
fmt_duration, as the C++ console's; fmt_magnitude is it without the sign, for
spreads and tolerances), the SVG picture, launching processes (the
slaves' output streamed here, or each slave in a tmux pane), main(). Standard
library only. The tests (tests/harness.py) and the benchmarks (bench/) import
this file for its log reader, its clock model and its process launcher rather
than keeping copies of their own.
"""

import argparse
import bisect
import collections
import glob
import json
import math
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

VERSION = "1.0.0"  # the C++ programs' PROGRAM_VERSION
NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
MASTER_ID = "master"
UNREACHABLE = "could not reach the master at"  # what ./slave prints when it gives up
STOP_GRACE_S = 5  # after SIGTERM, before SIGKILL
POLL_S = 0.005  # how often a wait looks at a log again

# Fields each event must carry to be usable (beyond event, id, clock_ns, real_ns).
REQUIRED = {"start": ("offset_ns", "rate_ppb"), "adjust": ("round", "correction_ns", "mode", "rate_ppb"),
            "reply": ("round",), "round": ("round",), "estimate": ("slave", "round", "estimate_ns"),
            "ignored": ("round", "correction_ns")}


class NothingToAnalyse(Exception):
    """The logs hold no run to judge: no clocks, or no round was ever finished."""


def warn(message):
    """Where the readers below report a line they skip, unless the caller
    passes a warn of its own (the benchmarks collect them, the tests fail)."""
    print("analyze.py: warning: " + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Reading logs

def check_event(event):
    """Why a decoded line is unusable, or None when it is fine."""
    if not isinstance(event, dict):
        return "not a JSON object"
    for key, kind in (("event", str), ("id", str), ("clock_ns", int), ("real_ns", int)):
        if not isinstance(event.get(key), kind):
            return "missing or bad field '%s'" % key
    for key in REQUIRED.get(event["event"], ()):
        if key not in event:
            return "%s event without '%s'" % (event["event"], key)
    for key in ("correction_ns", "offset_ns", "rate_ppb", "slew_rate_ppb"):
        if key in event and not isinstance(event[key], int):
            return "bad field '%s'" % key
    if event["event"] == "adjust":
        if event["mode"] not in ("step", "slew"):
            return "adjust event with unknown mode %r" % event["mode"]
        if event["mode"] == "slew" and event["correction_ns"] and not event.get("slew_rate_ppb", 0) > 0:
            return "slewed adjust without a positive 'slew_rate_ppb'"
    return None


def parse_line(line, where, warn=warn):
    """The event on one line, or None for a blank line or (reported through
    warn, `where` naming file and line) an unusable one."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except ValueError as e:
        warn("%s: skipped a corrupt line (%s)" % (where, e))
        return None
    problem = check_event(event)
    if problem:
        warn("%s: skipped a line: %s" % (where, problem))
        return None
    return event


class LogTail:
    """A log that a running program may still be writing: read_new() gives
    the events appended since the last call, from a kept offset, so a growing
    log is never read twice. A line counts once it is whole (an unfinished
    last one waits for its end), unless final=True says the writer is done."""

    def __init__(self, path, warn=warn):
        self.path, self.warn = path, warn
        self.offset, self.lines_read, self.partial = 0, 0, b""
        self.unseen = []  # read by wait_for after the event it waited for

    def read_new(self, final=False):
        """The new events ([] while the file does not exist)."""
        events, self.unseen = self.unseen, []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return events
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = b"" if final else lines.pop()
        for line in lines:
            self.lines_read += 1
            event = parse_line(line.decode(errors="replace"), "%s:%d" % (self.path, self.lines_read), self.warn)
            if event is not None:
                events.append(event)
        return events

    def wait_for(self, name, timeout_s, proc=None):
        """Read on until an event called `name` arrives and return it (the
        events before it are passed over, those after it are left for the
        next read); None once timeout_s has passed or the process proc, the
        log's writer, has exited without logging it."""
        deadline = time.monotonic() + timeout_s
        while True:
            exited = proc is not None and proc.poll() is not None  # before reading: its last lines count
            events = self.read_new()
            for i, event in enumerate(events):
                if event["event"] == name:
                    self.unseen = events[i + 1:]
                    return event
            if exited or time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)


def read_events(path, warn=warn):
    """The events of one whole log ([] when there is none). A corrupt or
    truncated line is reported through warn and skipped."""
    return LogTail(path, warn).read_new(final=True)


def read_logs(paths, warn=warn):
    """Events grouped by clock id, from several log files (each read once)."""
    by_id, source = {}, {}
    for path in dict.fromkeys(os.path.realpath(p) for p in paths):
        for clock_id, events in group_by_id(read_events(path, warn)).items():
            if clock_id in by_id:
                warn("%s: clock %s was already read from %s; ignoring it here" % (path, clock_id, source[clock_id]))
                continue
            by_id[clock_id], source[clock_id] = events, path
    return by_id


def group_by_id(events):
    groups = {}
    for e in events:
        groups.setdefault(e["id"], []).append(e)
    return groups


# ---------------------------------------------------------------------------
# The clock model
#
# A clock is pinned down at its anchors: its `start` event and every `adjust`.
# From an anchor at host time R with true offset O (clock_ns - real_ns), rate
# r ppb (drift + trim, logged as rate_ppb) and a slew of S ns at s ppb, the
# clock's offset at host time t >= R, until its next anchor, is
#
#     offset(t) = O + (t - R) * r / 1e9 + sign(S) * min(|S|, (t - R) * s / 1e9)
#                     `- drift and trim   `- the slew: a ramp of slope s until all of S is in
#
# floored once to whole ns, as clock.hpp does. A step (mode "step") has S = 0
# and jumps at R: just before it the offset was O - correction_ns. A slew
# does not jump at all. A new correction discards what was left of the slew
# before it, so every anchor starts afresh.

Anchor = collections.namedtuple("Anchor", "real_ns offset_before_ns offset_ns rate_ppb slew_ns slew_rate_ppb")


def anchor_of(event, stand_in_rate_ppb=0):
    """The anchor a `start` or `adjust` event sets, at the rate it logs. A log
    that lost its `start` begins at its first event, whatever it is: one that
    logs no rate stands in at stand_in_rate_ppb."""
    offset = event["clock_ns"] - event["real_ns"]
    rate = event.get("rate_ppb", stand_in_rate_ppb)
    if event["event"] != "adjust":
        return Anchor(event["real_ns"], offset, offset, rate, 0, 0)
    if event["mode"] == "slew":
        return Anchor(event["real_ns"], offset, offset, rate, event["correction_ns"], event.get("slew_rate_ppb", 0))
    return Anchor(event["real_ns"], offset - event["correction_ns"], offset, rate, 0, 0)


def offset_from(anchor, t):
    """offset(t) above, for t >= anchor.real_ns, in exact integers (ns x 1e9 until the floor)."""
    elapsed = t - anchor.real_ns
    slewed = min(abs(anchor.slew_ns) * NS_PER_S, elapsed * anchor.slew_rate_ppb)
    return anchor.offset_ns + (elapsed * anchor.rate_ppb + (slewed if anchor.slew_ns >= 0 else -slewed)) // NS_PER_S


def slew_end(anchor):
    """Host time at which all of an anchor's slew is in (its own time when there is none)."""
    if not anchor.slew_ns:
        return anchor.real_ns
    return anchor.real_ns + -(-abs(anchor.slew_ns) * NS_PER_S // anchor.slew_rate_ppb)  # rounded up


class ClockTrack:
    """One clock's history: its events, and its anchors in host-time order.
    offset_at(t) follows the last anchor at or before t; before the first one
    it extrapolates backwards from it at its rate."""

    def __init__(self, clock_id, events):
        self.id = clock_id
        self.events = sorted(events, key=lambda e: e["real_ns"])  # stable: log order on ties
        first = self.first("start") or self.events[0]  # a log that lost its start: begin where it begins
        stand_in_rate = next((e["rate_ppb"] for e in self.events if "rate_ppb" in e), 0)
        self.anchors = [anchor_of(e, stand_in_rate) for e in self.events if e is first or e["event"] == "adjust"]
        self.reals = [a.real_ns for a in self.anchors]

    def offset_at(self, t, before_step=False):
        """True offset (clock minus host time) at host time t; with before_step,
        the offset just before a step this clock takes at exactly t."""
        if before_step:
            i = bisect.bisect_left(self.reals, t)
            if i < len(self.anchors) and self.reals[i] == t:
                return self.anchors[i].offset_before_ns
            i -= 1
        else:
            i = bisect.bisect_right(self.reals, t) - 1
        if i < 0:
            first = self.anchors[0]
            return first.offset_before_ns + (t - first.real_ns) * first.rate_ppb // NS_PER_S
        return offset_from(self.anchors[i], t)

    def applied_at(self, real_ns):
        """Host time by which the correction this clock made at real_ns is all
        in: at once for a step; at the end of its slew, or at the clock's next
        anchor if that comes first (it discards the rest of the slew)."""
        i = bisect.bisect_right(self.reals, real_ns) - 1
        end = slew_end(self.anchors[i])
        return min(end, self.reals[i + 1]) if i + 1 < len(self.reals) else end

    def first(self, name):
        return next((e for e in self.events if e["event"] == name), None)

    def adjusts(self):
        """The correction of each round, by round number (a duplicate is ignored)."""
        steps = {}
        for e in self.events:
            if e["event"] == "adjust":
                steps.setdefault(e["round"], e)
        return steps

    def corrections(self):
        """adjusts(), and the rounds whose correction this clock received and
        left unapplied (`ignored`, a stubborn clock): it took part all the same."""
        steps = {e["round"]: e for e in reversed(self.events) if e["event"] == "ignored"}
        return {**steps, **self.adjusts()}


# ---------------------------------------------------------------------------
# The analysis: plain figures from ClockTracks, shaped as the --json output

def natural_key(clock_id):
    """master first, then slave-2 before slave-10."""
    parts = re.split(r"(\d+)", clock_id)
    return (clock_id != MASTER_ID, [int(p) if p.isdigit() else p for p in parts])


def round_starts(tracks):
    """Host time each round began, by round number: the master's `round` event,
    or (without the master's log) the round's earliest adjust."""
    starts = {}
    master = tracks.get(MASTER_ID)
    for e in master.events if master else []:
        if e["event"] == "round":
            starts.setdefault(e["round"], e["real_ns"])
    from_adjusts = {}
    for track in tracks.values():
        for e in track.events:
            if e["event"] == "adjust":
                from_adjusts[e["round"]] = min(from_adjusts.get(e["round"], e["real_ns"]), e["real_ns"])
    return {**from_adjusts, **starts}


def round_instants(tracks, steps, starts, r):
    """Host times to judge round r: before it (its start) and after it, once
    every round-r correction is fully applied (the latest step, or the latest
    end of a slew). A slew still running when the next round starts is judged
    1 ns before that start, so that nothing of the next round is counted."""
    adjusted = [(tracks[c], steps[c][r]["real_ns"], steps[c][r]["event"] == "adjust") for c in tracks if r in steps[c]]
    after = max(track.applied_at(t) if applied else t for track, t, applied in adjusted)
    next_start = min((t for q, t in starts.items() if q > r), default=None)
    if next_start is not None and after >= next_start:
        after = max(next_start - 1, max(t for _, t, _ in adjusted))  # never before the round's own last correction
    return starts[r], after


def estimation_errors(tracks):
    """Per slave and round: the master's estimate minus the true offset of the
    slave from the master, at the slave's last reply of that round. The
    master of a round is whichever clock logged its estimates: after a
    takeover, a former slave."""
    errors = {}
    for master in tracks.values():
        for e in master.events:
            if e["event"] != "estimate" or e["slave"] not in tracks:
                continue
            slave = tracks[e["slave"]]
            replies = [x for x in slave.events if x["event"] == "reply" and x["round"] == e["round"]]
            if replies:
                t = replies[-1]["real_ns"]
                true_ns = slave.offset_at(t) - master.offset_at(t)
                errors.setdefault(e["slave"], {})[e["round"]] = e["estimate_ns"] - true_ns
    return errors


def takeovers(tracks, rounds):
    """Each time a slave took over as master (its `takeover` event): who, the
    epoch, the first round it ran, how long the group had no master (from the
    last event of the master before, to the new master's first round), and
    the spread after the last round before and after the first round of the
    new master (None where there is none)."""
    out = []
    by_round = {r["round"]: r for r in rounds}
    for c, track in tracks.items():
        for e in track.events:
            if e["event"] != "takeover":
                continue
            firsts = [x for x in track.events if x["event"] == "round" and x["real_ns"] > e["real_ns"]]
            old_last = max((x["real_ns"] for t in tracks.values() for x in t.events
                            if x["real_ns"] < e["real_ns"] and any(y["event"] == "round" for y in t.events)
                            and t is not track), default=None)
            first = firsts[0]["round"] if firsts else None
            entry = {"clock": c, "epoch": e["epoch"], "after_round": e["round"], "first_round": first,
                     "no_master_ns": firsts[0]["real_ns"] - old_last if firsts and old_last else None,
                     "spread_before_ns": by_round[e["round"]]["spread_after_ns"] if e["round"] in by_round else None,
                     "spread_after_ns": by_round[first]["spread_after_ns"] if first in by_round else None}
            out.append(entry)
    return sorted(out, key=lambda x: x["epoch"])


def analyse(tracks, tolerance_ns):
    """Every figure of the report, from the logs alone. Raises NothingToAnalyse."""
    if not tracks:
        raise NothingToAnalyse("no log events were found")
    ids = sorted(tracks, key=natural_key)
    steps = {c: tracks[c].corrections() for c in ids}
    # A round that corrected one clock alone (a master left without slaves) has no spread to judge.
    round_numbers = sorted(r for r in {r for c in ids for r in steps[c]} if sum(r in steps[c] for c in ids) >= 2)
    if not round_numbers:
        raise NothingToAnalyse("no round corrected two clocks or more (no `adjust` events in common): "
                               "did the master run a round with its slaves?")
    errors = estimation_errors(tracks)
    starts = round_starts(tracks)
    rounds = []
    for r in round_numbers:
        members = [c for c in ids if r in steps[c]]  # the clocks corrected in round r
        t_before, t_after = round_instants(tracks, steps, starts, r)
        before = [tracks[c].offset_at(t_before, before_step=True) for c in members]
        after = [tracks[c].offset_at(t_after) for c in members]
        entry = {"round": r, "clocks": members, "before_real_ns": t_before, "after_real_ns": t_after,
                 "spread_before_ns": max(before) - min(before), "spread_after_ns": max(after) - min(after)}
        round_errors = [abs(errors[c][r]) for c in members if r in errors.get(c, {})]
        if round_errors:
            entry["max_estimation_error_ns"] = max(round_errors)
        rounds.append(entry)

    last = rounds[-1]
    final = {c: tracks[c].offset_at(last["after_real_ns"]) for c in ids}
    mean = sum(final[c] for c in last["clocks"]) / len(last["clocks"])
    clocks = {}
    t_round1 = rounds[0]["before_real_ns"]
    for c in ids:
        start = tracks[c].first("start")
        first = start or tracks[c].events[0]
        clocks[c] = {
            "initial_offset_ns": start["offset_ns"] if start else first["clock_ns"] - first["real_ns"],
            "round1_clock_ns": (t_round1 + tracks[c].offset_at(t_round1, before_step=True)
                                if first["real_ns"] <= t_round1 else None),
            "drift_ppb": tracks[c].anchors[0].rate_ppb,
            "corrections_ns": [steps[c][r]["correction_ns"] if r in steps[c] else None for r in round_numbers],
            "correction_modes": [steps[c][r].get("mode", "ignored") if r in steps[c] else None for r in round_numbers],
            "final_offset_ns": round(final[c] - mean),
            "in_final_round": c in last["clocks"],
        }
        if c in errors:
            clocks[c]["max_estimation_error_ns"] = max(abs(v) for v in errors[c].values())
    furthest = max(last["clocks"], key=lambda c: abs(final[c] - mean))
    result = {"rounds": rounds, "clocks": clocks, "final_spread_ns": last["spread_after_ns"],
              "final_real_ns": last["after_real_ns"], "mean_offset_ns": round(mean),
              "furthest": furthest, "tolerance_ns": tolerance_ns,
              "synchronized": last["spread_after_ns"] <= tolerance_ns}
    if MASTER_ID in tracks:
        result["estimation_error_ns"] = {c: {str(r): v for r, v in sorted(e.items())} for c, e in errors.items()}
    result["takeovers"] = takeovers(tracks, rounds)
    return result


# ---------------------------------------------------------------------------
# The text report

def fmt_duration(ns):
    """A signed duration in the unit a person reads, as the C++ programs print
    it: "+0 ns"; from 1 s H:MM:SS with a fraction only when there is one (to
    the millisecond, always three digits): "+0:05:00", "-0:00:04.508",
    "+0:00:02.500", "+27:46:40"; below, three decimals of ms or us, or whole ns: "+1.500 ms",
    "-12.345 us", "+7 ns". Rounded half away from zero, and the unit is chosen
    after rounding, so 999.9995 ms prints as "+0:00:01", never "1000.000 ms"."""
    if ns == 0:
        return "+0 ns"
    sign, size = ("-" if ns < 0 else "+"), abs(ns)
    if size < NS_PER_US:
        return "%s%d ns" % (sign, size)
    if size < NS_PER_MS:
        return "%s%d.%03d us" % ((sign,) + divmod(size, NS_PER_US))
    us = (size + NS_PER_US // 2) // NS_PER_US
    if us < NS_PER_S // NS_PER_US:
        return "%s%d.%03d ms" % ((sign,) + divmod(us, 1000))
    seconds, fraction_ms = divmod((size + NS_PER_MS // 2) // NS_PER_MS, 1000)
    text = "%s%d:%02d:%02d" % (sign, seconds // 3600, seconds // 60 % 60, seconds % 60)
    return text + (".%03d" % fraction_ms if fraction_ms else "")


def fmt_magnitude(ns):
    """A quantity that cannot be negative (a spread, a tolerance, the size of an
    error): fmt_duration without its sign, "1.001 us", "0:35:00", "0 ns"."""
    return fmt_duration(ns)[1:]


def fmt_optional(ns, fmt=fmt_duration):
    return "-" if ns is None else fmt(ns)


def fmt_time_of_day(clock_ns):
    """A clock reading as the time of day it shows (UTC), to the microsecond,
    as the C++ console prints it: "3:25:00.000150"."""
    in_day = clock_ns % (86_400 * NS_PER_S)
    seconds, us = in_day // NS_PER_S, in_day % NS_PER_S // NS_PER_US
    return "%d:%02d:%02d.%06d" % (seconds // 3600, seconds // 60 % 60, seconds % 60, us)


def table(headers, rows):
    """Columns padded to fit: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    lines = []
    for row in [headers] + rows:
        cells = [str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def verdict(result):
    spread, tolerance = fmt_magnitude(result["final_spread_ns"]), fmt_magnitude(result["tolerance_ns"])
    if result["synchronized"]:
        return "synchronized: spread %s <= tolerance %s" % (spread, tolerance)
    furthest = result["furthest"]
    return "NOT synchronized: spread %s > tolerance %s (furthest: %s, %s from the mean)" % (
        spread, tolerance, furthest, fmt_duration(result["clocks"][furthest]["final_offset_ns"]))


def report(result, log_dir):
    clocks, rounds = result["clocks"], result["rounds"]
    has_master = MASTER_ID in clocks
    out = ["", "Berkeley synchronization: %d clock(s), %d round(s); logs in %s" % (len(clocks), len(rounds), log_dir)]
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
# The picture: offsets from the ensemble mean over time, as a standalone SVG

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
WIDTH, HEIGHT = 1000, 650
LEFT, RIGHT, TOP, BOTTOM = 96, 820, 60, 580  # the plot area; the legend sits right of it
SLEW_SAMPLES = 6  # points along a slew, its end included


def symlog(ns):
    """Linear within +/-1 us, one unit per decade beyond: 1 us -> 1, 1 ms -> 4, 1 s -> 7."""
    size = abs(ns) / NS_PER_US
    value = size if size <= 1 else 1 + math.log10(size)
    return math.copysign(value, ns)


def tick_label(decade):
    """The label for the tick at symlog value +/-decade (decade >= 1)."""
    units = [(7, "s"), (4, "ms"), (1, "us")]
    exponent, unit = next((e, u) for e, u in units if decade >= e)
    return "%d %s" % (10 ** (decade - exponent), unit)


def clock_ends(tracks, result):
    """{clock: host time} for each clock that died: a master killed before a
    takeover, whose log ends without an `exit`, before the last round. It is
    drawn, and counted in the mean, until its last event."""
    last_round = set(result["rounds"][-1]["clocks"])
    return {c: track.events[-1]["real_ns"] for c, track in tracks.items()
            if c not in last_round and not track.first("exit")}


def plot_samples(tracks, t0, t1, until=None):
    """(host time, {clock: offset from the mean}) at t0, t1, every event of
    any clock between and SLEW_SAMPLES points along every slew up to its end,
    so that a slew shows as a ramp; twice at a step (just before and just
    after) so that it shows as a vertical jump."""
    step_times = {a.real_ns for t in tracks.values() for a in t.anchors if a.offset_before_ns != a.offset_ns}
    times = {e["real_ns"] for t in tracks.values() for e in t.events}
    for track in tracks.values():
        for a in track.anchors:
            if a.slew_ns:
                end = track.applied_at(a.real_ns)
                times.update(a.real_ns + (end - a.real_ns) * k // SLEW_SAMPLES for k in range(1, SLEW_SAMPLES + 1))
    times = sorted({t0, t1} | {t for t in times if t0 <= t <= t1})
    until = until or {}
    samples = []
    for t in times:
        for before in ((True, False) if t in step_times else (False,)):
            offsets = {c: track.offset_at(t, before_step=before) for c, track in tracks.items()
                       if t <= until.get(c, t1)}
            if not offsets:
                continue
            mean = sum(offsets.values()) / len(offsets)
            samples.append((t, {c: v - mean for c, v in offsets.items()}))
    return samples


def choose_scale(tracks, t_round1):
    """The offset axis for --plot-scale auto: "linear" when no clock drifts
    (each starts at rate 0) and, as round 1 begins, every clock that is off
    the mean by 1 us or more is within a factor of ONE_SCALE of the furthest,
    as the textbook's 3:00, 3:25 and 2:50 are. What there is to see is then
    who moved how far, which only a linear axis shows (on a log axis 5 and
    15 minutes lie close together), and after round 1 they differ only by
    the master's estimation errors. Otherwise "symlog": the drift's saw-tooth
    between rounds lies decades below the first round's step."""
    if any(track.anchors[0].rate_ppb for track in tracks.values()):
        return "symlog"
    offsets = [track.offset_at(t_round1, before_step=True) for track in tracks.values()]
    mean = sum(offsets) / len(offsets)
    sizes = [abs(v - mean) for v in offsets if abs(v - mean) >= NS_PER_US]
    return "linear" if sizes and min(sizes) * ONE_SCALE >= max(sizes) else "symlog"


ONE_SCALE = 100
# Steps for a linear axis: 1-2-5 below a second, then what clocks show.
LINEAR_STEPS_NS = ([m * 10 ** k for k in range(9) for m in (1, 2, 5)]
                   + [s * NS_PER_S for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
                                             3600, 7200, 10800, 21600, 43200, 86400)])


def linear_ticks(lo, hi, most=10):
    """Tick values (ns) for an axis from lo to hi: multiples of the smallest
    step in LINEAR_STEPS_NS that gives at most `most` intervals."""
    step = next((s for s in LINEAR_STEPS_NS if (hi - lo) / s <= most), None)
    if step is None:  # beyond a day per tick: whole days, 1-2-5
        step = next(m * 10 ** k * 86400 * NS_PER_S for k in range(30) for m in (1, 2, 5)
                    if (hi - lo) / (m * 10 ** k * 86400 * NS_PER_S) <= most)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


class Axis:
    """The offset axis: value (ns) to y pixel, and the grid lines with their labels."""

    def __init__(self, scale, values):
        self.scale = scale
        if scale == "symlog":
            self.top = max(3, math.ceil(max(abs(symlog(v)) for v in values)))
        else:
            lo, hi = min(min(values), 0), max(max(values), 0)
            pad = (hi - lo) * 0.06 or NS_PER_US
            self.lo, self.hi = lo - pad, hi + pad

    def y(self, ns):
        if self.scale == "symlog":
            return TOP + (self.top - symlog(ns)) / (2 * self.top) * (BOTTOM - TOP)
        return TOP + (self.hi - ns) / (self.hi - self.lo) * (BOTTOM - TOP)

    def grid(self):
        """(value ns, label or None): symlog every decade, labelled at 1 us,
        1 ms, 1 s and beyond; linear at round steps, labelled as durations."""
        if self.scale == "linear":
            return [(v, "0" if v == 0 else fmt_duration(v)) for v in linear_ticks(self.lo, self.hi)]
        lines = []
        for decade in range(-self.top, self.top + 1):
            ns = math.copysign(10 ** (abs(decade) - 1) * NS_PER_US, decade) if decade else 0
            labelled = decade == 0 or abs(decade) in (1, 4) or abs(decade) >= 7
            label = "0" if decade == 0 else ("+" if decade > 0 else "-") + tick_label(abs(decade))
            lines.append((ns, label if labelled else None))
        return lines

    def title(self):
        if self.scale == "linear":
            return "offset from the mean (linear scale)"
        return "offset from the mean (symmetric log scale: linear within +/-1 us)"


# Each clock is its own colour, dash pattern and marker, and is drawn NUDGE_PX
# off the others, so that clocks that agree are still seen one by one.
DASHES = ["", "10,4", "3,3", "14,4,3,4", "6,3,2,3,2,3", "2,6", "18,6", "8,3,2,3"]
MARKERS = ["circle", "square", "triangle", "diamond", "triangle-down", "cross"]
NUDGE_PX = 2.5
MARKER_EVERY_PX = 40  # along each line; each clock's markers are staggered by its share of this


def marker(shape, x, y, colour, size=4.0):
    common = 'fill="%s" stroke="white" stroke-width="0.8"' % colour
    if shape == "circle":
        return '<circle cx="%.1f" cy="%.1f" r="%.1f" %s/>' % (x, y, size, common)
    if shape == "square":
        return '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" %s/>' % (x - size, y - size, 2 * size, 2 * size,
                                                                             common)
    points = {"triangle": [(0, -1.25), (1.15, 0.9), (-1.15, 0.9)], "triangle-down": [(0, 1.25), (1.15, -0.9),
                                                                                       (-1.15, -0.9)],
              "diamond": [(0, -1.3), (1.3, 0), (0, 1.3), (-1.3, 0)],
              "cross": [(-0.4, -1.2), (0.4, -1.2), (0.4, -0.4), (1.2, -0.4), (1.2, 0.4), (0.4, 0.4), (0.4, 1.2),
                        (-0.4, 1.2), (-0.4, 0.4), (-1.2, 0.4), (-1.2, -0.4), (-0.4, -0.4)]}[shape]
    return '<polygon points="%s" %s/>' % (" ".join("%.1f,%.1f" % (x + dx * size, y + dy * size)
                                                   for dx, dy in points), common)


def along(points, x):
    """The y of a polyline (points in x order) at x; at a vertical jump, where it lands."""
    i = bisect.bisect_right([p[0] for p in points], x)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def draw_svg(tracks, result, scale="auto"):
    """From a little before round 1 to a little after the last round's
    corrections are in; x in seconds since round 1 began, y on a linear or a
    symmetric log axis (scale: "linear", "symlog" or "auto", see choose_scale)."""
    t_round1 = result["rounds"][0]["before_real_ns"]
    t_last = result["final_real_ns"]
    margin = max((t_last - t_round1) // 15, 50 * NS_PER_MS)  # a one-round run: its steps, and either side
    t0, t1 = t_round1 - margin, t_last + margin
    samples = plot_samples(tracks, t0, t1, clock_ends(tracks, result))
    axis = Axis(choose_scale(tracks, t_round1) if scale == "auto" else scale,
                [v for _, offs in samples for v in offs.values()])

    def x(t):
        return LEFT + (t - t0) / (t1 - t0) * (RIGHT - LEFT)

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (WIDTH, HEIGHT, WIDTH, HEIGHT),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="17" text-anchor="middle">True clock offsets from the ensemble mean</text>'
           % ((LEFT + RIGHT) // 2),
           '<text x="%d" y="44" text-anchor="middle" fill="#555">%s</text>'
           % ((LEFT + RIGHT) // 2, xml_escape(verdict(result)))]
    for ns, label in axis.grid():  # horizontal grid
        svg.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>'
                   % (LEFT, RIGHT, axis.y(ns), axis.y(ns), "#999" if ns == 0 else "#e4e4e4"))
        if label:
            svg.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'
                       % (LEFT - 6, axis.y(ns) + 4, xml_escape(label)))
    span_s = (t1 - t0) / NS_PER_S
    step_s = next(s for s in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200,
                              500, 1000, 1e9) if span_s / s <= 10)
    first = math.ceil((t0 - t_round1) / NS_PER_S / step_s)
    for k in range(first, first + int(span_s / step_s) + 1):  # x ticks, 0 at the start of round 1
        px = x(t_round1 + k * step_s * NS_PER_S)
        if px > RIGHT + 0.5:
            break
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/>' % (px, px, BOTTOM, BOTTOM + 5))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px, BOTTOM + 19, round(k * step_s, 6)))
    last_label_x = -100
    for r in result["rounds"]:  # round boundaries; a label too close to the previous one is left out
        px = x(r["before_real_ns"])
        if px < LEFT:
            continue
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#777" stroke-dasharray="5,4"/>'
                   % (px, px, TOP, BOTTOM))
        if px - last_label_x >= 22:
            svg.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">r%d</text>' % (px, TOP - 4, r["round"]))
            last_label_x = px
    starts = {r["round"]: r["before_real_ns"] for r in result["rounds"]}
    for t in result.get("takeovers", []):  # a takeover: a solid line where the new master's first round began
        px = x(starts[t["first_round"]]) if t["first_round"] in starts else None
        if px is None or not LEFT <= px <= RIGHT:
            continue
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#d62728" stroke-width="2"/>'
                   % (px, px, TOP, BOTTOM))
        svg.append('<text x="%.1f" y="%d" fill="#d62728">%s takes over (epoch %d)</text>'
                   % (px + 4, BOTTOM - 8, xml_escape(t["clock"]), t["epoch"]))
    svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP))
    svg.append('<text x="%d" y="%d" text-anchor="middle">time since round 1 began (s)</text>'
               % ((LEFT + RIGHT) // 2, BOTTOM + 42))
    svg.append('<text class="axis-title" x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
               % ((TOP + BOTTOM) // 2, (TOP + BOTTOM) // 2, axis.title()))
    ids = sorted(tracks, key=natural_key)
    svg.append('<svg x="%d" y="%d" width="%d" height="%d" overflow="hidden">'
               % (LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP))  # lines and markers stay inside the frame
    for i, c in enumerate(ids):
        colour, dash, shape = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        nudge = (i - (len(ids) - 1) / 2) * NUDGE_PX
        points = [(x(t) - LEFT, axis.y(offs[c]) + nudge - TOP) for t, offs in samples if c in offs]
        svg.append('<polyline class="series" data-clock="%s" fill="none" stroke="%s" stroke-width="1.6"%s '
                   'points="%s"/>' % (xml_escape(c), colour, ' stroke-dasharray="%s"' % dash if dash else "",
                                      " ".join("%.1f,%.1f" % p for p in points)))
        mx = MARKER_EVERY_PX * (i + 0.5) / len(ids)
        marks = []
        while points and mx < min(RIGHT - LEFT, points[-1][0]):  # a clock that died has no marks beyond
            marks.append(marker(shape, mx, along(points, mx), colour))
            mx += MARKER_EVERY_PX
        svg.append('<g class="markers" data-clock="%s">%s</g>' % (xml_escape(c), "".join(marks)))
    svg.append("</svg>")
    for i, c in enumerate(ids):  # the legend, right of the plot
        colour, dash, shape = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        ly = TOP + 10 + 22 * i
        svg.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'
                   % (RIGHT + 12, RIGHT + 50, ly, ly, colour, ' stroke-dasharray="%s"' % dash if dash else ""))
        svg.append(marker(shape, RIGHT + 31, ly, colour))
        svg.append('<text class="legend" x="%d" y="%d">%s</text>' % (RIGHT + 56, ly + 4, xml_escape(c)))
    note_y = TOP + 10 + 22 * len(ids) + 12
    for k, line in enumerate(("Each line is drawn %g px" % NUDGE_PX, "off the others, so that", "clocks that agree",
                              "still show one by one.")):
        svg.append('<text x="%d" y="%d" font-size="11" fill="#666">%s</text>' % (RIGHT + 12, note_y + 14 * k, line))
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------
# Launching processes: analyze.py's slaves, and the tests' and benchmarks'
# masters and slaves

class Processes:
    """The child processes of one run. Each is remembered when started and
    stopped by its own PID, SIGTERM and then SIGKILL after grace_s; no other
    process is ever signalled. A child's stdout and stderr go to NAME.out and
    NAME.err in out_dir, or (pipe=True) to pipes read line by line as text.
    say(message) hears of each child stopped."""

    def __init__(self, out_dir=None, grace_s=STOP_GRACE_S, say=None):
        self.dir, self.grace_s = out_dir, grace_s
        self.say = say or (lambda message: None)
        self.children = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv, name, pipe=False, **popen_args):
        """Start argv as `name`, stdin from /dev/null; its Popen, with .name,
        is remembered before anything else can fail. popen_args (env,
        preexec_fn, ...) go to Popen as they are."""
        if pipe:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, bufsize=1, **popen_args)
        else:
            with open(self.path(name + ".out"), "w") as out, open(self.path(name + ".err"), "w") as err:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **popen_args)
        p.name = name
        self.children.append(p)
        return p

    def output(self, name):
        """(stdout, stderr) that `name` has written to its files so far."""
        with open(self.path(name + ".out"), errors="replace") as out, \
                open(self.path(name + ".err"), errors="replace") as err:
            return out.read(), err.read()

    def wait_all(self, timeout_s):
        """Wait until every child has exited or timeout_s has passed; True if all exited."""
        deadline = time.monotonic() + timeout_s
        for p in self.children:
            try:
                p.wait(timeout=max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop_all(self, why="stopping"):
        """Stop every child that still runs: SIGTERM to all of them, then
        SIGKILL to those still running grace_s later."""
        running = [p for p in self.children if p.poll() is None]
        for p in running:
            self.say("stopping %s (pid %d): %s" % (p.name, p.pid, why))
            p.terminate()  # Popen signals only a child it has not yet reaped: never a reused PID
        deadline = time.monotonic() + self.grace_s
        for p in running:
            try:
                p.wait(timeout=max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("killing %s (pid %d)" % (p.name, p.pid))
                p.kill()
                p.wait()

    @staticmethod
    def cpu_ns(p):
        """User + system CPU time child p has used so far, from /proc/<pid>/stat
        (clock-tick resolution); None once it has been reaped."""
        if p.returncode is not None:  # reaped: its PID may belong to another process now
            return None
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return None
        return (int(fields[11]) + int(fields[12])) * NS_PER_S // os.sysconf("SC_CLK_TCK")


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


def run_slaves(args):
    """Run the slaves to the end; returns the log directory, or exits 2."""
    log_dir = args.logs or tempfile.mkdtemp(prefix="berkeley-analyze-")
    os.makedirs(log_dir, exist_ok=True)
    print("analyze.py: starting %d slave(s) for the master at %s:%d (seed %d), logs in %s"
          % (args.n, args.host, args.port, args.seed, log_dir), flush=True)

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
    return log_dir


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
    p.add_argument("--logs", metavar="DIR", help="keep the slaves' logs in DIR [a new temporary directory]")
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
        log_dir = args.from_logs
    else:
        log_dir = run_slaves(args)
    paths = sorted(glob.glob(os.path.join(log_dir, "*.log")))
    if args.master_log:
        if not os.path.isfile(args.master_log):
            print("analyze.py: no master log at %s" % args.master_log, file=sys.stderr)
            return 2
        paths.append(args.master_log)
    tracks = {c: ClockTrack(c, events) for c, events in read_logs(paths).items() if events}
    if MASTER_ID in tracks and len(tracks) > 1:  # a master log from another run would spoil every figure
        first, last = tracks[MASTER_ID].events[0]["real_ns"], tracks[MASTER_ID].events[-1]["real_ns"]
        if not any(first <= e["real_ns"] <= last for c, t in tracks.items() if c != MASTER_ID for e in t.events):
            warn("the master's log and the slaves' logs do not overlap in time: are they from the same run?")
    try:
        result = analyse(tracks, round(args.tolerance_us * NS_PER_US))
    except NothingToAnalyse as e:
        print("analyze.py: nothing to analyse in %s: %s" % (log_dir, e), file=sys.stderr)
        return 1
    result["log_dir"] = log_dir
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        with open(args.plot, "w") as f:
            f.write(draw_svg(tracks, result, args.plot_scale))
    print(report(result, log_dir))
    return 0 if result["synchronized"] else 1


if __name__ == "__main__":
    sys.exit(main())
