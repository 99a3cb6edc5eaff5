"""Benchmark: `pinner check` on a fresh project of 10 and of 50 targets, every target generated.

Offline: the targets are copies of the shipped example's a100 target (its lock entry renamed,
so nothing is resolved), rendered with `pinner generate --frozen`; then `pinner check` runs as a
pre-commit hook does, a new process each time. Prints the median and best wall time and the
median CPU time (user + system: what a loaded shared machine inflates least); asserts nothing
(budgets: 100 ms for 10 targets, 150 ms for 50, on the 2-core development machine).

    python benchmarks/bench_check.py [--runs 15] [--targets 10 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "llm-service"
BIN = Path(sys.executable).parent
# as installed: compiled modules are written once and read after (the warm-up run writes them)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def project(root: Path, count: int) -> Path:
    """A project of `count` targets like the example's a100, locked (offline) and generated."""
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.load.matrix import load_matrix
    from pinner.lock.fingerprint import input_digests, knowledge_digest
    from pinner.lock.lockfile import dump_lock, new_lock, read_lock

    root.mkdir(parents=True)
    shutil.copy(EXAMPLE / "requirements.in", root / "requirements.in")
    tables = "".join(f'\n[targets.t{i:02}]\ngpu = "A100"\ncuda = "auto"\n' for i in range(count))
    defaults = '[defaults]\npython = "3.11"\nrequirements = ["requirements.in"]\n'
    (root / "pinner.toml").write_text(defaults + tables, encoding="utf-8")
    matrix = load_matrix(root / "pinner.toml", root)
    (a100,) = [
        t for t in read_lock(EXAMPLE / "pinner.lock").targets if t.plan.target.name == "a100"
    ]
    digest = knowledge_digest()
    entries, inputs, details = [], {}, {}
    for target in matrix.targets:
        plan = dataclasses.replace(a100.plan, target=target)
        both = input_digests(dataclasses.asdict(target), root, digest)
        inputs[target.name], details[target.name] = both
        entries.append(dataclasses.replace(a100, plan=plan, inputs=both[0]))
    lock = new_lock(entries, load_knowledge().as_of)
    (root / "pinner.lock").write_text(dump_lock(lock, inputs, details), encoding="utf-8")
    run([str(BIN / "pinner"), "generate", "--frozen"], root)
    return root


def run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--targets", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()
    python = [sys.executable, "-c", "pass"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            (
                "python -c pass (interpreter start)",
                [run(python, Path(tmp)) for _ in range(args.runs)],
            )
        )
        for count in args.targets:
            root = project(Path(tmp) / f"t{count}", count)
            files = sum(1 for p in (root / "pinned").rglob("*") if p.is_file())
            check = [str(BIN / "pinner"), "check"]
            run(check, root)  # warm the file cache
            budget = 100 if count <= 10 else 150
            what = f"pinner check, {count} targets, {files} files (budget {budget} ms)"
            rows.append((what, [run(check, root) for _ in range(args.runs)]))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.runs} runs")
    print(f"{'':46} {'wall median':>11} {'wall best':>9} {'CPU median':>10}")
    for what, times in rows:
        wall = [w for w, _ in times]
        cpu = statistics.median(c for _, c in times)
        print(
            f"{what:46} {statistics.median(wall) * 1000:8.0f} ms {min(wall) * 1000:6.0f} ms"
            f" {cpu * 1000:7.0f} ms"
        )


if __name__ == "__main__":
    main()
