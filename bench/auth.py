"""bench/auth.py - sections 9 to 12 of bench/run.py (`--only auth`): the
cost of authentication per round, the guesses one address gets checked,
then the flood of garbage (flood.py) and, in full runs, the join storm
(storm.py)."""

import os
import socket
import time

from report import Section, judge, median, ms
from runs import SyncRun, run_timeout_s, sync_flags
from procs import BenchError
from flood import bench_flood
from storm import bench_storm
from berkeley.analysis import NothingToAnalyse

AUTH_RATIO_TARGET = 1.3      # an authenticated round takes at most 1.3x a plain one
GUESS_RATE_TARGET = 10.0     # proofs one address gets checked per second, at most
GUESS_THREADS, GUESS_S = 40, 10.0


def bench_auth(procs, cfg, seed):
    cost = Section("9. Authentication: the cost of a round",
                   ["N", "rounds", "plain round (median)", "authenticated round (median)", "ratio",
                    "master CPU per round plain / authenticated"],
                   ["One `./slave --count N` and its master as in 3 (`--drift 0`, --quiet, offsets as in 1), run "
                    "once plain and once with `--secret-file` on both (each line tagged with HMAC-SHA256, after "
                    "a handshake per slave). Round duration is round_done.duration_ns, median over the rounds; "
                    "CPU from the master's round/round_done cpu_ns. Target: authenticated at most %gx plain."
                    % AUTH_RATIO_TARGET])
    secret = os.path.join(procs.dir, "bench-secret")
    with open(secret, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    os.chmod(secret, 0o600)
    for n, rounds, interval_s in cfg["auth"]:
        figures = []
        for extra in ([], ["--secret-file", secret]):
            name = "auth-%d-%s" % (n, "secret" if extra else "plain")
            try:
                master, slaves = sync_flags(n, seed, rounds, interval_s, ["--drift", "0", *extra])
                run = SyncRun(procs, name, n, master, slaves).finish(run_timeout_s(n, rounds, interval_s))
            except (BenchError, NothingToAnalyse) as e:
                cost.fail("N=%d %s" % (n, "authenticated" if extra else "plain"), e)
                break
            starts, dones = run.rounds("round"), run.rounds("round_done")
            done = sorted(r for r in dones if r in starts)
            figures.append((median([dones[r]["duration_ns"] for r in done]),
                            sum(dones[r]["cpu_ns"] - starts[r]["cpu_ns"] for r in done) / len(done), len(done)))
            procs.stop_all()
        if len(figures) < 2:
            continue
        (plain, plain_cpu, k), (auth, auth_cpu, _) = figures
        ratio = auth / plain
        cost.add(n, k, ms(plain), ms(auth), judge(ratio, AUTH_RATIO_TARGET, "%.2fx" % ratio, "<= %gx" % AUTH_RATIO_TARGET),
                 "%s / %s" % (ms(plain_cpu), ms(auth_cpu)))
    guess = Section("10. Guessing the secret from one address",
                    ["connections at once", "for", "proofs checked (wrong)", "refused unchecked", "checked per second"],
                    ["A master with `--secret-file`. %d Python threads on 127.0.0.1 each loop for %g s: connect, "
                     "send `AUTH <random nonce>`, read the master's answer, send `PROOF <random>`, read its `ERROR` "
                     "until it closes. `authentication failed` means the proof was checked; `authentication "
                     "refused` means the address had spent its budget (10 at once, 2 a second) and the proof was "
                     "not looked at. Target: at most %g checked per second." % (GUESS_THREADS, GUESS_S, GUESS_RATE_TARGET)])
    try:
        m = procs.master(1, "guess-master", ["--rounds", "0", "--secret-file", secret, "--quiet"])
        checked, refused, other, elapsed = guess_from_one_address(m.port)
        rate = checked / elapsed
        guess.add(GUESS_THREADS, "%.1f s" % elapsed, checked, refused,
                  judge(rate, GUESS_RATE_TARGET, "%.1f/s" % rate, "<= %g/s" % GUESS_RATE_TARGET))
        if other:
            guess.findings.append("%d attempt(s) got another answer; the first: %r" % (len(other), other[0]))
    except BenchError as e:
        guess.fail("guessing", e)
    finally:
        procs.stop_all()
    sections = [cost, guess, bench_flood(procs, seed)]
    if cfg.get("storm"):
        sections.append(bench_storm(procs, seed))
    return sections


def guess_from_one_address(port):
    import threading
    counts = {"checked": 0, "refused": 0, "other": []}
    lock = threading.Lock()
    deadline = time.monotonic() + GUESS_S

    def one_guess():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            f = c.makefile("rwb", buffering=0)
            f.write(b"AUTH " + os.urandom(32).hex().encode() + b"\n")
            f.readline()
            f.write(b"PROOF " + os.urandom(32).hex().encode() + b"\n")
            return f.read().decode(errors="replace").strip()

    def guesser():
        while time.monotonic() < deadline:
            try:
                answer = one_guess()
            except OSError as e:
                answer = str(e)
            with lock:
                if answer == "ERROR authentication failed (wrong secret)":
                    counts["checked"] += 1
                elif answer.startswith("ERROR authentication refused"):
                    counts["refused"] += 1
                else:
                    counts["other"].append(answer)

    threads = [threading.Thread(target=guesser, daemon=True) for _ in range(GUESS_THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUESS_S + 60)
    return counts["checked"], counts["refused"], counts["other"], time.monotonic() - t0
