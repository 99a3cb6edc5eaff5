"""The pip-tools engine: pip-compile, for teams that standardise on it.

pip-compile resolves for the interpreter that runs it, so a target whose Python or platform differs
from the host is refused (never a wrong lock). pip-compile has no per-package index routing: the
torch build's own files (and its companions', pulled or not) are added with
`--find-links <index>/<package>/` (each a page of one project, carrying local-tagged versions
only that index has); an index build that pulls CUDA libraries cannot be routed that way, and is
refused with a pointer to `--resolver uv`, as is a lock whose routed packages got files from the
default index too (pip-compile merges the candidates; the hashes tell).
Extensions PyPI ships only as sdists are replaced by their runtime requirements, since
pip-compile would have to build them.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pinner.errors import ResolveError
from pinner.model import File
from pinner.resolve.environment import resolver_environment
from pinner.resolve.job import (
    Job,
    ResolvedPin,
    canonical,
    family_closure,
    is_family_name,
    stop_if_interrupted,
)
from pinner.resolve.output import page_hashes, parse_compiled, probe_index
from pinner.resolve.resolve import normalize_via
from pinner.resolve.uv import job_key

MACHINES = {
    "x86_64": "linux-x86_64",
    "amd64": "linux-x86_64",
    "aarch64": "linux-aarch64",
    "arm64": "linux-aarch64",
}


def host() -> tuple[str, str]:
    python = "%d.%d" % sys.version_info[:2]  # noqa: UP031
    machine = (
        MACHINES.get(platform.machine().lower(), platform.machine())
        if sys.platform == "linux"
        else sys.platform
    )
    return python, machine


def refuse_foreign(job: Job) -> None:
    python, machine = host()
    if (job.python, job.platform) != (python, machine):
        msg = (
            f"target {job.target}: pip-compile resolves for the interpreter running pinner "
            f"(Python {python}, {machine}), but the target is Python {job.python}, {job.platform}; "
            "it would write a wrong lock.\n  fix: use --resolver uv (resolves for any Python and "
            "platform), or run pinner with a matching interpreter"
        )
        raise ResolveError(msg)


def requirements_in(job: Job, extensions: set[str]) -> str:
    """pinner's normalized requirements, plus pinner's direct pins; sdist-only extensions
    replaced by their runtime requirements."""
    lines = [
        text
        for text in job.requirements
        if canonical(re.split(r"[<>=!~ ;\[@]", text)[0]) not in extensions
    ]
    optional = set(job.optional)  # routed with --find-links only; pulled when required
    lines += [d for d in job.direct if canonical(d.split("==")[0]) not in optional]
    for _name, _version, requires in job.metadata:
        lines += list(requires)
    return "".join(line + "\n" for line in lines)


class PipToolsResolver:
    name = "pip-tools"

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        refuse_foreign(job)
        try:
            import piptools  # noqa: F401
        except ImportError:
            msg = (
                "pip-tools is not installed: pip install 'pinner[pip-tools]', or use --resolver uv"
            )
            raise ResolveError(msg) from None
        if job.indexes:
            msg = (
                f"target {job.target}: [indexes] binds packages to an index by an explicit "
                "source, which pip-compile cannot do\n  fix: use --resolver uv"
            )
            raise ResolveError(msg)
        if job.torch_index and not job.offline:
            probe_index(job.torch_index, job.target)
        extensions = {name for name, _, _ in job.metadata}
        # a work folder of this process's own: concurrent runs never share one
        jobs = self.cache / "jobs"
        jobs.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"pt-{job_key(job)[:12]}-", dir=jobs))
        try:
            return self._resolve_in(job, work, extensions)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _resolve_in(self, job: Job, work: Path, extensions: set[str]) -> tuple[ResolvedPin, ...]:
        out = _write_inputs(job, work, extensions)
        # --find-links only adds candidates, so the pages of the plan's torch-family pins (a
        # torchvision that a requirement pulls, say) are offered too, required or not.
        pinned = [canonical(c.split("==")[0]) for c in job.constraints if "==" in c]
        routed = (
            set(job.routed) | {n for n in pinned if is_family_name(n)} if job.torch_index else set()
        )
        stop_if_interrupted()
        proc = subprocess.run(
            _command(job, work, out, routed),
            cwd=job.root,
            capture_output=True,
            text=True,
            check=False,
            env=resolver_environment(),
        )
        if proc.returncode != 0:
            stop_if_interrupted()  # killed by the interrupt, not a failed resolution
            tail = "\n    ".join(proc.stderr.strip().splitlines()[-12:])
            msg = f"target {job.target}: no solution (pip-compile):\n    {tail}"
            raise ResolveError(msg)
        pins = tuple(
            ResolvedPin(
                name=p.name,
                version=p.version,
                files=(File(name="", hashes=p.hashes),),  # pip-compile names no files
                source="pytorch" if p.name in routed else "default",
                via=normalize_via(p.via, job.root),
            )
            for p in parse_compiled(out.read_text(encoding="utf-8"))
        )
        _refuse_mixed_indexes(job, pins, routed)
        return pins


def _write_inputs(job: Job, work: Path, extensions: set[str]) -> Path:
    """requirements.in (with the constraints), and the old pins as pip-compile's output file."""
    work.mkdir(parents=True, exist_ok=True)
    constraints = "".join(
        c + "\n"
        for c in job.constraints
        if canonical(c.split("=")[0].rstrip("<>!~")) not in extensions
    )
    (work / "constraints.txt").write_text(constraints, encoding="utf-8")
    (work / "requirements.in").write_text(
        requirements_in(job, extensions) + f"-c {work / 'constraints.txt'}\n", encoding="utf-8"
    )
    out = work / "resolved.txt"
    out.write_text(
        "".join(f"{n}=={v}\n" for n, v in job.preferences if n not in extensions),
        encoding="utf-8",
    )
    return out


def _command(job: Job, work: Path, out: Path, routed: set[str]) -> list[str]:
    cmd = [
        sys.executable, "-m", "piptools", "compile", "--quiet", "--no-header",
        "--generate-hashes", "--allow-unsafe", "--strip-extras", "--no-emit-index-url",
        "--no-emit-find-links", "-o", str(out), str(work / "requirements.in"),
    ]  # fmt: skip
    for name in sorted(routed):
        cmd += ["--find-links", f"{job.torch_index}/{name}/"]
    if job.mirror:
        cmd += ["--index-url", job.mirror]
    if job.upgrade:
        cmd.append("--upgrade")
    if job.offline:
        cmd.append("--no-index")
    return cmd


def _refuse_mixed_indexes(job: Job, pins: tuple[ResolvedPin, ...], routed: set[str]) -> None:
    """pip-compile merges --find-links candidates with the default index's: refuse a lock that
    took a routed name's files from the default index, or left a CUDA library unrouted."""
    if not job.torch_index:
        return
    if not job.offline:
        for p in pins:
            if p.name not in routed:
                continue
            foreign = sorted(set(p.hashes) - page_hashes(f"{job.torch_index}/{p.name}/"))
            if foreign:
                msg = (
                    f"target {job.target}: {p.name} {p.version} must come from the PyTorch "
                    f"index {job.torch_index}, but pip-compile also took files from another "
                    f"index ({', '.join(h[:19] + '...' for h in foreign)}); it cannot keep the "
                    "indexes apart.\n  fix: use --resolver uv"
                )
                raise ResolveError(msg)
    unrouted = sorted(n for n in family_closure(pins) if is_family_name(n) and n not in routed)
    if unrouted:
        msg = (
            f"target {job.target}: torch {job.direct[0].split('==')[1]} from {job.torch_index} "
            f"pulls {', '.join(unrouted)}, which must come from that index too; pip-compile "
            "cannot route them there without --extra-index-url.\n  fix: use --resolver uv"
        )
        raise ResolveError(msg)
