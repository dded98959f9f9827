"""`make coverage`: line and branch coverage of the test suite, `kpi` subprocesses included,
with the suite split into shards that run side by side; then the total and htmlcov/.

    .venv/bin/python scripts/coverage_shards.py                   # the whole suite, 3 shards
    .venv/bin/python scripts/coverage_shards.py --jobs 1 tests/test_cli.py

One `coverage run -m pytest` over the whole suite took well over an hour on a loaded two-core
machine (every `kpi` child is measured too); shards cut the wall time by the cores they find
idle. Each shard is a pytest session of its own over some of the test files (their sizes
balanced), its output in build/coverage/shard-N.log; the data files of all shards and their
children are combined at the end. A failing shard still gives its coverage; the exit status
says it failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "build" / "coverage"
COVERAGE = str(Path(sys.executable).parent / "coverage")


def shards(targets: list[str], jobs: int) -> list[list[str]]:
    """`targets` (test files or node ids) in at most `jobs` groups of about equal size, the
    largest file first into the smallest group; each group in the suite's order."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(targets))))]
    sizes = [0] * len(groups)

    def size(target: str) -> int:
        path = ROOT / target.split("::", 1)[0]
        return path.stat().st_size if path.is_file() else 1

    for target in sorted(targets, key=size, reverse=True):
        smallest = sizes.index(min(sizes))
        groups[smallest].append(target)
        sizes[smallest] += size(target)
    return [sorted(g) for g in groups if g]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=3, help="shards run side by side")
    parser.add_argument("tests", nargs="*", help="test files or node ids (default: all)")
    args = parser.parse_args(argv)
    targets = args.tests or sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
    )
    env = {**os.environ, "COVERAGE_FILE": str(ROOT / ".coverage")}
    subprocess.run([COVERAGE, "erase"], cwd=ROOT, env=env, check=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    running = []
    for number, group in enumerate(shards(targets, args.jobs), 1):
        log = LOGS / f"shard-{number}.log"
        print(f"shard {number}: {len(group)} test file(s) -> {log.relative_to(ROOT)}", flush=True)
        command = [COVERAGE, "run", "-m", "pytest", "-q", "-p", "no:cacheprovider", *group]
        with log.open("w") as out:
            running.append((number, log, subprocess.Popen(command, cwd=ROOT, env=env, stdout=out)))
    failed = []
    for number, log, process in running:
        if process.wait() != 0:
            failed.append(number)
        summary = log.read_text(errors="replace").rstrip().rsplit("\n", 1)[-1]
        print(f"shard {number}: {summary}", flush=True)
    subprocess.run([COVERAGE, "combine", "-q"], cwd=ROOT, env=env, check=True)
    subprocess.run([COVERAGE, "report"], cwd=ROOT, env=env, check=True)
    subprocess.run([COVERAGE, "html", "-q"], cwd=ROOT, env=env, check=True)
    if failed:
        print(f"tests failed in shard(s) {failed}: see {LOGS.relative_to(ROOT)}/", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
