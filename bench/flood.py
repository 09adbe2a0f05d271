"""bench/flood.py - section 11 of bench/run.py (run with `--only auth`):
200 clients flood the master with garbage for 15 s; its log and console
must grow slowly and its rounds stay on time."""

import os
import socket
import time

from report import Section, judge, median, us
from procs import BenchError
from berkeley.analysis import MASTER_ID, NothingToAnalyse, analyse
from berkeley.clock import ClockTrack
from berkeley.logs import read_events, read_logs
from berkeley.units import NS_PER_MS

FLOOD_CLIENTS, FLOOD_S, FLOOD_GROWTH_TARGET_KIB_S = 200, 15.0, 10.0


def bench_flood(procs, seed):
    s = Section("11. A flood of garbage connections",
                ["clients", "for", "connections", "log growth", "console growth", "rounds in the flood (expected)",
                 "spread after rounds: before / during the flood (median)"],
                ["`./master 3 --rounds 0 --interval 1` (not --quiet: the console counts) with three `./slave "
                 "--drift 0` processes. Once 5 rounds are done, %d Python threads each connect, send `garbage`, "
                 "read until the master closes, and at once connect again, for %g s. Growth is the log's and "
                 "the console's bytes over the flood divided by its length; the flood's refusals are summed "
                 "up by the master (ten per kind per 10 s are told one by one). The spread is the true spread "
                 "after each round (analyze.py), the median over the rounds before and during the flood. "
                 "Target: log and console growth each at most %g KiB/s, rounds on time."
                 % (FLOOD_CLIENTS, FLOOD_S, FLOOD_GROWTH_TARGET_KIB_S)])
    import threading
    try:
        m = procs.master(3, "flood-master", ["--rounds", "0", "--interval", "1", "--offset", "0", "--drift", "0",
                                             "--seed", str(seed)])
        slaves = [procs.slaves(m.port, 1, "flood-slave-%d" % i, ["--drift", "0", "--seed", str(seed + i)],
                               ident="honest%d" % i) for i in range(3)]
        deadline = time.monotonic() + 60
        while len([e for e in read_events(m.log, warn=procs.warn) if e["event"] == "round_done"]) < 5:
            if time.monotonic() > deadline:
                raise BenchError("the master did not finish 5 rounds in 60 s")
            time.sleep(0.1)
        console = procs.path("flood-master.out")
        log0, out0, t0_real = os.path.getsize(m.log), os.path.getsize(console), time.time_ns()
        made = [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + FLOOD_S

        def client():
            while time.monotonic() < stop_at:
                try:
                    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as c:
                        c.sendall(b"garbage\n")
                        while c.recv(4096):
                            pass
                except OSError:
                    pass
                with lock:
                    made[0] += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(FLOOD_CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(FLOOD_S + 30)
        elapsed = time.monotonic() - t0
        t1_real = time.time_ns()
        log_kib_s = (os.path.getsize(m.log) - log0) / 1024 / elapsed
        out_kib_s = (os.path.getsize(console) - out0) / 1024 / elapsed
        time.sleep(1.5)  # the round after the flood, for its spread
        m.send_signal(2)
        procs.wait(m, time.monotonic() + 30)
        for p in slaves:
            procs.wait(p, time.monotonic() + 30)
        logs = read_logs([m.log] + [p.log for p in slaves], warn=procs.warn)
        tracks = {c: ClockTrack(c, ev) for c, ev in logs.items() if ev}
        result = analyse(tracks, NS_PER_MS)
        starts = {e["round"]: e["real_ns"] for e in tracks[MASTER_ID].events if e["event"] == "round"}
        during = [r for r, t in starts.items() if t0_real <= t <= t1_real]
        before = [r["spread_after_ns"] for r in result["rounds"] if 1 < r["round"] and starts.get(r["round"], 0) < t0_real]
        within = [r["spread_after_ns"] for r in result["rounds"] if r["round"] in during]
        target = "<= %g KiB/s" % FLOOD_GROWTH_TARGET_KIB_S
        s.add(FLOOD_CLIENTS, "%.1f s" % elapsed, made[0],
              judge(log_kib_s, FLOOD_GROWTH_TARGET_KIB_S, "%.2f KiB/s" % log_kib_s, target),
              judge(out_kib_s, FLOOD_GROWTH_TARGET_KIB_S, "%.2f KiB/s" % out_kib_s, target),
              judge(0 if len(during) >= int(elapsed) - 1 else 1, 0, "%d (%d)" % (len(during), int(elapsed)),
                    "on time"),
              "%s / %s" % (us(median(before)) if before else "-", us(median(within)) if within else "-"))
    except (BenchError, NothingToAnalyse) as e:
        s.fail("flood", e)
    finally:
        procs.stop_all()
    return s
