"""Torch chosen together with the dependency graph (issue 10), through `pinner lock`.

Every lock runs the real uv against loopback indexes (tests/support/projects.py) with a few more
fake wheels (tests/support/graph.py): a second CPU torch build (2.12.0+cpu) on the PyTorch index so
that a segment holds several versions, a torch 2.99.0 (a release no knowledge knows) on the
default index, and packages whose releases pin or bound torch the way vllm and unsloth do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.graph import (
    GLIBCISH_TAGS,
    GRAPH_MATRIX,
    H100_MATRIX,
    GraphWheels,
    build_graph_wheels,
    serve_graph,
)
from tests.support.index import LocalIndex, uv_env
from tests.support.projects import (
    CPU_MATRIX,
    CU128_MATRIX,
    Project,
    file_hash,
    hashes_of,
    index_hashes,
    make_project,
)
from tests.support.torch_data import REAL_TORCH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from pinner.knowledge.knowledge import Knowledge
    from pinner.model import PlanResult, Requirements
    from tests.support.projects import Run, Wheelhouse

pytest_plugins = ("tests.conftest_lock",)


@pytest.fixture(scope="module")
def graph_wheels(tmp_path_factory: pytest.TempPathFactory) -> GraphWheels:
    return build_graph_wheels(tmp_path_factory.mktemp("graph-wheels"))


@pytest.fixture(scope="module")
def graph(lock_wheels: Wheelhouse, graph_wheels: GraphWheels) -> Iterator[LocalIndex]:
    """The standard indexes plus the graph wheels, shared by the tests of this module."""
    from tests.conftest_lock import _require_real_torch

    _require_real_torch()
    with LocalIndex() as index:
        yield serve_graph(index, lock_wheels, graph_wheels)


def graph_project(
    tmp_path: Path,
    index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    requirements: str,
    matrix: str = GRAPH_MATRIX,
) -> Project:
    return make_project(
        tmp_path / "proj", index, monkeypatch, matrix=matrix, requirements=requirements
    )


def versions(project: Project, target: str = "cpu") -> dict[str, str]:
    return {name: p["version"] for name, p in project.packages(target).items()}


def findings(project: Project, target: str = "cpu") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = project.lock_doc()["targets"][target].get("findings", [])
    return found


def step(project: Project, topic: str, target: str = "cpu") -> dict[str, Any]:
    steps = project.lock_doc()["targets"][target]["plan"]["steps"]
    (found,) = [s for s in steps if s["topic"] == topic]
    result: dict[str, Any] = found
    return result


# --- 1. a vllm-like package whose releases pin torch exactly --------------------------------------


@pytest.mark.parametrize("line", ["fakevllm", "fakevllm>=2"])
def test_release_pinning_torch_takes_the_newest_one_with_a_fitting_build(
    tmp_path: Path,
    graph: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    line: str,
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, f"{line}\n")

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project)
    assert pins["fakevllm"] == "2.0"
    assert pins["torch"] == "2.13.0+cpu"
    held = [f for f in findings(project) if f["code"] == "held-back"]
    assert len(held) == 1, findings(project)
    assert held[0]["severity"] == "warning"
    message = held[0]["message"]
    assert message.startswith("fakevllm stays at 2.0: fakevllm 3.0 requires torch==2.99.0"), message
    assert "torch 2.99.0 has no build that fits this target" in message
    resolution = step(project, "resolution")
    assert resolution["choice"] == "torch 2.13.0+cpu"
    assert "torch required by fakevllm" in resolution["why"]
    assert "held back: fakevllm" in resolution["why"]


def test_relock_keeps_the_held_back_note_and_is_byte_identical(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakevllm\n")
    assert cli("lock").code == 0
    first = project.lock.read_text(encoding="utf-8")
    assert "held-back" in first

    result = cli("lock")

    assert result.code == 0, result.err
    assert "fakevllm stays at 2.0" in result.err
    assert project.lock.read_text(encoding="utf-8") == first


def test_segment_job_routes_torch_and_companions_by_name(
    plan_for: Callable[..., PlanResult],
    make_requirements: Callable[..., Requirements],
    kb: Knowledge,
    tmp_path: Path,
) -> None:
    """A segment of several builds reaches uv as a range; its sources name the packages (uv
    refuses a `"torch>=2.12.0,<=2.14.1"` key)."""
    from pinner.plan.plan import segment_spec
    from pinner.resolve.resolve import build_job
    from pinner.resolve.uv import pyproject

    result = plan_for("cpu", "torchvision", torch=">=2.12")
    assert result.plan is not None
    (segment,) = result.segments
    spec = segment_spec(kb, segment)
    assert spec == ">=2.12.0,<=2.14.1"
    reqs = make_requirements("torchvision")

    job = build_job(
        result.plan, reqs, tmp_path, previous=None, upgrade=False, offline=False, torch_spec=spec
    )

    assert job.direct == ("torch>=2.12.0,<=2.14.1", "torchvision")
    assert job.routed == ("torch", "torchvision")
    sources = pyproject(job).split("[tool.uv.sources]\n", 1)[1].splitlines()
    assert sources == ['"torch" = { index = "pytorch" }', '"torchvision" = { index = "pytorch" }']


def test_release_pinning_an_older_torch_is_taken_when_asked(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakevllm<2\n")

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project)
    assert (pins["fakevllm"], pins["torch"]) == ("1.0", "2.12.0+cpu")
    # fakevllm<2 is what the user asked for: nothing is held back.
    assert not [f for f in findings(project) if f["code"] == "held-back"]


# --- 2. an unsloth-like package with an upper bound on torch -------------------------------------


def test_upper_bound_on_torch_wins_over_the_newest_torch(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakeunsloth\n")

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project)
    assert pins["fakeunsloth"] == "2.0"  # the newest direct requirement ...
    assert pins["torch"] == "2.12.0+cpu"  # ... over the newest torch (2.13.0+cpu fits too)
    assert project.packages()["torch"]["via"] == ["fakeunsloth", "pinner plan"]
    resolution = step(project, "resolution")
    assert resolution["choice"] == "torch 2.12.0+cpu"
    assert "torch required by fakeunsloth" in resolution["why"]
    assert not [f for f in findings(project) if f["code"] == "held-back"]


# --- two direct requirements that bound torch against each other --------------------------------


def test_file_order_decides_between_two_direct_requirements(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakeunsloth\nfakevllm\n")

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project)
    assert (pins["fakeunsloth"], pins["fakevllm"], pins["torch"]) == ("2.0", "1.0", "2.12.0+cpu")
    # the lock records the choice: the run that asked for the earlier requirement's newest
    why = step(project, "resolution")["why"]
    assert "asking fakeunsloth>=2.0: chose torch 2.12.0+cpu" in why, why
    held = {f["message"].split()[0]: f["message"] for f in findings(project)}
    assert held["fakevllm"].startswith("fakevllm stays at 1.0: fakevllm 3.0 requires torch==2.99.0")
    # a relock keeps the versions, the recorded choice and the notes, byte for byte
    first = project.lock.read_text(encoding="utf-8")
    assert cli("lock").code == 0
    assert project.lock.read_text(encoding="utf-8") == first


def test_direct_requirement_held_back_by_an_earlier_one_is_said(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakevllm\nfakeunsloth\n")

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project)
    assert (pins["fakevllm"], pins["fakeunsloth"], pins["torch"]) == ("2.0", "1.0", "2.13.0+cpu")
    held = {f["message"].split()[0]: f["message"] for f in findings(project)}
    assert "fakevllm" in held
    assert held["fakeunsloth"].startswith("fakeunsloth stays at 1.0: fakeunsloth 2.0 requires")
    assert (
        "which the locked torch 2.13.0+cpu (required by fakevllm) does not meet"
        in (held["fakeunsloth"])
    )
    why = step(project, "resolution")["why"]
    assert "asking fakeunsloth>=2.0: no solution" in why, why


def test_relock_without_upgrade_keeps_a_locked_version_it_could_raise(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    """A pin relaxed in the requirements keeps its locked version, as uv and pip-compile do
    (the lock is a preference, not a hold-back); -P frees it."""
    project = graph_project(tmp_path, graph, monkeypatch, "fakeunsloth==1.0\n")
    assert cli("lock").code == 0
    project.write("requirements.in", "fakeunsloth\n")

    result = cli("lock")

    assert result.code == 0, result.err
    assert versions(project)["fakeunsloth"] == "1.0"
    assert not [f for f in findings(project) if f["message"].startswith("fakeunsloth")]
    assert cli("lock", "-P", "fakeunsloth").code == 0
    assert versions(project)["fakeunsloth"] == "2.0"


# --- another segment: the newest direct requirement needs a torch of another segment ----------


def test_held_back_requirement_is_taken_from_another_segment(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakeold\n", matrix=H100_MATRIX)

    result = cli("lock")

    assert result.code == 0, result.err
    pins = versions(project, "h100")
    # The preferred segment [2.6.0] takes fakeold 1.0; the comparison run wants fakeold 2.0 and
    # its torch 2.5.1, whose segment [2.5.1, 2.5.0] is resolved too and wins.
    assert (pins["fakeold"], pins["torch"]) == ("2.0", "2.5.1")
    assert project.packages("h100")["torch"]["source"] == "default"
    plan = project.lock_doc()["targets"]["h100"]["plan"]
    assert plan["torch"]["version"] == "2.5.1"
    # ... and the plan is the one of the torch taken: the older segment's transformers bound.
    assert [c["requirement"] for c in plan["constraints"]] == ["transformers<5.20.0"]
    resolution = step(project, "resolution", "h100")
    assert resolution["choice"] == "torch 2.5.1"
    assert "[2.6.0]: chose torch 2.6.0" in resolution["why"]
    assert "[2.5.0 .. 2.5.1]: chose torch 2.5.1" in resolution["why"]
    assert not [f for f in findings(project, "h100") if f["code"] == "held-back"]


def test_exact_pin_that_only_another_segment_serves_is_found(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "fakeold==2.0\n", matrix=H100_MATRIX)

    result = cli("lock")

    assert result.code == 0, result.err
    assert versions(project, "h100")["torch"] == "2.5.1"


# --- 3. marker lines -----------------------------------------------------------------------------

TWO_PLATFORMS = """\
[targets.cpu]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]

[targets.arm]
gpu = "cpu"
torch = "==2.13.0"
python = "3.12"
platform = "linux-aarch64"
requirements = ["requirements.in"]
"""


def test_marker_lines_apply_per_target(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(
        tmp_path,
        graph,
        monkeypatch,
        'demo-app\nflash-attn ; platform_system == "Windows"\n'
        'other-app ; platform_machine == "aarch64"\n',
        matrix=TWO_PLATFORMS,
    )

    result = cli("lock")

    assert result.code == 0, result.err
    doc = project.lock_doc()
    for target in ("cpu", "arm"):
        assert doc["targets"][target]["plan"]["extensions"] == [], target
        assert "flash-attn" not in versions(project, target)
    assert "other-app" not in versions(project, "cpu")
    assert versions(project, "arm")["other-app"] == "2.0"
    assert versions(project, "arm")["torch"] == "2.13.0+cpu"
    assert "demo-app" in versions(project, "cpu")


# --- 4. URL wheels ------------------------------------------------------------------------------


def test_url_wheel_is_locked_with_its_hash_and_rendered_hashed(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    app_url = graph.file_url("files", graph_wheels.url_app.name)
    bare_url = graph.file_url("files", graph_wheels.url_bare.name)
    project = graph_project(tmp_path, graph, monkeypatch, f"demo-app @ {app_url}\n{bare_url}\n")

    result = cli("lock")

    assert result.code == 0, result.err
    packages = project.packages()
    app, bare = packages["demo-app"], packages["bare-wheel"]
    assert (app["source"], app["url"], app["version"]) == ("url", app_url, "1.0")
    assert hashes_of(app) == [file_hash(graph_wheels.url_app)]
    assert (bare["source"], bare["url"], bare["version"]) == ("url", bare_url, "1.5")
    assert hashes_of(bare) == [file_hash(graph_wheels.url_bare)]
    assert packages["torch"]["version"] == "2.13.0+cpu"  # demo-app requires torch>=2.0

    result = cli("generate")
    assert result.code == 0, result.err
    rendered = (project.root / "pinned" / "cpu" / "requirements.txt").read_text(encoding="utf-8")
    app_line = _entry(rendered, "demo-app")
    assert app_url in app_line
    assert f"--hash={file_hash(graph_wheels.url_app)}" in app_line
    bare_line = _entry(rendered, f"bare-wheel @ {bare_url}")  # the bare URL gets its name
    assert f"--hash={file_hash(graph_wheels.url_bare)}" in bare_line


def _entry(rendered: str, start: str) -> str:
    """The requirement of a rendered requirements.txt that starts with `start`, continuations
    joined."""
    entries = re.split(r"\n(?=\S)", rendered)
    (found,) = [e for e in entries if e.startswith(start)]
    return found


def test_url_wheel_with_the_users_matching_hash_is_locked(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    app_url = graph.file_url("files", graph_wheels.url_app.name)
    right = file_hash(graph_wheels.url_app)
    project = graph_project(tmp_path, graph, monkeypatch, f"demo-app @ {app_url} --hash={right}\n")

    result = cli("lock")

    assert result.code == 0, result.err
    assert hashes_of(project.packages()["demo-app"]) == [right]


def test_url_wheel_whose_hash_does_not_match_is_refused(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    app_url = graph.file_url("files", graph_wheels.url_app.name)
    project = graph_project(
        tmp_path, graph, monkeypatch, f"demo-app @ {app_url} --hash=sha256:{'0' * 64}\n"
    )

    result = cli("lock")

    assert result.code == 1, result.text
    assert "demo-app 1.0: none of its files has a hash the requirements allow" in result.err
    assert "Traceback" not in result.text
    assert not project.lock.exists()


def _project_with_a_local_wheel(
    tmp_path: Path,
    graph: LocalIndex,
    wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
    line: str,
) -> Project:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\n" + line + "\n")
    (project.root / "wheels").mkdir()
    shutil.copy(wheel, project.root / "wheels")
    return project


@pytest.mark.parametrize(
    "line",
    [
        "./wheels/bare_wheel-1.5-py3-none-any.whl",
        "bare-wheel @ file:wheels/bare_wheel-1.5-py3-none-any.whl",
    ],
)
def test_wheel_inside_the_project_is_locked_relative_to_the_project(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    line: str,
) -> None:
    project = _project_with_a_local_wheel(tmp_path, graph, graph_wheels.url_bare, monkeypatch, line)

    result = cli("lock")

    assert result.code == 0, result.err
    bare = project.packages()["bare-wheel"]
    assert bare["version"] == "1.5"
    assert bare["url"] == "file:wheels/bare_wheel-1.5-py3-none-any.whl"
    assert str(tmp_path) not in project.lock.read_text(encoding="utf-8")
    assert hashes_of(bare) == [file_hash(graph_wheels.url_bare)]
    # rendered as its path from pinned/<target>/, where install.sh runs pip
    assert cli("generate").code == 0
    requirements = (project.root / "pinned" / "cpu" / "requirements.txt").read_text()
    assert "../../wheels/bare_wheel-1.5-py3-none-any.whl \\\n" in requirements
    assert (
        project.root / "pinned" / "cpu" / "../../wheels/bare_wheel-1.5-py3-none-any.whl"
    ).is_file()


def test_wheel_inside_the_project_is_copied_by_the_dockerfile(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    line = "./wheels/bare_wheel-1.5-py3-none-any.whl"
    project = _project_with_a_local_wheel(tmp_path, graph, graph_wheels.url_bare, monkeypatch, line)
    assert cli("lock").code == 0

    result = cli("generate")

    assert result.code == 0, result.err
    rendered = project.read("pinned/cpu/requirements.txt")
    assert "bare_wheel-1.5-py3-none-any.whl" in rendered
    dockerfile = project.read("pinned/cpu/Dockerfile")
    copies = [x for x in dockerfile.splitlines() if x.startswith(("COPY", "ADD"))]
    wheel = "wheels/bare_wheel-1.5-py3-none-any.whl"
    assert f"COPY {wheel} /opt/project/{wheel}" in copies, copies
    # built from the project root, the target's files from their folder, run where the
    # requirements' relative path (../../wheels/...) reaches the copied wheel
    assert "COPY pinned/cpu/constraints.txt pinned/cpu/requirements.txt ./" in copies, copies
    assert "WORKDIR /opt/project/pinned/cpu" in dockerfile
    assert "docker build -f pinned/cpu/Dockerfile -t cpu ." in dockerfile
    assert (project.root / wheel).is_file()


# --- the files pass: every file of a chosen version an installer on the target may pick ----------


def test_lock_lists_the_files_of_every_manylinux_up_to_2_40(
    tmp_path: Path,
    graph: LocalIndex,
    graph_wheels: GraphWheels,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "glibcish\n", matrix=CPU_MATRIX)

    result = cli("lock")

    assert result.code == 0, result.err
    files = {f["name"]: f["hashes"] for f in project.packages()["glibcish"]["files"]}
    wheels = {w.name: w for w in graph_wheels.pypi if w.name.startswith("glibcish-")}
    expected = {n for n in wheels if n.endswith(tuple(f"-{t}.whl" for t in GLIBCISH_TAGS[:3]))}
    assert len(expected) == 3
    assert set(files) == expected  # not 2_41, aarch64 or Windows
    for name in expected:
        assert files[name] == [file_hash(wheels[name])]


# --- 5. an extra that pulls a package -----------------------------------------------------------


def test_extra_pulls_its_dependency(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\nneeds-extra[x]\n")

    result = cli("lock")

    assert result.code == 0, result.err
    packages = project.packages()
    assert packages["needs-extra"]["version"] == "1.0"
    assert packages["other-app"]["version"] == "2.0"
    assert "needs-extra" in packages["other-app"]["via"]


def test_extra_not_asked_for_pulls_nothing(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\nneeds-extra\n")

    result = cli("lock")

    assert result.code == 0, result.err
    assert "other-app" not in project.packages()


@pytest.mark.parametrize("line", ["needs-ext[fast]", "pulls-ext"], ids=["extra", "transitive"])
def test_extension_entering_through_an_extra_goes_to_the_extension_layer(
    tmp_path: Path,
    graph: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    line: str,
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, f"{line}\n", matrix=CU128_MATRIX)

    result = cli("lock")

    assert result.code == 0, result.err
    assert versions(project, "gpu")["causal-conv1d"] == "1.5.2"
    extensions = project.lock_doc()["targets"]["gpu"]["plan"]["extensions"]
    assert [e["name"] for e in extensions] == ["causal-conv1d"]
    assert project.packages("gpu")["causal-conv1d"]["layer"] == "extension"


# --- 6. a failing target beside a good one -------------------------------------------------------

GOOD_AND_BAD = """\
[targets.cpu]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]

[targets.bad]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["bad.in"]
"""


def test_failing_target_keeps_its_entry_and_the_good_one_is_written(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\n", matrix=GOOD_AND_BAD)
    project.write("bad.in", "demo-app\nsix\n")
    first = cli("lock")
    assert first.code == 0, first.err
    bad_before = project.lock_doc()["targets"]["bad"]
    assert "six" in versions(project, "bad")

    project.write("requirements.in", "demo-app\nother-app\n")
    project.write("bad.in", "demo-app\nno-such-package-anywhere\n")
    result = cli("lock")

    assert result.code == 1, result.text
    assert "target bad:" in result.err
    assert "no-such-package-anywhere" in result.err
    assert "1 of 2 targets failed; written: cpu" in result.err
    assert "Traceback" not in result.text
    assert versions(project, "cpu")["other-app"] == "2.0"  # the good one is written
    assert project.lock_doc()["targets"]["bad"] == bad_before  # the failing one is kept
    # ... and stays stale for `pinner check`, its inputs having changed.
    check = cli("check")
    assert check.code == 1
    assert "bad" in check.text


# --- 7. no hardware constraint: the same pins as a bare `uv pip compile` --------------------------


def test_lock_without_a_hardware_constraint_equals_bare_uv(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    requirements = "demo-app\nneeds-extra[x]\nsix\nfakevllm>=2,<3\n"
    # torch = ">=2.12": five cpu builds fit, two of them on the index
    project = graph_project(tmp_path, graph, monkeypatch, requirements)

    result = cli("lock")

    assert result.code == 0, result.err
    from pinner.resolve.uv import uv_binary

    bare_uv = [uv_binary(), "pip", "compile", "requirements.in", "--no-config", "--no-header"]
    bare_uv += ["--no-annotate", "--default-index", graph.url("pypi"), "--python-version", "3.11"]
    bare_uv += ["--python-platform", "x86_64-manylinux_2_28"]
    bare = subprocess.run(
        bare_uv,
        cwd=project.root,
        env=uv_env(cache_dir=tmp_path / "bare-cache"),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert bare.returncode == 0, bare.stderr
    uv_pins = dict(
        line.split("==", 1) for line in bare.stdout.splitlines() if "==" in line.split("#")[0]
    )
    # uv's torch is in the target's fitting set. (Bare uv takes the default index's
    # decoy 2.13.0+cpu, pinner the PyTorch index's: the same release.)
    assert uv_pins["torch"].removesuffix("+cpu") == "2.13.0"
    assert hashes_of(project.packages()["torch"]) == [file_hash(REAL_TORCH)]
    # The same name==version for every package.
    locked = {n: v.removesuffix("+cpu") for n, v in versions(project).items()}
    assert locked == {n: v.removesuffix("+cpu") for n, v in uv_pins.items()}


# --- 8. a hostile environment (issue 11) ---------------------------------------------------------


@pytest.fixture
def attacker(graph_wheels: GraphWheels) -> Iterator[LocalIndex]:
    with LocalIndex() as index:
        for wheel in graph_wheels.attacker:
            index.add("simple", wheel)
        yield index


def test_resolver_variables_of_the_environment_are_ignored(
    tmp_path: Path,
    graph: LocalIndex,
    attacker: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\nsix\n", matrix=TWO_CPU)
    evil = attacker.url("simple")
    hostile = {
        "UV_EXTRA_INDEX_URL": evil,
        "UV_INDEX": f"evil={evil}",
        "UV_FIND_LINKS": f"{evil}six/",
        "UV_DEFAULT_INDEX": evil,
        "UV_INDEX_URL": evil,
        "PIP_EXTRA_INDEX_URL": evil,
        "UV_CONFIG_FILE": str(project.write("evil/uv.toml", f'extra-index-url = ["{evil}"]\n')),
    }
    for name, value in hostile.items():
        monkeypatch.setenv(name, value)
    # configuration files uv would discover from the project are not read either
    project.write("uv.toml", f'index-url = "{evil}"\n')
    project.write("pyproject.toml", f'[tool.uv]\nextra-index-url = ["{evil}"]\n')

    result = cli("lock")

    assert result.code == 0, result.err
    assert attacker.log == []
    for target in ("cpu", "cpu-too"):
        pins = versions(project, target)
        assert (pins["six"], pins["demo-app"], pins["torch"]) == ("1.17.0", "1.0", "2.13.0+cpu")
        assert hashes_of(project.packages(target)["torch"]) == [file_hash(REAL_TORCH)]
    # said once per run, not once per target
    assert result.err.count("ignored when resolving:") == 1, result.err
    (note,) = [line for line in result.err.splitlines() if "ignored when resolving:" in line]
    for name in hostile:
        assert name in note
    assert evil not in result.text  # the note names the variables, not their values


def test_pip_tools_resolver_ignores_them_too(
    tmp_path: Path,
    lock_wheels: Wheelhouse,
    graph_wheels: GraphWheels,
    attacker: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    evil = attacker.url("simple")
    with LocalIndex() as index:  # no decoys: pip-compile cannot keep two indexes apart
        serve_graph(index, lock_wheels, graph_wheels, decoys=False)
        project = graph_project(tmp_path, index, monkeypatch, "demo-app\nsix\n", CPU_MATRIX)
        for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"):
            monkeypatch.setenv(name, evil)
        monkeypatch.setenv("PIP_FIND_LINKS", f"{evil}six/")
        project.write("evil/pip.conf", f"[global]\nextra-index-url = {evil}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(project.root / "evil" / "pip.conf"))

        result = cli("lock", "--resolver", "pip-tools")
        torch_files = index_hashes(index, "whl/cpu", "torch", "2.13.0+cpu")

    assert result.code == 0, result.err
    assert attacker.log == []
    pins = versions(project)
    assert (pins["six"], pins["demo-app"], pins["torch"]) == ("1.17.0", "1.0", "2.13.0+cpu")
    # pip-compile records every file of the version on the PyTorch index, and nothing else
    assert file_hash(REAL_TORCH) in hashes_of(project.packages()["torch"])
    assert hashes_of(project.packages()["torch"]) == torch_files
    assert "PIP_FIND_LINKS" in result.err


@pytest.mark.parametrize(
    "line",
    [
        "six --hash=sha256:{h} --extra-index-url={evil}\n",
        "six --hash=sha256:{h} \\\n    --extra-index-url={evil}\n",
        "six --hash=sha256:{h} \\\n    --index-url {evil}\n",
    ],
    ids=["same-line", "continuation", "index-url"],
)
def test_index_options_in_requirement_lines_are_refused(
    tmp_path: Path,
    graph: LocalIndex,
    attacker: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    line: str,
) -> None:
    evil = attacker.url("simple")
    project = graph_project(
        tmp_path, graph, monkeypatch, "demo-app\n" + line.format(h="1" * 64, evil=evil)
    )

    result = cli("lock")

    assert result.code == 2, result.text
    assert re.search(r"requirements\.in:2: --(extra-)?index-url is not allowed", result.err)
    assert "Traceback" not in result.text
    assert attacker.log == []
    assert not project.lock.exists()


# --- 9. a lock of the previous format ------------------------------------------------------------

TWO_CPU = """\
[targets.cpu]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]

[targets.cpu-too]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]
"""


def _as_format_1(text: str) -> str:
    """A format-2 lock written back in the shape of format 1 (pinner 0.1.0's): `version = 1`,
    package hashes as a flat list and the index by name, no `indexes` or `files`."""
    text = re.sub(r"(?m)^version = 2$", "version = 1", text, count=1)
    text = re.sub(r"(?m)^indexes = .*\n", "", text)
    text = re.sub(r'(?m)^(name = ".*"\nversion = ".*"\n)source = ', r"\1index = ", text)
    text = re.sub(r"(?m)^digest = .*\n", "", text)
    return re.sub(r"(?ms)^files = \[.*?^\]|^files = \[\]", "hashes = []", text)


def test_lock_of_format_1_is_read_as_version_preferences(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\nother-app\n", matrix=TWO_CPU)
    fresh = cli("lock")
    assert fresh.code == 0, fresh.err
    assert versions(project, "cpu")["other-app"] == "2.0"
    legacy = _as_format_1(project.lock.read_text(encoding="utf-8"))
    legacy = re.sub(
        r'(name = "other-app"\nversion = )"2.0"', r'\1"1.0"', legacy
    )  # an older release the old lock had
    assert legacy.count('version = "1.0"') >= 2
    project.lock.write_text(legacy, encoding="utf-8")

    result = cli("lock", "--target", "cpu")

    assert result.code == 0, result.err
    doc = project.lock_doc()
    assert doc["version"] == 2
    for target in ("cpu", "cpu-too"):  # every target re-resolved, not only the one named
        assert versions(project, target)["other-app"] == "1.0", target
        assert versions(project, target)["torch"] == "2.13.0+cpu"
        assert hashes_of(project.packages(target)["other-app"]), target
    assert "(cpu, cpu-too resolved)" in result.out
    assert cli("check").code == 0


def test_lock_of_an_unknown_format_is_refused(
    tmp_path: Path, graph: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = graph_project(tmp_path, graph, monkeypatch, "demo-app\n", matrix=CPU_MATRIX)
    project.lock.write_text('version = 99\npinner = "9.0"\n', encoding="utf-8")

    result = cli("lock")

    assert result.code == 2, result.text
    assert "pinner.lock" in result.err
    assert "format 99" in result.err
    assert "newer pinner" in result.err
    assert "Traceback" not in result.text
    assert project.lock.read_text(encoding="utf-8") == 'version = 99\npinner = "9.0"\n'
