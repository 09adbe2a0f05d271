"""berkeley/analysis.py - the figures of a run, from its clocks' tracks
alone: the true spread before and after every round, each clock's
corrections and where it ended, the master's estimation errors, the
takeovers; and the verdict in words. Pure functions, shaped as analyze.py's
--json output; printing the report is analyze.py's, drawing it plot.py's."""

import re

from berkeley.units import fmt_duration, fmt_magnitude

MASTER_ID = "master"


class NothingToAnalyse(Exception):
    """The logs hold no run to judge: no clocks, or no round was ever finished."""


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


def verdict(result):
    """The run judged in one line: the report's last line, the plot's subtitle."""
    spread, tolerance = fmt_magnitude(result["final_spread_ns"]), fmt_magnitude(result["tolerance_ns"])
    if result["synchronized"]:
        return "synchronized: spread %s <= tolerance %s" % (spread, tolerance)
    furthest = result["furthest"]
    return "NOT synchronized: spread %s > tolerance %s (furthest: %s, %s from the mean)" % (
        spread, tolerance, furthest, fmt_duration(result["clocks"][furthest]["final_offset_ns"]))
