"""berkeley/logs.py - reading the JSON-lines logs of ./master and ./slave:
whole (read_events, read_logs), or while the program still writes them
(LogTail). Every line is checked for the fields the clock model needs; an
unusable one is reported through a warn callback and skipped, never guessed
at. What the events mean is clock.py's and analysis.py's."""

import json
import os
import sys
import time

POLL_S = 0.005  # how often a wait looks at a log again

# Fields each event must carry to be usable (beyond event, id, clock_ns, real_ns).
REQUIRED = {"start": ("offset_ns", "rate_ppb"), "adjust": ("round", "correction_ns", "mode", "rate_ppb"),
            "reply": ("round",), "round": ("round",), "estimate": ("slave", "round", "estimate_ns"),
            "ignored": ("round", "correction_ns")}


def warn(message):
    """Where the readers below report a line they skip, unless the caller
    passes a warn of its own (the benchmarks collect them, the tests fail):
    stderr, under the running program's name."""
    print("%s: warning: %s" % (os.path.basename(sys.argv[0]), message), file=sys.stderr, flush=True)


def check_event(event):
    """Why a decoded line is unusable, or None when it is fine."""
    if not isinstance(event, dict):
        return "not a JSON object"
    for key, kind in (("event", str), ("id", str), ("clock_ns", int), ("real_ns", int)):
        if not isinstance(event.get(key), kind):
            return "missing or bad field '%s'" % key
    for key in REQUIRED.get(event["event"], ()):
        if key not in event:
            return "%s event without '%s'" % (event["event"], key)
    for key in ("correction_ns", "offset_ns", "rate_ppb", "slew_rate_ppb"):
        if key in event and not isinstance(event[key], int):
            return "bad field '%s'" % key
    if event["event"] == "adjust":
        if event["mode"] not in ("step", "slew"):
            return "adjust event with unknown mode %r" % event["mode"]
        if event["mode"] == "slew" and event["correction_ns"] and not event.get("slew_rate_ppb", 0) > 0:
            return "slewed adjust without a positive 'slew_rate_ppb'"
    return None


def parse_line(line, where, warn=warn):
    """The event on one line, or None for a blank line or (reported through
    warn, `where` naming file and line) an unusable one."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except ValueError as e:
        warn("%s: skipped a corrupt line (%s)" % (where, e))
        return None
    problem = check_event(event)
    if problem:
        warn("%s: skipped a line: %s" % (where, problem))
        return None
    return event


class LogTail:
    """A log that a running program may still be writing: read_new() gives
    the events appended since the last call, from a kept offset, so a growing
    log is never read twice. A line counts once it is whole (an unfinished
    last one waits for its end), unless final=True says the writer is done."""

    def __init__(self, path, warn=warn):
        self.path, self.warn = path, warn
        self.offset, self.lines_read, self.partial = 0, 0, b""
        self.unseen = []  # read by wait_for after the event it waited for

    def read_new(self, final=False):
        """The new events ([] while the file does not exist)."""
        events, self.unseen = self.unseen, []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return events
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = b"" if final else lines.pop()
        for line in lines:
            self.lines_read += 1
            event = parse_line(line.decode(errors="replace"), "%s:%d" % (self.path, self.lines_read), self.warn)
            if event is not None:
                events.append(event)
        return events

    def wait_for(self, name, timeout_s, proc=None):
        """Read on until an event called `name` arrives and return it (the
        events before it are passed over, those after it are left for the
        next read); None once timeout_s has passed or the process proc, the
        log's writer, has exited without logging it."""
        deadline = time.monotonic() + timeout_s
        while True:
            exited = proc is not None and proc.poll() is not None  # before reading: its last lines count
            events = self.read_new()
            for i, event in enumerate(events):
                if event["event"] == name:
                    self.unseen = events[i + 1:]
                    return event
            if exited or time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)


def read_events(path, warn=warn):
    """The events of one whole log ([] when there is none). A corrupt or
    truncated line is reported through warn and skipped."""
    return LogTail(path, warn).read_new(final=True)


def read_logs(paths, warn=warn):
    """Events grouped by clock id, from several log files (each read once)."""
    by_id, source = {}, {}
    for path in dict.fromkeys(os.path.realpath(p) for p in paths):
        for clock_id, events in group_by_id(read_events(path, warn)).items():
            if clock_id in by_id:
                warn("%s: clock %s was already read from %s; ignoring it here" % (path, clock_id, source[clock_id]))
                continue
            by_id[clock_id], source[clock_id] = events, path
    return by_id


def group_by_id(events):
    groups = {}
    for e in events:
        groups.setdefault(e["id"], []).append(e)
    return groups
