"""Runs every test of `make test` and ends with one line `N passed, N failed`.

The doctest unit tests (tests/unit, built with AddressSanitizer and
UndefinedBehaviorSanitizer) count one per test case; the Python tests one per
test method. The integration suites run twice: against ./master and ./slave,
and against their sanitizer builds in build/asan. Exit status 1 when anything
failed."""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def run_doctest(binary):
    print("== unit tests:", binary, flush=True)
    p = subprocess.run([binary], capture_output=True, text=True)
    sys.stdout.write(p.stdout[-4000:])
    sys.stderr.write(p.stderr[-4000:])
    m = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", p.stdout)
    if not m:
        print("could not read doctest's summary (exit %d): counting one failure" % p.returncode)
        return 0, 1
    passed, failed = int(m.group(2)), int(m.group(3))
    if p.returncode != 0 and failed == 0:
        failed = 1  # a sanitizer report or crash after the summary
    return passed, failed


def run_python(pattern, bin_dir=None):
    """One unittest suite in a child process (so each run sees its own
    BERKELEY_BIN_DIR), its output streamed, its counts read off the end."""
    env = dict(os.environ)
    env.pop("BERKELEY_BIN_DIR", None)
    if bin_dir:
        env["BERKELEY_BIN_DIR"] = bin_dir
    print("== python tests %s against %s" % (pattern, bin_dir or "./master, ./slave"), flush=True)
    p = subprocess.Popen([sys.executable, "-m", "unittest", "discover", "-v", "-s", HERE, "-p", pattern],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in p.stdout:
        sys.stdout.write(line)
        tail = (tail + [line])[-5:]
    p.wait()
    text = "".join(tail)
    ran = re.search(r"^Ran (\d+) tests?", text, re.M)
    if not ran:
        print("could not read unittest's summary (exit %d): counting one failure" % p.returncode)
        return 0, 1
    counts = {k: int(v) for k, v in re.findall(r"(failures|errors|skipped|unexpected successes)=(\d+)", text)}
    failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpected successes", 0)
    if p.returncode != 0 and failed == 0:
        failed = 1
    return int(ran.group(1)) - failed - counts.get("skipped", 0), failed


def main():
    passed = failed = 0
    asan = os.path.join(os.path.dirname(HERE), "build", "asan")
    for p, f in (run_doctest(os.path.join(HERE, "unit")),
                 run_python("test_*.py"),
                 run_python("test_integration*.py", asan)):
        passed += p
        failed += f
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
