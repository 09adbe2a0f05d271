#!/usr/bin/env python3
"""bench/netlab.py - separate hosts on one machine: a master host, a router
and a slave host, each a network namespace with its own network stack, joined
by veth links through the router.

    master host              router                      slave host
    10.77.0.1/24 eth0 ==== to-m  [bridge or linkemu]  to-s ==== eth0 10.77.0.2/24

The router is transparent (one subnet, no address of its own): with no
emulation a kernel bridge joins its two veths; with a link profile,
build/linkemu (bench/linkemu.cpp) relays every frame between them, adding
per-direction delay, jitter and loss and stamping what it really applied.
Every process still reads the one host clock, so the true offset of every
simulated clock stays exactly measurable from the logs.

The namespaces are named berk<PID>-m, -r, -s after the process that made
them, and the addresses exist only inside them. Lab.close() (also on an
exception, SIGTERM, SIGINT or interpreter exit) stops what it started, by PID,
and deletes its namespaces; namespaces left by a harness that was SIGKILLed
(its PID no longer alive) are deleted when the next Lab starts. That
life-cycle is Hosts', which bench/cluster.py's routed many-host lab shares.

    python3 bench/netlab.py check      can this machine run it? (root, iproute2)
    python3 bench/netlab.py leftovers  namespaces of this harness still present
    python3 bench/netlab.py demo       a master and 3 slaves across the router, 500 us each way +/-100 us

Standard library only; needs root and iproute2 (`ip`)."""

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from berkeley.clock import ClockTrack  # noqa: E402
from berkeley.logs import read_events, warn  # noqa: E402
from berkeley.processes import MasterDidNotStart, Processes  # noqa: E402

LINKEMU = os.path.join(ROOT, "build", "linkemu")
MASTER_ADDR = "10.77.0.1"
SLAVE_ADDR = "10.77.0.2"
NS_PATTERN = re.compile(r"^berk(\d+)-(?:[mrs]|c-[a-z0-9]+)$")  # Lab's; Cluster's (bench/cluster.py)
CLONE_NEWNET = 0x40000000  # <sched.h>


class Unavailable(Exception):
    """This machine cannot run namespaces: the message says why."""


def unavailable():
    """Why this machine cannot run a Lab (not root, no `ip`), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2's `ip` is missing (apt-get install iproute2)"
    return None


def ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Unavailable("ip %s: %s" % (" ".join(args), p.stderr.strip() or "exit %d" % p.returncode))
    return p.stdout


def namespaces():
    """The names of this harness's namespaces present now (any PID)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line and NS_PATTERN.match(line.split()[0])]


def alive(pid):
    """Whether a process runs under this PID: a zombie (killed, its parent
    not yet reaping, as when PID 1 of a container never does) does not."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def remove_stale():
    """Delete namespaces left by harnesses that no longer run."""
    for name in namespaces():
        if not alive(int(NS_PATTERN.match(name).group(1))):
            ip("netns", "del", name, check=False)


class Link:
    """One direction of the link: delay and jitter in us (the delay of each
    frame drawn uniformly within delay +/- jitter), loss in percent."""

    def __init__(self, delay_us=0, jitter_us=0, loss_pct=0.0):
        self.delay_us, self.jitter_us, self.loss_pct = delay_us, jitter_us, loss_pct

    def spec(self):
        return "%d:%d:%g" % (self.delay_us, self.jitter_us, self.loss_pct)

    def __str__(self):
        s = "%d us" % self.delay_us
        if self.jitter_us:
            s += " +/-%d" % self.jitter_us
        if self.loss_pct:
            s += " %g%% loss" % self.loss_pct
        return s


@contextlib.contextmanager
def inside(namespace):
    """Run the body in a network namespace: sockets it creates stay in that
    namespace after it (setns(2) on this thread, then back to where it was)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open("/var/run/netns/" + namespace) as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns %s: %s" % (namespace, os.strerror(ctypes.get_errno())))
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back from %s failed" % namespace)


def join(host_ns, address, router_ns, port):
    """Link a host to the router: a veth pair, eth0 in the host with address
    (CIDR) and `port` in the router, both up (the router's end has no address)."""
    ip("-n", host_ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", router_ns)
    ip("-n", host_ns, "addr", "add", address, "dev", "eth0")
    for dev in ("lo", "eth0"):
        ip("-n", host_ns, "link", "set", dev, "up")
    ip("-n", router_ns, "link", "set", port, "up")


class Hosts:
    """Network namespaces named berk<PID>-<suffix> (ns: {host: name}) and the
    processes started in them, through berkeley's Processes (out_dir holds
    their output), each remembered and stopped by its own PID. open() makes
    the namespaces and calls build() for the links; close(), also on an
    exception, SIGTERM, SIGHUP, SIGINT or interpreter exit, stops the
    processes and deletes the namespaces."""

    def __init__(self, out_dir, ns, say=None):
        self.dir, self.ns = out_dir, ns
        self.say = say or (lambda message: None)
        self.procs = Processes(out_dir, say=self.say)
        self.created = []
        self.closed = False

    def __enter__(self):
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        why = unavailable()
        if why:
            raise Unavailable(why)
        remove_stale()
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):  # interrupted: unwind through close() (SIGINT already does)
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _exit_on_signal)
        for name in self.ns.values():
            if name in namespaces():
                ip("netns", "del", name)  # our own PID's: hosts before these in the same process
            ip("netns", "add", name)
            self.created.append(name)
        self.build()

    def build(self):
        """The links between the namespaces: the subclass's."""

    def close(self):
        """Stop everything started here, by PID, then delete the namespaces
        (a namespace outlives `ip netns del` while a process still runs in
        it, which is why the processes go first). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            self.procs.close("the lab closes")
        finally:
            for name in self.created:
                ip("netns", "del", name, check=False)
            atexit.unregister(self.close)

    # -- running things on its hosts --------------------------------------

    def argv(self, host, argv):
        """argv run on a host (a key of ns): ip netns exec execs it in
        place, so the PID is the program's own."""
        return ["ip", "netns", "exec", self.ns[host], *map(str, argv)]

    def start(self, host, argv, name, **kw):
        return self.procs.start(self.argv(host, argv), name, **kw)

    def start_master(self, argv, timeout_s, warn=warn, host="master", name="master"):
        """A master (argv: its binary, N and flags) on a host, on a free
        port, logging to DIR/NAME.log: once it listens (p.port, p.log).
        Raises MasterDidNotStart."""
        return self.procs.start_master(self.argv(host, argv), name, timeout_s, warn)

    def socket(self, host, *args):
        """A socket (socket.socket's args) made in a host's network stack."""
        with inside(self.ns[host]):
            return socket.socket(*args)


class Lab(Hosts):
    """The three namespaces of one run. down: the master-to-slave Link, up:
    the slave-to-master one; both None for a plain kernel bridge."""

    def __init__(self, out_dir, down=None, up=None, seed=1, say=None):
        tag = "berk%d" % os.getpid()
        super().__init__(out_dir, {"master": tag + "-m", "router": tag + "-r", "slave": tag + "-s"}, say)
        self.down, self.up, self.seed = down, up, seed
        self.emulator = None
        self.stats = None

    def build(self):
        r = self.ns["router"]
        join(self.ns["master"], MASTER_ADDR + "/24", r, "to-m")
        join(self.ns["slave"], SLAVE_ADDR + "/24", r, "to-s")
        ip("-n", r, "link", "set", "lo", "up")
        if self.down is None and self.up is None:
            ip("-n", r, "link", "add", "br0", "type", "bridge")
            for port in ("to-m", "to-s"):
                ip("-n", r, "link", "set", port, "master", "br0")
            ip("-n", r, "link", "set", "br0", "up")
        else:
            self.start_emulator()

    def start_emulator(self):
        if not os.access(LINKEMU, os.X_OK):
            raise Unavailable("%s is missing: make build/linkemu" % LINKEMU)
        down, up = self.down or Link(), self.up or Link()
        argv = [LINKEMU, "--a", "to-m", "--b", "to-s", "--a-to-b", down.spec(), "--b-to-a", up.spec(),
                "--seed", str(self.seed), "--stats", os.path.join(self.dir, "linkemu.json")]
        self.emulator = self.procs.start(self.argv("router", argv), "linkemu", pipe=True)
        line = self.emulator.stdout.readline()  # its first line, or "" if it died
        if line.strip() != "linkemu: ready":
            raise Unavailable("linkemu did not start: %s %s" % (line.strip(), self.emulator.stderr.read().strip()))

    def stop_emulator(self):
        """Stop linkemu (SIGTERM: it writes its stats) and keep what it measured."""
        if self.emulator is None or self.emulator.poll() is not None:
            return self.stats
        self.emulator.terminate()
        try:
            self.emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.emulator.kill()
            self.emulator.wait()
        try:
            with open(os.path.join(self.dir, "linkemu.json")) as f:
                self.stats = json.load(f)
        except (OSError, ValueError):
            self.stats = None
        return self.stats

    def close(self):
        """linkemu first (SIGTERM: its stats), then Hosts.close."""
        if not self.closed:
            try:
                self.stop_emulator()
            finally:
                super().close()

    def describe(self):
        if self.down is None and self.up is None:
            return "no added delay (a kernel bridge)"
        return "down (master to slave) %s, up %s" % (self.down or Link(), self.up or Link())


# ---------------------------------------------------------------------------
# chrony beside us: a server on the master host, a client on the slave host
# that never touches the host clock (-x) and only measures the server
# (noselect), polling every second. Both read the one host clock, so every
# offset chrony logs is its error.

def chrony_missing():
    return None if shutil.which("chronyd") else "chronyd is missing (apt-get install chrony)"


def install_chrony():
    """Debian's chrony, without letting its package start a system daemon
    that would steer the host clock: policy-rc.d refuses every start for the
    length of the install (unless the machine already has one)."""
    if not chrony_missing():
        return None
    policy = "/usr/sbin/policy-rc.d"
    ours = not os.path.exists(policy)
    try:
        if ours:
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "install", "-y", "-q", "chrony"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chrony"]):
            if subprocess.run(cmd, env=env, capture_output=True).returncode == 0 and not chrony_missing():
                break
    finally:
        if ours and os.path.exists(policy):
            os.remove(policy)
    return chrony_missing()


class Chrony:
    """chronyd as server (master host) and measuring client (slave host) in
    a Lab, with their files in lab.dir/chrony."""

    def __init__(self, lab, poll=0):
        self.lab, self.dir = lab, os.path.join(lab.dir, "chrony")
        os.makedirs(self.dir, exist_ok=True)
        common = "cmdport 0\nbindcmdaddress /\n"
        self.write("server.conf", common + "pidfile %s/server.pid\nlocal stratum 1\nallow %s/24\nbindaddress %s\n"
                   % (self.dir, MASTER_ADDR, MASTER_ADDR))
        self.write("client.conf", common + "pidfile %s/client.pid\nserver %s iburst minpoll %d maxpoll %d noselect\n"
                   "logdir %s\nlog measurements statistics\n" % (self.dir, MASTER_ADDR, poll, poll, self.dir))

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def start(self):
        for host, role in (("master", "server"), ("slave", "client")):
            self.lab.start(host, ["chronyd", "-x", "-d", "-u", "root", "-f", os.path.join(self.dir, role + ".conf")],
                           "chrony-" + role)

    def errors(self, since_real_ns=0):
        """chrony's errors in ns after host time since_real_ns: (raw, filtered),
        the offset of each measurement and the estimated offset of its
        statistics after each, as logged."""
        # On an asymmetric link measurements.log's offsets land at
        # (up - down)/2, as our slaves' true offsets from the master do;
        # statistics.log's estimated offset has the opposite sign.
        return (self.column("measurements.log", 11, since_real_ns),
                [-x for x in self.column("statistics.log", 4, since_real_ns)])

    def column(self, name, index, since_real_ns):
        import calendar
        values = []
        try:
            with open(os.path.join(self.dir, name)) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) <= index or not fields[0][:1].isdigit():
                        continue  # its headers
                    at = calendar.timegm(time.strptime(fields[0] + " " + fields[1], "%Y-%m-%d %H:%M:%S")) * 10**9
                    if at >= since_real_ns:
                        values.append(round(float(fields[index]) * 1e9))
        except OSError:
            pass
        return values


# ---------------------------------------------------------------------------
# Our group across the lab, and its true errors

def run_group(lab, slaves, rounds, interval_s=1.0, extra=(), master_bin=None, slave_bin=None, seed=1):
    """A master on the master host and `slaves` slaves on the slave host, for
    `rounds` rounds; returns the logs' paths, by name (master first), once the
    master has exited. Raises RuntimeError when it fails."""
    master_bin = master_bin or os.path.join(ROOT, "master")
    slave_bin = slave_bin or os.path.join(ROOT, "slave")
    for name in ["s%d" % (i + 1) for i in range(slaves)]:
        if os.path.exists(os.path.join(lab.dir, name + ".log")):
            os.remove(os.path.join(lab.dir, name + ".log"))  # an earlier run's slaves are not this one's
    try:
        m = lab.start_master([master_bin, slaves, "--bind", MASTER_ADDR, "--rounds", rounds,
                              "--interval", interval_s, "--seed", seed, "--quiet", *extra], 30)
    except MasterDidNotStart as e:
        raise RuntimeError(str(e)) from None
    logs = {"master": m.log}
    for i in range(slaves):
        name = "s%d" % (i + 1)
        logs[name] = os.path.join(lab.dir, name + ".log")
        lab.start("slave", [slave_bin, "--host", MASTER_ADDR, "--port", m.port, "--id", name,
                            "--seed", seed * 100 + i, "--log", logs[name], "--quiet", *extra], name)
    deadline = rounds * interval_s * 3 + 60
    try:
        rc = m.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        raise RuntimeError("the master did not finish %d rounds in %d s" % (rounds, deadline))
    if rc != 0:
        raise RuntimeError("the master exited %d: %s" % (rc, lab.procs.output("master")[1][-500:]))
    return logs


def round_offsets(logs, skip_rounds):
    """{round: {name: true offset from the host clock}} at the start of every
    round after the first skip_rounds, from the logs (berkeley/clock.py)."""
    tracks = {n: ClockTrack(n, read_events(p)) for n, p in logs.items()}
    starts = {e["round"]: e["real_ns"] for e in tracks["master"].events if e["event"] == "round"}
    return {r: (t, {n: tr.offset_at(t) for n, tr in tracks.items()}) for r, t in sorted(starts.items())
            if r > skip_rounds}


def true_spreads(logs, skip_rounds):
    """The true spread (largest minus smallest offset, master included) at
    the start of every round after the first skip_rounds."""
    return [max(o.values()) - min(o.values()) for t, o in round_offsets(logs, skip_rounds).values()]


def true_errors(logs, skip_rounds):
    """Each slave's true offset from the master (slave minus master, ns) at
    the start of every round after the first skip_rounds, from the logs with
    the clock model (berkeley/clock.py); and the host time the first of those
    rounds began."""
    rounds = round_offsets(logs, skip_rounds)
    errors = [o[n] - o["master"] for t, o in rounds.values() for n in o if n != "master"]
    return errors, (min(t for t, o in rounds.values()) if rounds else None)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def achieved(stats, direction, brief=False):
    """The delay linkemu measured it applied in one direction: 'X us median
    (p10 A, p90 B; N frames, M dropped)', or brief 'X us (A-B)'; with no
    stats (no emulator) 'kernel bridge'."""
    if not stats:
        return "kernel bridge"
    d = stats["directions"][direction]
    if not d.get("frames"):
        return "no frames"
    if brief:
        return "%.0f us (%.0f-%.0f)" % (d["median"], d["p10"], d["p90"])
    return "%.0f us median (p10 %.0f, p90 %.0f; %d frames, %d dropped)" % (
        d["median"], d["p10"], d["p90"], d["frames"], d["dropped"])


def demo(args):
    """A master and 3 slaves across the router with 500 us +/-100 us each way: analyze.py's report."""
    import tempfile
    why = unavailable()
    if why:
        print("demo-net: %s" % why)
        return 1
    out = args[0] if args else tempfile.mkdtemp(prefix="berkeley-net-")
    os.makedirs(out, exist_ok=True)
    with Lab(out, down=Link(500, 100), up=Link(500, 100), say=print) as lab:
        print("hosts: master %s (namespace %s), slaves %s (namespace %s); link: %s" % (
            MASTER_ADDR, lab.ns["master"], SLAVE_ADDR, lab.ns["slave"], lab.describe()))
        try:
            m = lab.start_master([os.path.join(ROOT, "master"), 3, "--bind", MASTER_ADDR,
                                  "--rounds", 10, "--interval", 1, "--quiet"], 20)
        except MasterDidNotStart as e:
            print("demo-net: the master did not start: %s" % e)
            return 1
        rc = subprocess.run(lab.argv("slave", [sys.executable, os.path.join(ROOT, "analyze.py"), 3,
                                               "--host", MASTER_ADDR, "--port", m.port,
                                               "--master-log", m.log, "--logs", out,
                                               "--json", os.path.join(out, "report.json")])).returncode
        m.wait(timeout=30)
        stats = lab.stop_emulator()
        if stats:
            print("\nthe link as linkemu measured it: down %s; up %s" % (
                achieved(stats, "a_to_b"), achieved(stats, "b_to_a")))
    print("logs: %s  (namespaces removed: %s)" % (out, "yes" if not [n for n in namespaces()
                                                                     if n in lab.ns.values()] else "NO"))
    return rc


def main(argv):
    cmd = argv[0] if argv else "check"
    if cmd == "check":
        why = unavailable()
        print(why or "network namespaces can be made here")
        return 1 if why else 0
    if cmd == "leftovers":
        left = namespaces()
        print("\n".join(left) if left else "none")
        return 1 if left else 0
    if cmd == "demo":
        return demo(argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
