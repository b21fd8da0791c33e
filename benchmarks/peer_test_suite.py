"""l0-python 0.6.2's own test suite, run against this package: how much of 0.6.x we are a drop-in for.

Downloads the 0.6.2 sdist from PyPI (``pip download --no-binary :all:``), takes its ``tests/``
folder and runs it with pytest against *this* package (the ``l0`` importable here), then prints
the count per test module and every test that does not pass. The reasons for each remaining
difference are in ``docs/changes-from-0.6.md``.

    python benchmarks/peer_test_suite.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

SDIST = "l0-python==0.6.2"


def fetch_tests(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", "-d", str(directory), SDIST], check=True,
                   stderr=subprocess.DEVNULL)
    archive = next(directory.glob("l0_python-0.6.2.tar.gz"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name and m.isfile()]
        tar.extractall(directory, members=members, filter="data")
    source = next(directory.glob("l0_python-0.6.2/tests"))
    tests = directory / "tests"  # outside the sdist folder: its own `l0` must not shadow ours
    shutil.copytree(source, tests)
    return tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="folder to download into (kept afterwards)")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    tests = fetch_tests(directory)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "-rfEs", "-q", "-p", "no:cacheprovider",
         "-W", "ignore", "-o", "addopts="],
        capture_output=True, text=True, cwd=directory, env={**os.environ, "COLUMNS": "300"},
    )
    outcome = Counter()
    failing = []
    for line in proc.stdout.splitlines():
        match = re.match(r"(FAILED|ERROR|SKIPPED) (\S+)", line)
        if match:
            failing.append((match.group(1), match.group(2), line))
    summary = proc.stdout.strip().splitlines()[-1]
    for kind, count in re.findall(r"(\d+) (passed|failed|skipped|error)", summary):
        outcome[count] = int(kind)
    total = sum(outcome.values())
    passed = outcome["passed"]
    print(f"l0-python 0.6.2's test suite against this package: {passed} of {total} passed "
          f"({100 * passed / max(total, 1):.1f} %), {outcome['failed']} failed, "
          f"{outcome['skipped']} skipped, {outcome['error']} errors\n")
    print("| outcome | test | |")
    print("|---|---|---|")
    for kind, name, line in failing:
        if kind == "SKIPPED":  # "SKIPPED [1] path:line: reason"
            name, _, reason = line.split("] ", 1)[1].partition(": ")
        else:
            reason = line.split(" - ", 1)[1] if " - " in line else ""
        print(f"| {kind.lower()} | `{name.split('tests/')[-1]}` | {reason[:100]} |")


if __name__ == "__main__":
    main()
