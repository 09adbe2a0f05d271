"""bench/scale.py - sections 3 and 4 of bench/run.py, from the same runs:
the scale (N = 1,000 and 10,000 slaves in one `./slave --count N`: round
duration, spread, the master's memory) and the cost of a round (the
master's CPU, where in the round the time goes)."""

import os

from report import Section, judge, maybe_judge, median, ms, percentile, us
from runs import SyncRun, run_timeout_s, sync_flags
from procs import BenchError
from berkeley.analysis import MASTER_ID, NothingToAnalyse
from berkeley.units import NS_PER_MS, NS_PER_S, NS_PER_US

def where_in_round(run):
    """Per round: how long after it began the last slave logged its first
    reply, and its correction (one pass over every slave's events)."""
    starts = {r: e["real_ns"] for r, e in run.rounds("round").items()}
    first, last = dict(starts), dict(starts)
    for c, track in run.tracks.items():
        if c == MASTER_ID:
            continue
        for e in track.events:
            r = e.get("round")
            if r not in starts:
                continue
            if e["event"] == "reply" and e.get("probe") == 1:
                first[r] = max(first[r], e["real_ns"])
            elif e["event"] == "adjust":
                last[r] = max(last[r], e["real_ns"])
    return {r: (first[r] - starts[r], last[r] - starts[r]) for r in starts}


def bench_scale(procs, cfg, seed):
    s = Section("3. Scale (drift 0)",
                ["N", "rounds", "round duration (median)", "before: round duration at c4d0c55",
                 "answered/acked last round", "spread after last round", "spread p99 over rounds 2..",
                 "master RSS baseline -> peak", "RSS per slave"],
                ["One `./slave --count N` process, `--drift 0`, --quiet, offsets as in 1. Round duration is "
                 "round_done.duration_ns (first probe sent to last ACK), median over all rounds; beside it, the "
                 "same figure measured at c4d0c55, before the master's event-loop change (its bench/results.md, on the "
                 "machine recorded there: compare the machines before the figures). "
                 "Peak RSS is the larger of the highest VmRSS polled every 10 ms and the last VmHWM read before "
                 "the master exited; baseline is VmRSS right after the master logged `start`."])
    c = Section("4. Cost of a round (master CPU)",
                ["N", "rounds", "master CPU per round", "per slave per round", "master CPU share of a round",
                 "slave process CPU share", "rtt p50 / p99 / max", "first replies all in", "last adjust"],
                ["From the same runs as 3: sum of (round_done.cpu_ns - round.cpu_ns) over rounds / rounds / N. "
                 "Shares are CPU time over the round's wall time (the slave process polled from /proc, 10 ms "
                 "ticks). The last two columns are medians over rounds of when, after the round began, the last "
                 "slave logged its first reply and its correction."])
    for n, rounds, interval_s in cfg["scale"]:
        try:
            master, slaves = sync_flags(n, seed, rounds, interval_s, ["--drift", "0"])
            run = SyncRun(procs, "scale-%d" % n, n, master, slaves, monitor=True).finish(
                run_timeout_s(n, rounds, interval_s))
        except (BenchError, NothingToAnalyse) as e:
            s.fail("N=%d" % n, e)
            continue
        scale_row(s, run, SCALE_TARGETS.get(n, {}))
        cost_row(c, s, run, SCALE_TARGETS.get(n, {}))
    return [s, c]


# Targets by N: round duration, spread p99 over rounds 2.., spread after the
# last round, everyone answered and acked it, master KiB per slave.
SCALE_TARGETS = {1000: {"round_ns": 100 * NS_PER_MS, "p99_ns": 50 * NS_PER_US},
                 10000: {"round_ns": NS_PER_S, "final_ns": NS_PER_MS - 1, "all_in": True, "kib": 2}}
# Median round duration by N at c4d0c55, before the event-loop change.
SCALE_BEFORE_NS = {1000: 35 * NS_PER_MS, 10000: 576 * NS_PER_MS}


def scale_row(s, run, targets):
    n = run.n
    dones = run.rounds("round_done")
    last = dones[max(dones)]
    judged = run.result["rounds"]
    final = judged[-1]["spread_after_ns"] if judged[-1]["round"] == last["round"] else None
    later = [r["spread_after_ns"] for r in judged if r["round"] > 1]
    p99 = percentile(later, 99) if later else None
    peak = max(run.monitor.max_rss_kib[run.master.name], run.monitor.last_hwm_kib[run.master.name])
    per_slave = (peak - run.baseline_kib) / n if run.baseline_kib else None
    all_in = last["answered"] == n and last["acked"] == n
    dur = median([e["duration_ns"] for e in dones.values()])
    answered = "%d/%d of %d" % (last["answered"], last["acked"], n)
    s.add(n, len(dones),
          maybe_judge(dur, targets.get("round_ns"), ms(dur), "<= %s" % ms(targets.get("round_ns"), 0)),
          ms(SCALE_BEFORE_NS.get(n), 0),
          judge(0 if all_in else 1, 0, answered, "all") if targets.get("all_in") else answered,
          maybe_judge(final, targets.get("final_ns"), us(final), "< 1 ms"),
          maybe_judge(p99, targets.get("p99_ns"), us(p99), "<= %s" % us(targets.get("p99_ns"), 0)),
          "%d -> %d KiB" % (run.baseline_kib or 0, peak),
          maybe_judge(per_slave, targets.get("kib"), "%.2f KiB" % (per_slave or 0), "<= %s KiB" % targets.get("kib")))
    if "kib" in targets and per_slave is not None and per_slave > targets["kib"]:
        s.findings.append("N=%d: the master's RSS grew from %d KiB to %d KiB, %.2f KiB per slave."
                          % (n, run.baseline_kib, peak, per_slave))
    if targets.get("all_in") and not all_in:
        s.findings.append("N=%d: only %d answered and %d acked the last round." % (n, last["answered"], last["acked"]))


def cost_row(c, s, run, targets):
    """The cost of a round, and where its time goes (a finding in s when the
    round took longer than its target)."""
    n = run.n
    starts, dones = run.rounds("round"), run.rounds("round_done")
    done_rounds = sorted(r for r in dones if r in starts)
    cpu = [dones[r]["cpu_ns"] - starts[r]["cpu_ns"] for r in done_rounds]
    walls = [max(dones[r]["real_ns"] - starts[r]["real_ns"], 1) for r in done_rounds]
    master_share = median([v / w for v, w in zip(cpu, walls)])
    slave_cpu = [run.monitor.cpu_between(run.slaves.name, starts[r]["real_ns"], dones[r]["real_ns"])
                 for r in done_rounds]
    slave_share = median([v / w for v, w in zip(slave_cpu, walls) if v is not None] or [0])
    rtts = run.rtts()
    where = where_in_round(run)
    first_in = median([where[r][0] for r in done_rounds])
    last_adjust = median([where[r][1] for r in done_rounds])
    per_slave = sum(cpu) / len(done_rounds) / n
    c.add(n, len(done_rounds), ms(sum(cpu) / len(done_rounds)), us(per_slave, 2),
          "%.0f%%" % (100 * master_share), "%.0f%%" % (100 * slave_share),
          "%s / %s / %s" % (us(percentile(rtts, 50)), us(percentile(rtts, 99)), us(max(rtts))),
          ms(first_in), ms(last_adjust))
    dur = median([dones[r]["duration_ns"] for r in done_rounds])
    if "round_ns" in targets and dur > targets["round_ns"]:
        busy = master_share > 0.8 and slave_share > 0.8
        s.findings.append(
            "N=%d: a round took %s (median); the master was on CPU for %.0f%% of it (%s per slave) and the "
            "slave process for %.0f%%%s, while the median best round trip was only %s. The last slave's "
            "first reply was logged %s into the round and its correction %s in."
            % (n, ms(dur), 100 * master_share, us(per_slave, 2), 100 * slave_share,
               ", so on %d CPUs the round is CPU-bound in the two event loops, not waiting on the network"
               % os.cpu_count() if busy else "", us(percentile(rtts, 50)), ms(first_in), ms(last_adjust)))
