"""The partition tool itself (bench/cluster.py): a master host and slave
hosts, each in its own subnet behind one L3 router. Every shape cuts exactly
the packets it names, silently; a one-way cut drops one direction only; the
kernel still stamps arrivals through the router; a paused process stays
paused until resumed; and the namespaces are gone afterwards, whether the
run ends well, raises or is stopped by SIGTERM. Needs root and iproute2:
skipped with the reason otherwise (CI runs as root)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from harness import MASTER, ROOT, SLAVE, WAIT_S, bad_line, read_log
from berkeley.processes import STOP_GRACE_S

sys.path.insert(0, os.path.join(ROOT, "bench"))
import cluster  # noqa: E402
import netlab  # noqa: E402

WHY_NOT = netlab.unavailable()
HOSTS = ["master", "s1", "s2", "s3", "s4"]
EVERY_PAIR = {(a, b) for a in HOSTS for b in HOSTS if a != b}


def across(*groups):
    """The pairs of hosts in different groups, both ways."""
    return {(a, b) for g in groups for h in groups if g is not h for a in g for b in h}


@unittest.skipIf(WHY_NOT, "across namespaces: %s" % WHY_NOT)
class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-cluster-")

    def cluster(self):
        c = cluster.Cluster(self.dir, slaves=len(HOSTS) - 1).__enter__()
        self.addCleanup(self.assert_gone, c)
        self.addCleanup(c.close)
        return c

    def assert_gone(self, c):
        self.assertEqual([n for n in netlab.namespaces() if n in c.ns.values()], [], "namespaces left behind")

    def assert_reach(self, c, expected, what):
        self.assertEqual({(a, b) for a, b in EVERY_PAIR if c.reaches(a, b)}, expected, what + ": the model")
        seen = c.datagrams()
        self.assertEqual(sorted(EVERY_PAIR - seen - (EVERY_PAIR - expected)), [], what + ": packets that were lost")
        self.assertEqual(sorted(seen - expected), [], what + ": packets that got through")

    def test_every_host_reaches_every_other_through_the_router_and_arrivals_are_kernel_stamped(self):
        c = self.cluster()
        with netlab.inside(c.ns["router"]), open("/proc/sys/net/ipv4/ip_forward") as f:
            self.assertEqual(f.read().strip(), "1", "the router forwards")
        self.assert_reach(c, EVERY_PAIR, "no cut")
        self.assertEqual({p for p, v in c.connects().items() if v != "connected"}, set())
        sent, stamp, read = c.kernel_rx_stamp("s1", "master")
        self.assertIsNotNone(stamp, "no kernel receive stamp through the router")
        self.assertTrue(sent <= stamp <= read, "the stamp %d is not between the send %d and the read %d" % (
            stamp, sent, read))
        # ./master and ./slave across it: the master's stamps (its T4) and the
        # slaves' (their T2) give round trips of a few us, and every slave
        # connects from its own host.
        m = c.start_master([MASTER, 2, "--bind", c.address["master"], "--rounds", 4, "--interval", 0.1],
                           WAIT_S, bad_line)
        for s in ("s1", "s2"):
            c.start(s, [SLAVE, "--host", c.address["master"], "--port", m.port, "--id", s,
                        "--log", os.path.join(self.dir, s + ".log")], s)
        self.assertEqual(m.wait(timeout=WAIT_S), 0, c.procs.output("master"))
        self.assertNotIn("no kernel receive timestamps", "".join(c.procs.output("master")))
        events = read_log(m.log)
        self.assertEqual(sorted(e["address"].split(":")[0] for e in events if e["event"] == "connected"),
                         [c.address["s1"], c.address["s2"]])
        rtts = [e["rtt_ns"] for e in events if e["event"] == "estimate"]
        self.assertTrue(rtts and all(0 < r < 2_000_000 for r in rtts), rtts)
        for s in ("s1", "s2"):
            replies = [e for e in read_log(os.path.join(self.dir, s + ".log")) if e["event"] == "reply"]
            self.assertTrue(replies and all(0 <= e["real_ns"] - e["arrived_real_ns"] < 5_000_000 for e in replies),
                            [(e["real_ns"] - e.get("arrived_real_ns", 0)) for e in replies])

    def test_a_one_way_cut_drops_one_direction_only_and_heals(self):
        c = self.cluster()
        # A connection from s2 to s1, made before the cut.
        listener = c.socket("s1", socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind((c.address["s1"], 0))
        listener.listen(1)
        out = c.socket("s2", socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(out.close)
        out.connect(listener.getsockname())
        into, _ = listener.accept()
        self.addCleanup(into.close)
        for s in (out, into):
            s.settimeout(0.5)

        c.cut("s1", "s2", one_way=True)  # s1 cannot reach s2; s2 reaches s1
        self.assert_reach(c, EVERY_PAIR - {("s1", "s2")}, "s1 -> s2 cut")
        tcp = c.connects()
        self.assertEqual(tcp["s1", "s2"], "silence", "s1's SYN is dropped without a word")
        # s2's SYN reaches s1, but s1's SYN-ACK is one of the packets cut:
        # no new connection forms either way under a one-way packet cut.
        self.assertEqual(tcp["s2", "s1"], "silence")
        out.sendall(b"from s2\n")
        self.assertEqual(into.recv(64), b"from s2\n", "s2's bytes reach s1")
        into.sendall(b"from s1\n")
        with self.assertRaises(socket.timeout, msg="s1's bytes must not reach s2"):
            out.recv(64)

        c.heal("s1", "s2", one_way=True)
        self.assert_reach(c, EVERY_PAIR, "healed")
        out.settimeout(5)
        self.assertEqual(out.recv(64), b"from s1\n", "s1's bytes, retransmitted, arrive after the heal")
        self.assertEqual({p for p, v in c.connects().items() if v != "connected"}, set())

    def test_every_shape_cuts_what_it_says_silently_and_heals(self):
        c = self.cluster()
        shapes = [
            ("isolate s2", lambda: c.isolate("s2"), lambda g: across(*g)),
            ("master cut from the majority", c.cut_master_from_majority, lambda g: across(*g)),
            ("halves", c.halves, lambda g: across(*g)),
            ("bridge", c.bridge, lambda g: across(g[0], g[2])),
            ("one way", lambda: c.one_way("master", ["s3", "s4"]), lambda g: {(a, b) for a in g[0] for b in g[1]}),
        ]
        for name, shape, cut in shapes:
            with self.subTest(name):
                groups = shape()
                if name != "one way":
                    self.assertEqual(sorted(h for g in groups for h in g), sorted(HOSTS), "%s: %s" % (name, groups))
                self.assert_reach(c, EVERY_PAIR - cut(groups), "%s %s" % (name, groups))
                failed = {v for p, v in c.connects().items() if v != "connected"}
                self.assertLessEqual(failed, {"silence"}, "%s: a cut connect heard back" % name)
                c.heal_all()
                self.assert_reach(c, EVERY_PAIR, name + " healed")
        self.assertEqual(c.cut_master_from_majority(), (["master", "s1"], ["s2", "s3", "s4"]))
        c.heal_all()
        self.assertEqual(c.halves(), (["master", "s1", "s2"], ["s3", "s4"]))
        c.heal_all()
        self.assertEqual(c.bridge(), (["master", "s1"], ["s2"], ["s3", "s4"]))

    def test_a_host_whose_link_is_down_is_silent_both_ways_until_it_is_up(self):
        c = self.cluster()
        c.isolate("master", link=True)
        self.assert_reach(c, EVERY_PAIR - across(["master"], HOSTS[1:]), "master's link down")
        self.assertLessEqual({v for v in c.connects().values() if v != "connected"}, {"silence"})
        c.heal_all()
        self.assert_reach(c, EVERY_PAIR, "its link up again")

    def test_a_paused_process_stays_stopped_until_resumed_and_closes_at_once(self):
        c = self.cluster()
        p = c.start("s3", ["sleep", "600"], "sleeper")

        def state():
            with open("/proc/%d/stat" % p.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        c.procs.pause(p)
        deadline = time.monotonic() + WAIT_S
        while state() != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(state(), "T")
        c.procs.resume(p)
        while state() == "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertNotIn(state(), ("T", "t"), "still stopped after SIGCONT")  # R, S, or D while it execs
        c.procs.pause(p)
        started = time.monotonic()
        c.close()
        self.assertLess(time.monotonic() - started, STOP_GRACE_S, "a paused process ends at SIGTERM")
        self.assertEqual(p.returncode, -signal.SIGTERM)

    def test_a_failure_inside_the_cluster_still_removes_it(self):
        with self.assertRaises(RuntimeError):
            with cluster.Cluster(self.dir, slaves=2) as c:
                p = c.start("s2", ["sleep", "600"], "sleeper")
                c.halves()
                self.assertTrue(set(c.ns.values()) <= set(netlab.namespaces()))
                raise RuntimeError("a test failing half-way")
        self.assertIsNotNone(p.poll(), "the process started in the cluster was stopped")
        self.assert_gone(c)

    def test_a_harness_stopped_by_sigterm_removes_its_namespaces(self):
        code = ("import sys, time; sys.path.insert(0, %r); import cluster\n"
                "c = cluster.Cluster(%r, slaves=2).__enter__(); p = c.start('s1', ['sleep', '600'], 'sleeper')\n"
                "c.halves(); print('ready', p.pid, *c.ns.values(), flush=True); time.sleep(600)\n"
                % (os.path.join(ROOT, "bench"), self.dir))
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        self.addCleanup(lambda: child.poll() is None and (child.kill(), child.wait()))
        line = child.stdout.readline().split()
        self.assertEqual(line[:1], ["ready"], "the child harness built its cluster")
        self.assertTrue(set(line[2:]) <= set(netlab.namespaces()))
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=WAIT_S)
        self.assertEqual([n for n in netlab.namespaces() if n in line[2:]], [])
        self.assertFalse(netlab.alive(int(line[1])), "its sleeper was stopped")


if __name__ == "__main__":
    unittest.main()
