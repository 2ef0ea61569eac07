"""The tally shared by the offline checks of tests/deploy (check_deploy.py, check_help.py,
check_monitoring.py): check() counts a check and prints the failed ones; finish() prints
"N passed, N failed" and exits 1 if any check failed."""

import sys

_passed, _failed = 0, 0


def check(ok, what):
    global _passed, _failed
    if ok:
        _passed += 1
    else:
        _failed += 1
        print(f"FAIL {what}")


def finish():
    print(f"{_passed} passed, {_failed} failed")
    sys.exit(1 if _failed else 0)
