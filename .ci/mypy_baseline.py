"""Fail on any mypy error that is not in the baseline: the type check holds the line ("no new errors"), and the
baseline only shrinks. Reads mypy's output on stdin; compares errors by file, message and code (not line numbers,
which move with every edit). ``--update`` rewrites the baseline from this run."""

import re
import sys
from collections import Counter
from pathlib import Path

ERROR = re.compile(r"^(?P<path>[^:]+):\d+: error: (?P<rest>.*)$")


def errors(lines) -> Counter:
    found = Counter()
    for line in lines:
        match = ERROR.match(line.rstrip("\n"))
        if match:
            found[f"{match['path']}: {match['rest']}"] += 1
    return found


def main() -> int:
    baseline_path = Path(sys.argv[1])
    current = errors(sys.stdin)
    if "--update" in sys.argv:
        baseline_path.write_text("".join(f"{line}\n" for line in sorted(current.elements())))
        print(f"mypy baseline: {sum(current.values())} error(s) recorded")
        return 0
    baseline = Counter(line for line in baseline_path.read_text().splitlines() if line)
    new = current - baseline
    print(f"mypy: {sum(current.values())} error(s), baseline {sum(baseline.values())}, new {sum(new.values())}")
    for line in sorted(new.elements()):
        print(f"NEW  {line}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
