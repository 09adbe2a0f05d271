"""End-to-end tests: the real ./master and ./slave over loopback, verified
from their logs against the shared host clock (never from the master's own
estimates)."""

import signal
import socket
import subprocess
import time
import unittest

from harness import MASTER, SLAVE, WAIT_S, RunTestCase, final_spread_ns, free_port, read_log, wait_until
from berkeley.units import NS_PER_MS as MS  # found on the path harness set

HOUR_MS = 3_600_000


class IntegrationTest(RunTestCase):
    def test_three_slaves_seconds_to_hours_apart_end_within_1ms(self):
        r = self.run_
        m = r.master(3, "--rounds", 3, "--interval", 0.1, "--offset", 0, "--drift", 20)
        offsets = {"s1": 2500, "s2": -3 * HOUR_MS, "s3": 7 * HOUR_MS + 1.5}
        slaves = [r.slave(m.port, ident, "--offset", off, "--drift", -30) for ident, off in offsets.items()]
        self.assertEqual(r.wait(m), 0)
        for s in slaves:
            self.assertEqual(r.wait(s), 0)
        logs = [read_log(r.log(n)) for n in ("master", "s1", "s2", "s3")]
        # The initial true offsets are what was asked for.
        for ident, off in offsets.items():
            start = self.events(ident, "start")[0]
            self.assertEqual(start["offset_ns"], round(off * MS))
            self.assertAlmostEqual(start["clock_ns"] - start["real_ns"], off * MS, delta=1000)
        spread = final_spread_ns(logs)
        self.assertLess(spread, 1 * MS, "true spread after the last round: %d ns" % spread)
        # Every slave answered every round and got one correction per round.
        for ident in offsets:
            self.assertEqual([e["round"] for e in self.events(ident, "adjust")], [1, 2, 3])
            self.assertEqual(self.events(ident, "exit")[0]["code"], 0)
        self.assertEqual(len(self.events("master", "estimate")), 9)
        out, _ = r.output("master")
        self.assertIn("New synchronization cycle started (round 1/3)", out)
        self.assertIn("Number of slaves to be synchronized: 3", out)
        self.assertIn("(s2) got connected successfully", out)
        s_out, _ = r.output("s1")
        self.assertIn("Synchronized time at the slave is: ", s_out)

    def test_corrections_sum_to_the_ensemble_average(self):
        # Master at 0, slaves at +3 s and +6 s, no drift: they meet at +3 s
        # (the average of 0, 3 and 6) in the first round, within round trips.
        r = self.run_
        m = r.master(2, "--rounds", 1, "--offset", 0, "--drift", 0)
        r.slave(m.port, "a", "--offset", 3000, "--drift", 0)
        r.slave(m.port, "b", "--offset", 6000, "--drift", 0)
        self.assertEqual(r.wait(m), 0)
        master_corr = self.events("master", "adjust")[0]["correction_ns"]
        self.assertAlmostEqual(master_corr, 3000 * MS, delta=1 * MS)
        self.assertAlmostEqual(self.events("a", "adjust")[0]["correction_ns"], 0, delta=1 * MS)
        self.assertAlmostEqual(self.events("b", "adjust")[0]["correction_ns"], -3000 * MS, delta=1 * MS)
        estimates = {e["slave"]: e for e in self.events("master", "estimate")}
        self.assertTrue(all(e["included"] for e in estimates.values()))
        self.assertGreater(estimates["a"]["rtt_ns"], 0)

    def test_a_slave_that_dies_mid_run_does_not_stop_the_master(self):
        r = self.run_
        m = r.master(3, "--rounds", 4, "--interval", 0.2)
        slaves = {ident: r.slave(m.port, ident) for ident in ("d1", "d2", "victim")}
        wait_until(lambda: self.events("victim", "adjust"), "the victim's first correction")
        slaves["victim"].send_signal(signal.SIGKILL)
        slaves["victim"].wait()
        self.assertEqual(r.wait(m), 0)
        for ident in ("d1", "d2"):
            self.assertEqual(r.wait(slaves[ident]), 0)
            self.assertEqual(len(self.events(ident, "adjust")), 4)
        gone = [e for e in self.events("master", "disconnected") if e["slave"] == "victim"]
        self.assertEqual(len(gone), 1)
        self.assertTrue(self.events("master", "exit")[0]["complete"])
        spread = final_spread_ns([read_log(r.log(n)) for n in ("master", "d1", "d2")])
        self.assertLess(spread, 1 * MS)

    def test_slaves_started_before_the_master_still_join(self):
        r = self.run_
        port = free_port()
        slaves = [r.slave(port, ident) for ident in ("early1", "early2")]
        for ident in ("early1", "early2"):
            wait_until(lambda ident=ident: self.events(ident, "start"), ident + " to start")
        m = r.master(2, "--rounds", 2, "--interval", 0.1, port=port)
        self.assertEqual(r.wait(m), 0)
        for s in slaves:
            self.assertEqual(r.wait(s), 0)
        spread = final_spread_ns([read_log(r.log(n)) for n in ("master", "early1", "early2")])
        self.assertLess(spread, 1 * MS)

    def test_slave_gives_up_when_no_master_answers(self):
        r = self.run_
        s = r.slave(free_port(), "lonely", "--connect-timeout", 0.3)
        self.assertEqual(r.wait(s), 1)
        _, err = r.output("lonely")
        self.assertIn("could not reach the master at 127.0.0.1:", err)
        self.assertEqual(self.events("lonely", "exit")[0]["code"], 1)

    def test_a_person_can_speak_the_protocol_by_hand(self):
        r = self.run_
        m = r.master(1, "--rounds", 1, "--probes", 2, "--offset", 0, "--drift", 0)
        with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as sock:
            f = sock.makefile("rw", newline="\n")
            f.write("HELLO by-hand\n")
            f.flush()
            self.assertEqual(f.readline(), "WAIT 1 1\n")  # heard: 1 of the 1 slave it waits for
            # The backup plan: epoch 1, no round yet, 1 round, 1 s, 2 probes, 500 ms, auto, 3; no successor
            # (this HELLO offered no port to serve on).
            self.assertEqual(f.readline(), "PLAN 1 0 1 1000000000 2 500000000 -1 3\n")
            for probe in (1, 2):
                self.assertEqual(f.readline(), "TIME? 1 %d\n" % probe)
                f.write("CLOCK 1 %d %d\n" % (probe, time.time_ns() + 5000 * MS))
                f.flush()
            verb, rnd, corr = f.readline().split()
            self.assertEqual((verb, rnd), ("ADJUST", "1"))
            # Master 0 and this clock about +5 s: the average is +2.5 s.
            self.assertAlmostEqual(int(corr), -2500 * MS, delta=50 * MS)
            f.write("ACK 1\n")
            f.flush()
            self.assertEqual(f.readline(), "BYE\n")
        self.assertEqual(r.wait(m), 0)

    def test_master_refuses_a_malformed_line_and_keeps_running(self):
        r = self.run_
        m = r.master(1, "--rounds", 1)
        with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as bad:
            bad.sendall(b"HELLO bad guy with spaces\n")
            reply = bad.makefile().readline()
            self.assertTrue(reply.startswith("ERROR bad message: HELLO takes the id, or the id, a port and an epoch"), reply)
        s = r.slave(m.port, "good")
        self.assertEqual(r.wait(m), 0)
        self.assertEqual(r.wait(s), 0)

    def test_bad_arguments_give_usage_and_exit_2(self):
        for argv in ([MASTER], [MASTER, "0"], [MASTER, "3", "--bogus"], [MASTER, "3", "--rounds"],
                     [MASTER, "3", "--interval", "abc"], [MASTER, "3", "--interval", "0"], [MASTER, "x"], [SLAVE, "--port", "0"],
                     [SLAVE, "--id", "has space"], [SLAVE, "--offset", "1.2.3"], [SLAVE, "--connect-timeout", "0"]):
            p = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT_S)
            self.assertEqual(p.returncode, 2, argv)
            self.assertIn("usage:", p.stderr, argv)
        for prog in (MASTER, SLAVE):
            self.assertEqual(subprocess.run([prog, "--help"], capture_output=True, timeout=WAIT_S).returncode, 0)
            v = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=WAIT_S)
            self.assertIn("berkeley-sync", v.stdout)

    def test_port_in_use_is_one_clear_line_and_exit_1(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            p = subprocess.run([MASTER, "3", "--port", str(port)], capture_output=True, text=True, timeout=WAIT_S)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("Address already in use", p.stderr)

    def test_sigint_sends_bye_and_exits_0(self):
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.05)
        s = r.slave(m.port, "until-stopped")
        wait_until(lambda: len(self.events("until-stopped", "adjust")) >= 2, "two corrections")
        m.send_signal(signal.SIGINT)
        self.assertEqual(r.wait(m), 0)
        self.assertEqual(r.wait(s), 0)
        self.assertEqual(self.events("until-stopped", "exit")[0]["reason"], "the master said BYE")

    def test_user_timestamps_send_one_reading_and_still_synchronize(self):
        r = self.run_
        m = r.master(2, "--rounds", 2, "--interval", 0.1, "--timestamps", "user")
        slaves = [r.slave(m.port, ident, "--timestamps", "user") for ident in ("u1", "u2")]
        for p in [m] + slaves:
            self.assertEqual(r.wait(p), 0)
        replies = self.events("u1", "reply")
        self.assertTrue(replies and all("arrived_ns" not in e for e in replies))
        self.assertEqual(self.events("master", "start")[0]["timestamps"], "user")
        self.assertLess(final_spread_ns([read_log(r.log(n)) for n in ("master", "u1", "u2")]), 1 * MS)

    def test_count_runs_k_independent_slaves_in_one_process(self):
        r = self.run_
        m = r.master(5, "--rounds", 2, "--interval", 0.1)
        s = r.slave(m.port, "many", "--count", 5, "--seed", 11)
        self.assertEqual(r.wait(m), 0)
        self.assertEqual(r.wait(s), 0)
        ids = sorted(e["slave"] for e in self.events("master", "connected"))
        self.assertEqual(ids, ["many-%d" % i for i in range(1, 6)])
        events = read_log(r.log("many"))  # one log, lines tagged by id
        starts = {e["id"]: e["offset_ns"] for e in events if e["event"] == "start"}
        self.assertEqual(len(set(starts.values())), 5, "each slave has its own clock")
        per_clock = [[e for e in events if e["id"] == ident] for ident in ids]
        self.assertLess(final_spread_ns([read_log(r.log("master"))] + per_clock), 1 * MS)

    def test_first_correction_steps_later_ones_slew_and_the_clock_never_goes_back(self):
        r = self.run_
        # 10 rounds: a rate is learnt once the filter's samples pin it within
        # 50 ppm (filter.hpp), which a sanitizer build's noisier round trips
        # can take more than the first few rounds 0.1 s apart to do.
        m = r.master(1, "--rounds", 10, "--interval", 0.1, "--offset", 0, "--drift", 0)
        s = r.slave(m.port, "disciplined", "--offset", 60, "--drift", 30)
        self.assertEqual(r.wait(m), 0)
        self.assertEqual(r.wait(s), 0)
        adjusts = self.events("disciplined", "adjust")
        self.assertEqual([a["mode"] for a in adjusts], ["step"] + ["slew"] * 9)
        self.assertAlmostEqual(adjusts[0]["correction_ns"], -30 * MS, delta=1 * MS)
        self.assertTrue(all(a["slew_rate_ppb"] == 500_000 for a in adjusts[1:]))
        # In step after round 1: from then on both clocks only move forward.
        for name in ("disciplined", "master"):
            events = sorted(self.events(name), key=lambda e: e["real_ns"])
            first_step = next(i for i, e in enumerate(events) if e["event"] == "adjust")
            clocks = [e["clock_ns"] for e in events[first_step:]]
            self.assertEqual(clocks, sorted(clocks), name + "'s clock went backwards")
        # The frequency discipline has started learning the +30 ppm.
        self.assertLess(adjusts[-1]["trim_ppb"], 0)
        # With --step-threshold 0 every correction is a step.
        m2 = r.master(1, "--rounds", 2, "--interval", 0.1, "--offset", 0, "--drift", 0, name="master2")
        stepped = r.slave(m2.port, "stepped", "--offset", 60, "--drift", 0, "--step-threshold", 0)
        self.assertEqual(r.wait(m2), 0)
        self.assertEqual(r.wait(stepped), 0)
        # (except backwards: a clock in step never steps back, it slews)
        later = self.events("stepped", "adjust")[1:]
        self.assertEqual([a["mode"] for a in later], ["step" if a["correction_ns"] >= 0 else "slew" for a in later])


if __name__ == "__main__":
    unittest.main()
