"""Tests of berkeley/, what analyze.py, the tests and the benchmarks share.
Here: the process launcher (berkeley/processes.py), with stand-in programs
written in Python and with the real ./master: children stopped by PID, their
pipes closed, a master started on a free port. (The clock model, the log
reader, the analysis and the plot are tested in test_analyze.py, on
synthetic logs.)

Run: cd tests && python3 -m unittest test_berkeley -v"""

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import textwrap
import time
import unittest

from harness import MASTER, WAIT_S
from berkeley.processes import MasterDidNotStart, Processes

# A stand-in for ./master: it takes --port and --log as the real one does,
# logs `start` with the port it was "given" (4242 for --port 0), a line at a
# time, then a `round`, and idles until it is stopped.
FAKE_MASTER = textwrap.dedent("""
    import json, sys, time
    args = sys.argv[1:]
    log, port = args[args.index("--log") + 1], int(args[args.index("--port") + 1]) or 4242
    def event(name, **fields):
        now = time.time_ns()
        return json.dumps(dict({"event": name, "id": "master", "clock_ns": now, "real_ns": now}, **fields)) + "\\n"
    start = event("start", port=port, slaves=1, offset_ns=0, rate_ppb=0, seed=1)
    with open(log, "w") as f:
        f.write(start[:20]); f.flush(); time.sleep(0.2)   # a reader must wait for the whole line
        f.write(start[20:] + event("round", round=1)); f.flush()
        time.sleep(60)
""")


class ProcessesTest(unittest.TestCase):
    """Processes: every child stopped by its own PID, and nothing left open."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.said = []
        self.procs = Processes(self.dir, grace_s=0.5, say=self.said.append)
        self.addCleanup(self.procs.close)

    def test_close_stops_every_child_and_closes_the_pipes(self):
        piped = self.procs.start([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                 "piped", pipe=True)
        self.assertEqual(piped.stdout.readline(), "up\n")
        stubborn = self.procs.start([sys.executable, "-c", "import signal, time; "
                                     "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                                     "time.sleep(60)"], "stubborn")
        deadline = time.monotonic() + WAIT_S
        while self.procs.output("stubborn")[0] != "up\n" and time.monotonic() < deadline:
            time.sleep(0.01)  # until it ignores SIGTERM
        self.procs.close("the test ends")
        self.assertEqual((piped.returncode, stubborn.returncode), (-signal.SIGTERM, -signal.SIGKILL))
        self.assertTrue(piped.stdout.closed and piped.stderr.closed)
        self.assertEqual(self.said, ["stopping piped (pid %d): the test ends" % piped.pid,
                                     "stopping stubborn (pid %d): the test ends" % stubborn.pid,
                                     "killing stubborn (pid %d)" % stubborn.pid])
        self.procs.close()  # twice: nothing more to do
        self.assertEqual(len(self.said), 3)

    def test_a_child_that_has_exited_is_not_signalled(self):
        done = self.procs.start([sys.executable, "-c", "print('bye')"], "done")
        self.assertEqual(done.wait(WAIT_S), 0)
        self.procs.stop_all()
        self.assertEqual(self.said, [])
        self.assertEqual(self.procs.output("done"), ("bye\n", ""))


class StartMasterTest(unittest.TestCase):
    """Processes.start_master: a master on a free port, and the port it took."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berkeley-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.procs = Processes(self.dir, grace_s=1)
        self.addCleanup(self.procs.close)
        self.fake = os.path.join(self.dir, "fake_master.py")
        with open(self.fake, "w") as f:
            f.write(FAKE_MASTER)
        self.warnings = []

    def test_the_port_comes_from_the_start_event_and_the_tail_reads_on_after_it(self):
        p = self.procs.start_master([sys.executable, self.fake, 3, "--quiet"], "m", WAIT_S, self.warnings.append)
        self.assertEqual(p.port, 4242)
        self.assertEqual(p.log, os.path.join(self.dir, "m.log"))
        self.assertEqual(p.args[-4:], ["--port", "0", "--log", p.log])  # added after the caller's flags
        self.assertIn("--quiet", p.args)
        self.assertEqual([e["event"] for e in p.tail.read_new()], ["round"])  # start consumed, nothing lost
        self.assertIs(self.procs.children[-1], p)
        self.assertEqual(self.warnings, [])

    def test_an_earlier_masters_log_is_not_read_for_this_one(self):
        with open(os.path.join(self.dir, "m.log"), "w") as f:
            f.write(json.dumps({"event": "start", "id": "master", "clock_ns": 1, "real_ns": 1, "port": 1,
                                "offset_ns": 0, "rate_ppb": 0}) + "\n")
        self.assertEqual(self.procs.start_master([sys.executable, self.fake], "m", WAIT_S).port, 4242)

    def test_a_master_that_exits_first_is_named_with_its_error(self):
        code = "import sys; sys.exit('master: no such option: --bogus\\nusage: master N ...')"
        with self.assertRaises(MasterDidNotStart) as caught:
            self.procs.start_master([sys.executable, "-c", code], "m", WAIT_S)
        self.assertEqual(str(caught.exception),
                         "m exited with 1 before listening: master: no such option: --bogus / usage: master N ...")

    def test_a_silent_master_is_given_up_on_and_still_stopped(self):
        t0 = time.monotonic()
        with self.assertRaises(MasterDidNotStart) as caught:
            self.procs.start_master([sys.executable, "-c", "import time; time.sleep(60)"], "m", 0.3)
        self.assertLess(time.monotonic() - t0, WAIT_S / 2)
        self.assertEqual(str(caught.exception), "m did not log `start` within 0.3 s")
        p = self.procs.children[-1]
        self.assertIsNone(p.poll())  # remembered, so that stop_all stops it
        self.procs.stop_all()
        self.assertIsNotNone(p.poll())

    @unittest.skipUnless(os.access(MASTER, os.X_OK), "%s is not built (make compile)" % MASTER)
    def test_the_real_master_listens_on_the_port_it_logs(self):
        p = self.procs.start_master([MASTER, 1, "--rounds", 0], "master", WAIT_S, self.warnings.append)
        self.assertGreater(p.port, 0)
        with socket.create_connection(("127.0.0.1", p.port), timeout=WAIT_S):
            pass
        self.assertEqual(self.warnings, [])


if __name__ == "__main__":
    unittest.main()
