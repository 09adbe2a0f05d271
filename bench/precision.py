"""bench/precision.py - section 1 of bench/run.py: precision with drift 0,
the true spread of all clocks after each round, N = 3 and 100 slaves in one
`./slave --count N`, with kernel and with user timestamps."""

from report import Section, maybe_judge, median, percentile, us
from runs import SyncRun, run_timeout_s, sync_flags
from procs import BenchError
from berkeley.analysis import NothingToAnalyse
from berkeley.units import NS_PER_US

def bench_precision(procs, cfg, seed):
    rounds = cfg["precision_rounds"]
    s = Section("1. Precision (drift 0)",
                ["N", "timestamps", "median", "p99", "max", "round 1 (excluded)", "median rtt", "max est. error"],
                ["%d rounds, --interval 0.2, `--drift 0` on master and slaves; N slaves in one `./slave --count N`. "
                 "Figures: the true spread of all clocks (master included) once each round's corrections are "
                 "fully applied, over rounds 2..%d; round 1 (the initial multi-second step) is excluded from "
                 "the statistics and shown on its own. p99 is nearest-rank, so with %d rounds it equals the "
                 "maximum. Offsets: master 0, slaves -(N+1) s with --max-skew 0: the same start every run, "
                 "every round-1 correction a large step and no reading left out. "
                 "Targets apply to kernel timestamps (the default); user timestamps are shown beside them."
                 % (rounds, rounds, rounds - 1)])
    rtt_medians = {}
    for n in (3, 100):
        for mode in ("kernel", "user"):
            try:
                master, slaves = sync_flags(n, seed, rounds, 0.2, ["--drift", "0", "--timestamps", mode])
                run = SyncRun(procs, "precision-%d-%s" % (n, mode), n, master, slaves).finish(
                    run_timeout_s(n, rounds, 0.2))
            except (BenchError, NothingToAnalyse) as e:
                s.fail("N=%d %s" % (n, mode), e)
                continue
            precision_row(s, run, mode, rounds, PRECISION_TARGETS[n] if mode == "kernel" else {})
            rtt_medians[n, mode] = median(run.rtts())
    for n in (3, 100):
        if (n, "user") in rtt_medians and (n, "kernel") in rtt_medians \
                and rtt_medians[n, "user"] > 10 * rtt_medians[n, "kernel"]:
            s.findings.append(
                "With user timestamps at N=%d the median best round trip was %s against %s with kernel "
                "timestamps: each probe and reply waits its turn in the two event loops (all N slaves in one "
                "process), and Cristian's single reading can be off by up to half the round trip, which is "
                "what the user rows' spread shows. (No target applies to them.)"
                % (n, us(rtt_medians[n, "user"]), us(rtt_medians[n, "kernel"])))
    return s


PRECISION_TARGETS = {3: {"median": 2 * NS_PER_US, "p99": 10 * NS_PER_US}, 100: {"p99": 20 * NS_PER_US}}


def precision_row(s, run, mode, rounds, targets):
    """One run's figures over rounds 2.. (round 1 apart), judged against targets."""
    n = run.n
    after = {r["round"]: r["spread_after_ns"] for r in run.result["rounds"]}
    later = [v for r, v in after.items() if r > 1]
    if len(later) < rounds - 1:
        s.fail("N=%d %s" % (n, mode), "only %d of %d rounds were judged" % (len(later) + 1, rounds))
    if not later:
        return
    errors = [r.get("max_estimation_error_ns", 0) for r in run.result["rounds"] if r["round"] > 1]
    figures = {"median": median(later), "p99": percentile(later, 99), "max": max(later)}
    cells = [maybe_judge(figures[k], targets.get(k), us(figures[k]), "<= %s" % us(targets.get(k), 0))
             for k in ("median", "p99", "max")]
    s.add(n, mode, *cells, us(after.get(1)), us(median(run.rtts())), us(max(errors, default=None)))
    if any(getattr(c, "ok", True) is False for c in cells):
        worst = max((r for r in run.result["rounds"] if r["round"] > 1), key=lambda r: r["spread_after_ns"])
        error = worst.get("max_estimation_error_ns", 0)
        s.findings.append(
            "N=%d %s: the worst round (%d) ended %s apart while the master's estimates in it were off by up to "
            "%s (graded against the true offsets), with round trips of median %s and max %s; %s."
            % (n, mode, worst["round"], us(worst["spread_after_ns"]), us(error),
               us(median(run.rtts(worst["round"]))), us(max(run.rtts(worst["round"]))),
               "the spread follows the estimation error, which half the round trip bounds"
               if 2 * error >= worst["spread_after_ns"] else
               "the spread is well beyond the estimation error, so the corrections were not applied as computed"))
