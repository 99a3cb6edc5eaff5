"""The uv engine: `uv pip compile` for the target's Python and platform, hashes on.

Routing without --extra-index-url: a generated pyproject.toml declares the PyTorch index with
`explicit = true` and pins each torch-family package to it through `[tool.uv.sources]` (sources
apply to direct dependencies only, hence the family is listed as direct pins). Extensions that PyPI
ships only as sdists (flash-attn, mamba-ssm) get `[[tool.uv.dependency-metadata]]` from pinner's
knowledge, so nothing is built to resolve them. uv runs in the project root, so the project's and
the user's uv configuration (a mirror as default index, say) apply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from pinner.errors import NetworkError, ResolveError
from pinner.fingerprint import sha256
from pinner.resolve import PLATFORMS, Job, ResolvedPin, canonical
from pinner.resolve.output import parse_compiled, probe_index

TRANSIENT = (
    "error sending request",
    "dns error",
    "timed out",
    "connection reset",
    "Connection refused",
    "502 Bad Gateway",
    "503 Service",
    "504 Gateway",
    "tcp connect",
)
ATTEMPTS = 3


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            msg = "uv is not installed; reinstall pinner (it depends on uv) or use --resolver pip-tools"
            raise ResolveError(msg) from None
        return found


def pyproject(job: Job) -> str:
    """The generated project: direct pins, the PyTorch index, sources, static metadata."""
    lines = [
        "[project]",
        'name = "pinner-job"',
        'version = "0"',
        f'requires-python = ">={job.python}"',
        "dependencies = [",
    ]
    lines += [f"  {json.dumps(d)}," for d in job.direct]
    lines.append("]")
    if job.torch_index:
        lines += [
            "",
            "[[tool.uv.index]]",
            'name = "pytorch"',
            f"url = {json.dumps(job.torch_index + '/')}",
            "explicit = true",
            "",
            "[tool.uv.sources]",
        ]
        lines += [f'{json.dumps(n)} = {{ index = "pytorch" }}' for n in job.routed]
    for name, version, requires in job.metadata:
        lines += [
            "",
            "[[tool.uv.dependency-metadata]]",
            f"name = {json.dumps(name)}",
            f"version = {json.dumps(version)}",
            "requires-dist = [" + ", ".join(json.dumps(r) for r in requires) + "]",
        ]
    return "\n".join(lines) + "\n"


def argv(job: Job, uv: str, work: Path) -> list[str]:
    """The command line (pure, for tests)."""
    cmd = [uv, "pip", "compile", str(work / "pyproject.toml")]
    cmd += [str(f) for f in job.requirement_files]
    cmd += [
        "-c",
        str(work / "constraints.txt"),
        "-o",
        str(work / "resolved.txt"),
        "--python-version",
        job.python,
        "--python-platform",
        PLATFORMS[job.platform],
        "--generate-hashes",
        "--emit-index-annotation",
        "--no-header",
        "--quiet",
    ]
    if job.upgrade:
        cmd.append("--upgrade")
    if job.offline:
        cmd.append("--offline")
    return cmd


def job_key(job: Job) -> str:
    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in job.__dict__.items()}
    data["requirement_files"] = [
        [str(f), f.read_text(encoding="utf-8")] for f in job.requirement_files
    ]
    data.pop("offline")
    data.pop("target")  # identical jobs of different targets are resolved once
    return sha256(json.dumps(data, sort_keys=True, default=str))[7:]


class UvResolver:
    name = "uv"

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        key = job_key(job)
        saved = self.cache / "results" / f"{key}.json"
        if job.offline and saved.is_file():
            return _load_result(saved)
        if job.torch_index and not job.offline:
            probe_index(job.torch_index, job.target)
        work = self.cache / "jobs" / key[:20]
        work.mkdir(parents=True, exist_ok=True)
        (work / "pyproject.toml").write_text(pyproject(job), encoding="utf-8")
        (work / "constraints.txt").write_text(
            "".join(c + "\n" for c in job.constraints), encoding="utf-8"
        )
        (work / "resolved.txt").write_text(
            "".join(f"{n}=={v}\n" for n, v in job.preferences), encoding="utf-8"
        )
        self._run(job, argv(job, uv_binary(), work))
        pins = parse_compiled((work / "resolved.txt").read_text(encoding="utf-8"))
        saved.parent.mkdir(parents=True, exist_ok=True)
        tmp = saved.with_suffix(".tmp")
        tmp.write_text(json.dumps([p.__dict__ for p in pins]), encoding="utf-8")
        tmp.replace(saved)
        return pins

    def _run(self, job: Job, cmd: list[str]) -> None:
        env = dict(os.environ)
        env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # never fetch an interpreter to resolve
        last = ""
        for attempt in range(ATTEMPTS):
            proc = subprocess.run(
                cmd, cwd=job.root, env=env, capture_output=True, text=True, check=False
            )
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
            if not any(t.lower() in last.lower() for t in TRANSIENT) or job.offline:
                break
            time.sleep(1.5 * (attempt + 1))
        raise _error(job, last)


def _error(job: Job, stderr: str) -> ResolveError | NetworkError:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    text = "\n    ".join(lines[-12:]) or "uv failed without a message"
    if job.offline:
        return ResolveError(
            f"target {job.target}: offline resolution failed: the lock does not cover the "
            f"current inputs and uv's cache lacks what is needed:\n    {text}\n  "
            "fix: run once without --offline"
        )
    if any(t.lower() in stderr.lower() for t in TRANSIENT):
        return NetworkError(f"target {job.target}: an index could not be reached:\n    {text}")
    hint = ""
    if job.torch_index and "not found in the package registry" in stderr:
        missing = [n for n in job.routed if f"{n} was not found" in stderr]
        if missing:
            hint = (
                f"\n  the PyTorch index {job.torch_index} does not carry {', '.join(missing)};"
                " point torch-index-url at an index (or mirror) that does"
            )
    return ResolveError(f"target {job.target}: no solution (uv pip compile):\n    {text}{hint}")


def _load_result(path: Path) -> tuple[ResolvedPin, ...]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        ResolvedPin(
            name=canonical(d["name"]),
            version=d["version"],
            hashes=tuple(d["hashes"]),
            index=d["index"],
            via=tuple(d["via"]),
        )
        for d in data
    )
