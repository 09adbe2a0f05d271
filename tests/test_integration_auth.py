"""The shared secret end to end (auth.hpp's handshake and tags): an impostor
master learns nothing and steers nothing, a relay that tampers with a line is
caught, wrong and missing secrets are refused both ways, and one address gets
only a few guesses answered. Every test here fails against the old protocol,
which sent the secret in HELLO and trusted whatever answered on the port."""

import hashlib
import hmac
import os
import secrets
import select
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import MASTER, SLAVE, WAIT_S, RawPeer, RunTestCase, final_spread_ns, read_log, wait_until
from berkeley.units import NS_PER_MS as MS

PASSPHRASE = "correct horse battery staple"  # 28 bytes, spaces inside
OTHER_PASSPHRASE = "another group's passphrase"
HOUR_NS = 3600 * 10**9


def stretched_key_hex(passphrase):
    """The group key as auth.hpp derives it: what must never be on the wire either."""
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), b"berkeley-clock-sync group key v1", 100000).hex()


class PySlave:
    """A slave written from README's description of the handshake and the
    tags with Python's hashlib and hmac: an implementation independent of
    auth.hpp, so that the two agreeing means both follow the description."""

    def __init__(self, port, passphrase):
        self.key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), b"berkeley-clock-sync group key v1", 100000)
        self.peer = RawPeer.connect(port)
        self.sent = self.heard = 0

    def mac(self, key, *parts):
        return hmac.new(key, b"".join(parts), hashlib.sha256).digest()

    def handshake(self):
        """True when the master proved the secret; then our proof is sent."""
        ns = os.urandom(32)
        self.peer.send("AUTH %s\n" % ns.hex())
        verb, nm, proof = self.peer.line().split(" ")
        nm = bytes.fromhex(nm)
        if not hmac.compare_digest(bytes.fromhex(proof), self.mac(self.key, b"master proof", ns, nm)):
            return False
        self.up = self.mac(self.key, b"slave->master", ns, nm)
        self.down = self.mac(self.key, b"master->slave", ns, nm)
        self.peer.send("PROOF %s\n" % self.mac(self.key, b"slave proof", ns, nm).hex())
        return True

    def tag(self, key, n, line):
        return self.mac(key, n.to_bytes(8, "big"), line.encode())[:16].hex()

    def send(self, line):
        self.peer.send("%s %s\n" % (line, self.tag(self.up, self.sent, line)))
        self.sent += 1

    def line(self):
        """The next line from the master, its tag checked and removed (None at the end)."""
        raw = self.peer.line()
        if raw is None:
            return None
        body, tag = raw.rsplit(" ", 1)
        assert tag == self.tag(self.down, self.heard, body), "bad tag from the master on %r" % raw
        self.heard += 1
        return body

    def close(self):
        self.peer.close()


class Relay:
    """A man in the middle on loopback: accepts slaves on its own port and
    joins each to the master, passing lines on; tamper_down(line, state) and
    tamper_up(line, state) return the lines to pass on instead of `line`
    (state is a dict per connection)."""

    def __init__(self, master_port, tamper_down=None, tamper_up=None):
        self.master_port = master_port
        self.tamper_down = tamper_down or (lambda line, state: [line])
        self.tamper_up = tamper_up or (lambda line, state: [line])
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.closing = False
        self.socks = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.closing:
            try:
                down, _ = self.listener.accept()
                up = socket.create_connection(("127.0.0.1", self.master_port))
            except OSError:
                return
            self.socks += [down, up]
            state = {}
            threading.Thread(target=self.pump, args=(up, down, self.tamper_down, state), daemon=True).start()
            threading.Thread(target=self.pump, args=(down, up, self.tamper_up, state), daemon=True).start()

    def pump(self, src, dst, tamper, state):
        buf = b""
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    for out in tamper(line.decode(), state):
                        dst.sendall(out.encode() + b"\n")
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closing = True
        self.listener.close()
        for s in self.socks:
            s.close()


def flip_digit(line):
    """The line with the first digit of its third field changed."""
    f = line.split(" ")
    digits = f[2].lstrip("-")
    f[2] = f[2][: len(f[2]) - len(digits)] + str((int(digits[0]) + 1) % 10) + digits[1:]
    return " ".join(f)


class AuthTest(RunTestCase):
    def secret_file(self, name, text, mode=0o600):
        path = os.path.join(self.run_.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def setUp(self):
        super().setUp()
        self.good = self.secret_file("good", PASSPHRASE + "\n")
        self.wrong = self.secret_file("wrong", OTHER_PASSPHRASE + "\n")

    def lost_reasons(self, name):
        return [e["reason"] for e in self.events(name, "lost")]

    # -- the group works, and the secret never shows --------------------------

    def test_an_authenticated_group_synchronizes_and_never_shows_its_secret(self):
        r = self.run_
        m = r.master(2, "--rounds", 3, "--interval", 0.2, "--secret-file", self.good)
        a = r.slave(m.port, "a", "--secret-file", self.good)
        b = r.slave(m.port, "b", "--secret-file", self.good)
        for p in (m, a, b):
            self.assertEqual(r.wait(p), 0)
        connected = self.events("master", "connected")
        self.assertEqual(sorted(e["slave"] for e in connected), ["a", "b"])
        self.assertTrue(all(e["authenticated"] for e in connected))
        self.assertEqual(len(self.events("a", "adjust")), 3)
        spread = final_spread_ns([read_log(r.log(n)) for n in ("master", "a", "b")])
        self.assertLess(spread, 1 * MS)
        key = stretched_key_hex(PASSPHRASE)
        for name in ("master", "a", "b"):
            with open(r.log(name)) as f:
                text = f.read() + "".join(r.output(name))
            self.assertNotIn(PASSPHRASE, text)
            self.assertNotIn(key, text)

    def test_an_independent_python_slave_speaks_with_the_master(self):
        """auth.hpp and Python's hmac agree on every proof and tag: a slave
        from README's description joins, answers 30 s ahead and is corrected."""
        r = self.run_
        m = r.master(1, "--rounds", 1, "--offset", 0, "--secret-file", self.good)
        py = PySlave(m.port, PASSPHRASE)
        self.addCleanup(py.close)
        self.assertTrue(py.handshake())
        py.send("HELLO python")
        seen = []
        while True:
            line = py.line()
            if line is None or line == "BYE":
                break
            verb, *f = line.split(" ")
            seen.append(verb)
            if verb == "TIME?":
                now = time.time_ns() + 30 * 10**9
                py.send("CLOCK %s %s %d %d" % (f[0], f[1], now, now))
            elif verb == "ADJUST":
                correction = int(f[1])
                py.send("ACK %s" % f[0])
        self.assertEqual(line, "BYE")
        self.assertEqual(seen, ["WAIT", "PLAN", "TIME?", "TIME?", "TIME?", "TIME?", "ADJUST"])
        self.assertLess(abs(correction + 15 * 10**9), 50 * MS)  # halfway between the master and 30 s ahead
        self.assertEqual(r.wait(m), 0)
        self.assertTrue(self.events("master", "connected")[0]["authenticated"])
        # And the other way: a master without our secret does not pass our check.
        other = r.master(1, "--rounds", 1, "--secret-file", self.wrong, name="other")
        stranger = PySlave(other.port, PASSPHRASE)
        self.addCleanup(stranger.close)
        self.assertFalse(stranger.handshake())

    # -- an impostor master ---------------------------------------------------

    def test_an_impostor_on_the_masters_port_gets_no_secret_and_steers_no_clock(self):
        """The issue's scenario: the real master dies and a squatter binds its
        port at once. The slave reconnects to it, but only ever sends it a
        random challenge, and applies nothing it says."""
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.2, "--secret-file", self.good, "--no-failover")
        s = r.slave(m.port, "wary", "--secret-file", self.good, "--connect-timeout", 3)
        wait_until(lambda: self.events("wary", "adjust"), "a first correction")
        adjusts_before = len(self.events("wary", "adjust"))
        m.send_signal(signal.SIGKILL)
        m.wait(timeout=WAIT_S)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", m.port))
        squatter.listen()
        squatter.settimeout(WAIT_S)
        self.addCleanup(squatter.close)
        received = []
        # Three ways to try it: steer without a word of proof, answer the
        # challenge with a made-up proof, and echo the slave's own challenge.
        scripts = [
            lambda peer, nonce: peer.send("WAIT 1 1\nTIME? 1 1\nADJUST 1 %d\n" % HOUR_NS),
            lambda peer, nonce: peer.send("AUTH %s %s\nADJUST 1 %d %s\n" % (
                secrets.token_hex(32), secrets.token_hex(32), HOUR_NS, secrets.token_hex(16))),
            lambda peer, nonce: peer.send("AUTH %s %s\n" % (nonce, nonce)),
        ]
        for script in scripts:
            conn, _ = squatter.accept()
            peer = RawPeer(conn)
            first = peer.line()
            received.append(first)
            verb, nonce = first.split(" ")
            self.assertEqual(verb, "AUTH")
            self.assertEqual(len(nonce), 64)
            script(peer, nonce)
            rest = peer.lines_until_closed()  # the slave hangs up without a word
            received.extend(rest)
            self.assertEqual(rest, [])
        self.assertEqual(r.wait(s), 1)
        self.assertEqual(len(self.events("wary", "adjust")), adjusts_before)
        nonces = [line.split(" ")[1] for line in received]
        self.assertEqual(len(set(nonces)), len(nonces), "a fresh challenge every time")
        wire = "\n".join(received)
        self.assertNotIn(PASSPHRASE, wire)
        self.assertNotIn(PASSPHRASE.encode().hex(), wire)
        self.assertNotIn(stretched_key_hex(PASSPHRASE), wire)
        reasons = self.lost_reasons("wary")
        self.assertTrue(any("did not prove itself" in x for x in reasons), reasons)
        self.assertTrue(any("proof is wrong" in x for x in reasons), reasons)

    def test_a_slave_with_a_secret_never_takes_an_unproven_error_as_final(self):
        """An impostor's ERROR could otherwise send every slave away."""
        r = self.run_
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(WAIT_S)
        self.addCleanup(listener.close)
        s = r.slave(listener.getsockname()[1], "steadfast", "--secret-file", self.good, "--connect-timeout", 2)
        attempts = 0
        while s.poll() is None and attempts < 3:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                break
            peer = RawPeer(conn)
            peer.line()
            peer.send("ERROR authentication failed (wrong secret)\n")
            peer.lines_until_closed()
            attempts += 1
        self.assertEqual(attempts, 3, "the slave came back after an unproven ERROR")
        self.assertEqual(r.wait(s), 1)

    # -- a man in the middle --------------------------------------------------

    def relayed(self, tamper_down=None, tamper_up=None):
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.2, "--secret-file", self.good, "--offset", 0, "--drift", 0)
        relay = Relay(m.port, tamper_down, tamper_up)
        self.addCleanup(relay.close)
        s = r.slave(relay.port, "victim", "--secret-file", self.good, "--offset", 2000, "--drift", 0)
        return m, s

    def assert_bad_tag_seen(self, name, times=2):
        wait_until(lambda: len([x for x in self.lost_reasons(name) if "bad tag" in x]) >= times,
                   "%d bad tags caught by %s" % (times, name))

    def test_a_relay_that_flips_a_digit_of_an_adjust_is_caught(self):
        def tamper(line, state):
            if line.startswith("ADJUST "):
                return [flip_digit(line)]
            return [line]
        self.relayed(tamper_down=tamper)
        self.assert_bad_tag_seen("victim")
        self.assertEqual(self.events("victim", "adjust"), [])

    def test_a_relay_that_replays_an_adjust_is_caught(self):
        def tamper(line, state):
            if line.startswith("ADJUST ") and "replayed" not in state:
                state["replayed"] = True
                return [line, line]
            return [line]
        self.relayed(tamper_down=tamper)
        self.assert_bad_tag_seen("victim")
        rounds = [e["round"] for e in self.events("victim", "adjust")]
        self.assertEqual(len(rounds), len(set(rounds)), "no ADJUST applied twice: %s" % rounds)

    def test_a_relay_that_swaps_two_lines_is_caught(self):
        def tamper(line, state):
            if line.startswith("ADJUST ") and "held" not in state:
                state["held"] = line
                return []
            if "held" in state and state["held"] is not None:
                held, state["held"] = state["held"], None
                return [line, held]
            return [line]
        self.relayed(tamper_down=tamper)
        self.assert_bad_tag_seen("victim")
        self.assertEqual(self.events("victim", "adjust"), [])

    def test_a_relay_that_alters_a_slaves_reading_is_caught_by_the_master(self):
        def tamper(line, state):
            if line.startswith("CLOCK "):
                return [flip_digit(line)]
            return [line]
        self.relayed(tamper_up=tamper)
        wait_until(lambda: len([e for e in self.events("master", "disconnected")
                                if e["reason"].startswith("bad tag")]) >= 2, "the master catching two bad tags")
        self.assertEqual(self.events("victim", "adjust"), [])

    def test_a_line_moved_from_another_connection_is_caught(self):
        """Two slaves through one relay: the first ADJUST of one is sent to the other."""
        shared = {}

        def tamper(line, state):
            if line.startswith("ADJUST ") and "moved" not in shared:
                if "first" not in shared:
                    shared["first"] = line
                    return [line]
                shared["moved"] = True
                return [shared["first"]]
            return [line]
        r = self.run_
        m = r.master(2, "--rounds", 0, "--interval", 0.2, "--secret-file", self.good)
        relay = Relay(m.port, tamper)
        self.addCleanup(relay.close)
        r.slave(relay.port, "one", "--secret-file", self.good)
        r.slave(relay.port, "two", "--secret-file", self.good)
        wait_until(lambda: any("bad tag" in x for n in ("one", "two") for x in self.lost_reasons(n)),
                   "the moved line caught")

    # -- wrong and missing secrets, both ways ----------------------------------

    def test_wrong_and_missing_secrets_are_refused_both_ways(self):
        r = self.run_
        m = r.master(1, "--rounds", 2, "--interval", 0.1, "--secret-file", self.good)
        stranger = r.slave(m.port, "stranger")
        guesser = r.slave(m.port, "guesser", "--secret-file", self.wrong, "--connect-timeout", 1)
        self.assertEqual(r.wait(stranger), 1)
        self.assertIn("authentication required", r.output("stranger")[1])
        self.assertEqual(r.wait(guesser), 1)
        self.assertIn("proof is wrong", r.output("guesser")[1])
        friend = r.slave(m.port, "friend", "--secret-file", self.good)
        self.assertEqual(r.wait(m), 0)
        self.assertEqual(r.wait(friend), 0)
        self.assertEqual([e["slave"] for e in self.events("master", "connected")], ["friend"])
        reasons = [e["reason"] for e in self.events("master", "disconnected") if e["slave"] == ""]
        self.assertIn("authentication required: this master has a secret (--secret-file)", reasons)
        self.assertTrue(any(x.startswith("closed the connection instead of proving itself") for x in reasons), reasons)
        # The other way round: a slave with a secret and a master without one.
        plain = r.master(1, "--rounds", 1, "--interval", 0.1, name="plain")
        wary = r.slave(plain.port, "wary", "--secret-file", self.good, "--connect-timeout", 1)
        self.assertEqual(r.wait(wary), 1)
        self.assertIn("this master has no secret", r.output("wary")[1])
        self.assertEqual(self.events("plain", "connected"), [])

    def test_a_wrong_proof_is_answered_late(self):
        r = self.run_
        m = r.master(1, "--rounds", 0, "--secret-file", self.good)
        peer = RawPeer.connect(m.port)
        peer.send("AUTH %s\n" % secrets.token_hex(32))
        verb, nonce, proof = peer.line().split(" ")
        self.assertEqual((verb, len(nonce), len(proof)), ("AUTH", 64, 64))
        started = time.monotonic()
        peer.send("PROOF %s\nHELLO intruder\n" % secrets.token_hex(32))
        self.assertEqual(peer.lines_until_closed(), ["ERROR authentication failed (wrong secret)"])
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(self.events("master", "connected"), [])

    def test_an_honest_slave_refused_for_a_spent_budget_keeps_trying_and_gets_in(self):
        """Ten wrong proofs from 127.0.0.1 spend its budget; an honest slave
        from there is refused unchecked (the answer comes before the
        master's first tagged line) and comes back until a token is there."""
        r = self.run_
        m = r.master(1, "--rounds", 1, "--secret-file", self.good)

        def wrong_proof():
            peer = RawPeer.connect(m.port)
            peer.send("AUTH %s\n" % secrets.token_hex(32))
            peer.line()
            peer.send("PROOF %s\n" % secrets.token_hex(32))
            return peer.lines_until_closed()
        threads = [threading.Thread(target=wrong_proof, daemon=True) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        s = r.slave(m.port, "honest", "--secret-file", self.good, "--connect-timeout", 1)
        self.assertEqual(r.wait(s), 0)
        self.assertEqual(r.wait(m), 0)
        self.assertEqual([e["slave"] for e in self.events("master", "connected")], ["honest"])
        reasons = self.lost_reasons("honest")
        self.assertFalse([x for x in reasons if "bad tag" in x], reasons)
        self.assertTrue(all(x.startswith("the master refused our proof: authentication refused: too many wrong")
                            for x in reasons), reasons)

    def test_one_address_gets_few_guesses_answered(self):
        """40 connections at once, each guessing again as soon as it is
        answered, for 4 s: the master checks at most its budget (10 at once,
        2 a second) and refuses the rest unchecked."""
        r = self.run_
        m = r.master(1, "--rounds", 0, "--secret-file", self.good)
        duration_s = 4.0
        answers = {"checked": 0, "refused": 0, "other": []}
        lock = threading.Lock()
        deadline = time.monotonic() + duration_s

        def guesser():
            while time.monotonic() < deadline:
                try:
                    peer = RawPeer.connect(m.port)
                    peer.send("AUTH %s\n" % secrets.token_hex(32))
                    peer.line()
                    peer.send("PROOF %s\n" % secrets.token_hex(32))
                    reply = peer.lines_until_closed()
                except OSError as e:
                    reply = [str(e)]
                with lock:
                    if reply == ["ERROR authentication failed (wrong secret)"]:
                        answers["checked"] += 1
                    elif reply and reply[0].startswith("ERROR authentication refused: too many wrong proofs"):
                        answers["refused"] += 1
                    else:
                        answers["other"].append(reply)

        threads = [threading.Thread(target=guesser, daemon=True) for _ in range(40)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        elapsed = time.monotonic() - started
        self.assertEqual(answers["other"], [])
        self.assertGreater(answers["refused"], 0)
        # The budget: 10 at once, then 2 a second.
        self.assertLessEqual(answers["checked"], 10 + 2 * elapsed + 1)
        self.assertGreaterEqual(answers["checked"], 10)

    def test_a_connection_whose_proof_failed_is_read_no_more(self):
        """Guessers that send garbage at full speed after a wrong proof, for
        the second their answer is held back: the master stops reading each
        at its wrong proof, so one can put no more than the sockets' buffers
        into it (before, it was read, and split into lines, without limit:
        8 of them took the master to 100% CPU). Each still gets its answer,
        and the group's rounds go on."""
        r = self.run_
        m = r.master(1, "--rounds", 0, "--interval", 0.2, "--secret-file", self.good, "--offset", 0, "--drift", 0)
        r.slave(m.port, "honest", "--secret-file", self.good, "--drift", 0)
        wait_until(lambda: self.events("master", "round_done"), "a first round")
        garbage = b"x\n" * 32768
        bound = 1024 * 1024  # bytes: far more than the buffers of a connection not read (about 200 KiB)
        answers, lock = [], threading.Lock()
        deadline = time.monotonic() + 3.0

        def guesser():
            while time.monotonic() < deadline:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
                s.connect(("127.0.0.1", m.port))
                peer = RawPeer(s)
                peer.send("AUTH %s\n" % secrets.token_hex(32))
                peer.line()
                peer.send("PROOF %s\n" % secrets.token_hex(32))
                s.setblocking(False)
                sent, answer, given_up = 0, b"", time.monotonic() + WAIT_S
                while b"\n" not in answer and time.monotonic() < given_up:
                    readable, writable, _ = select.select([s], [s], [], 1)
                    try:
                        if readable:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            answer += chunk
                        elif writable:
                            sent += s.send(garbage)
                    except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                        pass
                s.close()
                with lock:
                    answers.append((sent, answer.decode(errors="replace")))
        threads = [threading.Thread(target=guesser, daemon=True) for _ in range(8)]
        rounds_before = len(self.events("master", "round_done"))
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        self.assertTrue(answers)
        for sent, answer in answers:
            self.assertRegex(answer, r"^ERROR authentication (failed|refused)", answer)
        self.assertLess(max(sent for sent, _ in answers), bound, sorted(sent for sent, _ in answers))
        self.assertGreater(len(self.events("master", "round_done")), rounds_before, "the rounds went on")

    # -- the secret file and the options --------------------------------------

    def test_a_secret_file_must_be_private_and_hold_a_long_passphrase(self):
        loose = self.secret_file("loose", PASSPHRASE + "\n", 0o644)
        short = self.secret_file("short", "s3cret-value\n")
        empty = self.secret_file("empty", "\n")
        for path, why in ((loose, "must not be accessible by group or others (chmod 600"),
                          (short, "the passphrase has 12 bytes; it needs at least 16"),
                          (empty, "the passphrase has 0 bytes")):
            for argv in ([MASTER, "1", "--port", "0", "--secret-file", path], [SLAVE, "--secret-file", path]):
                p = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT_S)
                self.assertEqual(p.returncode, 1, argv)
                self.assertIn(why, p.stderr)
        p = subprocess.run([MASTER, "1", "--by-hand", "--secret-file", self.good], capture_output=True, text=True,
                           timeout=WAIT_S)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--by-hand is for typing the plain protocol", p.stderr)


if __name__ == "__main__":
    unittest.main()
