"""Lock the corpus of real projects' requirements (tests/data/projects/<name>/) with `pinner lock`
and, for comparison, with one bare `uv pip compile` for the same Python and platform; print a
table: the target, pinner's exit code, the torch it chose, the direct requirements it held back
(the lock's `held-back` findings), torch and the direct requirements whose version differs from
bare uv's,
and the time of each.

    python tools/real_projects.py                 # every project (real PyPI; minutes)
    python tools/real_projects.py --only peft     # one project (repeatable)

Every target of each project's pinner.toml is locked (`pinner lock --target`) and compared
with bare uv for that target's Python and platform. Each project is copied to a temporary folder first (the corpus stays as fetched). A project
folder with `requirements-<variant>.in` beside its `requirements.in` is locked once more with
that file in place of requirements.in (see the folder's SOURCE for why the variant exists).
Exit status: 0 when every pinner run ended without a traceback, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "data" / "projects"
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Row:
    project: str
    target: str = ""
    code: int = 0
    torch: str = ""
    held: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    pinner_s: float = 0.0
    uv_s: float = 0.0
    uv_code: int = 0
    error: str = ""
    uv_error: str = ""
    traceback: bool = False


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_names(path: Path, seen: set[Path] | None = None) -> list[str]:
    """The names of the requirement lines of a pip requirements file, in file order, following
    `-r`. Lines pinner would not evaluate (URLs without a name) are skipped."""
    seen = seen if seen is not None else set()
    if path in seen:
        return []
    seen.add(path)
    out: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += direct_names(path.parent / line.split(None, 1)[1], seen)
            continue
        if line.startswith("-") or "://" in line.split("@")[0]:
            continue  # options; bare URLs (the name is in the file name)
        match = NAME.match(line)
        if match and canonical(match.group(1)) not in out:
            out.append(canonical(match.group(1)))
    return out


def targets_of(matrix: Path) -> list[tuple[str, str, str]]:
    """(name, Python, uv's --python-platform) of each target of a matrix."""
    data = tomllib.loads(matrix.read_text(encoding="utf-8"))
    defaults = data.get("defaults", {})
    out = []
    for name, target in data["targets"].items():
        python = str(target.get("python", defaults.get("python", "3.11")))
        platform = str(target.get("platform", defaults.get("platform", "linux-x86_64")))
        out.append((name, python, f"{platform.removeprefix('linux-')}-manylinux_2_28"))
    return out


def run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, str, float]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout:.0f}s", time.monotonic() - start
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def uv_versions(text: str) -> dict[str, str]:
    """name -> version (or the URL) from `uv pip compile` output."""
    out = {}
    for raw in text.splitlines():
        line = raw.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonical(name.split("[")[0])] = version.split(";")[0].strip()
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            out[canonical(name.split("[")[0])] = url.strip()
    return out


def last_error(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    errors = [x for x in lines if "error" in x.lower()]
    return (errors or lines or [""])[0].strip()


def lock_project(
    folder: Path,
    variant: Path,
    label: str,
    target: tuple[str, str, str],
    tools: tuple[list[str], str],
    timeout: float,
) -> Row:
    pinner, uv = tools
    row = Row(project=label, target=target[0])
    with tempfile.TemporaryDirectory(prefix="pinner-real-") as tmp:
        work = Path(tmp) / folder.name
        shutil.copytree(folder, work)
        if variant.name != "requirements.in":
            shutil.copy(variant, work / "requirements.in")
        _, python, platform = target
        row.code, _, err, row.pinner_s = run(
            [*pinner, "lock", "--target", row.target], work, timeout
        )
        row.traceback = "Traceback (most recent call last)" in err
        if row.code != 0:
            row.error = last_error(err)
        locked: dict[str, str] = {}
        lock = work / "pinner.lock"
        if lock.exists():
            section = tomllib.loads(lock.read_text(encoding="utf-8"))["targets"].get(row.target)
            if section:
                locked = {canonical(p["name"]): p["version"] for p in section["packages"]}
                row.torch = locked.get("torch", "")
                row.held = [
                    f["message"].split(":")[0]
                    for f in section.get("findings", [])
                    if f.get("code") == "held-back"
                ]
        compile_ = [uv, "pip", "compile", "requirements.in", "--python-version", python]
        compile_ += ["--python-platform", platform, "--no-header", "--no-annotate", "--quiet"]
        row.uv_code, out, uv_err, row.uv_s = run(compile_, work, timeout)
        bare = uv_versions(out) if row.uv_code == 0 else {}
        if row.uv_code != 0:
            row.uv_error = last_error(uv_err)
        for name in ["torch", *direct_names(work / "requirements.in")]:
            mine, theirs = locked.get(name), bare.get(name)
            if mine and theirs and mine.split("+")[0] != theirs.split("+")[0]:
                entry = f"{name} {mine} (uv {theirs})"
                if entry not in row.differs:
                    row.differs.append(entry)
    return row


def table(rows: list[Row]) -> str:
    head = "| project | target | pinner exit | torch | held back | differs from bare uv | pinner s | uv s |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        uv = f"{r.uv_s:.1f}" if r.uv_code == 0 else f"{r.uv_s:.1f} (exit {r.uv_code})"
        lines.append(
            f"| {r.project} | {r.target} | {r.code}{' TRACEBACK' if r.traceback else ''} "
            f"| {r.torch or '-'} | {'; '.join(r.held) or '-'} | {'; '.join(r.differs) or '-'} "
            f"| {r.pinner_s:.1f} | {uv} |"
        )
    failed = [r for r in rows if r.error or r.uv_error]
    if failed:
        lines += ["", "errors (the first error line of each failed run):"]
        lines += [f"- {r.project} {r.target}: {r.error}" for r in failed if r.error]
        lines += [f"- {r.project} {r.target}, bare uv: {r.uv_error}" for r in failed if r.uv_error]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="a project folder name")
    parser.add_argument("--projects", type=Path, default=PROJECTS)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    args = parser.parse_args(argv)
    here = Path(sys.executable).parent
    uv = str(here / "uv") if (here / "uv").exists() else shutil.which("uv") or "uv"
    pinner = [sys.executable, "-m", "pinner"]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    rows = []
    for folder in sorted(p for p in args.projects.iterdir() if (p / "pinner.toml").exists()):
        if args.only and folder.name not in args.only:
            continue
        variants = [folder / "requirements.in", *sorted(folder.glob("requirements-*.in"))]
        for variant in variants:
            label = folder.name
            if variant.name != "requirements.in":
                label += f" ({variant.name})"
            for target in targets_of(folder / "pinner.toml"):
                row = lock_project(folder, variant, label, target, (pinner, uv), args.timeout)
                print(
                    f"{label} {row.target}: pinner exit {row.code} in {row.pinner_s:.1f}s, "
                    f"uv {row.uv_s:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
    print(table(rows))
    return 1 if any(r.traceback for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
