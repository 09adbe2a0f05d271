"""The agreement end to end, quickly: the textbook example with default
flags, an hour-off reading left out, and a restarted master brought to its
in-step slaves. Real binaries; every figure from the logs' truth (clock
minus host clock), never from the master's own estimates. (Liars in step,
which take longer, are in test_drag.py.)"""

import signal
import time
import unittest

from harness import WAIT_S, RunTestCase, read_log, wait_until
from berkeley.clock import ClockTrack
from berkeley.units import NS_PER_MS as MS, NS_PER_S, NS_PER_US as US

MINUTE_NS = 60 * NS_PER_S


class AgreementTest(RunTestCase):
    def tracks(self, names):
        return [ClockTrack(n, read_log(self.run_.log(n))) for n in names]

    def round_times(self, master):
        return {e["round"]: e["real_ns"] for e in self.events(master, "round")}

    # -- the textbook ----------------------------------------------------------------

    def test_the_textbook_example_with_default_flags(self):
        # Master 3:00, slaves 3:25 and 2:50: average +0:05, so master +5 min,
        # the 3:25 slave -20 min, the 2:50 slave +15 min. No --max-skew.
        r = self.run_
        m = r.master(2, "--rounds", 1, "--offset", 0, "--drift", 0)
        r.slave(m.port, "s325", "--offset", 25 * 60 * 1000, "--drift", 0)
        r.slave(m.port, "s250", "--offset", -10 * 60 * 1000, "--drift", 0)
        self.assertEqual(r.wait(m), 0)
        est = {e["slave"]: e for e in self.events("master", "estimate")}
        self.assertTrue(all(e["included"] for e in est.values()))
        # To within the estimates' error (a round trip on loopback), exactly the textbook's.
        self.assertAlmostEqual(self.events("master", "adjust")[0]["correction_ns"], 5 * MINUTE_NS, delta=MS)
        self.assertAlmostEqual(est["s325"]["correction_ns"], -20 * MINUTE_NS, delta=MS)
        self.assertAlmostEqual(est["s250"]["correction_ns"], 15 * MINUTE_NS, delta=MS)
        for name, want in (("s325", -20 * MINUTE_NS), ("s250", 15 * MINUTE_NS)):
            self.assertAlmostEqual(self.events(name, "adjust")[0]["correction_ns"], want, delta=MS)

    def test_a_reading_an_hour_off_among_clocks_seconds_apart_is_left_out(self):
        r = self.run_
        m = r.master(4, "--rounds", 2, "--interval", 0.2, "--offset", 0, "--drift", 0)
        for i, off in enumerate((2000, -3000, 1500)):
            r.slave(m.port, "h%d" % i, "--offset", off, "--drift", 0)
        r.slave(m.port, "hour", "--offset", 0, "--drift", 0, "--lie", 3600 * 1000)
        self.assertEqual(r.wait(m), 0)
        first = {e["slave"]: e for e in self.events("master", "estimate") if e["round"] == 1}
        self.assertFalse(first["hour"]["included"])
        self.assertTrue(all(first["h%d" % i]["included"] for i in range(3)))
        # The hour-off clock is still told to come to the agreed time.
        self.assertAlmostEqual(first["hour"]["correction_ns"], -3600 * NS_PER_S, delta=10 * NS_PER_S)

    # -- a restart ------------------------------------------------------------------------

    def test_a_restarted_master_is_brought_to_its_in_step_slaves(self):
        # Three slaves in step with master A. A dies (SIGKILL); master B, 3 s
        # off, starts on the same port, and a liar 9.9 s behind joins B's
        # first round. B must correct itself, not them: no in-step slave
        # steps, backwards least of all, or moves by more than a few us.
        r = self.run_
        # --no-failover: a restarted master, not a successor (that is test_integration_failover.py)
        a = r.master(3, "--rounds", 0, "--interval", 0.1, "--offset", 0, "--drift", 0, "--no-failover", name="master-a")
        port = a.port
        names = ["s%d" % i for i in range(3)]
        for i, n in enumerate(names):
            r.slave(port, n, "--offset", 500 * (i + 1), "--drift", 0, "--connect-timeout", 30)
        wait_until(lambda: len(self.events("master-a", "round_done")) >= 5, "five rounds with master A")
        a.send_signal(signal.SIGKILL)
        a.wait(WAIT_S)
        killed_at = time.time_ns()
        b = r.master(4, "--rounds", 5, "--interval", 0.1, "--offset", 3000, "--drift", 0, port=port, name="master-b")
        wait_until(lambda: self.events("master-b", "start"), "master B to listen")
        r.slave(port, "behind", "--offset", -9_900, "--drift", 0)
        self.assertEqual(r.wait(b, WAIT_S), 0)
        b_adjusts = self.events("master-b", "adjust")
        tracks = self.tracks(names)
        group_offset = tracks[0].offset_at(killed_at)  # where the slaves were when A died
        self.assertAlmostEqual(b_adjusts[0]["correction_ns"], group_offset - 3 * NS_PER_S, delta=MS)  # B stepped to them
        end = b_adjusts[-1]["real_ns"]
        for n, tr in zip(names, tracks):
            later = [e for e in self.events(n, "adjust") if e["real_ns"] > killed_at]
            self.assertTrue(later, n)
            self.assertTrue(all(e["mode"] == "slew" for e in later), (n, later))
            self.assertLess(abs(tr.offset_at(end) - tr.offset_at(killed_at)), 10 * US, n)  # a few us (1.3 plain, 5.2 seen under ASan)
        self.assertEqual(sorted(e["slave"] for e in self.events("master-b", "in_step")), names)


if __name__ == "__main__":
    unittest.main()
