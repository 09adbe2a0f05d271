"""The classroom: `make textbook` gives the textbook's corrections exactly,
one `--explain` round matches its snapshot, and a whole round typed by hand
(`./master 1 --by-hand`) works with the lines README's transcript shows,
every mistake answered with what was expected. Runs once (not again under
the sanitizers): it drives `make`."""

import os
import re
import socket
import subprocess
import unittest

from harness import ROOT, WAIT_S, RunTestCase, read_log
from berkeley.units import NS_PER_MS as MS, NS_PER_S

MINUTE_NS = 60 * NS_PER_S
SNAPSHOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "snapshots", "explain_textbook.txt")


def explained_round(console):
    """The --explain part of a master's console, with what changes from run
    to run (clock readings to the microsecond, delays) replaced by <...>."""
    start = console.index("  1. The master asked")
    end = console.index("\nshutting down")
    text = console[start:end].rstrip() + "\n"
    text = re.sub(r"\d+:\d\d:\d\d\.\d{6}", "<time>", text)
    return re.sub(r"delay \d+(\.\d+)? (ns|us|ms)", "delay <delay>", text)


class TextbookTest(unittest.TestCase):
    def test_make_textbook_gives_the_textbook_corrections(self):
        p = subprocess.run(["make", "-s", "textbook"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for line in ("     average +0:05:00\n", "     master +0:05:00\n", "     3:25 -> -0:20:00\n",
                     "     2:50 -> +0:15:00\n"):
            self.assertIn(line, p.stdout)
        self.assertIn("synchronized", p.stdout)  # analyze.py's verdict follows
        logs = os.path.join(ROOT, "build", "textbook")
        adjusts = {name: read_log(os.path.join(logs, name + ".log")) for name in ("master", "3:25", "2:50")}
        want = {"master": 5 * MINUTE_NS, "3:25": -20 * MINUTE_NS, "2:50": 15 * MINUTE_NS}
        for name, events in adjusts.items():
            first = [e for e in events if e["event"] == "adjust"][0]
            self.assertAlmostEqual(first["correction_ns"], want[name], delta=MS, msg=name)
        with open(os.path.join(logs, "master.out")) as f:
            got = explained_round(f.read())
        with open(SNAPSHOT) as f:
            self.assertEqual(got, f.read())


class ByHandTest(RunTestCase):
    """README's transcript, typed as a person would, mistakes included."""

    def test_a_whole_round_by_hand_with_every_mistake_answered(self):
        r = self.run_
        m = r.master(1, "--by-hand", "--rounds", 1, "--time", "3:00", "--drift", 0)
        with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as s:
            f = s.makefile("rw")

            def say(line):
                f.write(line + "\n")
                f.flush()

            def hear():
                return f.readline().rstrip("\n")

            say("ACK 1")
            self.assertEqual(hear(), "ERROR expected HELLO <id>, not: ACK before HELLO")
            say("HELLO my name")
            self.assertEqual(hear(), "ERROR expected HELLO <id>, not: bad message: HELLO takes the id, or the id, a port and an epoch")
            say("HELLO alice")
            self.assertEqual(hear(), "WAIT 1 1")
            self.assertEqual(hear(), "TIME? 1 1")
            say("CLOCK 1 2 5 5")
            self.assertEqual(hear(), "ERROR expected CLOCK 1 1 <t2> <t3>, not: CLOCK for round 1 probe 2")
            say("CLOCK 1 1 now")  # README's transcript
            self.assertEqual(hear(), "ERROR expected CLOCK 1 1 <t2> <t3>, not: bad message: bad clock reading")
            say("WAIT 1 1")
            self.assertEqual(hear(), "ERROR expected CLOCK 1 1 <t2> <t3>, not: WAIT is a master's message")
            say("CLOCK 1 1 1000 2000")  # a clock of my own: 1 us after the epoch
            adjust = hear()
            self.assertRegex(adjust, r"^ADJUST 1 \d+$")
            say("ACK 2")  # README's transcript
            self.assertEqual(hear(), "ERROR expected ACK 1, not: ACK 2")
            say("HELLO alice")
            self.assertEqual(hear(), "ERROR expected ACK 1, not: HELLO sent twice")
            say("ACK 1")
            self.assertEqual(hear(), "BYE")
        self.assertEqual(r.wait(m), 0)
        # The master and a clock near the epoch average: each moves half way.
        est = self.events("master", "estimate")[0]
        self.assertEqual(int(adjust.split()[2]), est["correction_ns"])
        self.assertAlmostEqual(est["correction_ns"], -est["estimate_ns"] / 2, delta=MS)

    def test_by_hand_waits_for_a_person(self):
        # No HELLO deadline, one probe, long timeouts: a connection that says
        # nothing for longer than the usual 5 s deadline is still there.
        r = self.run_
        m = r.master(1, "--by-hand", "--rounds", 1)
        with socket.create_connection(("127.0.0.1", m.port), timeout=WAIT_S) as s:
            s.settimeout(6)
            with self.assertRaises(socket.timeout):
                s.recv(100)  # nothing comes, and the connection is not closed
            s.settimeout(WAIT_S)
            s.sendall(b"HELLO slowpoke\n")
            self.assertEqual(s.recv(100).split(b"\n")[0], b"WAIT 1 1")


if __name__ == "__main__":
    unittest.main()
