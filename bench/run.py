#!/usr/bin/env python3
"""bench/run.py - the benchmark suite's runner: it parses the command line,
runs the chosen families one after another and writes bench/results.md. Each
family is a file of its own, judged against its targets:

    precision.py  1. precision (drift 0)        hostile.py   6. CPU per hostile connection
    steady.py     2. steady state               drag.py      7. no minority drags the ensemble
    scale.py      3. scale, 4. cost of a round  lock.py      8. frequency lock
    soak.py       5. soak                       auth.py      9.-12. authentication (with flood.py, storm.py)
    failover.py  13. failover                   net.py      14. across network stacks, beside chrony

and what they share: runs.py (the runs), procs.py (the processes and /proc),
report.py (the tables, targets and bench/results.md).

    python3 bench/run.py                   the full suite (about 15 minutes, 6 of them drag)
    python3 bench/run.py --quick           a reduced version for a fast check
    python3 bench/run.py --only scale,soak a subset (precision, steady, scale, soak, hostile, drag, lock, auth,
                                           failover, net)

It runs the ./master and ./slave already built in the repo root (make compile;
it builds nothing), or those in $BERKELEY_BIN_DIR, on free loopback ports, and
judges every run from the logs alone through the log reader and the clock
model in berkeley/ (analyze.py's own). It prints each row as it comes in and
writes bench/results.md. Exit status 1 when a run could not be measured (or,
with --strict, when a target was missed). Standard library only.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/ or the repo root

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import MASTER, ROOT, SLAVE, Procs  # noqa: E402
from report import write_markdown  # noqa: E402
from precision import bench_precision  # noqa: E402
from steady import bench_steady  # noqa: E402
from scale import bench_scale  # noqa: E402
from soak import bench_soak  # noqa: E402
from hostile import bench_hostile  # noqa: E402
from drag import bench_drag  # noqa: E402
from lock import bench_lock  # noqa: E402
from auth import bench_auth  # noqa: E402
from failover import bench_failover  # noqa: E402
from net import bench_net  # noqa: E402

# The log lines the log reader skipped as unusable, in order and once
# each (a log both tailed and read whole reports its lines twice): summarised
# in one note instead of one line each.
SKIPPED_LINES = {}


def note_skipped(message):
    SKIPPED_LINES.setdefault(message)


NAMES = ("precision", "steady", "scale", "soak", "hostile", "drag", "lock", "auth", "failover", "net")

FULL = {"precision_rounds": 30, "steady_s": 120, "scale": ((1000, 101, 0.15), (10000, 3, 2.0)), "soak_rounds": 5000,
        "hostile": (3, 3000, 10000), "drag_rounds": 122, "drag_lies": ("1 us", "20 us", "0.4 ms", "100 ms"),
        "lock_intervals": (0.2, 1, 5), "auth": ((1000, 11, 0.15), (10000, 3, 2.0)), "storm": True,
        "failover_kills": 20, "net_rounds": 120}
QUICK = {"precision_rounds": 10, "steady_s": 40, "scale": ((1000, 11, 0.15),), "soak_rounds": 500,
         "hostile": (3, 3000), "drag_rounds": 30, "drag_lies": ("20 us", "100 ms"), "lock_intervals": (0.2, 1),
         "auth": ((1000, 11, 0.15),), "storm": False, "failover_kills": 5, "net_rounds": 40}


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark ./master and ./slave; write bench/results.md.")
    p.add_argument("--quick", action="store_true",
                   help="reduced run: precision 10 rounds, steady 40 s, scale N=1000 only, soak 500 rounds, "
                        "hostile N=3 and 3000, drag 30 rounds (lies 20 us and 100 ms, the stubborn clock), "
                        "lock at 0.2 s and 1 s")
    p.add_argument("--only", metavar="NAME[,NAME]", help="run a subset of: " + ", ".join(NAMES))
    p.add_argument("--output", default=os.path.join(ROOT, "bench", "results.md"), help="[bench/results.md]")
    p.add_argument("--seed", type=int, default=1,
                   help="seed for every clock's offset and drift [1] (drag and lock set their own)")
    p.add_argument("--keep-logs", action="store_true", help="keep the runs' logs (their directory is printed)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    args.names = NAMES if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        p.error("unknown benchmark %s; choose from %s" % (", ".join(unknown), ", ".join(NAMES)))
    return args


def main(argv=None):
    args = parse_args(argv)
    for binary in (MASTER, SLAVE):
        if not os.access(binary, os.X_OK):
            print("bench: %s is missing; build it first: make compile" % binary, file=sys.stderr)
            return 2
    cfg = QUICK if args.quick else FULL
    mode = ("quick" if args.quick else "full") + ("" if args.names == NAMES else ", only " + ",".join(args.names))
    log_dir = tempfile.mkdtemp(prefix="berkeley-bench-")
    print("bench: %s run; logs in %s" % (mode, log_dir), flush=True)
    procs = Procs(log_dir, note_skipped)
    benches = {"precision": bench_precision, "steady": bench_steady, "scale": bench_scale, "soak": bench_soak,
               "hostile": bench_hostile, "drag": bench_drag, "lock": bench_lock, "auth": bench_auth,
               "failover": bench_failover, "net": bench_net}
    sections = []
    t_start = time.monotonic()
    try:
        for name in args.names:
            t0 = time.monotonic()
            made = benches[name](procs, cfg, args.seed)
            made = made if isinstance(made, list) else [made]
            made[0].elapsed_s = time.monotonic() - t0
            print("-- %s took %.0f s" % (name, made[0].elapsed_s), flush=True)
            sections += made
            procs.stop_all()  # nothing of one benchmark may run into the next
    except KeyboardInterrupt:
        print("\nbench: interrupted; writing what was measured", file=sys.stderr)
    finally:
        procs.stop_all()
    total_s = time.monotonic() - t_start
    command = "python3 bench/run.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    notes = []
    if SKIPPED_LINES:
        notes.append("analyze.py skipped %d log line(s) as unusable while reading these runs; the first: `%s`"
                     % (len(SKIPPED_LINES), next(iter(SKIPPED_LINES)).replace(log_dir + "/", "")))
        print("bench: " + notes[-1].replace("`", ""), file=sys.stderr)
    met, missed, failed = write_markdown(args.output, sections, mode, command, total_s, notes)
    print("\nbench: %d target(s) met, %d missed%s; total %.0f s; wrote %s"
          % (met, missed, ", %d run(s) failed" % failed if failed else "", total_s, os.path.relpath(args.output)))
    if args.keep_logs:
        print("bench: logs kept in %s" % log_dir)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
