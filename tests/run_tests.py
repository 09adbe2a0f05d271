"""Runs every test of `make test` and ends with one line `N passed, N failed`.

The doctest unit tests (tests/unit, built with AddressSanitizer and
UndefinedBehaviorSanitizer) count one per test case; the Python integration
tests one per test method. Exit status 1 when anything failed."""

import os
import re
import subprocess
import sys
import unittest

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


def run_python(pattern):
    print("== integration tests:", pattern, flush=True)
    suite = unittest.defaultTestLoader.discover(HERE, pattern=pattern, top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.testsRun - failed - len(result.skipped), failed


def main():
    passed = failed = 0
    for p, f in (run_doctest(os.path.join(HERE, "unit")), run_python("test_integration*.py")):
        passed += p
        failed += f
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
