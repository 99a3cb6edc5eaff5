"""Benchmark: pinner's own overhead against the uv runs it drives, and how it scales.

    python benchmarks/bench_lock.py --quick    # everything but pip-compile
    python benchmarks/bench_lock.py            # + pip-compile, without and with hashes (minutes)

Input: benchmarks/llm-service.in (an LLM service, left unbounded). Every target plans a torch build
that PyPI ships, so nothing needs the PyTorch index. Measured in one run, goals printed next to
the figures (issue 16; the common path is one torch segment, nothing held back, no downloads):

- one target (rtx5090): `pinner lock` against a bare `uv pip compile` of the same requirements with
  the torch pins of pinner's plan (read from the lock), for the same Python and platform, hashes
  on; alternating runs, medians; uv's cache warm, pinner's result cache and lock removed before
  each run. Also a target whose plan is one build (one segment, no comparison run) and one whose
  fitting builds form two segments;
- two targets that share one resolution, and two that cannot (Python 3.11 and 3.12);
- `pinner generate` with nothing to do, `pinner explain`, `pinner check` on 10 generated targets;
- scale: a 10-target matrix of 5 distinct Python/torch combinations against its slowest single
  target, and a 50-target matrix (every target named in the progress lines);
- `pip-compile` on the same resolution (not with --quick).

Nothing is asserted; absolute times drift on shared machines, so read the ratios. The core count
and load are printed: the scale goals are for a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).parent
REQUIREMENTS = HERE / "llm-service.in"
BIN = Path(sys.executable).parent
PINNER = [str(BIN / "pinner")]
DEFAULTS = """\
[defaults]
python = "3.11"
platform = "linux-x86_64"
requirements = ["requirements.in"]
"""
PLATFORM = "x86_64-manylinux_2_28"
GPUS = {
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
# Five distinct Python/torch combinations (each a resolution of its own).
COMBOS = {
    "py310": {"python": "3.10"},
    "py311": {},
    "py312": {"python": "3.12"},
    "py313": {"python": "3.13"},
    "cu130": {"cuda": "13.0"},  # torch 2.14 from PyPI, a different build
}
GOALS = {
    "one": 1.15,  # pinner lock / bare uv, one target
    "generate": 0.3,  # s, no-op generate
    "explain": 0.3,  # s
    "check": 0.1,  # s, 10 targets (owned by the check work; printed for reference)
    "scale": 2.0,  # 10-target matrix / slowest single target
}


def toml_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def project(root: Path, targets: dict[str, dict[str, str]]) -> Path:
    """A project folder: the requirements and a matrix of `targets` (name -> keys)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REQUIREMENTS, root / "requirements.in")
    text = DEFAULTS
    for name, keys in targets.items():
        text += f"\n[targets.{name}]\n" + "".join(
            f"{k} = {toml_value(v)}\n"
            for k, v in {"gpu": GPUS.get(name, ""), "cuda": "auto", **keys}.items()
        )
    (root / "pinner.toml").write_text(text, encoding="utf-8")
    return root


CPU: list[float] = []  # CPU seconds (user + system) of each command run, with its children


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> tuple[float, str]:
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    CPU.append(_children_cpu() - before)
    if check and proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)} in {cwd}\n{proc.stderr[-3000:]}")
    return took, proc.stderr


def _children_cpu() -> float:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_lock(folder: Path) -> None:
    """Before each timed lock: no lock (nothing to keep) and no result cache."""
    (folder / "pinner.lock").unlink(missing_ok=True)
    shutil.rmtree(Path(os.environ["PINNER_CACHE_DIR"]) / "results", ignore_errors=True)


def pinner_lock(folder: Path) -> tuple[float, str]:
    fresh_lock(folder)
    return run([*PINNER, "lock"], folder)


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def bare_commands(folder: Path) -> list[list[str]]:
    """One `uv pip compile` per target of the lock: the user's requirements with the plan's torch
    pins (torch and its companions) as constraints, hashes on, for the target's Python."""
    lock = tomllib.loads((folder / "pinner.lock").read_text(encoding="utf-8"))
    commands = []
    for name, entry in lock["targets"].items():
        plan: dict[str, Any] = entry["plan"]
        pins = [f"torch=={plan['torch']['version']}", *plan["companions"]]
        (folder / f"torch-{name}.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        commands.append(
            [
                uv_bin(), "pip", "compile", "requirements.in", "-c", f"torch-{name}.txt",
                "--python-version", plan["target"]["python"], "--python-platform", PLATFORM,
                "--generate-hashes", "--quiet",
                "-o", f"bare-{name}.txt",  # a file: uv replaces its output by renaming over it
            ]
        )  # fmt: skip
    return commands


def bare_uv(folder: Path, commands: list[list[str]]) -> float:
    """The bare runs in sequence, as a user would type them; no earlier output seeds them."""
    total = 0.0
    for cmd in commands:
        Path(folder / cmd[-1]).unlink(missing_ok=True)
        total += run(cmd, folder)[0]
    return total


def versus(folder: Path, runs: int) -> tuple[list[float], list[float], float]:
    """(pinner lock times, bare uv times, CPU ratio), alternating, after one untimed run of each.
    The CPU ratio (user + system seconds, summed over the runs) is steadier than wall time on a
    machine others share."""
    pinner_lock(folder)
    commands = bare_commands(folder)
    bare_uv(folder, commands)
    ours, bare = [], []
    cpu_ours = cpu_bare = 0.0
    for _ in range(runs):
        ours.append(pinner_lock(folder)[0])
        cpu_ours += CPU[-1]
        mark = len(CPU)
        bare.append(bare_uv(folder, commands))
        cpu_bare += sum(CPU[mark:])
    return ours, bare, cpu_ours / cpu_bare if cpu_bare else float("nan")


def repeat(cmd: list[str], folder: Path, runs: int) -> list[float]:
    run(cmd, folder)  # untimed: caches warm
    return [run(cmd, folder)[0] for _ in range(runs)]


def median(values: list[float]) -> float:
    return statistics.median(values)


def stalls(values: list[float]) -> int:
    return sum(1 for v in values if v > 2 * median(values))


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def row(self, label: str, value: str, goal: str = "") -> None:
        line = f"{label:<56}{value:>9}"
        self.lines.append(line + (f"   {goal}" if goal else ""))
        print(self.lines[-1], flush=True)


def verdict(value: float, goal: float, unit: str = "") -> str:
    return f"goal <= {goal:g}{unit}: {'met' if value <= goal else 'NOT met'}"


def lock_cases(tmp: Path, runs: int, out: Report) -> None:
    cases = [
        ("one target, rtx5090 (default: 7 segments)", {"rtx5090": {}}, True),
        ("one target, one build (torch ==2.15.0)", {"rtx5090": {"torch": "==2.15.0"}}, False),
        ("one target, two segments (cuda 13.0)", {"rtx5090": {"cuda": "13.0"}}, False),
        ("two targets sharing one resolution", {"rtx5090": {}, "a100": {}}, False),
        ("two targets, Python 3.11 + 3.12", {"rtx5090": {}, "a100": {"python": "3.12"}}, False),
    ]
    for index, (label, targets, headline) in enumerate(cases):
        folder = project(tmp / f"case{index}", targets)
        ours, bare, cpu = versus(folder, runs)
        ratio = median(ours) / median(bare)
        out.row(f"pinner lock, {label}", f"{median(ours):.2f} s")
        out.row("  bare uv pip compile (plan's torch pins, hashes)", f"{median(bare):.2f} s")
        goal = verdict(ratio, GOALS["one"]) if headline else "(other path, printed)"
        out.row("  ratio pinner / bare uv, wall time", f"{ratio:.2f}", goal)
        out.row("  ratio pinner / bare uv, CPU time", f"{cpu:.2f}")
        out.row(
            "  runs over 2x their median (stalls), pinner / bare uv",
            f"{stalls(ours)}/{len(ours)} {stalls(bare)}/{len(bare)}",
            "(a stalled run, such as a 5 s DNS retry, hides in a median)",
        )


def command_times(tmp: Path, runs: int, out: Report) -> None:
    folder = project(tmp / "commands", {"rtx5090": {}})
    run([*PINNER, "generate"], folder)
    generate = repeat([*PINNER, "generate"], folder, max(runs, 5))
    explain = repeat([*PINNER, "explain", "--target", "rtx5090"], folder, max(runs, 5))
    out.row("pinner generate, nothing to do", f"{median(generate):.3f} s",
            verdict(median(generate), GOALS["generate"], " s"))  # fmt: skip
    out.row("pinner explain --target rtx5090", f"{median(explain):.3f} s",
            verdict(median(explain), GOALS["explain"], " s"))  # fmt: skip
    ten = project(tmp / "ten", {k: {"gpu": v} for k, v in GPUS.items()})
    run([*PINNER, "generate"], ten)
    check = repeat([*PINNER, "check"], ten, max(runs, 10))
    out.row("pinner check, 10 targets, 80 generated files", f"{median(check):.3f} s",
            f"goal <= {GOALS['check']:g} s (issue 16; the check work owns it)")  # fmt: skip


def scale(tmp: Path, runs: int, out: Report) -> None:
    singles, single_cpu = [], 0.0
    for combo, keys in COMBOS.items():
        folder = project(tmp / f"single-{combo}", {combo: {"gpu": "RTX 5090", **keys}})
        pinner_lock(folder)  # untimed: caches warm
        mark = len(CPU)
        singles.append(median([pinner_lock(folder)[0] for _ in range(runs)]))
        single_cpu += sum(CPU[mark:]) / runs
    names = list(GPUS.items())
    ten = {
        name: {"gpu": gpu, **list(COMBOS.values())[i % len(COMBOS)]}
        for i, (name, gpu) in enumerate(names)
    }
    folder = project(tmp / "scale10", ten)
    pinner_lock(folder)
    mark = len(CPU)
    matrix = median([pinner_lock(folder)[0] for _ in range(runs)])
    matrix_cpu = sum(CPU[mark:]) / runs
    slowest = max(singles)
    out.row("slowest single target of the 5 combinations", f"{slowest:.2f} s")
    out.row("pinner lock, 10 targets, 5 combinations", f"{matrix:.2f} s")
    out.row("  ratio 10 targets / slowest single target", f"{matrix / slowest:.2f}",
            verdict(matrix / slowest, GOALS["scale"]) + f" ({os.cpu_count()} cores)")  # fmt: skip
    out.row("  CPU: 10 targets / the 5 single targets together", f"{matrix_cpu / single_cpu:.2f}",
            f"({matrix_cpu:.1f} s / {single_cpu:.1f} s CPU: on {os.cpu_count()} idle cores "
            f">= {matrix_cpu / (os.cpu_count() or 1):.1f} s)")  # fmt: skip
    fifty = {
        f"{name}-{combo}": {"gpu": gpu, **keys}
        for name, gpu in names
        for combo, keys in COMBOS.items()
    }
    folder = project(tmp / "scale50", fifty)
    took, stderr = pinner_lock(folder)
    locked = "\n".join(line for line in stderr.splitlines() if line.startswith("locked "))
    named = sum(1 for name in fifty if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", locked))
    out.row("pinner lock, 50 targets (warm cache)", f"{took:.2f} s")
    out.row("  targets named in the progress lines", f"{named}/{len(fifty)}")


def pip_compile(tmp: Path, hashes: bool, out: Report) -> None:
    folder = project(tmp / "piptools", {"rtx5090": {}})
    pinner_lock(folder)
    bare_commands(folder)
    cmd = [str(BIN / "pip-compile"), "--quiet", "--no-header", "requirements.in",
           "-c", "torch-rtx5090.txt", "-o", "compiled.txt"]  # fmt: skip
    # pip-compile reads pip's configuration; ignore this machine's so it sees PyPI as uv does
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    for flags in ([], ["--generate-hashes"]) if hashes else ([],):
        (folder / "compiled.txt").unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run([*cmd, *flags], cwd=folder, env=env, check=True, capture_output=True)
        label = "pip-compile (host Python), one target" + (" --generate-hashes" if flags else "")
        out.row(label, f"{time.perf_counter() - start:.2f} s")


def compile_pinner() -> None:
    """pinner as installed: pip compiles a package's modules to bytecode when it installs it. A
    checkout run with PYTHONDONTWRITEBYTECODE set (as some CI images do) would compile every
    module from source on every run instead, 0.15 s of each timed run that no user pays."""
    import compileall

    import pinner

    compileall.compile_dir(str(Path(pinner.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip pip-compile")
    parser.add_argument("--only", choices=("lock", "commands", "scale"), help="one part only")
    args = parser.parse_args()
    index = os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or "PyPI"
    version = subprocess.run(
        [uv_bin(), "--version"], capture_output=True, text=True, check=False
    ).stdout
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"input: {REQUIREMENTS.name}; index: {index}; {version.strip()}; {os.cpu_count()} cores "
        f"(load {load:.1f} at start); {args.runs} runs, medians"
    )
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    compile_pinner()
    out = Report()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PINNER_CACHE_DIR"] = str(Path(tmp) / "cache")  # pinner's own, warmed here
        if args.only in (None, "lock"):
            lock_cases(Path(tmp), args.runs, out)
        if args.only in (None, "commands"):
            command_times(Path(tmp), args.runs, out)
        if args.only in (None, "scale"):
            scale(Path(tmp), max(1, args.runs // 2), out)
        if args.only is None and not args.quick:
            pip_compile(Path(tmp), hashes=True, out=out)


if __name__ == "__main__":
    main()
