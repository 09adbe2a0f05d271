"""berkeley/processes.py - the child processes of one run (analyze.py's
slaves, the tests' and the benchmarks' masters and slaves): each remembered
when started and stopped by its own PID, never by name; and a master started
on a free port (--port 0), with the port read from its log. What the
processes log is read by logs.py."""

import os
import signal
import subprocess
import time

from berkeley.logs import LogTail, warn
from berkeley.units import NS_PER_S

STOP_GRACE_S = 5  # after SIGTERM, before SIGKILL


class MasterDidNotStart(Exception):
    """A master from start_master exited, or did not say its port in time."""


class Processes:
    """The child processes of one run. Each is remembered when started and
    stopped by its own PID, SIGTERM and then SIGKILL after grace_s; no other
    process is ever signalled. A child's stdout and stderr go to NAME.out and
    NAME.err in out_dir, or (pipe=True) to pipes read line by line as text.
    say(message) hears of each child stopped."""

    def __init__(self, out_dir=None, grace_s=STOP_GRACE_S, say=None):
        self.dir, self.grace_s = out_dir, grace_s
        self.say = say or (lambda message: None)
        self.children = []
        self.paused = set()  # PIDs stopped with pause(): stop_all wakes them after SIGTERM

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv, name, pipe=False, **popen_args):
        """Start argv as `name`, stdin from /dev/null; its Popen, with .name,
        is remembered before anything else can fail. popen_args (env,
        preexec_fn, ...) go to Popen as they are."""
        if pipe:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, bufsize=1, **popen_args)
        else:
            with open(self.path(name + ".out"), "w") as out, open(self.path(name + ".err"), "w") as err:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **popen_args)
        p.name = name
        self.children.append(p)
        return p

    def output(self, name):
        """(stdout, stderr) that `name` has written to its files so far."""
        with open(self.path(name + ".out"), errors="replace") as out, \
                open(self.path(name + ".err"), errors="replace") as err:
            return out.read(), err.read()

    def stderr_of(self, p):
        """The start of what child p wrote to stderr: the error, not the usage after it."""
        err = self.output(p.name)[1]
        return " / ".join(err.strip().splitlines()[:2])[:300]

    def start_master(self, argv, name, timeout_s, warn=warn, **start_args):
        """Start a master on a free port and learn which: argv (the binary,
        N and its flags; it may begin with a wrapper that execs the master,
        such as `ip netns exec NS`) gets `--port 0 --log DIR/NAME.log`, and
        this returns once that log's `start` event names the port the kernel
        chose. The Popen comes back with .port, .log, and .tail, the LogTail
        that has read the log up to `start`, to read on from there. Raises
        MasterDidNotStart when the master exits first or stays silent for
        timeout_s (it is remembered all the same, for stop_all). start_args
        go to start() as they are."""
        log = self.path(name + ".log")
        if os.path.exists(log):
            os.remove(log)  # an earlier master's `start` must not be taken for this one's
        p = self.start([*map(str, argv), "--port", "0", "--log", log], name, **start_args)
        p.log, p.tail = log, LogTail(log, warn)
        start = p.tail.wait_for("start", timeout_s, p)
        if start is None:
            if p.poll() is not None:
                why = "%s exited with %d before listening" % (name, p.returncode)
            else:
                why = "%s did not log `start` within %g s" % (name, timeout_s)
            err = "" if start_args.get("pipe") else self.stderr_of(p)  # piped: the caller reads it
            raise MasterDidNotStart(why + (": " + err if err else ""))
        p.port = start["port"]
        return p

    def wait_all(self, timeout_s):
        """Wait until every child has exited or timeout_s has passed; True if all exited."""
        deadline = time.monotonic() + timeout_s
        for p in self.children:
            try:
                p.wait(timeout=max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def pause(self, p):
        """SIGSTOP child p (it stops as if its host hung); resume() goes on."""
        p.send_signal(signal.SIGSTOP)  # by its PID, as terminate() below
        self.paused.add(p.pid)

    def resume(self, p):
        p.send_signal(signal.SIGCONT)
        self.paused.discard(p.pid)

    def stop(self, p, why="stopping"):
        """Stop one child as stop_all stops them all."""
        self.stop_all(why, [p])

    def stop_all(self, why="stopping", which=None):
        """Stop every child (or those in `which`) that still runs: SIGTERM to
        all of them (and SIGCONT to a paused one, or SIGTERM would wait for
        it), then SIGKILL to those still running grace_s later."""
        running = [p for p in (self.children if which is None else which) if p.poll() is None]
        for p in running:
            self.say("stopping %s (pid %d): %s" % (p.name, p.pid, why))
            p.terminate()  # Popen signals only a child it has not yet reaped: never a reused PID
            if p.pid in self.paused:
                self.resume(p)
        deadline = time.monotonic() + self.grace_s
        for p in running:
            try:
                p.wait(timeout=max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("killing %s (pid %d)" % (p.name, p.pid))
                p.kill()
                p.wait()

    def close(self, why="stopping"):
        """stop_all, then close the pipes of the children started with
        pipe=True, once whoever read them is done: a run ends with no child
        running and no pipe of theirs left open."""
        self.stop_all(why)
        for p in self.children:
            for pipe in (p.stdout, p.stderr):
                if pipe is not None:
                    pipe.close()

    @staticmethod
    def cpu_ns(p):
        """User + system CPU time child p has used so far, from /proc/<pid>/stat
        (clock-tick resolution); None once it has been reaped."""
        if p.returncode is not None:  # reaped: its PID may belong to another process now
            return None
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return None
        return (int(fields[11]) + int(fields[12])) * NS_PER_S // os.sysconf("SC_CLK_TCK")
