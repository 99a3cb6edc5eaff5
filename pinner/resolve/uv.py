"""The uv engine: `uv pip compile` for the target's Python and platform, hashes on.

Routing without --extra-index-url: a generated pyproject.toml declares the PyTorch index with
`explicit = true` and pins each torch-family package to it through `[tool.uv.sources]` (sources
apply to direct dependencies only, hence the family is listed as direct pins). Extensions that PyPI
ships only as sdists (flash-attn, mamba-ssm) get `[[tool.uv.dependency-metadata]]` from pinner's
knowledge, so nothing is built to resolve them.

uv gets pinner's own files only (the user's requirements normalized, one PEP 508 line each),
`--no-config` and an allow-listed environment (pinner.resolve.environment), so no index option
or `UV_*` variable can bring a package from elsewhere; a mirror of the default index comes from
`PINNER_INDEX_URL` as `--default-index`. Its answer is read as PEP 751 (`--format pylock.toml`):
files, URLs and hashes, each file's source derived from its URL (pinner.resolve.answer); what
requires what comes from the packages' own metadata (pinner.resolve.graph).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.errors import NetworkError, ResolveError
from pinner.lock.fingerprint import sha256
from pinner.model import File
from pinner.resolve.answer import Indexes, Located, merge_files, read_pylock
from pinner.resolve.environment import resolver_environment
from pinner.resolve.job import INTERRUPTED, PLATFORMS, Job, ResolvedPin, stop_if_interrupted
from pinner.resolve.output import probe_index

if TYPE_CHECKING:
    from collections.abc import Callable

    # imported when the graph is read, while the files pass runs: not before uv starts
    from pinner.resolve.graph import Node

# The newest manylinux tag uv knows: the files pass lists every wheel up to it.
NEWEST_LINUX = {"linux-x86_64": "x86_64-manylinux_2_40", "linux-aarch64": "aarch64-manylinux_2_40"}
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


_FINDING = threading.Lock()  # find_uv_bin reads sysconfig, whose first use is not thread-safe


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        with _FINDING:
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
    # each index explicit (used only by the packages bound to it), never an extra index
    indexes = [("pytorch", job.torch_index, job.routed)] if job.torch_index else []
    indexes += [(name, url, packages) for name, url, _, packages in job.indexes]
    for name, url, _ in indexes:
        lines += [
            "",
            "[[tool.uv.index]]",
            f"name = {json.dumps(name)}",
            f"url = {json.dumps(url.rstrip('/') + '/')}",
            "explicit = true",
        ]
    if indexes:
        lines += ["", "[tool.uv.sources]"]
        lines += [
            f"{json.dumps(n)} = {{ index = {json.dumps(name)} }}"
            for name, _, names in indexes
            for n in names
        ]
    for name, version, requires in job.metadata:
        lines += [
            "",
            "[[tool.uv.dependency-metadata]]",
            f"name = {json.dumps(name)}",
            f"version = {json.dumps(version)}",
            "requires-dist = [" + ", ".join(json.dumps(r) for r in requires) + "]",
        ]
    return "\n".join(lines) + "\n"


def argv(job: Job, uv: str, work: Path, interpreter: str = "") -> list[str]:
    """The command line (pure, for tests). pinner writes every input file itself, and uv reads
    no configuration (`--no-config`): the indexes are pinner's to choose. `interpreter` (see
    `build_interpreter`) only spares uv its search for one."""
    cmd = [uv, "pip", "compile", str(work / "pyproject.toml"), str(work / "requirements.in")]
    cmd += [
        "-c",
        str(work / "constraints.txt"),
        "-o",
        str(work / "pylock.toml"),
        "--format",
        "pylock.toml",
        "--python-version",
        job.python,
        "--python-platform",
        PLATFORMS[job.platform],
        "--no-config",
        "--no-header",
        "--quiet",
    ]
    if job.mirror:
        cmd += ["--default-index", job.mirror]
    if job.upgrade:
        cmd.append("--upgrade")
    if job.offline:
        cmd.append("--offline")
    if job.no_deps:
        cmd.append("--no-deps")
    if interpreter:
        cmd += ["--python", interpreter]
    return cmd


def build_interpreter(python: str) -> str:
    """pinner's own interpreter when it is a CPython of the target's version, else "".

    uv resolves for `--python-version` and the platform given; an interpreter serves it only to
    build a source distribution's metadata, and it looks for one of that version on each run.
    Found through pyenv's shims, that search runs shell scripts and an interpreter query every
    time (0.1-0.3 s a run). pinner's own interpreter, of the same version, is the one the search
    would find or its equal, so naming it changes no answer; any other version leaves uv to its
    search.
    """
    import sys

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or version != python or not sys.executable:
        return ""
    return sys.executable


def job_key(job: Job) -> str:
    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in job.__dict__.items()}
    data.pop("offline")
    data.pop("target")  # identical jobs of different targets are resolved once
    data.pop("timeout")
    return sha256(json.dumps(data, sort_keys=True, default=str))[7:]


class UvResolver:
    name = "uv"

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        # told when a job's resolution has read the indexes (its network part is over)
        self.on_fetched: Callable[[Job], None] | None = None

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        key = job_key(job)
        saved = self.cache / "results" / f"{key}.json"
        if job.offline and saved.is_file():
            return _load_result(saved)
        if job.torch_index and not job.offline:
            probe_index(job.torch_index, job.target)
        # a work folder of this process's own: concurrent runs never share one
        work = Path(tempfile.mkdtemp(prefix=f"job-{key[:12]}-", dir=_mkdir(self.cache / "jobs")))
        try:
            (work / "pyproject.toml").write_text(pyproject(job), encoding="utf-8")
            (work / "requirements.in").write_text(
                "".join(r + "\n" for r in job.requirements), encoding="utf-8"
            )
            (work / "constraints.txt").write_text(
                "".join(c + "\n" for c in job.constraints), encoding="utf-8"
            )
            if job.preferences:
                (work / "pylock.toml").write_text(_preferences(job), encoding="utf-8")
            interpreter = build_interpreter(job.python)

            def command(run: Job) -> list[str]:
                return argv(run, uv_binary(), work, interpreter)

            if job.cache_first:  # a fraction of a network run, and no second client on it
                self._run_cache_first(job, command)
            else:
                self._run(job, command(job))
            if self.on_fetched is not None and job.files_pass:
                self.on_fetched(job)
            located = read_pylock((work / "pylock.toml").read_text(encoding="utf-8"), _indexes(job))
            if job.files_pass:  # the files of each chosen version, while the graph is read
                with ThreadPoolExecutor(max_workers=1) as pool:
                    files = pool.submit(self._every_file, job, located, work)
                    graph = _graph(job, located, self.cache)
                    located = files.result()
            else:
                graph = _graph(job, located, self.cache)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        pins = _with_graph(located, *graph)
        saved.parent.mkdir(parents=True, exist_ok=True)
        tmp = saved.with_name(f"{saved.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([_dump(p) for p in pins]), encoding="utf-8")
        tmp.replace(saved)
        return pins

    def _every_file(
        self, job: Job, located: tuple[Located, ...], work: Path
    ) -> tuple[Located, ...]:
        """The files of each locked version that an installer on the target may pick.

        The resolution is made for manylinux_2_28 (what the target is promised), but pip on a
        newer glibc prefers a newer manylinux wheel of the same version (cryptography ships
        manylinux_2_28 and _2_34 wheels), whose hash the lock must carry too. A second run with
        every version pinned and no dependencies lists the files up to the newest manylinux tag.
        It reads the index pages the resolution has just read, so it first runs on uv's cache
        alone (`--offline`, a fraction of the time), and on the network only when the cache
        lacks something (a wheel's metadata not read yet).
        """
        named = {name for name, *_ in job.indexes}
        pinned = [p for p in located if p.source in ("default", "pytorch", *named)]
        if not pinned:
            return located
        routed = set(job.routed) | set(job.bound)
        second = replace(
            job,
            direct=tuple(f"{p.name}=={p.version}" for p in pinned if p.name in routed),
            requirements=tuple(f"{p.name}=={p.version}" for p in pinned if p.name not in routed),
            constraints=(),
            preferences=(),
            upgrade=False,
            metadata=tuple(m for m in job.metadata if m[0] in {p.name for p in pinned}),
        )
        folder = work / "files"
        folder.mkdir()
        (folder / "pyproject.toml").write_text(pyproject(second), encoding="utf-8")
        (folder / "requirements.in").write_text(
            "".join(r + "\n" for r in second.requirements), encoding="utf-8"
        )
        (folder / "constraints.txt").write_text("", encoding="utf-8")

        def command(run: Job) -> list[str]:
            cmd = argv(run, uv_binary(), folder, build_interpreter(job.python))
            cmd[cmd.index("--python-platform") + 1] = NEWEST_LINUX[job.platform]
            return [*cmd, "--no-deps"]

        self._run_cache_first(second, command)
        more = read_pylock((folder / "pylock.toml").read_text(encoding="utf-8"), _indexes(job))
        return merge_files(job.target, located, more)

    def _run_cache_first(self, job: Job, command: Callable[[Job], list[str]]) -> None:
        """Run `job` on uv's cache alone (`--offline`) first, and on the network only when the
        cache lacks something (an offline job: the cache alone)."""
        cached = replace(job, offline=True)
        try:
            self._run(cached, command(cached))
        except (ResolveError, NetworkError):
            if job.offline:
                raise
            self._run(job, command(job))

    def _run(self, job: Job, cmd: list[str]) -> None:
        env = resolver_environment()
        last = ""
        for attempt in range(ATTEMPTS):
            stop_if_interrupted()
            try:
                proc = subprocess.run(
                    cmd, cwd=job.root, env=env, capture_output=True, text=True, check=False,
                    timeout=job.timeout or None,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                msg = (
                    f"target {job.target}: uv did not finish within --timeout {job.timeout:g} s"
                    "\n  fix: raise --timeout, or check the indexes answer"
                )
                raise NetworkError(msg) from None
            if proc.returncode == 0:
                return
            stop_if_interrupted()  # killed by the interrupt, not a failed resolution
            last = proc.stderr.strip()
            if not any(t.lower() in last.lower() for t in TRANSIENT) or job.offline:
                break
            INTERRUPTED.wait(1.5 * (attempt + 1))
        raise _error(job, last)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _indexes(job: Job) -> Indexes:
    return Indexes(
        target=job.target,
        torch=job.torch_index,
        torch_committed=job.torch_committed or job.torch_index,
        mirror=job.mirror,
        named=tuple((name, run, committed) for name, run, committed, _ in job.indexes),
        bound=tuple(job.bound.items()),
        urls=frozenset(job.urls),
        root=job.root,
    )


def _preferences(job: Job) -> str:
    """uv keeps the versions of an existing output file: the old lock's, as a pylock."""
    lines = ['lock-version = "1.0"', 'created-by = "pinner"', ""]
    for name, version in job.preferences:
        lines += [
            "[[packages]]",
            f"name = {json.dumps(name)}",
            f"version = {json.dumps(version)}",
            "",
        ]
    return "\n".join(lines)


def _graph(
    job: Job, located: tuple[Located, ...], cache: Path
) -> tuple[dict[str, Node], dict[str, set[str]]]:
    """Each package's Requires-Dist (its own metadata, or pinner's for an sdist-only
    extension), and what requires it."""
    from pinner.load.requirements import marker_environment
    from pinner.resolve.graph import Node, fetch_metadata, parents, requires_of

    wanted = {}
    for p in located:
        # a file's metadata is read where this run found the file (a mirror, say)
        wheels = [
            (f, u) for f, u in zip(p.files, p.fetched, strict=True) if f.name.endswith(".whl")
        ]
        if wheels and wheels[0][0].hashes:
            wanted[p.name] = (wheels[0][1], wheels[0][0].hashes[0])
    texts = fetch_metadata(wanted, cache, offline=job.offline)
    static = {name: requires for name, _, requires in job.metadata}
    nodes = {}
    for p in located:
        text = texts.get(p.name)
        if p.name in static:
            nodes[p.name] = Node(name=p.name, requires=static[p.name], known=True)
        else:
            nodes[p.name] = Node(
                name=p.name, requires=requires_of(text) if text else (), known=text is not None
            )
    env = marker_environment(job.python, job.platform)
    return nodes, parents(nodes, job.roots, env)


def _with_graph(
    located: tuple[Located, ...], nodes: dict[str, Node], via: dict[str, set[str]]
) -> tuple[ResolvedPin, ...]:
    """Each package with what requires it."""
    return tuple(
        ResolvedPin(
            name=p.name, version=p.version, files=p.files, source=p.source, url=p.url,
            via=tuple(sorted(via.get(p.name, ()))), requires=nodes[p.name].requires,
        )
        for p in located
    )  # fmt: skip


def _dump(p: ResolvedPin) -> dict[str, object]:
    """`dataclasses.asdict(p)`, written out: asdict deep-copies every leaf (10 ms a lock)."""
    return {
        "name": p.name,
        "version": p.version,
        "files": [{"name": f.name, "hashes": list(f.hashes), "url": f.url} for f in p.files],
        "source": p.source,
        "url": p.url,
        "via": list(p.via),
        "requires": list(p.requires),
    }


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
    if job.constraints:  # what pinner added ("pinner-job" is the project pinner hands uv)
        added = ", ".join(job.constraints[:6]) + (" ..." if len(job.constraints) > 6 else "")
        hint += f"\n  pinner-job is pinner's plan for this target; it constrains: {added}"
    return ResolveError(f"target {job.target}: no solution (uv pip compile):\n    {text}{hint}")


def _load_result(path: Path) -> tuple[ResolvedPin, ...]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        ResolvedPin(
            name=d["name"],
            version=d["version"],
            files=tuple(
                File(name=f["name"], hashes=tuple(f["hashes"]), url=f["url"]) for f in d["files"]
            ),
            source=d["source"],
            url=d["url"],
            via=tuple(d["via"]),
            requires=tuple(d.get("requires", ())),
        )
        for d in data
    )
