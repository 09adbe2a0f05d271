"""Across network stacks: the master on one host and three slaves on another,
network namespaces joined through a router namespace where build/linkemu adds
500 us each way (+/-50 us jitter). The truth is still exact (one host clock),
so the clocks' agreement is measured from the logs as everywhere else. And
the namespaces are gone afterwards, whether the run ends well, raises, or
its harness is killed. Needs root and iproute2: skipped with the reason
otherwise (CI runs as root)."""

import os
import signal
import subprocess
import sys
import tempfile
import unittest

from harness import MASTER, ROOT, SLAVE, WAIT_S, bad_line, final_spread_ns, read_log

sys.path.insert(0, os.path.join(ROOT, "bench"))
import netlab  # noqa: E402

US = 1000
WHY_NOT = netlab.unavailable()
SLAVES = ["s1", "s2", "s3"]
DELAY_US, JITTER_US = 500, 50


@unittest.skipIf(WHY_NOT, "across namespaces: %s" % WHY_NOT)
class NetnsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-netns-")

    def log(self, name):
        return os.path.join(self.dir, name + ".log")

    def assert_gone(self, lab):
        left = [n for n in netlab.namespaces() if n in lab.ns.values()]
        self.assertEqual(left, [], "namespaces left behind")

    def test_a_group_across_a_router_with_delay_agrees_and_leaves_no_namespace(self):
        link = netlab.Link(DELAY_US, JITTER_US)
        with netlab.Lab(self.dir, down=link, up=link) as lab:
            m = lab.start_master([MASTER, len(SLAVES), "--bind", netlab.MASTER_ADDR, "--rounds", 8,
                                  "--interval", 0.5, "--offset", 0, "--drift", 0], WAIT_S, bad_line)
            self.assertEqual(m.log, self.log("master"))
            for i, name in enumerate(SLAVES):
                lab.start("slave", [SLAVE, "--host", netlab.MASTER_ADDR, "--port", m.port, "--id", name,
                                    "--offset", 100 * (i + 1), "--log", self.log(name)], name)
            self.assertEqual(m.wait(timeout=WAIT_S), 0, lab.procs.output("master"))
            stats = lab.stop_emulator()
            self.assertTrue(set(lab.ns.values()) <= set(netlab.namespaces()), "the namespaces were there")
        self.assert_gone(lab)
        # The slaves connected from the other host, through the router.
        joined = [e for e in read_log(self.log("master")) if e["event"] == "connected"]
        self.assertEqual(sorted(e["slave"] for e in joined), SLAVES)
        self.assertTrue(all(e["address"].startswith(netlab.SLAVE_ADDR + ":") for e in joined),
                        [e["address"] for e in joined])
        # The link was what was asked: linkemu's own stamps.
        self.assertIsNotNone(stats, "linkemu wrote its stats")
        for direction in ("a_to_b", "b_to_a"):
            d = stats["directions"][direction]
            self.assertGreater(d["frames"], 50, direction)
            self.assertGreaterEqual(d["min"], DELAY_US - JITTER_US - 5, direction)
            self.assertLess(abs(d["median"] - DELAY_US), 100, "%s: %s" % (direction, d))
        # Every round's estimates, with 1.1 ms round trips, still bring the
        # clocks together: within the jitter, far inside the delay itself.
        rtts = [e["rtt_ns"] for e in read_log(self.log("master")) if e["event"] == "estimate"]
        self.assertGreater(min(rtts), 2 * (DELAY_US - JITTER_US) * US, "the round trips crossed the link")
        spread = final_spread_ns([read_log(self.log(n)) for n in ["master"] + SLAVES])
        self.assertLessEqual(spread, 2 * JITTER_US * US, "the clocks' true spread after 8 rounds")

    def test_a_failure_inside_the_lab_still_removes_it(self):
        with self.assertRaises(RuntimeError):
            with netlab.Lab(self.dir) as lab:
                p = lab.start("slave", ["sleep", "600"], "sleeper")
                self.assertTrue(set(lab.ns.values()) <= set(netlab.namespaces()))
                raise RuntimeError("a test failing half-way")
        self.assertIsNotNone(p.poll(), "the process started in the lab was stopped")
        self.assert_gone(lab)

    def lab_in_a_child(self):
        """A harness in a child process that builds a Lab, starts a process in
        it, says 'ready NAMES' and waits to be killed."""
        code = ("import sys, time; sys.path.insert(0, %r); import netlab\n"
                "lab = netlab.Lab(%r).__enter__(); p = lab.start('slave', ['sleep', '600'], 'sleeper')\n"
                "print('ready', p.pid, *lab.ns.values(), flush=True); time.sleep(600)\n"
                % (os.path.join(ROOT, "bench"), self.dir))
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        self.addCleanup(lambda: child.poll() is None and (child.kill(), child.wait()))
        line = child.stdout.readline().split()
        self.assertEqual(line[:1], ["ready"], "the child harness built its lab")
        return child, int(line[1]), line[2:]

    def test_a_harness_stopped_by_sigterm_removes_its_namespaces(self):
        child, sleeper, names = self.lab_in_a_child()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=WAIT_S)
        self.assertEqual([n for n in netlab.namespaces() if n in names], [])

    def test_namespaces_of_a_harness_killed_outright_are_removed_by_the_next(self):
        child, sleeper, names = self.lab_in_a_child()
        child.kill()  # SIGKILL: no clean-up can run; its sleeper lives on in the namespace
        child.wait(timeout=WAIT_S)
        self.addCleanup(os.kill, sleeper, signal.SIGKILL)  # the orphan our child started, by its PID
        self.assertEqual(sorted(n for n in netlab.namespaces() if n in names), sorted(names))
        with netlab.Lab(self.dir):
            self.assertEqual([n for n in netlab.namespaces() if n in names], [], "the next lab removed them")


if __name__ == "__main__":
    unittest.main()
