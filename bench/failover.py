"""bench/failover.py - section 13 of bench/run.py: the master killed after
round 3, N = 5 and 1,000; the time until a successor's first round, and the
spread around the takeover."""

import time

from report import Section, judge, median, ms, us
from runs import CONNECT_S_PER_SLAVE
from procs import BenchError
from berkeley.analysis import MASTER_ID, NothingToAnalyse, analyse
from berkeley.clock import ClockTrack
from berkeley.logs import read_events, read_logs
from berkeley.units import NS_PER_MS, NS_PER_S

FAILOVER_INTERVAL_S = 0.5
FAILOVER_SUCCESSORS = 5   # slave processes of their own, which serve and may take over
FAILOVER_TARGET_NS = int((3 * FAILOVER_INTERVAL_S + 1) * NS_PER_S)


def bench_failover(procs, cfg, seed):
    kills = cfg["failover_kills"]
    s = Section("13. Failover: the master killed, a successor takes over",
                ["N", "kills", "kill -> first round of the new master: median", "max", "spread after rounds around "
                 "the takeover: largest", "takeovers by the top successor"],
                ["A master (`--rounds 0 --interval %g --offset 0 --drift 0`) and N slaves with `--drift 0`: "
                 "%d slave processes of their own (each serves, so each may take over) and, for N above %d, "
                 "the rest in one `./slave --count` swarm (a swarm serves nowhere). After 3 rounds the master "
                 "is killed with SIGKILL. Figure: host time from the kill to the new master's first "
                 "`round_done`, over %d runs, each a fresh group. The spread is the true spread after each "
                 "round from the last before the kill to the second after it (analyze.py), the largest over all "
                 "runs. Target: at most 3 intervals plus 1 s (%s)."
                 % (FAILOVER_INTERVAL_S, FAILOVER_SUCCESSORS, FAILOVER_SUCCESSORS, kills, ms(FAILOVER_TARGET_NS, 0))])
    for n in (5, 1000):
        times, spreads, top_first = [], [], 0
        try:
            for k in range(kills):
                t, spread, by_top = one_failover(procs, n, seed + k)
                times.append(t)
                spreads.append(spread)
                top_first += by_top
                procs.stop_all()
        except (BenchError, NothingToAnalyse) as e:
            s.fail("N=%d" % n, e)
            procs.stop_all()
            continue
        s.add(n, kills, judge(median(times), FAILOVER_TARGET_NS, ms(median(times)), "<= %s" % ms(FAILOVER_TARGET_NS, 0)),
              judge(max(times), FAILOVER_TARGET_NS, ms(max(times)), "<= %s" % ms(FAILOVER_TARGET_NS, 0)),
              us(max(spreads)), "%d of %d" % (top_first, kills))
    return s


def one_failover(procs, n, seed):
    """One group, its master killed after round 3: (kill -> first round of
    the new master, the largest spread around it, 1 if the plan's top
    successor took over)."""
    tag = "fo%d-%d" % (n, seed)
    m = procs.master(n, tag + "-master", ["--rounds", "0", "--interval", str(FAILOVER_INTERVAL_S), "--offset", "0",
                                          "--drift", "0", "--seed", str(seed), "--quiet"])
    own = [procs.slaves(m.port, 1, "%s-s%d" % (tag, i), ["--drift", "0", "--seed", str(seed * 100 + i)],
                        ident="s%d" % i) for i in range(FAILOVER_SUCCESSORS)]
    swarm = [procs.slaves(m.port, n - FAILOVER_SUCCESSORS, tag + "-swarm", ["--drift", "0", "--seed", str(seed * 100 + 50)],
                          ident="w")] if n > FAILOVER_SUCCESSORS else []
    logs = [m.log] + [p.log for p in own + swarm]
    deadline = time.monotonic() + 60 + n * CONNECT_S_PER_SLAVE
    while len([e for e in read_events(m.log, warn=procs.warn) if e["event"] == "round_done"]) < 3:
        if time.monotonic() > deadline:
            raise BenchError("%s: three rounds did not come" % tag)
        time.sleep(0.05)
    killed = time.time_ns()  # just before: the figure includes the kill's own latency
    m.kill()
    m.wait()
    first, new = None, None
    deadline = time.monotonic() + 30
    while first is None:
        if time.monotonic() > deadline:
            raise BenchError("%s: no new master ran a round within 30 s of the kill" % tag)
        time.sleep(0.05)
        for p in own:
            events = read_events(p.log, warn=procs.warn)
            if any(e["event"] == "takeover" for e in events):
                done = [e for e in events if e["event"] == "round_done" and e["real_ns"] > killed]
                if done:
                    first, new = done[0], events
                    break
    time.sleep(2.5 * FAILOVER_INTERVAL_S)  # two more rounds, for the spread after the takeover
    plan = [e for e in read_events(own[0].log, warn=procs.warn) if e["event"] == "plan" and e["real_ns"] < killed]
    serving = [e for e in new if e["event"] == "serving"]
    by_top = int(bool(plan and serving and plan[-1]["successors"].split(" ")[0] == serving[0]["address"]))
    tracks = {c: ClockTrack(c, ev) for c, ev in read_logs(logs, warn=procs.warn).items() if ev}
    result = analyse(tracks, NS_PER_MS)
    last_before = max(e["round"] for e in tracks[MASTER_ID].events if e["event"] == "round_done")
    around = [r["spread_after_ns"] for r in result["rounds"] if last_before <= r["round"] <= first["round"] + 2]
    return first["real_ns"] - killed, max(around) if around else 0, by_top
