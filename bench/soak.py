"""bench/soak.py - section 5 of bench/run.py: 5,000 rounds of N = 10 at
0.01 s; the master's memory and open descriptors must not change."""

import time

from report import Section, judge
from procs import BenchError, open_fds, proc_status

def bench_soak(procs, cfg, seed):
    rounds = cfg["soak_rounds"]
    first_at, last_at = 10, rounds - 10
    s = Section("5. Soak (N = 10)",
                ["rounds", "sampled at rounds", "master VmRSS", "open fds", "equal"],
                ["%d rounds at --interval 0.01 with N = 10 (one `./slave --count 10`), --quiet. The master's "
                 "VmRSS and its count of /proc/<pid>/fd are sampled once round %d has been logged and again "
                 "once round %d has been logged, by tailing its log (from a kept offset) every 20 ms."
                 % (rounds, first_at, last_at)])
    try:
        master = procs.master(10, "soak-master", ["--rounds", str(rounds), "--interval", "0.01", "--quiet",
                                                  "--seed", str(seed)])
        slaves = procs.slaves(master.port, 10, "soak-slaves", ["--seed", str(seed + 1000)], log=False)
        samples = {}
        deadline = time.monotonic() + 60 + rounds * 0.05
        while len(samples) < 2 and master.poll() is None:
            for e in master.tail.read_new():
                if e.get("event") != "round":
                    continue
                for key, at in (("start", first_at), ("end", last_at)):
                    if e["round"] >= at and key not in samples:
                        samples[key] = (e["round"], proc_status(master.pid).get("VmRSS"), open_fds(master.pid))
            if time.monotonic() > deadline:
                raise BenchError("the master had not logged round %d after the time allowed" % last_at)
            time.sleep(0.02)
        if len(samples) < 2:
            raise BenchError("the master exited (code %s) before round %d" % (master.poll(), last_at))
        end = time.monotonic() + 60
        procs.wait(master, end)
        procs.wait(slaves, end)
    except BenchError as e:
        s.fail("soak", e)
        return s
    (r0, rss0, fds0), (r1, rss1, fds1) = samples["start"], samples["end"]
    equal = rss0 == rss1 and fds0 == fds1
    s.add(rounds, "%d and %d" % (r0, r1), "%s -> %s KiB" % (rss0, rss1), "%s -> %s" % (fds0, fds1),
          judge(0 if equal else 1, 0, "yes" if equal else "no", "equal"))
    if not equal:
        s.findings.append("Between rounds %d and %d the master's RSS changed by %+d KiB (%.1f bytes per round) "
                          "and its open fds by %+d." % (r0, r1, rss1 - rss0, (rss1 - rss0) * 1024 / (r1 - r0),
                                                        fds1 - fds0))
    return s
