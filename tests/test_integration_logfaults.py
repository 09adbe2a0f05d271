"""Floods leave no lasting trace: of the events about connections that
never became slaves, ten of each kind a window are told, the rest summed up;
so are the joins and leaves of slaves that never answered a round.
Faults of the log are never fatal and never silent: a full disk
(/dev/full) and a file-size limit (RLIMIT_FSIZE, as systemd's LimitFSIZE=
sets, which would kill a process with SIGXFSZ) cost events, not the service.
The first loss is said on stderr at once, the end says how many, the exit
status is 1, the slaves still get BYE, and the log keeps only whole lines."""

import json
import os
import re
import resource
import signal
import socket
import threading
import time
import unittest

from harness import MASTER, SLAVE, WAIT_S, RunTestCase, wait_until


class LogFaultTest(RunTestCase):
    def test_a_flood_of_strangers_is_summed_up_not_logged_line_by_line(self):
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.2, "--offset", 0, "--drift", 0)
        r.slave(m.port, "honest", "--drift", 0)
        wait_until(lambda: self.events("master", "round_done"), "a round")
        flood = 300
        for _ in range(flood):
            with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as c:
                c.sendall(b"garbage\n")
                c.settimeout(WAIT_S)
                while c.recv(4096):  # until the master has answered ERROR and closed
                    pass
        m.send_signal(signal.SIGTERM)
        self.assertEqual(r.wait(m), 0)
        strangers = [e for e in self.events("master", "disconnected") if not e["slave"]]
        self.assertLessEqual(len(strangers), 10)
        quieted = self.events("master", "quieted")
        self.assertEqual(sum(q["count"] for q in quieted if q["reason"] == "bad message"), flood - len(strangers))
        console = r.output("master")[0]
        self.assertLessEqual(console.count("disconnected: bad message"), 10)
        self.assertIn("dropped %d more connection(s) in the last 10 s that did not become slaves: bad message"
                      % (flood - len(strangers)), console)
        # Events about the slave are never quieted.
        self.assertEqual([e["slave"] for e in self.events("master", "connected")], ["honest"])
        self.assertLess(os.path.getsize(r.log("master")), 64 * 1024)

    def test_a_churn_of_slaves_that_never_answer_is_summed_up_not_logged_line_by_line(self):
        """Clients that say a valid HELLO and then garbage, and reconnect at
        once, join and leave thousands of times a second. Before, every join
        and leave was a log line (4 MiB/s); now at most ten joins a window
        are told (and their leaves), the rest summed up."""
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.2, "--offset", 0, "--drift", 0)
        r.slave(m.port, "honest", "--drift", 0)
        wait_until(lambda: self.events("master", "round_done"), "a round")
        churns, lock = [0], threading.Lock()
        deadline = time.monotonic() + 3.0

        def churner(k):
            i = 0
            while time.monotonic() < deadline:
                with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as c:
                    c.sendall(b"HELLO churn-%d-%d\ngarbage\n" % (k, i))
                    c.settimeout(WAIT_S)
                    while c.recv(4096):  # until the master has answered ERROR and closed
                        pass
                i += 1
            with lock:
                churns[0] += i
        threads = [threading.Thread(target=churner, args=(k,), daemon=True) for k in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        elapsed = time.monotonic() - started
        m.send_signal(signal.SIGTERM)
        self.assertEqual(r.wait(m), 0)
        churns = churns[0]
        self.assertGreater(churns, 100)
        with open(r.log("master")) as f:
            lines = [(line, json.loads(line)) for line in f]
        about_churn = [(line, e) for line, e in lines if e["event"] in ("connected", "disconnected")
                       and e["slave"].startswith("churn-")]
        summed = [e for _, e in lines if e["event"] == "quieted" and e.get("joined")]
        bytes_per_s = sum(len(line) for line, _ in about_churn) / elapsed
        self.assertLess(bytes_per_s, 10 * 1024, "%d churns, %d lines about them" % (churns, len(about_churn)))
        # A join told is a leave told; the rest are counted, all of them.
        told = sorted(e["slave"] for _, e in about_churn if e["event"] == "connected")
        self.assertEqual(told, sorted(e["slave"] for _, e in about_churn if e["event"] == "disconnected"))
        self.assertEqual(sum(q["count"] for q in summed if q["reason"] == "bad message"), churns - len(told))
        console = r.output("master")[0]
        self.assertLessEqual(console.count(") got connected successfully"), len(told) + 1)  # and the honest one
        said = re.findall(r"quieted (\d+) slave\(s\) in the last 10 s that joined and left before answering a round: "
                          r"bad message", console)
        self.assertEqual(sum(map(int, said)), churns - len(told))
        # The slave that answers is told in full.
        self.assertIn("honest", [e["slave"] for _, e in lines if e["event"] == "connected"])

    def test_a_full_disk_is_reported_and_the_exit_status_says_so(self):
        r = self.run_
        m = r.start([MASTER, "1", "--port", "0", "--rounds", "2", "--interval", "0.1", "--log", "/dev/full",
                     "--offset", "0", "--drift", "0"], "master")
        # No log to read the port from: the console says it.
        port = wait_until(lambda: next((int(l.split(":")[-1].split(",")[0]) for l in r.output("master")[0].splitlines()
                                        if l.startswith("master listening on")), None), "the master to listen")
        s = r.start([SLAVE, "--port", str(port), "--id", "s", "--log", "/dev/full", "--drift", "0"], "s")
        self.assertEqual(r.wait(m), 1)
        self.assertEqual(r.wait(s), 1)
        for name, program in (("master", "master"), ("s", "slave")):
            err = r.output(name)[1]
            self.assertEqual(err.count("lost an event"), 1, err)  # said once, at the first loss
            self.assertIn("%s: the log /dev/full lost an event: No space left on device" % program, err)
            self.assertRegex(err, r"%s: \d+ event\(s\) could not be logged" % program)
        self.assertIn("the master said BYE", r.output("s")[0])

    def test_a_file_size_limit_neither_kills_the_master_nor_cuts_a_line(self):
        r = self.run_
        limit = 3000  # bytes: start, a few connections, then the rounds' events do not fit
        log = r.log("master")
        # Its console goes to pipes, which the file-size limit does not cut short.
        m = r.master(2, "--rounds", 4, "--interval", 0.1, "--offset", 0, "--drift", 0, pipe=True,
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        slaves = [r.slave(m.port, "s%d" % i, "--drift", 0) for i in (1, 2)]
        out, err = m.communicate(timeout=WAIT_S)
        self.assertEqual(m.returncode, 1, err)  # not -SIGXFSZ
        self.assertIn("lost an event: File too large", err)
        self.assertIn("shutting down: all rounds done", out)
        for s in slaves:
            self.assertEqual(r.wait(s), 0)
        with open(log) as f:
            text = f.read()
        self.assertLessEqual(len(text), limit)
        self.assertTrue(text.endswith("\n"))
        for line in text.splitlines():
            json.loads(line)  # every line whole
        for name in ("s1", "s2"):
            self.assertEqual(self.events(name, "exit")[-1]["reason"], "the master said BYE")


if __name__ == "__main__":
    unittest.main()
