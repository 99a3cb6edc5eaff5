"""pinner's own overhead (issue 16): what runs ahead, what is shared, what is skipped.

No timings are asserted: each test proves a run started ahead, a run not made, a cache read
instead of a parse, or a command path that never reaches typer's parsing, and that the results
are what the slower path gives. benchmarks/bench_lock.py prints the figures.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pinner.errors import ResolveError
from pinner.resolve.job import Job, ResolvedPin
from pinner.resolve.shared import Shared
from tests.support.graph import GRAPH_MATRIX, GraphWheels, build_graph_wheels, serve_graph
from tests.support.index import LocalIndex
from tests.support.projects import CPU_MATRIX, Project, make_project

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.projects import Run, Wheelhouse

pytest_plugins = ("tests.conftest_lock",)


def make_job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "target": "a",
        "python": "3.11",
        "platform": "linux-x86_64",
        "root": Path("/project"),
        "requirements": ("demo-app",),
        "direct": (),
        "constraints": (),
        "torch_index": "",
        "torch_committed": "",
        "routed": (),
        "metadata": (),
        "preferences": (),
        "upgrade": True,
        "offline": False,
        "files_pass": False,
    }
    return Job(**(values | fields))


class Counting:
    """A resolver that records which thread ran each job."""

    name = "fake"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        self.calls.append((job.target, threading.current_thread().name))
        if self.fail:
            msg = f"target {job.target}: no solution"
            raise ResolveError(msg)
        return (ResolvedPin(name="demo-app", version="1.0", files=(), source="default"),)


# --- runs started ahead, once per lock run --------------------------------------------------------


def test_a_job_started_ahead_runs_once_for_every_target_that_asks() -> None:
    inner = Counting()
    with Shared(inner) as shared:
        shared.prefetch(make_job(target="a"))
        shared.prefetch(make_job(target="b"))  # the same comparison run for another target
        first = shared.resolve(make_job(target="a"))
        second = shared.resolve(make_job(target="b"))

    assert first == second
    assert len(inner.calls) == 1
    assert inner.calls[0][1].startswith("pinner-ahead")


def test_a_job_not_started_ahead_runs_in_the_callers_thread_once() -> None:
    inner = Counting()
    resolution = make_job(files_pass=True)
    with Shared(inner) as shared:
        shared.prefetch(make_job(requirements=("other-app",)))
        shared.resolve(make_job())
        shared.resolve(make_job(target="b"))  # a comparison run: made once
        shared.resolve(resolution)
        shared.resolve(replace(resolution, target="b"))  # the same first resolution: once

    mine = threading.current_thread().name
    assert [c for c in inner.calls if c[1] == mine] == [("a", mine)] * 2


def test_a_failed_resolution_is_run_again_for_each_target_so_its_error_names_it() -> None:
    inner = Counting(fail=True)
    with Shared(inner) as shared:
        for target in ("a", "b"):
            with pytest.raises(ResolveError, match=f"target {target}: no solution"):
                shared.resolve(make_job(target=target, files_pass=True))
        for target in ("a", "b"):  # a comparison run's error is the run's, made once
            with pytest.raises(ResolveError, match="target a: no solution"):
                shared.resolve(make_job(target=target, requirements=("other-app",)))

    assert len(inner.calls) == 3


def test_a_failed_run_started_ahead_fails_where_it_is_asked_for() -> None:
    with Shared(Counting(fail=True)) as shared:
        shared.prefetch(make_job())
        with pytest.raises(ResolveError, match="target a: no solution"):
            shared.resolve(make_job())


class Fetching:
    """A uv-like resolver that says when a resolution has read the indexes, and records every
    run in order, with whether it was asked to read the engine's cache first."""

    name = "uv"

    def __init__(self, fail: bool = False) -> None:
        self.on_fetched: Callable[[Job], None] | None = None
        self.order: list[tuple[str, bool]] = []
        self.fail = fail

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        kind = "resolution" if job.files_pass else "probe"
        self.order.append((kind, job.cache_first))
        if job.files_pass:
            if self.fail:
                msg = f"target {job.target}: no solution"
                raise ResolveError(msg)
            assert self.on_fetched is not None
            self.on_fetched(job)  # the indexes are read; the files pass follows
            self.order.append(("files pass", False))
        return (ResolvedPin(name="demo-app", version="1.0", files=(), source="default"),)


def test_a_cache_first_probe_starts_once_the_resolution_has_read_the_indexes() -> None:
    inner = Fetching()
    resolution = make_job(files_pass=True)
    probe = make_job(no_deps=True, cache_first=True)
    with Shared(inner) as shared:
        shared.prefetch(probe, after=resolution)
        shared.resolve(resolution)
        shared.resolve(probe)  # answered by the run started after the resolution's fetch

    assert inner.order[0] == ("resolution", False)  # not before: no two clients on the network
    assert ("probe", True) in inner.order
    assert len(inner.order) == 3


def test_a_cache_first_probe_after_a_failed_resolution_reads_the_network() -> None:
    inner = Fetching(fail=True)
    resolution = make_job(files_pass=True)
    probe = make_job(no_deps=True, cache_first=True)
    with Shared(inner) as shared:
        shared.prefetch(probe, after=resolution)
        with pytest.raises(ResolveError):
            shared.resolve(resolution)
        shared.resolve(probe)

    assert inner.order == [("resolution", False), ("probe", False)]  # the cache may be stale


def test_a_run_started_ahead_that_ends_after_the_lock_run_starts_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A target that fails at once (an unreachable PyTorch index) ends the run while its probe
    is still running; the probe's answer must not start the comparison run on a closed pool
    (that printed a RuntimeError traceback)."""
    import time

    class Slow(Counting):
        def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
            time.sleep(0.3)
            return super().resolve(job)

    inner = Slow()
    with Shared(inner) as shared:
        shared.prefetch(make_job(no_deps=True), then=lambda _: make_job(requirements=("x",)))

    assert len(inner.calls) == 1  # the probe ran; the comparison run was not started
    assert not [r for r in caplog.records if r.name == "concurrent.futures"], caplog.text


@pytest.fixture(scope="module")
def graph_wheels(tmp_path_factory: pytest.TempPathFactory) -> GraphWheels:
    return build_graph_wheels(tmp_path_factory.mktemp("graph-wheels"))


@pytest.fixture(scope="module")
def graph(lock_wheels: Wheelhouse, graph_wheels: GraphWheels) -> Iterator[LocalIndex]:
    from tests.conftest_lock import _require_real_torch

    _require_real_torch()
    with LocalIndex() as index:
        yield serve_graph(index, lock_wheels, graph_wheels)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Job, list[str]]]:
    """(thread name, job, command line) of every uv run of the test."""
    from pinner.resolve.uv import UvResolver

    seen: list[tuple[str, Job, list[str]]] = []
    real = UvResolver._run

    def recording(self: UvResolver, job: Job, cmd: list[str]) -> None:
        seen.append((threading.current_thread().name, job, cmd))
        real(self, job, cmd)

    monkeypatch.setattr(UvResolver, "_run", recording)
    return seen


def test_the_probe_starts_with_the_resolution_and_the_comparison_runs_when_needed(
    tmp_path: Path,
    graph: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    # the default index has torch 2.99.0, above the lock's 2.13.0+cpu: not settled
    project = make_project(
        tmp_path / "proj", graph, monkeypatch, matrix=GRAPH_MATRIX, requirements="demo-app\n"
    )

    result = cli("lock")

    assert result.code == 0, result.err
    probes = [r for r in runs if r[1].no_deps]
    assert len(probes) == 1
    assert probes[0][0].startswith("pinner-ahead")
    assert probes[0][1].requirements == ("demo-app", "torch")
    comparisons = [r for r in runs if not r[1].files_pass and not r[1].no_deps]
    assert len(comparisons) == 1
    # torch 2.99.0 is above every fitting build: the comparison run started on the probe's answer
    assert comparisons[0][0].startswith("pinner-ahead")
    notes = project.lock_doc()["targets"]["cpu"]["findings"]
    assert any("torch 2.99.0" in n["message"] for n in notes), notes  # what it found


@pytest.fixture(scope="module")
def plain(lock_wheels: Wheelhouse) -> Iterator[LocalIndex]:
    """The standard indexes without the decoys: the default index's newest torch is 2.13.0."""
    from tests.conftest_lock import _require_real_torch
    from tests.support.projects import serve

    _require_real_torch()
    with LocalIndex() as index:
        yield serve(index, lock_wheels, decoys=False)


def test_no_comparison_run_when_nothing_can_be_held_back(
    tmp_path: Path,
    plain: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    import pinner.resolve.choose

    project = make_project(
        tmp_path / "proj", plain, monkeypatch, matrix=GRAPH_MATRIX, requirements="demo-app\n"
    )
    assert cli("lock").code == 0
    skipped = project.read("pinner.lock")
    assert [r for r in runs if r[1].no_deps]  # the probe ran
    assert not [r for r in runs if not r[1].files_pass and not r[1].no_deps]

    monkeypatch.setattr(pinner.resolve.choose, "settled", lambda *_, **__: False)
    (project.root / "pinner.lock").unlink()
    assert cli("lock").code == 0

    assert [r for r in runs if not r[1].files_pass and not r[1].no_deps]  # made this time
    assert project.read("pinner.lock") == skipped  # and it told nothing more


def test_the_files_pass_reads_uvs_cache_first(
    tmp_path: Path,
    graph: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    from pinner.resolve.uv import UvResolver

    recording = UvResolver._run

    def cache_hit(self: UvResolver, job: Job, cmd: list[str]) -> None:
        # the test indexes forbid caching (no-store): the offline files pass is run online
        # here, standing for a cache that holds what the resolution just read
        online = [c for c in cmd if c != "--offline"] if "--no-deps" in cmd else cmd
        recording(self, replace(job, offline=False), online)
        runs[-1] = (runs[-1][0], runs[-1][1], cmd)

    monkeypatch.setattr(UvResolver, "_run", cache_hit)
    project = make_project(
        tmp_path / "proj", graph, monkeypatch, matrix=CPU_MATRIX, requirements="glibcish\n"
    )

    assert cli("lock").code == 0

    resolutions = [cmd for _, _, cmd in runs if "--no-deps" not in cmd]
    files_passes = [cmd for _, _, cmd in runs if "--no-deps" in cmd]
    assert len(files_passes) == len(resolutions)  # one each: none went to the network again
    assert all("--offline" in cmd for cmd in files_passes)
    names = {f["name"] for f in project.packages()["glibcish"]["files"]}
    assert any("manylinux_2_34" in n for n in names), names  # a file only the files pass lists


def test_the_files_pass_goes_to_the_network_when_the_cache_lacks_something(
    tmp_path: Path,
    graph: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    # the test indexes answer `Cache-Control: no-store`: uv's cache never holds their pages
    project = make_project(
        tmp_path / "proj", graph, monkeypatch, matrix=CPU_MATRIX, requirements="glibcish\n"
    )

    assert cli("lock").code == 0

    files_passes = [cmd for _, _, cmd in runs if "--no-deps" in cmd]
    assert ["--offline" in cmd for cmd in files_passes[:2]] == [True, False]
    names = {f["name"] for f in project.packages()["glibcish"]["files"]}
    assert any("manylinux_2_34" in n for n in names), names


# --- the knowledge, kept as JSON by its digest --------------------------------------------------


@pytest.fixture
def knowledge_fresh() -> Iterator[None]:
    from pinner.knowledge.knowledge import load_knowledge

    load_knowledge.cache_clear()
    yield
    load_knowledge.cache_clear()


@pytest.mark.usefixtures("knowledge_fresh")
def test_the_knowledge_is_read_back_from_its_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from pinner.knowledge import knowledge

    first = knowledge.load_knowledge()
    knowledge.load_knowledge.cache_clear()

    def no_parse(name: str, raw: bytes) -> dict[str, Any]:
        raise AssertionError(name, len(raw))

    monkeypatch.setattr(knowledge, "_parse", no_parse)
    again = knowledge.load_knowledge()

    assert again == first
    assert again.digest == knowledge.digest()


@pytest.mark.usefixtures("knowledge_fresh")
def test_changed_knowledge_is_parsed_and_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinner.knowledge import knowledge

    knowledge.load_knowledge()  # the shipped data, cached
    knowledge.load_knowledge.cache_clear()
    copy = tmp_path / "knowledge"
    shutil.copytree(knowledge.HERE, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (copy / "cuda.toml").read_text(encoding="utf-8")
    (copy / "cuda.toml").write_text(text.replace("source =", "sauce =", 1), encoding="utf-8")
    monkeypatch.setattr(knowledge, "HERE", copy)

    with pytest.raises(knowledge.KnowledgeError, match=r"cuda\.toml"):
        knowledge.load_knowledge()


@pytest.mark.usefixtures("knowledge_fresh")
def test_a_cache_that_is_not_the_knowledges_is_ignored() -> None:
    from pinner.knowledge import knowledge

    first = knowledge.load_knowledge()
    knowledge.load_knowledge.cache_clear()
    knowledge._cache_file(first.digest).write_text('{"digest": "sha256:0", "docs": {}}')

    assert knowledge.load_knowledge() == first


# --- commands that skip work: a no-op generate, typer's parsing ---------------------------------


@pytest.fixture
def generated(project: Project, cli: Callable[..., Run]) -> Project:
    result = cli("generate")
    assert result.code == 0, result.err
    return project


def test_generate_with_nothing_to_do_neither_locks_nor_renders(
    generated: Project, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinner import pipeline
    from pinner.render import render

    def refuse(*args: object, **kwargs: object) -> None:
        msg = f"no work expected: {args} {kwargs}"
        raise AssertionError(msg)

    monkeypatch.setattr(pipeline, "lock_targets", refuse)
    monkeypatch.setattr(render, "render_target", refuse)

    result = cli("generate")

    assert (result.code, result.out) == (0, "generated pinned/: 0 files written (all up to date)\n")
    for args in (["--installer", "uv"], ["--out", "elsewhere"]):  # files to write: real work
        with pytest.raises(AssertionError, match="no work expected"):
            cli("generate", *args)
    (generated.root / "pinned" / "cpu" / "constraints.txt").write_text("edited\n")
    with pytest.raises(AssertionError, match="no work expected"):
        cli("generate")


@pytest.mark.usefixtures("generated")
def test_common_command_lines_skip_typers_parsing(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pinner.commands.app

    typed = {
        args: cli(*args)
        for args in [("explain", "--target", "cpu", "--json"), ("generate", "--matrix=pinner.toml")]
    }

    def no_typer(*args: object, **kwargs: object) -> None:
        msg = f"typer: {args} {kwargs}"
        raise AssertionError(msg)

    monkeypatch.setattr(pinner.commands.app, "app", no_typer)
    for args, before in typed.items():
        assert cli(*args) == before
    assert cli("explain", "-t", "cpu").code == 0
    assert cli("lock", "-t", "cpu", "-m", "pinner.toml").code == 0
    for odd in (["lock", "--upgrade"], ["explain"], ["generate", "--out"], ["lock", "-h"]):
        with pytest.raises(AssertionError, match="typer"):
            cli(*odd)


def test_common_command_lines_never_import_typer(generated: Project) -> None:
    """The fast path calls the command bodies in pinner.commands.run: typer is not even imported
    (0.05 s before the resolver could start); `--help` still goes through typer."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)

    def imported(args: list[str]) -> set[str]:
        code = f"import sys; from pinner.cli import main; sys.exit(main({args!r}))"
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], cwd=generated.root, env=env,
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {
            line.split("|")[-1].strip()
            for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }

    for args in (["explain", "-t", "cpu"], ["generate"]):
        modules = imported(args)
        assert "pinner.commands.run" in modules  # the measurement works
        assert not {m for m in modules if m.split(".")[0] in ("typer", "click")}, args
        assert "pinner.commands.app" not in modules
    assert "typer" in imported(["lock", "--help"])


@pytest.mark.usefixtures("project")
def test_an_unknown_option_is_answered_by_typer(cli: Callable[..., Run]) -> None:
    result = cli("lock", "--nonsense")

    assert result.code == 2
    assert "No such option: --nonsense" in result.err


def test_job_key_ignores_the_target_so_comparison_runs_are_shared() -> None:
    from pinner.resolve.uv import job_key

    assert job_key(make_job(target="a")) == job_key(make_job(target="b"))
    assert job_key(make_job()) != job_key(replace(make_job(), python="3.12"))


class Newest:
    """A uv-like resolver whose probe answers fixed versions."""

    def __init__(self, versions: dict[str, str], name: str = "uv") -> None:
        self.versions = versions
        self.name = name

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        assert job.no_deps
        return tuple(
            ResolvedPin(name=n, version=v, files=(), source="default")
            for n, v in self.versions.items()
        )


def locked_at(versions: dict[str, str], torch: str) -> Any:
    """What `settled` reads of a lock entry: its packages and its plan's torch version."""
    from types import SimpleNamespace

    pins = [SimpleNamespace(name=n, version=v) for n, v in versions.items()]
    return SimpleNamespace(pins=pins, plan=SimpleNamespace(torch=SimpleNamespace(version=torch)))


@pytest.mark.parametrize(
    ("newest", "engine", "expected"),
    [
        ({"demo-app": "1.0", "other-app": "2.0", "torch": "2.13.0"}, "uv", True),
        ({"demo-app": "1.1", "other-app": "2.0", "torch": "2.13.0"}, "uv", False),  # held back?
        ({"demo-app": "1.0", "other-app": "2.0", "torch": "2.99.0"}, "uv", False),  # torch?
        ({"demo-app": "1.0", "torch": "2.13.0"}, "uv", False),  # a name the probe left out
        ({"demo-app": "1.0", "other-app": "2.0", "torch": "2.13.0"}, "pip-tools", False),
    ],
)
def test_settled_only_when_the_lock_is_at_every_newest_release(
    newest: dict[str, str], engine: str, expected: bool
) -> None:
    from pinner.resolve.shared import probe_job, settled

    free = make_job(requirements=("demo-app", "other-app>=1", "pinned==1.0", "torch>=2"))
    probe = probe_job(free)
    locked = locked_at({"demo-app": "1.0", "other-app": "2.0", "pinned": "1.0"}, "2.13.0")

    assert probe is not None
    assert probe.requirements == ("demo-app", "other-app>=1", "torch")  # no exact pins
    assert settled(Newest(newest, engine), locked, free) is expected


def test_the_result_cache_entry_is_what_asdict_would_write_and_reads_back(tmp_path: Path) -> None:
    import dataclasses

    from pinner.model import File
    from pinner.resolve import uv

    pin = ResolvedPin(
        name="torch",
        version="2.15.0",
        files=(
            File(name="torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl", hashes=("sha256:ab",)),
        ),
        source="default",
        via=("-r requirements.in",),
        requires=("filelock",),
    )
    assert json.dumps(uv._dump(pin)) == json.dumps(dataclasses.asdict(pin))
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps([uv._dump(pin)]), encoding="utf-8")
    assert uv._load_result(saved) == (pin,)


def test_plain_is_asdict_on_every_value_of_a_real_lock() -> None:
    """model.plain replaces dataclasses.asdict where the lock is written and fingerprinted: the
    same dicts, tuples kept as tuples, for every target of the shipped example."""
    import dataclasses

    from pinner.lock.lockfile import read_lock
    from pinner.model import plain

    root = Path(__file__).parent.parent
    for path in (
        root / "examples/llm-service/pinner.lock",
        root / "tests/data/locks/extensions/pinner.lock",
    ):
        lock = read_lock(path)
        assert repr(plain(lock)) == repr(dataclasses.asdict(lock))


def lock_on_pypi(
    root: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run], torch: str = ""
) -> Run:
    """`pinner lock` of `packaging` for an RTX 5090 on Python 3.11 against the real PyPI (PyPI's
    torch build), within the target's `torch` range when one is given."""
    from tests.support.projects import run_retrying

    matrix = '[targets.rtx5090]\ngpu = "RTX 5090"\npython = "3.11"\n'
    matrix += f'torch = "{torch}"\n' if torch else ""
    (root / "pinner.toml").write_text(matrix + 'requirements = ["requirements.in"]\n', "utf-8")
    (root / "requirements.in").write_text("packaging\n", encoding="utf-8")
    (root / ".git").mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("PINNER_CACHE_DIR", str(root / "cache"))
    return run_retrying(cli, "lock")


@pytest.mark.network
def test_after_a_pypi_torch_resolution_the_probe_reads_uvs_cache_beside_the_files_pass(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    """The default path (PyPI's torch build, real PyPI): the probe is not started with the
    resolution but once it has read the indexes, from uv's cache (`--offline`), so one lock
    never has two uv clients on the network at once; nothing is held back, so no comparison."""
    result = lock_on_pypi(tmp_path, monkeypatch, cli)

    assert result.code == 0, result.err
    resolutions = [
        i for i, (_, job, cmd) in enumerate(runs) if job.files_pass and "--no-deps" not in cmd
    ]
    probes = [i for i, (_, job, _) in enumerate(runs) if job.no_deps]
    assert probes, runs
    assert probes[0] > resolutions[-1]  # after the resolution, not with it
    assert "--offline" in runs[probes[-1]][2]  # answered from uv's cache
    assert runs[probes[-1]][0].startswith("pinner-ahead")  # beside the files pass
    assert not [r for r in runs if not r[1].files_pass and not r[1].no_deps]  # no comparison


TWO_JOBS = """\
[targets.a]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]

[targets.b]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["other.in"]
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_jobs_sets_how_many_resolutions_run_at_once(
    tmp_path: Path,
    plain: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    jobs: str,
) -> None:
    """Two targets that cannot share a resolution: with --jobs 1 no two uv runs on the network
    overlap (a network whose DNS drops simultaneous queries stalls one of them 5 s); with more,
    they start together. Each run is held long enough to overlap when it can."""
    import time

    from pinner.resolve.uv import UvResolver

    spans: list[tuple[float, float, bool]] = []  # (start, end, a resolution)
    real = UvResolver._run

    def timed(self: UvResolver, job: Job, cmd: list[str]) -> None:
        start = time.monotonic()
        real(self, job, cmd)
        if "--offline" not in cmd:
            time.sleep(0.3)
            spans.append((start, time.monotonic(), job.files_pass and "--no-deps" not in cmd))

    monkeypatch.setattr(UvResolver, "_run", timed)
    project = make_project(
        tmp_path / "proj", plain, monkeypatch, matrix=TWO_JOBS, requirements="demo-app\n"
    )
    project.write("other.in", "other-app\n")

    result = cli("lock", "--jobs", jobs)

    assert result.code == 0, result.err
    assert set(project.lock_doc()["targets"]) == {"a", "b"}

    def overlap(runs: list[tuple[float, float, bool]]) -> bool:
        return any(b[0] < a[1] for a, b in itertools.pairwise(sorted(runs)))

    if jobs == "1":
        assert not overlap(spans), spans  # no two runs on the network at once, of any kind
    else:
        assert overlap([s for s in spans if s[2]]), spans  # the two resolutions together


def test_jobs_below_one_is_a_usage_error(cli: Callable[..., Run]) -> None:
    result = cli("lock", "--jobs", "0")
    assert result.code == 2
    assert "--jobs" in result.err


@pytest.mark.parametrize(
    ("python", "builds", "expected"),
    [
        ("3.11", ["2.14.1", "2.14.1+cu126"], True),  # 2.15.0 is known: the probe will find it
        ("3.11", ["2.15.0", "2.14.1"], False),  # the newest fits: the probe may settle it
        ("3.11", ["2.15.0+cu130"], False),
        ("3.11", [], False),
        ("2.7", ["2.0.1"], False),  # no release for that Python
    ],
)
def test_the_comparison_run_starts_with_the_resolution_only_when_the_knowledge_says_so(
    python: str, builds: list[str], expected: bool
) -> None:
    """For PyPI's build the probe runs after the resolution; the comparison run it would ask for
    starts with the resolution when the knowledge already has a torch above every fitting build
    (as axolotl's gh200 target: its bounds leave PyPI's newest torch out)."""
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.pipeline import beyond_every_build

    kb = load_knowledge()
    assert kb.releases[0].version == "2.15.0"  # what the cases assume
    assert beyond_every_build(kb, python, builds) is expected


@pytest.mark.network
def test_a_comparison_run_the_knowledge_foresees_starts_with_a_pypi_torch_resolution(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    runs: list[tuple[str, Job, list[str]]],
) -> None:
    """torch < 2.15 leaves PyPI's newest torch out of every fitting build: the probe will ask for
    the comparison run, so it starts with the resolution (real PyPI)."""
    result = lock_on_pypi(tmp_path, monkeypatch, cli, torch=">=2.13,<2.15")

    assert result.code == 0, result.err
    comparisons = [r for r in runs if not r[1].files_pass and not r[1].no_deps]
    assert comparisons, runs
    assert comparisons[0][0].startswith("pinner-ahead")  # started ahead, not after the probe
    probes = [r for r in runs if r[1].no_deps]
    assert "--offline" in probes[-1][2]
