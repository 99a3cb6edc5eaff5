"""Benchmark: `pinner lock` vs bare `uv pip compile` and `pip-compile`, and `pinner check` on a
10-target matrix. Everything is measured in the same run, on the same input; ratios are printed.

    python benchmarks/bench_lock.py            # full run (pip-compile with hashes takes minutes)
    python benchmarks/bench_lock.py --quick    # skip `pip-compile --generate-hashes`

Input: benchmarks/llm-service.in (an LLM service; shared/bench/llm-service.in). Targets rtx5090 and
a100 from the presets: both plan torch 2.15.0 from PyPI (Python 3.11, linux-x86_64), so the bare
equivalent is one `uv pip compile` per target with torch and torchvision pinned to the plan.
Warm cache: one untimed run of each command first. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
REQUIREMENTS = HERE / "llm-service.in"
BIN = Path(sys.executable).parent
MATRIX = """\
[defaults]
python = "3.11"
platform = "linux-x86_64"
requirements = ["requirements.in"]
"""
TARGETS = {"rtx5090": "RTX 5090", "a100": "A100"}
TEN = {
    "rtx5090": "RTX 5090",
    "a100": "A100",
    "h100": "H100",
    "l4": "L4",
    "l40s": "L40S",
    "rtx4090": "RTX 4090",
    "rtx3090": "RTX 3090",
    "a10g": "A10G",
    "h200": "H200",
    "b200": "B200",
}


def project(root: Path, targets: dict[str, str], pythons: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REQUIREMENTS, root / "requirements.in")
    pythons = pythons or {}
    text = MATRIX + "".join(
        f'\n[targets.{k}]\ngpu = "{v}"\ncuda = "auto"\n'
        + (f'python = "{pythons[k]}"\n' if k in pythons else "")
        for k, v in targets.items()
    )
    (root / "pinner.toml").write_text(text, encoding="utf-8")
    return root


def fresh(folder: Path) -> None:
    """Remove the bare tools' output files: an existing one would seed their preferences."""
    for name in ("bare.txt", "compiled.txt"):
        (folder / name).unlink(missing_ok=True)


def timed(
    cmd: list[str], cwd: Path, runs: int, before: object = None, env: dict[str, str] | None = None
) -> list[float]:
    out = []
    for _ in range(runs):
        if callable(before):
            before()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
        out.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return out


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip pip-compile --generate-hashes")
    args = parser.parse_args()
    env_note = (
        os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or "uv default (PyPI)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = project(Path(tmp) / "two", TARGETS)
        pinner = [str(BIN / "pinner"), "lock"]
        drop_lock = lambda: (work / "pinner.lock").unlink(missing_ok=True)
        timed(pinner, work, 1, drop_lock)  # warm pinner's and uv's caches
        lock = work / "pinner.lock"
        pins = ["torch==2.15.0", "torchvision==0.29.2"]
        (work / "torch.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        uv = [
            uv_bin(),
            "pip",
            "compile",
            "requirements.in",
            "-c",
            "torch.txt",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--generate-hashes",
            "--quiet",
            "-o",
            "bare.txt",  # never /dev/null: uv replaces its output file by renaming over it
        ]
        os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
        clean = lambda: fresh(work)
        timed(uv, work, 1, clean)
        t_pinner = timed(pinner, work, args.runs, drop_lock)
        t_uv = [
            sum(timed(uv, work, 1, clean)) + sum(timed(uv, work, 1, clean))
            for _ in range(args.runs)
        ]
        # Two targets that cannot share a resolution (a100 on Python 3.12): no deduplication.
        mixed = project(Path(tmp) / "mixed", TARGETS, {"a100": "3.12"})
        drop_mixed = lambda: (mixed / "pinner.lock").unlink(missing_ok=True)
        (mixed / "torch.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        uv312 = [("3.12" if a == "3.11" else a) for a in uv]
        timed(pinner, mixed, 1, drop_mixed)
        clean_mixed = lambda: fresh(mixed)
        timed(uv312, mixed, 1, clean_mixed)
        t_pinner_mixed = timed(pinner, mixed, args.runs, drop_mixed)
        t_uv_mixed = [
            sum(timed(uv, mixed, 1, clean_mixed)) + sum(timed(uv312, mixed, 1, clean_mixed))
            for _ in range(args.runs)
        ]
        piptools = [
            str(BIN / "pip-compile"),
            "--quiet",
            "--no-header",
            "requirements.in",
            "-c",
            "torch.txt",
            "-o",
            "compiled.txt",
        ]
        # pip-compile reads pip's configuration; ignore this machine's (local mirrors, caps) so it
        # resolves against PyPI as uv does.
        pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        pip_env["PIP_CONFIG_FILE"] = os.devnull
        t_pc = timed(piptools, work, 1, clean, env=pip_env)
        t_pch = (
            []
            if args.quick
            else timed([*piptools, "--generate-hashes"], work, 1, clean, env=pip_env)
        )

        ten = project(Path(tmp) / "ten", TEN)
        subprocess.run([str(BIN / "pinner"), "generate"], cwd=ten, check=True, capture_output=True)
        timed([str(BIN / "pinner"), "check"], ten, 2)
        t_check = timed([str(BIN / "pinner"), "check"], ten, max(args.runs, 10))

    med = statistics.median
    print(
        f"input: {REQUIREMENTS.name}; index: {env_note}; {args.runs} runs, medians; lock: {lock.name}"
    )
    print(f"pinner lock (rtx5090 + a100, hashes, warm cache)   {med(t_pinner):7.2f} s")
    print(f"uv pip compile x2 (same pins, hashes, sequential)  {med(t_uv):7.2f} s")
    print(f"pinner lock, rtx5090 py3.11 + a100 py3.12          {med(t_pinner_mixed):7.2f} s")
    print(f"uv pip compile py3.11 + py3.12 (sequential)        {med(t_uv_mixed):7.2f} s")
    print(f"pip-compile (host Python, no hashes), one target   {med(t_pc):7.2f} s")
    if t_pch:
        print(f"pip-compile --generate-hashes, one target          {med(t_pch):7.2f} s")
    print(
        f"pinner check, 10 targets, 80 generated files       {med(t_check):7.3f} s  (budget 0.200 s)"
    )
    print()
    print(
        f"ratio pinner lock / uv pip compile x2               {med(t_pinner) / med(t_uv):6.2f}  (target <= 1.30)"
    )
    print(
        f"ratio, two Pythons (no shared resolution)           {med(t_pinner_mixed) / med(t_uv_mixed):6.2f}  (target <= 1.30)"
    )
    print(
        f"ratio pip-compile x2 / pinner lock                  {2 * med(t_pc) / med(t_pinner):6.1f}  (target >= 10)"
    )
    if t_pch:
        print(
            f"ratio pip-compile --generate-hashes x2 / pinner     {2 * med(t_pch) / med(t_pinner):6.1f}"
        )


if __name__ == "__main__":
    main()
