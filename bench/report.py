"""bench/report.py - how the benchmark figures are shown: a table printed row
by row as results come in, the same tables as markdown for bench/results.md,
targets judged next to each figure, and the machine the run was on.
"""

import datetime
import os
import subprocess

from procs import ROOT
from berkeley.units import NS_PER_MS, NS_PER_US  # found on the path procs set


def us(ns, digits=1):
    return "-" if ns is None else "%.*f us" % (digits, ns / NS_PER_US)


def ms(ns, digits=1):
    return "-" if ns is None else "%.*f ms" % (digits, ns / NS_PER_MS)


def percentile(values, p):
    """Nearest-rank percentile (p99 of fewer than 100 values is their maximum)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class Judged:
    """A figure beside its target: '1.3 us (<= 2 us: met)'."""

    def __init__(self, text, ok, target):
        self.text, self.ok, self.target = text, ok, target

    def __str__(self):
        return "%s (%s: %s)" % (self.text, self.target, "met" if self.ok else "**MISSED**")


def judge(value, limit, text, target_text):
    return Judged(text, value is not None and value <= limit, target_text)


def maybe_judge(value, limit, text, target_text):
    """The figure judged against its target, or the bare figure when there is none."""
    if value is None:
        return "-"
    return judge(value, limit, text, target_text) if limit is not None else text


_shown = None  # the section whose header was printed last


class Section:
    """One benchmark's table, notes and findings; rows are printed as added."""

    def __init__(self, title, headers, notes=()):
        self.title, self.headers, self.notes = title, headers, list(notes)
        self.rows, self.findings, self.failures, self.elapsed_s = [], [], [], None

    def show(self, line):
        """Print a line of this section, under its title and header when
        another section printed last."""
        global _shown
        if _shown is not self:
            print("\n== %s ==\n%s" % (self.title, " | ".join(self.headers)), flush=True)
            _shown = self
        print(line, flush=True)

    def add(self, *cells):
        row = [str(c) for c in cells]
        self.rows.append(row)
        self.show(" | ".join(row).replace("**", ""))

    def judged(self):
        return [c for row in self.rows for c in row if c.endswith(": met)") or c.endswith("MISSED**)")]

    def fail(self, what, error):
        message = "%s: could not be measured: %s" % (what, error)
        self.failures.append(message)
        self.show("FAILED " + message)

    def markdown(self):
        out = ["## " + self.title, ""]
        out += [n for n in self.notes] + ([""] if self.notes else [])
        if self.rows:
            out.append("| " + " | ".join(self.headers) + " |")
            out.append("|" + "---|" * len(self.headers))
            out += ["| " + " | ".join(row) + " |" for row in self.rows]
            out.append("")
        out += ["**Failed:** " + f for f in self.failures] + ([""] if self.failures else [])
        if self.findings:
            out += ["**Findings.** " + " ".join(self.findings), ""]
        if self.elapsed_s is not None:
            out += ["Elapsed: %.0f s." % self.elapsed_s, ""]
        return out


def machine():
    """nproc, CPU model, kernel, memory: the facts the figures depend on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
        with open("/proc/meminfo") as f:
            mem_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
    except OSError:
        mem_kib = 0
    return {"nproc": os.cpu_count(), "model": model, "kernel": os.uname().release,
            "memory": "%.1f GiB" % (mem_kib / 1024 / 1024)}


def source_version():
    """The commit benchmarked, and whether the working tree differed from it."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "") if head else "unknown"


def write_markdown(path, sections, mode, command, total_s, notes=()):
    m = machine()
    met = sum(c.endswith(": met)") for s in sections for c in s.judged())
    missed = sum(c.endswith("MISSED**)") for s in sections for c in s.judged())
    failed = sum(len(s.failures) for s in sections)
    out = ["# Benchmarks", "",
           "- date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
           "- machine: %d CPUs (nproc), %s, kernel %s, %s memory" % (m["nproc"], m["model"], m["kernel"], m["memory"]),
           "- source: %s" % source_version(),
           "- load average (1, 5, 15 min) at the end: %.2f, %.2f, %.2f" % os.getloadavg(),
           "- command: `%s` (%s run), total elapsed %.0f s" % (command, mode, total_s),
           "- targets: %d met, %d missed%s" % (met, missed, ", %d run(s) failed" % failed if failed else ""),
           "",
           "Every spread is the truth from the logs (each clock's simulated time minus the host clock, "
           "replayed with analyze.py's clock model, slews included), never the master's estimates. "
           "The spread *after* a round is taken once all of that round's corrections are fully applied.",
           ""]
    out += ["Note: " + n for n in notes] + ([""] if notes else [])
    for s in sections:
        out += s.markdown()
    with open(path, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    return met, missed, failed
