"""`python -m tests.corpus`: play every case of the bad-input corpus and print its figures.

Options: `--json` (the figures as JSON), `-v` (one line per case), `-k TEXT` (cases whose id
contains TEXT). Exit status 1 when a case's expectation is not met (xfail cases excepted).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.corpus import figures, load_cases, run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.corpus")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-k", default="")
    args = parser.parse_args(argv)
    cases = [c for c in load_cases() if args.k in c.id]
    started = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="pinner-corpus-") as work:
        for case in cases:
            outcome = run_case(case, Path(work))
            outcomes.append(outcome)
            if args.verbose or (outcome.problems and not case.xfail):
                status = "ok" if not outcome.problems else ("xfail" if case.xfail else "FAIL")
                line = (outcome.err.strip().splitlines() or [""])[-1][:110]
                print(f"{status:<5} {case.kind:<19} {case.id:<45} exit {outcome.code}  {line}")
                for problem in outcome.problems if not case.xfail else []:
                    print(f"      {problem}")
    numbers = figures(outcomes)
    numbers["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(numbers, indent=2))
    else:
        for key, value in numbers.items():
            if key != "per kind":
                print(f"{key}: {value}")
        print("per kind (cases / refused / accepted / tracebacks / unmet):")
        for kind, k in sorted(numbers["per kind"].items()):
            print(
                f"  {kind:<20} {k['cases']:>4} {k['refused']:>4} {k['accepted']:>4} "
                f"{k['tracebacks']:>4} {k['failed']:>4}"
            )
    return 1 if numbers["expectations not met"] else 0


if __name__ == "__main__":
    sys.exit(main())
