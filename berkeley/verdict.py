"""berkeley/verdict.py - a group's run across faults, judged from its logs:
what each process was from moment to moment (the master of an epoch, a
slave of a master, or adrift), and the checks a failover must pass. Pure:
logs in ({name: events}, as logs.py reads them), sentences out. Each check
returns a list of problems, each saying what was seen; [] is a pass."""

import bisect
import collections

from berkeley.clock import ClockTrack

# What a process is from one event on, read from its log:
#   master  it runs the master role: master is its own address, epoch its epoch
#           (from `start` with role master, or its `takeover`)
#   slave   it follows `master` (that master's address), in the epoch of the
#           last PLAN it heard: from the first PLAN, probe or correction on a
#           connection (a `connected` alone is a TCP connection, perhaps to a
#           candidate that never answers)
#   adrift  no master: starting, connecting, lost, electing (note says which)
#   gone    it exited
# A master that steps down would be a `connected` (to its new master) and
# then a slave, like any other process.
Role = collections.namedtuple("Role", "real_ns kind master epoch note")

CONFIRMING = ("plan", "reply", "adjust", "ignored")  # a master's word on this connection


def roles(events, own_address=None):
    """The roles of one process over its log, each from the event that began
    it. own_address names a process that starts as master (its `start` has
    only the port)."""
    out, epoch, target, own = [], None, None, own_address

    def become(e, kind, master=None, note=""):
        role = Role(e["real_ns"], kind, master, epoch, note)
        if not out or out[-1][1:] != role[1:]:
            out.append(role)

    for e in events:
        kind = out[-1].kind if out else None
        name = e["event"]
        if name == "start":
            epoch = e.get("epoch")
            if e.get("role") == "master":  # also the master role a takeover starts: at the takeover's address
                become(e, "master", own or e["id"])
            else:
                become(e, "adrift", note="starting")
        elif name == "connected" and "master" in e:
            target = e["master"]
            become(e, "adrift", note="connecting to %s" % target)
        elif name in CONFIRMING and kind in ("adrift", "slave") and target is not None:
            if name == "plan":
                epoch = e["epoch"]
            become(e, "slave", target)
        elif name == "lost":
            target = None
            become(e, "adrift", note="lost: %s" % e.get("reason", ""))
        elif name == "electing":
            target = None
            become(e, "adrift", note="electing")
        elif name == "takeover":
            epoch, target, own = e["epoch"], None, e["address"]
            become(e, "master", e["address"])
        elif name == "exit":
            become(e, "gone", note=e["reason"] if "reason" in e else "after %s rounds" % e.get("rounds"))
    return out


class Story:
    """A run's logs ({name: events}) read as roles. addresses: {name:
    "host:port"} of the processes that start as masters, whose logs do not
    say their host."""

    def __init__(self, logs, addresses=None):
        self.logs = {n: ev for n, ev in logs.items() if ev}
        addresses = addresses or {}
        self.roles = {n: roles(ev, addresses.get(n)) for n, ev in self.logs.items()}
        self.names = {a: n for n, a in addresses.items()}
        for n, ev in self.logs.items():
            for e in ev:
                if e["event"] in ("serving", "takeover"):
                    self.names[e["address"]] = n
        self.t0 = min(ev[0]["real_ns"] for ev in self.logs.values()) if self.logs else 0

    def when(self, t):
        return "+%.2f s" % ((t - self.t0) / 1e9)

    def who(self, address):
        return "%s at %s" % (self.names[address], address) if address in self.names else address

    def role_at(self, name, t):
        """The role of a process at host time t; None before its log begins."""
        rs = self.roles.get(name, [])
        i = bisect.bisect_right([r.real_ns for r in rs], t) - 1
        return rs[i] if i >= 0 else None

    def changes(self, since_ns, until_ns):
        """The host times in (since_ns, until_ns] at which a role changed."""
        return sorted({r.real_ns for rs in self.roles.values() for r in rs if since_ns < r.real_ns <= until_ns})

    # -- who leads whom -----------------------------------------------------

    def adrift_at(self, t):
        """The processes without a master (nor master themselves) at t."""
        return sorted(n for n in self.roles if not (r := self.role_at(n, t)) or r.kind not in ("master", "slave"))

    def groups_at(self, t):
        """Who leads whom at host time t, told: "master (epoch 1) leads s1 s2;
        s3 electing"."""
        now = {n: self.role_at(n, t) for n in self.roles}
        masters = {r.master: n for n, r in now.items() if r and r.kind == "master"}
        slaves = {n: r for n, r in now.items() if r and r.kind == "slave"}
        parts = []
        for address, n in sorted(masters.items(), key=lambda x: x[1]):
            followers = sorted(s for s, r in slaves.items() if r.master == address)
            parts.append("%s (epoch %s) leads %s" % (n, now[n].epoch, " ".join(followers) or "nobody"))
        for s, r in sorted(slaves.items()):
            if r.master not in masters:
                parts.append("%s follows %s, no master now" % (s, self.who(r.master)))
        for n, r in sorted(now.items()):
            if not r or r.kind in ("adrift", "gone"):
                parts.append("%s %s" % (n, "not started" if not r else ("exited: " + r.note) if r.kind == "gone" else r.note))
        return "; ".join(parts) or "no process"

    def split_at(self, t):
        """Why the processes are not one group at t (one master, every other
        process its slave): groups_at(t); None when they are."""
        now = [self.role_at(n, t) for n in self.roles]
        masters = {r.master for r in now if r and r.kind == "master"}
        if len(masters) == 1 and all(r and (r.kind == "master" or r.kind == "slave" and r.master in masters)
                                     for r in now):
            return None
        return self.groups_at(t)

    # -- the checks ---------------------------------------------------------

    def one_master_per_epoch(self):
        """No epoch has two masters: in no log, and not across logs (a slave
        of one and the takeover of another, say)."""
        seen = collections.defaultdict(dict)  # epoch -> address -> {(name, kind): first host time}
        for n, rs in self.roles.items():
            for r in rs:
                if r.kind in ("master", "slave") and r.epoch is not None:
                    seen[r.epoch].setdefault(r.master, {}).setdefault((n, r.kind), r.real_ns)
        problems = []
        for epoch, masters in sorted(seen.items()):
            if len(masters) > 1:
                problems.append("epoch %s had %d masters: %s" % (epoch, len(masters), "; ".join(
                    "%s (%s)" % (self.who(a), ", ".join(
                        "%s %s from %s" % (n, "is it" if kind == "master" else "follows it", self.when(t))
                        for (n, kind), t in sorted(by.items(), key=lambda x: x[1])))
                    for a, by in sorted(masters.items()))))
        return problems

    def one_group(self, since_ns, deadline_ns, until_ns):
        """From deadline_ns to until_ns the processes are one group (one
        master, every other process its slave). since_ns (the heal) is where
        the times in the sentences count from."""
        def after(t):
            return "heal + %.2f s" % ((t - since_ns) / 1e9)
        bad = [(t, why) for t in [deadline_ns] + self.changes(deadline_ns, until_ns) if (why := self.split_at(t))]
        if not bad:
            return []
        t, why = bad[0]
        said = "not one group at %s%s: %s" % (after(t), " (the deadline)" if t == deadline_ns else "", why)
        end = self.split_at(until_ns)
        if end:
            return [said + "; still not at the end (%s): %s" % (after(until_ns), end)]
        last_bad = bad[-1][0]
        settled = next(c for c in self.changes(last_bad, until_ns) if not self.split_at(c))
        return [said + "; one group from %s on" % after(settled)]

    def felt(self, since_ns, until_ns):
        """Someone lost its master (or took over) between since_ns and
        until_ns: the fault was noticed, so the checks after it test a failover."""
        if any(r.kind == "adrift" and r.note != "starting" or r.kind == "master"
               for rs in self.roles.values() for r in rs if since_ns <= r.real_ns <= until_ns):
            return []
        return ["nobody lost its master from %s to %s; then %s" % (self.when(since_ns), self.when(until_ns),
                                                                    self.groups_at(until_ns))]

    def no_step_back(self):
        """No clock in step (corrected at least once) ever reads earlier than
        it did: no backward step, and no event's reading below the one before."""
        problems = []
        for n, events in sorted(self.logs.items()):
            in_step, last, found = False, None, []
            for e in events:
                if in_step and e["event"] == "adjust" and e["mode"] == "step" and e["correction_ns"] < 0:
                    found.append("%s stepped back %d ns in round %s at %s" % (
                        n, -e["correction_ns"], e["round"], self.when(e["real_ns"])))
                elif in_step and last and e["clock_ns"] < last["clock_ns"]:
                    found.append("%s's clock read %d ns earlier at its %s (%s) than at its %s before" % (
                        n, last["clock_ns"] - e["clock_ns"], e["event"], self.when(e["real_ns"]), last["event"]))
                in_step = in_step or e["event"] == "adjust"
                last = e
            problems += found[:3] + (["%s: and %d more" % (n, len(found) - 3)] if len(found) > 3 else [])
        return problems

    def clocks_agree(self, at_ns, bound_ns):
        """Every pair of running clocks within bound_ns at host time at_ns
        (true offsets, clock_ns - real_ns, replayed by ClockTrack)."""
        running = [n for n in self.logs if (r := self.role_at(n, at_ns)) and r.kind != "gone"]
        offsets = {n: ClockTrack(n, self.logs[n]).offset_at(at_ns) for n in running}
        if not offsets or max(offsets.values()) - min(offsets.values()) <= bound_ns:
            return []
        mid = sorted(offsets.values())[len(offsets) // 2]
        return ["the clocks spread %.1f us (bound %.1f us) at %s; each from their median: %s" % (
            (max(offsets.values()) - min(offsets.values())) / 1e3, bound_ns / 1e3, self.when(at_ns),
            ", ".join("%s %+.1f us" % (n, (o - mid) / 1e3) for n, o in sorted(offsets.items(), key=lambda x: x[1])))]

    # -- telling it ---------------------------------------------------------

    def describe(self, role):
        if role.kind == "master":
            return "master of epoch %s at %s" % (role.epoch, role.master)
        if role.kind == "slave":
            return "follows %s (epoch %s)" % (self.who(role.master), role.epoch)
        return ("exited: " if role.kind == "gone" else "") + role.note

    def timeline(self, name, until_ns=None):
        """[(host time, what the process became)], a run of adrift roles
        told as one line: its first and how many steps followed."""
        lines, run = [], []
        for r in self.roles.get(name, []) + [None]:
            if r is not None and until_ns is not None and r.real_ns > until_ns:
                r = None
            if r is not None and r.kind == "adrift":
                run.append(r)
                continue
            if run:
                more = " (%d step%s more, the last: %s)" % (len(run) - 1, "s"[:len(run) > 2], run[-1].note) \
                    if len(run) > 1 else ""
                lines.append((run[0].real_ns, "no master: " + run[0].note + more))
                run = []
            if r is None:
                break
            lines.append((r.real_ns, self.describe(r)))
        return lines

    def report(self, marks=None, until_ns=None):
        """Every process's timeline, after the marks ({host time: what the
        harness did}), times from the first event."""
        out = ["%9s  %s" % (self.when(t), what) for t, what in sorted((marks or {}).items())]
        for n in sorted(self.roles, key=lambda n: (n != "master", n)):
            out.append("%s:" % n)
            out += ["%9s    %s" % (self.when(t), text) for t, text in self.timeline(n, until_ns)]
        return "\n".join(out)
