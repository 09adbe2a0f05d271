"""bench/hostile.py - section 6 of bench/run.py: what a hostile connection
(a line the master cannot parse) costs the master's CPU, with 3 to 10,000
honest slaves joined; it must not grow with them."""

import os
import resource
import socket
import time

from report import Section, judge, ms, us
from runs import CONNECT_S_PER_SLAVE, ROUND_S_PER_SLAVE, sync_flags
from procs import BenchError
from berkeley.units import NS_PER_S

# N honest slaves joined and rounds far apart; between two rounds a client
# opens connections one after another, each saying a line the master cannot
# parse. What one such connection costs the master should not grow with N.

HOSTILE_CONNECTIONS = 2000  # K, at most, per N
HOSTILE_LINE = b"garbage\n"
HOSTILE_INTERVAL_S = 10  # between rounds; well inside the slaves' 30 s silence limit
IDLE_WINDOW_S = 1.0
SOCKET_TIMEOUT_S = 5  # for each connect and each read of the answer
ANSWER_MAX_BYTES = 4096
ROUND_MARGIN_S = 1  # the client stops this long before the next round is due
FD_SLACK = 64  # descriptors a process needs beyond one per slave
HOSTILE_RATIO_TARGET = 1.5


def bench_hostile(procs, cfg, seed):
    s = Section("6. Master CPU per hostile connection",
                ["N", "hostile connections", "answered ERROR", "logged one by one (a flood is summed up)", "window", "master CPU in it",
                 "idle CPU (same length)", "CPU per hostile connection"],
                ["N honest slaves (one `./slave --count N`, --quiet, `--drift 0`, offsets as in 1) joined to a master "
                 "run with `--rounds 0 --interval %d`. Once round 1 is done, the master's CPU time (utime + stime "
                 "from /proc/<pid>/stat, clock ticks of %.0f ms) is read over a %g s idle window and then while a "
                 "Python client opens up to K = %d connections one after another, each: connect to 127.0.0.1, "
                 "send `garbage`, read the master's `ERROR` until it closes the connection, close. Waiting for "
                 "the answer makes each connection a wake-up of its own for the master, never a batch. CPU per "
                 "hostile connection = (CPU in the window - the idle window's CPU scaled to its length) / "
                 "connections made. The client stops %d s before round 2 is due, and a round that began inside "
                 "the windows voids the row. The master and the slave process raise their own descriptor limit to the "
                 "hard limit, as in 3; a row fails at once when that is below N + %d. Target: the largest figure "
                 "within %gx of the smallest."
                 % (HOSTILE_INTERVAL_S, 1000 / os.sysconf("SC_CLK_TCK"), IDLE_WINDOW_S, HOSTILE_CONNECTIONS,
                    ROUND_MARGIN_S, FD_SLACK, HOSTILE_RATIO_TARGET)])
    per_connection = {}
    for n in cfg["hostile"]:
        try:
            per_connection[n] = hostile_row(s, procs, n, seed)
        except BenchError as e:
            s.fail("N=%d" % n, e)
        finally:
            procs.stop_all()  # N slaves gone before the next N starts
    if len(per_connection) < 2:
        return s
    (n_lo, smallest), (n_hi, largest) = (min(per_connection.items(), key=lambda x: x[1]),
                                         max(per_connection.items(), key=lambda x: x[1]))
    if smallest <= 0:
        s.fail("largest / smallest", "the smallest figure (N=%d) is %s: too small to compare" % (n_lo, us(smallest)))
        return s
    ratio = largest / smallest
    s.add("largest / smallest", "", "", "", "", "", "",
          judge(ratio, HOSTILE_RATIO_TARGET, "%.2fx (N=%d / N=%d)" % (ratio, n_hi, n_lo),
                "<= %gx" % HOSTILE_RATIO_TARGET))
    if ratio > HOSTILE_RATIO_TARGET:
        s.findings.append("A hostile connection cost the master %s with N=%d joined against %s with N=%d: %.1fx, so "
                          "its cost grows with the slaves the master holds." % (us(largest), n_hi, us(smallest), n_lo,
                                                                               ratio))
    return s


def hostile_row(s, procs, n, seed):
    """One N's row; returns the master's CPU ns per hostile connection."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < n + FD_SLACK:
        raise BenchError("%d slaves need about %d file descriptors per process; the hard limit is %d (ulimit -Hn)"
                         % (n, n + FD_SLACK, hard))
    name = "hostile-%d" % n
    master_flags, slave_flags = sync_flags(n, seed, 0, HOSTILE_INTERVAL_S, ["--drift", "0"])
    master = procs.master(n, name + "-master", master_flags)
    procs.slaves(master.port, n, name + "-slaves", slave_flags, log=False)
    # Round 1 begins once all N have said HELLO.
    timeout_s = 20 + n * (CONNECT_S_PER_SLAVE + ROUND_S_PER_SLAVE)
    first = master.tail.wait_for("round", timeout_s, master)
    done = first and master.tail.wait_for("round_done", timeout_s, master)
    if not done:
        raise BenchError("the master did not finish round 1 within %g s (exit code %s)" % (timeout_s, master.poll()))
    if done["answered"] != n:
        s.findings.append("N=%d: %d of the slaves answered round 1 (all %d had joined)." % (n, done["answered"], n))

    cpu0, t0 = cpu_of(procs, master), time.monotonic()
    time.sleep(IDLE_WINDOW_S)
    idle_ns, idle_s = cpu_of(procs, master) - cpu0, time.monotonic() - t0
    cpu0, t0 = cpu_of(procs, master), time.monotonic()
    cutoff_real_ns = first["real_ns"] + (HOSTILE_INTERVAL_S - ROUND_MARGIN_S) * NS_PER_S
    made, answered = hostile_connections(master.port, HOSTILE_CONNECTIONS, cutoff_real_ns)
    used_ns, window_s = cpu_of(procs, master) - cpu0, time.monotonic() - t0
    end_real_ns = time.time_ns()

    events = master.tail.read_new()
    late = [e for e in events if e["event"] == "round" and e["real_ns"] <= end_real_ns]
    if late:
        raise BenchError("round %d began inside the measurement" % late[0]["round"])
    if made == 0:
        raise BenchError("no connection was made before round 2 was due")
    dropped = sum(e["event"] == "disconnected" and e["slave"] == "" for e in events)
    idle_share_ns = idle_ns * window_s / idle_s
    per_connection = (used_ns - idle_share_ns) / made
    s.add(n, made, answered, dropped, "%.2f s" % window_s, ms(used_ns), ms(idle_share_ns), us(per_connection))
    if made < HOSTILE_CONNECTIONS:
        s.findings.append("N=%d: %d of %d connections were made before round 2 was due."
                          % (n, made, HOSTILE_CONNECTIONS))
    if answered < made:
        s.findings.append("N=%d: of %d hostile connections only %d were answered ERROR." % (n, made, answered))
    return per_connection


def cpu_of(procs, p):
    cpu = procs.cpu_ns(p)
    if cpu is None or p.poll() is not None:
        raise BenchError("%s exited with %s during the measurement: %s" % (p.name, p.poll(), procs.stderr_of(p)))
    return cpu


def hostile_connections(port, k, cutoff_real_ns):
    """Up to k connections, one after another until host time cutoff_real_ns,
    each: connect, send a line the master cannot parse, read the answer until
    the master closes the connection, close. Returns (made, answered ERROR)."""
    made = answered = 0
    while made < k and time.time_ns() < cutoff_real_ns:
        answer = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S) as sock:
                made += 1
                sock.sendall(HOSTILE_LINE)
                while len(answer) < ANSWER_MAX_BYTES:
                    chunk = sock.recv(ANSWER_MAX_BYTES)
                    if not chunk:
                        break
                    answer += chunk
        except ConnectionResetError:
            pass  # the master dropped it before we read all: it still counts as made
        except OSError as e:  # a timeout included
            raise BenchError("hostile connection %d: %s" % (made, e)) from None
        answered += answer.startswith(b"ERROR ")
    return made, answered
