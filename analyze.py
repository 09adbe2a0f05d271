#!/usr/bin/env python3
"""analyze.py - run N Berkeley slaves against a running ./master and show,
from their JSON-lines logs, how well the run synchronized their clocks.

    ./master 3 --log master.log              (one terminal)
    python3 analyze.py 3 --master-log master.log   (another)
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
model, the analysis (pure functions), the text report, the SVG picture,
launching processes, main(). Standard library only. The tests (tests/harness.py)
and the benchmarks (bench/) import this file for its log reader, its clock
model and its process launcher rather than keeping copies of their own.
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
            "reply": ("round",), "round": ("round",), "estimate": ("slave", "round", "estimate_ns")}


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
    adjusted = [(tracks[c], steps[c][r]["real_ns"]) for c in tracks if r in steps[c]]
    after = max(track.applied_at(t) for track, t in adjusted)
    next_start = min((t for q, t in starts.items() if q > r), default=None)
    if next_start is not None and after >= next_start:
        after = max(next_start - 1, max(t for _, t in adjusted))  # never before the round's own last correction
    return starts[r], after


def estimation_errors(tracks):
    """Per slave and round: the master's estimate minus the true offset of the
    slave from the master, at the slave's last reply of that round."""
    master = tracks.get(MASTER_ID)
    errors = {}
    for e in master.events if master else []:
        if e["event"] != "estimate" or e["slave"] not in tracks:
            continue
        slave = tracks[e["slave"]]
        replies = [x for x in slave.events if x["event"] == "reply" and x["round"] == e["round"]]
        if replies:
            t = replies[-1]["real_ns"]
            true_ns = slave.offset_at(t) - master.offset_at(t)
            errors.setdefault(e["slave"], {})[e["round"]] = e["estimate_ns"] - true_ns
    return errors


def analyse(tracks, tolerance_ns):
    """Every figure of the report, from the logs alone. Raises NothingToAnalyse."""
    if not tracks:
        raise NothingToAnalyse("no log events were found")
    ids = sorted(tracks, key=natural_key)
    steps = {c: tracks[c].adjusts() for c in ids}
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
    for c in ids:
        start = tracks[c].first("start")
        first = start or tracks[c].events[0]
        clocks[c] = {
            "initial_offset_ns": start["offset_ns"] if start else first["clock_ns"] - first["real_ns"],
            "drift_ppb": tracks[c].anchors[0].rate_ppb,
            "corrections_ns": [steps[c][r]["correction_ns"] if r in steps[c] else None for r in round_numbers],
            "correction_modes": [steps[c][r]["mode"] if r in steps[c] else None for r in round_numbers],
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
    return result


# ---------------------------------------------------------------------------
# The text report

def fmt_ns(ns, signed=True):
    """A duration in the unit that suits it: +1.234567 s, -12.345 ms, 3.2 us, 17 ns."""
    if ns is None:
        return "-"
    sign = ("+" if ns >= 0 else "-") if signed else ("-" if ns < 0 else "")
    size = abs(ns)
    if size >= NS_PER_S:
        return "%s%.6f s" % (sign, size / NS_PER_S)
    if size >= NS_PER_MS:
        return "%s%.3f ms" % (sign, size / NS_PER_MS)
    if size >= NS_PER_US:
        return "%s%.1f us" % (sign, size / NS_PER_US)
    return "%s%d ns" % (sign, size)


def table(headers, rows):
    """Columns padded to fit: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    lines = []
    for row in [headers] + rows:
        cells = [str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def verdict(result):
    spread_us = result["final_spread_ns"] / NS_PER_US
    tolerance_us = result["tolerance_ns"] / NS_PER_US
    if result["synchronized"]:
        return "synchronized: spread %.3f us <= tolerance %g us" % (spread_us, tolerance_us)
    furthest = result["furthest"]
    return "NOT synchronized: spread %.3f us > tolerance %g us (furthest: %s, %+.3f us from the mean)" % (
        spread_us, tolerance_us, furthest, result["clocks"][furthest]["final_offset_ns"] / NS_PER_US)


def report(result, log_dir):
    clocks, rounds = result["clocks"], result["rounds"]
    has_master = MASTER_ID in clocks
    out = ["", "Berkeley synchronization: %d clock(s), %d round(s); logs in %s" % (len(clocks), len(rounds), log_dir)]
    if not has_master:
        out.append("(no master log: the spreads are among the slaves only; --master-log adds the master)")
    out += ["", "Clocks (true offset = simulated clock minus host clock)"]
    headers = ["clock", "drift", "initial offset", "final offset from mean"] + (["max |est. error|"] if has_master else [])
    rows = []
    for c, info in clocks.items():
        final = fmt_ns(info["final_offset_ns"]) + ("" if info["in_final_round"] else " (left)")
        row = [c, "%+.3f ppm" % (info["drift_ppb"] / 1000), fmt_ns(info["initial_offset_ns"]), final]
        if has_master:
            row.append(fmt_ns(info.get("max_estimation_error_ns"), signed=False) if c != MASTER_ID else "-")
        rows.append(row)
    out.append(table(headers, rows))
    out += ["", "Rounds (true spread = largest minus smallest offset, every clock at one instant;",
            "        before = at the round's start, after = once the round's corrections are fully applied,"
            " slews included)"]
    headers = ["round", "clocks", "spread before", "spread after"] + (["max |est. error|"] if has_master else [])
    rows = [[r["round"], len(r["clocks"]), fmt_ns(r["spread_before_ns"], False), fmt_ns(r["spread_after_ns"], False)]
            + ([fmt_ns(r.get("max_estimation_error_ns"), False)] if has_master else []) for r in rounds]
    out.append(table(headers, rows))
    slewed = any(mode == "slew" for info in clocks.values() for mode in info["correction_modes"])
    out += ["", "Corrections received" + (" (~ slewed, the others stepped)" if slewed else "")]
    rows = [[r["round"]] + [("~" if info["correction_modes"][i] == "slew" else "")
                            + fmt_ns(info["corrections_ns"][i]) for info in clocks.values()]
            for i, r in enumerate(rounds)]
    out.append(table(["round"] + list(clocks), rows))
    out += ["", "The ensemble ended %s from the host clock: Berkeley agrees on an average, not on true time."
            % fmt_ns(result["mean_offset_ns"]), verdict(result)]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# The picture: offsets from the ensemble mean over time, as a standalone SVG

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
WIDTH, HEIGHT = 1000, 650
LEFT, RIGHT, TOP, BOTTOM = 80, 820, 60, 580  # the plot area; the legend sits right of it
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


def plot_samples(tracks, t0, t1):
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
    samples = []
    for t in times:
        for before in ((True, False) if t in step_times else (False,)):
            offsets = {c: track.offset_at(t, before_step=before) for c, track in tracks.items()}
            mean = sum(offsets.values()) / len(offsets)
            samples.append((t, {c: v - mean for c, v in offsets.items()}))
    return samples


def draw_svg(tracks, result):
    """From a little before round 1 to a little after the last round's
    corrections are in; x in seconds since round 1 began, y on the symlog scale."""
    t_round1 = result["rounds"][0]["before_real_ns"]
    t_last = result["final_real_ns"]
    margin = max((t_last - t_round1) // 15, NS_PER_MS)
    t0, t1 = t_round1 - margin, t_last + margin
    samples = plot_samples(tracks, t0, t1)
    top = max(3, math.ceil(max(abs(symlog(v)) for _, offs in samples for v in offs.values())))

    def x(t):
        return LEFT + (t - t0) / (t1 - t0) * (RIGHT - LEFT)

    def y(ns):
        return TOP + (top - symlog(ns)) / (2 * top) * (BOTTOM - TOP)

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (WIDTH, HEIGHT, WIDTH, HEIGHT),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="17" text-anchor="middle">True clock offsets from the ensemble mean</text>'
           % ((LEFT + RIGHT) // 2),
           '<text x="%d" y="44" text-anchor="middle" fill="#555">%s</text>'
           % ((LEFT + RIGHT) // 2, xml_escape(verdict(result)))]
    for decade in range(-top, top + 1):  # horizontal grid, labelled at 1 us, 1 ms, 1 s and beyond
        ns = math.copysign(10 ** (abs(decade) - 1) * NS_PER_US, decade) if decade else 0
        labelled = decade == 0 or abs(decade) in (1, 4) or abs(decade) >= 7
        svg.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>'
                   % (LEFT, RIGHT, y(ns), y(ns), "#999" if decade == 0 else "#e4e4e4"))
        if labelled:
            label = "0" if decade == 0 else ("+" if decade > 0 else "-") + tick_label(abs(decade))
            svg.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (LEFT - 6, y(ns) + 4, label))
    span_s = (t1 - t0) / NS_PER_S
    step_s = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1e9)
                  if span_s / s <= 10)
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
    svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP))
    svg.append('<text x="%d" y="%d" text-anchor="middle">time since round 1 began (s)</text>'
               % ((LEFT + RIGHT) // 2, BOTTOM + 42))
    svg.append('<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">offset from the mean '
               '(symmetric log scale: linear within +/-1 us)</text>' % ((TOP + BOTTOM) // 2, (TOP + BOTTOM) // 2))
    for i, c in enumerate(sorted(tracks, key=natural_key)):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join("%.1f,%.1f" % (x(t), y(offs[c])) for t, offs in samples)
        svg.append('<polyline class="series" data-clock="%s" fill="none" stroke="%s" stroke-width="1.6" '
                   'points="%s"/>' % (xml_escape(c), colour, points))
        ly = TOP + 10 + 20 * i
        svg.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                   % (RIGHT + 15, RIGHT + 40, ly, ly, colour))
        svg.append('<text x="%d" y="%d">%s</text>' % (RIGHT + 46, ly + 4, xml_escape(c)))
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


def start_slaves(args, log_dir, procs, readers):
    """Start slave-1..slave-N with offsets and drifts drawn from --seed
    (procs remembers each at once, so that a Ctrl-C midway still stops those
    started). Their output is streamed, prefixed, by one thread per pipe."""
    rng = random.Random(args.seed)
    for i in range(1, args.n + 1):
        ident = "slave-%d" % i
        offset_ms = rng.uniform(-args.offset_range, args.offset_range)
        drift_ppm = rng.uniform(-args.drift_range, args.drift_range)
        argv = [args.slave, "--host", args.host, "--port", str(args.port), "--id", ident,
                "--offset", "%.3f" % offset_ms, "--drift", "%.3f" % drift_ppm,
                "--log", os.path.join(log_dir, ident + ".log"), "--connect-timeout", str(args.connect_timeout)]
        p = procs.start(argv + (["--quiet"] if args.quiet else []), ident, pipe=True)
        p.errors = []
        for pipe, dest in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
            readers.append(threading.Thread(target=stream, args=(pipe, ident, dest, p.errors), daemon=True))
            readers[-1].start()


PRINT_LOCK = threading.Lock()


def stream(pipe, ident, dest, errors):
    for line in pipe:
        if dest is sys.stderr:
            errors.append(line)
        with PRINT_LOCK:  # one write per line, so other writers cannot split it
            dest.write("[%s] %s\n" % (ident, line.rstrip("\n")))
            dest.flush()


def run_slaves(args):
    """Run the slaves to the end; returns the log directory, or exits 2."""
    log_dir = args.logs or tempfile.mkdtemp(prefix="berkeley-analyze-")
    os.makedirs(log_dir, exist_ok=True)
    print("analyze.py: starting %d slave(s) for the master at %s:%d (seed %d), logs in %s"
          % (args.n, args.host, args.port, args.seed, log_dir), flush=True)
    procs = Processes(say=lambda message: print("analyze.py: " + message, file=sys.stderr))
    readers = []
    try:
        start_slaves(args, log_dir, procs, readers)
        if not procs.wait_all(args.timeout):
            procs.stop_all("still running after %g s (--timeout)" % args.timeout)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        print("\nanalyze.py: interrupted; reporting what was logged so far", file=sys.stderr)
        procs.stop_all("interrupted")
    except OSError as e:
        procs.stop_all("could not start them all")
        sys.exit("analyze.py: cannot run %s: %s (build it with: make compile)" % (args.slave, e.strerror or e))
    for t in readers:
        t.join()
    children = procs.children
    if children and all(p.returncode == 1 and any(UNREACHABLE in e for e in p.errors) for p in children):
        print("analyze.py: no master answered at %s:%d within %g s. Start one first, in another terminal:\n"
              "    ./master %d --port %d --log master.log\nthen run this again." %
              (args.host, args.port, args.connect_timeout, args.n, args.port), file=sys.stderr)
        sys.exit(2)
    return log_dir


# ---------------------------------------------------------------------------
# main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Run N Berkeley slaves against ./master and judge the run from the logs.")
    p.add_argument("--version", action="version", version="analyze.py (berkeley-sync) " + VERSION)
    p.add_argument("n", nargs="?", type=int, help="number of slaves to start")
    p.add_argument("--from-logs", metavar="DIR", help="analyse the *.log files in DIR; start nothing")
    p.add_argument("--host", default="127.0.0.1", help="the master's address [127.0.0.1]")
    p.add_argument("--port", type=int, default=8080, help="the master's port [8080]")
    p.add_argument("--slave", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "slave"),
                   help="the slave binary [./slave next to this script]")
    p.add_argument("--seed", type=int, default=None, help="seed for the slaves' offsets and drifts [random]")
    p.add_argument("--offset-range", type=float, default=5000, metavar="MS", help="offsets within +/-MS [5000]")
    p.add_argument("--drift-range", type=float, default=50, metavar="PPM", help="drifts within +/-PPM [50]")
    p.add_argument("--timeout", type=float, default=120, metavar="SEC", help="stop the slaves after SEC [120]")
    p.add_argument("--connect-timeout", type=float, default=10, metavar="SEC",
                   help="slaves give up when no master answers for SEC [10]")
    p.add_argument("--tolerance-us", type=float, default=1000, metavar="US", help="largest final spread [1000]")
    p.add_argument("--plot", metavar="FILE.svg", help="draw the offsets over time as SVG")
    p.add_argument("--logs", metavar="DIR", help="keep the slaves' logs in DIR [a new temporary directory]")
    p.add_argument("--master-log", metavar="FILE", help="the master's --log file: adds the master and its estimates")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.add_argument("--quiet", action="store_true", help="do not echo the slaves' output")
    args = p.parse_args(argv)
    if (args.n is None) == (args.from_logs is None):
        p.error("give either N (slaves to start) or --from-logs DIR")
    if args.n is not None and args.n < 1:
        p.error("N must be at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2 ** 31)
    return args


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
            f.write(draw_svg(tracks, result))
    print(report(result, log_dir))
    return 0 if result["synchronized"] else 1


if __name__ == "__main__":
    sys.exit(main())
