"""bench/steady.py - section 2 of bench/run.py: the steady state of N = 3
with drifts within +/-50 ppm, with and without frequency discipline,
judged by the largest true spread at any instant after the first 30 s."""

from report import Section, judge, us
from runs import SyncRun, run_timeout_s, sync_flags
from procs import BenchError
from berkeley.analysis import NothingToAnalyse
from berkeley.units import NS_PER_S, NS_PER_US

STEADY_SKIP_S = 30  # steady state is judged after the first 30 s


def max_spread_between(tracks, t_lo, t_hi):
    """The largest true spread at any host instant in [t_lo, t_hi]. Between the
    breakpoints of all clocks (their anchors, and the end of every slew) each
    offset is linear, so max minus min is convex there and peaks at a
    breakpoint: looking at each of them, just before and at it, is exact."""
    times = {t_lo, t_hi}
    for track in tracks.values():
        for a in track.anchors:
            times.add(a.real_ns)
            if a.slew_ns:
                times.add(track.applied_at(a.real_ns))
    worst = 0
    for t in sorted(t for t in times if t_lo <= t <= t_hi):
        for before in (True, False):
            offsets = [track.offset_at(t, before_step=before) for track in tracks.values()]
            worst = max(worst, max(offsets) - min(offsets))
    return worst


def bench_steady(procs, cfg, seed):
    duration_s = cfg["steady_s"]
    rounds = duration_s + 1
    s = Section("2. Steady state (drift within +/-50 ppm, N = 3)",
                ["configuration", "rounds judged", "max spread before a round", "max spread after a round",
                 "max spread at any instant"],
                ["N = 3 slaves plus the master, random drifts within +/-50 ppm (the default; the same seeds for "
                 "both configurations), --interval 1, %d rounds (%d s); both configurations run at once on "
                 "their own masters. Judged over rounds that start %d s or more after round 1 began: the "
                 "largest per-round spread before (the round's start, where drift has accumulated most) and "
                 "after, and the largest spread at any instant from %d s on to the last round's end (exact: "
                 "evaluated at every step, slew start and slew end of every clock). The target applies to the "
                 "last column." % (rounds, duration_s, STEADY_SKIP_S, STEADY_SKIP_S)])
    configs = (("frequency discipline", [], 10), ("--no-frequency", ["--no-frequency"], 120))
    runs = {}
    try:
        for label, extra, _ in configs:
            master, slaves = sync_flags(3, seed, rounds, 1, extra)
            runs[label] = SyncRun(procs, "steady" + "".join(extra).replace("--", "-"), 3, master, slaves)
    except BenchError as e:
        s.fail("starting", e)
    for label, _, limit_us in configs:
        if label not in runs:
            continue
        try:
            run = runs[label].finish(run_timeout_s(3, rounds, 1))
        except (BenchError, NothingToAnalyse) as e:
            s.fail(label, e)
            continue
        t0 = run.result["rounds"][0]["before_real_ns"]
        judged = [r for r in run.result["rounds"] if r["before_real_ns"] >= t0 + STEADY_SKIP_S * NS_PER_S]
        if not judged:
            s.fail(label, "no round started after %d s" % STEADY_SKIP_S)
            continue
        before = max(r["spread_before_ns"] for r in judged)
        after = max(r["spread_after_ns"] for r in judged)
        anywhere = max_spread_between(run.tracks, t0 + STEADY_SKIP_S * NS_PER_S, run.result["final_real_ns"])
        s.add(label, "%d-%d" % (judged[0]["round"], judged[-1]["round"]), us(before), us(after),
              judge(anywhere, limit_us * NS_PER_US, us(anywhere), "<= %d us" % limit_us))
        if anywhere > limit_us * NS_PER_US:
            rates = [t.anchors[-1].rate_ppb for t in run.tracks.values()]
            spread_rate = max(rates) - min(rates)
            s.findings.append(
                "%s: the clocks' effective rates (drift plus trim) ended %.1f ppm apart, which alone opens "
                "%s per 1 s interval; the largest spread before a round was %s against %s after one, so the "
                "error is %s." % (label, spread_rate / 1000, us(spread_rate), us(before), us(after),
                                  "drift accumulating between rounds" if before > 2 * after
                                  else "left by the corrections themselves"))
    return s
