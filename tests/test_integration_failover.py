"""Failover end to end: a master and five slaves (separate processes, drift
0), the master killed with SIGKILL at different moments; then a successor
takes over with its own clock, as the plan's next epoch, and the group's
time goes on without a jump. Every figure is the truth from the logs."""

import signal
import time
import unittest

from harness import WAIT_S, RunTestCase, read_log, wait_until

INTERVAL_S = 0.3
SLAVES = ["s1", "s2", "s3", "s4", "s5"]
US = 1000


class FailoverTest(RunTestCase):
    def start_group(self, *extra):
        r = self.run_
        m = r.master(len(SLAVES), "--rounds", 0, "--interval", INTERVAL_S, "--offset", 0, "--drift", 0, *extra)
        procs = {name: r.slave(m.port, name, "--drift", 0, "--offset", 100 * (i + 1), *extra)
                 for i, name in enumerate(SLAVES)}
        wait_until(lambda: len(self.events("master", "round_done")) >= 3, "three rounds")
        return m, procs

    def kill(self, p):
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=WAIT_S)
        return time.time_ns()

    def takeovers(self, names):
        return [(n, e) for n in names for e in self.events(n, "takeover")]

    def rounds_of(self, name, after_ns=0):
        """round_done events a slave's process logged as master (after a takeover)."""
        return [e for e in self.events(name, "round_done") if e["real_ns"] > after_ns]

    def wait_for_new_master(self, names, killed_ns, epoch):
        def found():
            for n, e in self.takeovers(names):
                if e["epoch"] == epoch and self.rounds_of(n, killed_ns):
                    return n
            return None
        return wait_until(found, "a new master of epoch %d running a round" % epoch)

    def targets_by_round(self, names, first_round):
        """Per round from first_round: where its corrections put each clock
        (true offset at the adjust plus what it still slews), by name."""
        out = {}
        for n in names:
            for e in read_log(self.run_.log(n)):
                if e["event"] == "adjust" and e["round"] >= first_round:
                    out.setdefault(e["round"], {})[n] = e["clock_ns"] - e["real_ns"] + (
                        e["correction_ns"] if e.get("mode") == "slew" else 0)
        return out

    def assert_takeover_is_clean(self, killed_ns, survivors, new_master, epoch):
        first = self.rounds_of(new_master, killed_ns)[0]
        self.assertLessEqual(first["real_ns"] - killed_ns, 3 * INTERVAL_S * 1e9 + 1e9,
                             "the new master's first round came too late")
        takeover = [e for e in self.events(new_master, "takeover") if e["epoch"] == epoch][0]
        wait_until(lambda: all(any(e["round"] >= first["round"] + 1 for e in self.events(n, "adjust"))
                               for n in survivors), "every survivor corrected by the new master")
        for n in survivors:
            steps = [e for e in self.events(n, "adjust") if e["round"] > 1 and e.get("mode") == "step"]
            self.assertEqual(steps, [], "%s was stepped after round 1" % n)
        by_round = self.targets_by_round(survivors + [new_master], takeover["round"] + 1)
        complete = {r: t for r, t in by_round.items() if len(t) == len(survivors) + 1}
        self.assertTrue(complete, "no round with every survivor")
        for r, t in complete.items():
            self.assertLessEqual(max(t.values()) - min(t.values()), 5 * US, "round %d: %s" % (r, t))
        return first

    def test_the_master_killed_while_idle_is_replaced_by_its_first_successor(self):
        m, procs = self.start_group()
        killed = self.kill(m)
        new = self.wait_for_new_master(SLAVES, killed, 2)
        plans = self.events("s1", "plan")
        self.assertTrue(plans and plans[-1]["successors"], "slaves heard a plan with successors")
        serving = {self.events(n, "serving")[0]["address"]: n for n in SLAVES}
        before = [p for p in plans if p["real_ns"] < killed][-1]
        self.assertEqual(new, serving[before["successors"].split(" ")[0]], "the top successor took over")
        survivors = [n for n in SLAVES if n != new]
        self.assert_takeover_is_clean(killed, survivors, new, 2)
        self.assertEqual(len(self.takeovers(SLAVES)), 1, "one takeover")


if __name__ == "__main__":
    unittest.main()
