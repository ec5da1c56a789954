#!/usr/bin/env python3
"""Integration test runner: discovers tests/integration/test_*.py (unittest),
prints one line per test and the closing "N passed, N failed" line.

    python3 tests/run.py                 # everything
    python3 tests/run.py test_stack      # one module (or module.Class)
    python3 tests/run.py --suite cloud   # tests/cloud/ (make test-cloud)
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))
sys.path.insert(0, os.path.join(HERE, "cloud"))
sys.path.insert(0, os.path.join(HERE, "cluster"))


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def _line(self, test, what):
        self.stream.write("%s %s (%.1fs)\n" % (what, test.id(), time.monotonic() - getattr(self, "_t0", time.monotonic())))
        self.stream.flush()

    passes = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passes += 1
        self._line(test, "ok  ")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(test, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._line(test, "ERR ")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(test, "skip")


def main():
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    kind = "integration"
    if names[:1] == ["--suite"] and len(names) > 1:
        kind, names = names[1], names[2:]
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(os.path.join(HERE, kind), pattern="test_*.py",
                                top_level_dir=os.path.join(HERE, kind))
    runner = unittest.TextTestRunner(resultclass=Result, verbosity=0, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    # Counted, not derived: a class whose setUpClass failed adds one error
    # and runs none of its tests.
    passed = res.passes
    line = "%d passed, %d failed" % (passed, failed)
    if res.skipped:
        line += ", %d skipped" % len(res.skipped)
    print("%s: %s" % (kind, line))
    return 0 if failed == 0 and res.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
