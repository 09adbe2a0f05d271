#!/usr/bin/env python3
"""bench/cluster.py - a master host and k slave hosts, each a network
namespace in a subnet of its own, joined to one router namespace that routes
between them (ip_forward=1); and partitions cut in that router, the shapes
of Jepsen's nemesis among them.

    master  10.78.0.2/24 eth0 ==== to-master 10.78.0.1 \\
    s1      10.78.1.2/24 eth0 ==== to-s1     10.78.1.1  router: ip rule ... blackhole
    ...                                                 /
    sk      10.78.k.2/24 eth0 ==== to-sk     10.78.k.1

A cut of A from B is a policy rule in the router, `from A to B blackhole`:
A's packets to B are dropped there, silently (no ICMP; the sender sees only
silence, as across a real partition), while B's still reach A; both rules
cut both ways. A one-way cut is a packet cut: no new TCP connection forms
either way (the SYN-ACK of B's connect is A's packet), but on an established
connection B's bytes reach A and A's never reach B. isolate(host, link=True)
takes the router's end of the host's link down instead (a pulled cable; the
router's blackhole route for 10.78.0.0/16 keeps that silent too).

Every process still reads the one host clock, so true offsets stay exact.
The namespaces, berk<PID>-c-<host>, live and die as netlab.py's Hosts do.

    python3 bench/cluster.py demo [DIR]   a master and 4 slaves; two halves cut, then healed: who followed whom
    python3 bench/cluster.py check        build a cluster, print each shape's reachability and a kernel RX stamp

Standard library only; needs root and iproute2 (`ip`)."""

import errno
import os
import selectors
import socket
import struct
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from netlab import ROOT, Hosts, MasterDidNotStart, inside, ip, join, unavailable  # noqa: E402
from berkeley.logs import read_events  # noqa: E402
from berkeley.verdict import Story  # noqa: E402

SUBNET = "10.78"
MAX_SLAVES = 8
RULE_PREF = 100  # the cuts' policy rules, before the main table's (32766)
SO_TIMESTAMPING = 37  # <asm-generic/socket.h>; also its control message's type
STAMP_FLAGS = (1 << 3) | (1 << 4)  # SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, as net.hpp asks


class Cluster(Hosts):
    """Hosts "master", "s1".."sk" (slaves: k, up to MAX_SLAVES), each at
    10.78.<i>.2 behind its own link to the router. Groups of hosts are a
    name or a list of names."""

    def __init__(self, out_dir, slaves=4, say=None):
        if not 1 <= slaves <= MAX_SLAVES:
            raise ValueError("a cluster has 1 to %d slave hosts, not %d" % (MAX_SLAVES, slaves))
        self.hosts = ["master"] + ["s%d" % i for i in range(1, slaves + 1)]
        tag = "berk%d-c-" % os.getpid()
        super().__init__(out_dir, {h: tag + h for h in self.hosts + ["router"]}, say)
        self.address = {h: "%s.%d.2" % (SUBNET, i) for i, h in enumerate(self.hosts)}
        self.cut_pairs = set()  # (from, to): the router drops from's packets to `to`
        self.links_down = set()

    def build(self):
        r = self.ns["router"]
        ip("-n", r, "link", "set", "lo", "up")
        with inside(r), open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # this namespace's own switch
            f.write("1\n")
        ip("-n", r, "route", "add", "blackhole", SUBNET + ".0.0/16")  # a host whose link is down: silence
        for i, h in enumerate(self.hosts):
            gateway = "%s.%d.1" % (SUBNET, i)
            join(self.ns[h], self.address[h] + "/24", r, "to-" + h)
            ip("-n", r, "addr", "add", gateway + "/24", "dev", "to-" + h)
            ip("-n", self.ns[h], "route", "add", "default", "via", gateway)

    def group(self, hosts):
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        unknown = [h for h in names if h not in self.hosts]
        if unknown:
            raise ValueError("no host %s here (hosts: %s)" % (", ".join(unknown), " ".join(self.hosts)))
        return names

    def others(self, hosts):
        return [h for h in self.hosts if h not in self.group(hosts)]

    # -- cuts and heals -----------------------------------------------------

    def cut(self, a, b, one_way=False):
        """Group a's packets to group b are dropped in the router; b's to a
        too, unless one_way."""
        for pair in self.pairs(a, b, one_way):
            if pair not in self.cut_pairs:
                self.rule("add", *pair)
                self.cut_pairs.add(pair)

    def heal(self, a, b, one_way=False):
        """Undo cut(a, b, one_way): pairs not cut are left as they are."""
        for pair in self.pairs(a, b, one_way):
            if pair in self.cut_pairs:
                self.rule("del", *pair)
                self.cut_pairs.discard(pair)

    def heal_all(self):
        """Every cut undone and every link up."""
        for pair in sorted(self.cut_pairs):
            self.heal(*pair, one_way=True)
        for host in sorted(self.links_down):
            self.link(host, up=True)

    def pairs(self, a, b, one_way):
        pairs = [(x, y) for x in self.group(a) for y in self.group(b) if x != y]
        return pairs if one_way else pairs + [(y, x) for x, y in pairs]

    def rule(self, verb, src, dst):
        ip("-n", self.ns["router"], "rule", verb, "pref", str(RULE_PREF), "from", self.address[src],
           "to", self.address[dst], "blackhole")

    def link(self, host, up):
        """The router's end of a host's link, up or down."""
        ip("-n", self.ns["router"], "link", "set", "to-" + host, "up" if up else "down")
        (self.links_down.discard if up else self.links_down.add)(host)

    def reaches(self, a, b):
        """Whether a's packets reach b as the cuts and links stand now."""
        return a != b and (a, b) not in self.cut_pairs and not {a, b} & self.links_down

    # -- the shapes ---------------------------------------------------------
    # Each cuts, and returns the groups it made so that the caller can say
    # and check them. The master is "master"; the slaves are s1..sk in order.

    def isolate(self, host, link=False):
        """One host cut from all others (link=True: its link down)."""
        if link:
            self.link(host, up=False)
        else:
            self.cut(host, self.others(host))
        return [host], self.others(host)

    def cut_master_from_majority(self):
        """The master and a minority of the slaves | the majority of all hosts."""
        majority = self.hosts[-(len(self.hosts) // 2 + 1):]
        self.cut(self.others(majority), majority)
        return self.others(majority), majority

    def halves(self):
        """The hosts in two halves, the master's the larger when they cannot be even."""
        half = (len(self.hosts) + 1) // 2
        a, b = self.hosts[:half], self.hosts[half:]
        self.cut(a, b)
        return a, b

    def bridge(self, node=None):
        """Two halves and one node (the middle one unless named) that reaches
        both: every pair across the halves cut, none involving the bridge."""
        node = node or self.hosts[len(self.hosts) // 2]
        rest = self.others(node)
        a, b = rest[:len(rest) // 2], rest[len(rest) // 2:]
        self.cut(a, b)
        return a, [node], b

    def one_way(self, a, b):
        """a cannot reach b; b still reaches a."""
        self.cut(a, b, one_way=True)
        return self.group(a), self.group(b)

    # -- probes ---------------------------------------------------------------

    def datagrams(self, timeout_s=0.3):
        """Which hosts' packets reach which, tried now: the set of (a, b)
        for which a UDP datagram sent from a arrived at b within timeout_s."""
        sel = selectors.DefaultSelector()
        socks, ports = [], {}
        try:
            for h in self.hosts:
                s = self.socket(h, socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((self.address[h], 0))
                ports[h] = s.getsockname()[1]
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, h)
            for a in self.hosts:
                s = self.socket(a, socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((self.address[a], 0))
                for b in self.hosts:
                    if b != a:
                        s.sendto(a.encode(), (self.address[b], ports[b]))
            arrived = set()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for key, _ in sel.select(deadline - time.monotonic()):
                    data = key.fileobj.recv(64)
                    arrived.add((data.decode(), key.data))
            return arrived
        finally:
            sel.close()
            for s in socks:
                s.close()

    def connects(self, timeout_s=0.5):
        """A TCP connect from every host to every other, tried now: {(a, b):
        "connected", "silence" (nothing came back within timeout_s) or the
        error that came back (ECONNREFUSED, EHOSTUNREACH, ...)}."""
        sel = selectors.DefaultSelector()
        socks, ports, outcome = [], {}, {}
        try:
            for h in self.hosts:
                s = self.socket(h, socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((self.address[h], 0))
                s.listen(len(self.hosts))
                ports[h] = s.getsockname()[1]
            for a in self.hosts:
                for b in self.hosts:
                    if b != a:
                        s = self.socket(a, socket.AF_INET, socket.SOCK_STREAM)
                        socks.append(s)
                        s.setblocking(False)
                        s.connect_ex((self.address[b], ports[b]))
                        sel.register(s, selectors.EVENT_WRITE, (a, b))
                        outcome[a, b] = "silence"
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and sel.get_map():
                for key, _ in sel.select(deadline - time.monotonic()):
                    sel.unregister(key.fileobj)
                    error = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    outcome[key.data] = errno.errorcode.get(error, str(error)) if error else "connected"
            return outcome
        finally:
            sel.close()
            for s in socks:
                s.close()

    def kernel_rx_stamp(self, src, dst):
        """One line sent over TCP from src to dst and read at dst as net.hpp
        reads (SO_TIMESTAMPING, software receive stamps): (sent_ns,
        stamp_ns, read_ns) in host time; stamp_ns None when the kernel gave none.
        The kernel turns receive stamps on for everyone a moment after the
        first socket asks (deferred work), so when nothing else on the
        machine stamps, the first lines may go unstamped: a line is tried
        every 25 ms for up to a second, until one is stamped."""
        listener = self.socket(dst, socket.AF_INET, socket.SOCK_STREAM)
        client = self.socket(src, socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, STAMP_FLAGS)  # asks early
            listener.bind((self.address[dst], 0))
            listener.listen(1)
            listener.settimeout(5)
            client.settimeout(5)
            client.connect(listener.getsockname())
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                conn.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, STAMP_FLAGS)
                for attempt in range(40):
                    if attempt:
                        time.sleep(0.025)  # the kernel's deferred switch-on: polled, bounded
                    sent_ns = time.time_ns()
                    client.sendall(b"probe\n")
                    data, ancillary, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(48))
                    read_ns = time.time_ns()
                    stamp_ns = None
                    for level, kind, payload in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(payload) >= 16:
                            sec, nsec = struct.unpack("qq", payload[:16])  # ts[0], the software stamp
                            stamp_ns = sec * 10**9 + nsec or None
                    if stamp_ns is not None:
                        break
            return sent_ns, stamp_ns, read_ns
        finally:
            listener.close()
            client.close()


# ---------------------------------------------------------------------------
# The demo: the group across the cluster, two halves cut and healed

def demo(args, interval_s=0.3, warmup_intervals=10, after_intervals=12):
    why = unavailable()
    if why:
        print("cluster demo: %s" % why)
        return 1
    out = args[0] if args else tempfile.mkdtemp(prefix="berkeley-cluster-")
    os.makedirs(out, exist_ok=True)
    with Cluster(out, slaves=4, say=print) as c:
        print("hosts: %s; router %s" % (", ".join("%s %s" % (h, c.address[h]) for h in c.hosts), c.ns["router"]))
        slaves = c.hosts[1:]
        try:
            m = c.start_master([os.path.join(ROOT, "master"), len(slaves), "--bind", c.address["master"],
                                "--rounds", 0, "--interval", interval_s, "--quiet"], 20)
        except MasterDidNotStart as e:
            print("cluster demo: the master did not start: %s" % e)
            return 1
        started = time.monotonic()
        logs = {"master": m.log, **{s: os.path.join(out, s + ".log") for s in slaves}}
        for s in slaves:
            c.start(s, [os.path.join(ROOT, "slave"), "--host", c.address["master"], "--port", m.port, "--id", s,
                        "--serve", "auto", "--log", logs[s], "--quiet"], s)

        def story():
            return Story({n: read_events(path, warn=lambda message: None) for n, path in logs.items()},
                         {"master": "%s:%d" % (c.address["master"], m.port)})
        print("%d rounds before the cut" % warmup_intervals)
        time.sleep(max(0, started + warmup_intervals * interval_s - time.monotonic()))  # a demo's pace, not a synchronisation
        a, b = c.halves()
        cut_ns = time.time_ns()
        print("cut: %s | %s, for at least 5 intervals and until everyone has a master again" % (" ".join(a), " ".join(b)))
        time.sleep(5 * interval_s)
        while story().adrift_at(time.time_ns()) and time.time_ns() - cut_ns < 40 * interval_s * 1e9:
            time.sleep(interval_s / 2)
        c.heal_all()
        heal_ns = time.time_ns()
        print("healed after %.1f s; running %d intervals more" % ((heal_ns - cut_ns) / 1e9, after_intervals))
        time.sleep(after_intervals * interval_s)
        end_ns = time.time_ns()
        c.procs.stop_all("the demo ends")
    marks = {cut_ns: "cut " + " ".join(a) + " | " + " ".join(b), heal_ns: "healed", end_ns: "end"}
    told = story()
    print()
    print(told.report(marks, until_ns=end_ns))
    print("at the end: %s" % told.groups_at(end_ns))
    print("logs: %s" % out)
    return 0


def check(args):
    """A cluster of 4 slave hosts: each shape's reachability, and a kernel stamp across the router."""
    why = unavailable()
    if why:
        print(why)
        return 1
    with Cluster(tempfile.mkdtemp(prefix="berkeley-cluster-"), slaves=4) as c:
        sent, stamp, read = c.kernel_rx_stamp("s1", "master")
        print("kernel RX stamp s1 -> master: %s" % (
            "none" if stamp is None else "%+.1f us after the send, %.1f us before the read" % (
                (stamp - sent) / 1e3, (read - stamp) / 1e3)))
        for name, shape in (("isolate master (link down)", lambda: c.isolate("master", link=True)),
                            ("isolate s1", lambda: c.isolate("s1")),
                            ("master cut from the majority", c.cut_master_from_majority),
                            ("halves", c.halves), ("bridge", c.bridge),
                            ("one way: master cannot reach s3 s4", lambda: c.one_way("master", ["s3", "s4"]))):
            groups = shape()
            seen, tcp = c.datagrams(), c.connects()
            print("%s %s:" % (name, " | ".join(" ".join(g) for g in groups)))
            for a in c.hosts:
                print("  %-7s packets reach %-22s TCP connects to %s" % (
                    a, " ".join(b for b in c.hosts if (a, b) in seen) or "nobody",
                    " ".join(b for b in c.hosts if tcp.get((a, b)) == "connected") or "nobody"))
            print("  failed connects: %s" % (" ".join(sorted({v for v in tcp.values() if v != "connected"})) or "none"))
            c.heal_all()
    return 0


def main(argv):
    cmd = argv[0] if argv else "check"
    if cmd == "demo":
        return demo(argv[1:])
    if cmd == "check":
        return check(argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
