"""bench/storm.py - section 12 of bench/run.py (run with `--only auth`, full
runs only): 19,000 slaves join at once; all must join and every round be
answered and acknowledged by all."""

from report import Section, judge
from runs import SyncRun, run_timeout_s, sync_flags
from procs import BenchError
from berkeley.analysis import NothingToAnalyse
from berkeley.units import NS_PER_S

STORM_N, STORM_ROUNDS, STORM_INTERVAL_S, STORM_TIMEOUT_MS = 19000, 3, 5.0, 5000


def bench_storm(procs, seed):
    s = Section("12. A join storm",
                ["slaves", "all joined after", "rounds done", "answered/acked (fewest over the rounds)",
                 "slave process exit"],
                ["`./master %d --rounds %d --interval %g --timeout-ms %d` and `./slave --count %d` started "
                 "together (plain protocol, --quiet, `--drift 0`): every slave connects at once. The master "
                 "admits at most 1024 connections short of HELLO; the rest are refused as busy and retry with "
                 "jittered back-off. Both raise their open-file limit as far as the system allows. One process "
                 "answering for 19,000 slaves needs more than the default 500 ms per probe and for the ACKs on "
                 "2 cores, hence the longer timeout. Target: all join, and all answer and acknowledge each of "
                 "the %d rounds." % (STORM_N, STORM_ROUNDS, STORM_INTERVAL_S, STORM_TIMEOUT_MS, STORM_N, STORM_ROUNDS)])
    try:
        master, slaves = sync_flags(STORM_N, seed, STORM_ROUNDS, STORM_INTERVAL_S, ["--drift", "0"])
        master += ["--timeout-ms", str(STORM_TIMEOUT_MS)]
        run = SyncRun(procs, "storm", STORM_N, master, slaves).finish(run_timeout_s(STORM_N, STORM_ROUNDS,
                                                                                   STORM_INTERVAL_S) + 120)
        firsts = run.rounds("round")
        joined_s = (firsts[min(firsts)]["real_ns"] - run.master_events[0]["real_ns"]) / NS_PER_S if firsts else None
        dones = run.rounds("round_done")
        fewest = {k: min([d[k] for d in dones.values()] or [0]) for k in ("answered", "acked")}
        ok = len(dones) == STORM_ROUNDS and all(d["answered"] == STORM_N and d["acked"] == STORM_N
                                                for d in dones.values())
        s.add(STORM_N, "%.1f s" % joined_s if joined_s is not None else "-",
              judge(0 if len(dones) == STORM_ROUNDS else 1, 0, "%d of %d" % (len(dones), STORM_ROUNDS), "all"),
              judge(0 if ok else 1, 0, "%d/%d" % (fewest["answered"], fewest["acked"]), "all"),
              run.slaves.returncode)
    except (BenchError, NothingToAnalyse) as e:
        s.fail("N=%d" % STORM_N, e)
    finally:
        procs.stop_all()
    return s
