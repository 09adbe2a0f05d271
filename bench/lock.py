"""bench/lock.py - section 8 of bench/run.py: frequency lock, three slaves
with drifts far apart at intervals of 0.2 s to 5 s; the spread before each
round from round 4 on."""

import bisect

from report import Section, judge, us
from runs import Group, run_timeout_s
from procs import BenchError
from berkeley.analysis import NothingToAnalyse, analyse
from berkeley.units import NS_PER_MS, NS_PER_US

# Three slaves with drifts far apart, so that each round's phase correction
# alone would leave up to 100 ppm x the interval between rounds: only a rate
# learnt and trimmed keeps the spread before a round small.

LOCK_ROUNDS = 10
LOCK_FROM_ROUND = 4  # after three rounds
LOCK_LIMIT_NS = 2 * NS_PER_US
LOCK_MASTER = ["--offset", "0", "--drift", "0"]
LOCK_SLAVES = (["--offset", "4200", "--drift", "50"], ["--offset", "-3700", "--drift", "-50"],
               ["--offset", "1300", "--drift", "31"])
# From the issue: `make demo` (--interval 0.5, drifts within +/-50 ppm),
# spread before rounds 2..5.
LOCK_BEFORE_US = {2: 45.9, 3: 30.0, 4: 19.8, 5: 12.7}


def bench_lock(procs, cfg, seed):
    intervals = cfg["lock_intervals"]
    s = Section("8. Frequency lock",
                ["interval"] + ["r%d (us)" % r for r in range(2, LOCK_ROUNDS + 1)]
                + ["max from round %d on" % LOCK_FROM_ROUND],
                ["A master (`%s`) and three slaves, one process each: `%s`, `%s`, `%s` (offsets in ms, drifts in "
                 "ppm, within +/-5 s and +/-50 ppm, the same every run), %d rounds at each interval, all "
                 "intervals at once on their own masters. rN: the true spread of all four clocks at round N's "
                 "start, just before its corrections, in us: the drift and rate error left from the rounds "
                 "before. Target: from round %d on (after three rounds) <= %s, every round. The last row is "
                 "the figure before this change, from the issue: `make demo` (--interval 0.5, drifts within "
                 "+/-50 ppm), spread before rounds 2-5, when the trim learnt a third of the rate error per round."
                 % (" ".join(LOCK_MASTER), " ".join(LOCK_SLAVES[0]), " ".join(LOCK_SLAVES[1]),
                    " ".join(LOCK_SLAVES[2]), LOCK_ROUNDS, LOCK_FROM_ROUND, us(LOCK_LIMIT_NS, 0))])
    groups = {}
    for interval in intervals:
        flags = ["--interval", "%g" % interval, "--rounds", str(LOCK_ROUNDS), "--quiet", *LOCK_MASTER]
        try:
            groups[interval] = Group(procs, "lock-%gs" % interval, flags, [list(f) for f in LOCK_SLAVES], [],
                                     run_timeout_s(3, LOCK_ROUNDS, interval))
        except BenchError as e:
            s.fail("interval %g s" % interval, e)
    for interval, group in groups.items():
        try:
            lock_row(s, group.finish(), interval)
        except (BenchError, NothingToAnalyse) as e:
            s.fail("interval %g s" % interval, e)
    s.add("before (issue, `make demo`, 0.5 s)",
          *["%.1f" % LOCK_BEFORE_US[r] if r in LOCK_BEFORE_US else "-" for r in range(2, LOCK_ROUNDS + 1)], "-")
    return s


def lock_row(s, g, interval):
    clocks = g.honest  # the master first
    missing = [r for r in range(2, LOCK_ROUNDS + 1) if r not in g.starts]
    if missing:
        s.fail("interval %g s" % interval, "the master logged no round %s" % ", ".join(map(str, missing)))
        return
    before = {r: g.spread(clocks, g.starts[r]) for r in range(2, LOCK_ROUNDS + 1)}
    worst = max(v for r, v in before.items() if r >= LOCK_FROM_ROUND)
    cell = judge(worst, LOCK_LIMIT_NS, us(worst, 2), "<= %s" % us(LOCK_LIMIT_NS, 0))
    s.add("%g s" % interval, *["%.2f" % (before[r] / NS_PER_US) for r in range(2, LOCK_ROUNDS + 1)], cell)
    if not cell.ok:
        after = {r["round"]: r["spread_after_ns"] for r in analyse(g.tracks, NS_PER_MS)["rounds"]}
        for r in (r for r, v in before.items() if r >= LOCK_FROM_ROUND and v > LOCK_LIMIT_NS):
            rates = [rate_before(g.tracks[c], g.starts[r]) for c in clocks]
            spread_ppb = max(rates) - min(rates)
            s.findings.append(
                "Interval %g s, round %d: the spread was %s once round %d's corrections were fully applied and "
                "%s at round %d's start; in between the clocks ran at %s (drift plus trim), %.3f ppm apart, "
                "which alone opens %s over the %g s interval."
                % (interval, r, us(after.get(r - 1), 2), r - 1, us(before[r], 2), r,
                   ", ".join("%s %+.3f ppm" % (c.replace(g.name + "-", ""), v / 1000) for c, v in zip(clocks, rates)),
                   spread_ppb / 1000,
                   us(spread_ppb * interval, 2), interval))


def rate_before(track, t):
    """The rate (drift plus trim, ppb) a clock ran at just before host time t."""
    i = max(0, bisect.bisect_left(track.reals, t) - 1)
    return track.anchors[i].rate_ppb
