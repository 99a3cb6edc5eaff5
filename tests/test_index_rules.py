"""Index rules: the torch family comes only from the plan's PyTorch index, everything else only
from the default index; a package of the same name on the wrong index is never taken.

Every lock here runs the real uv against loopback indexes (tests/support/projects.py), pointed at
them the way users point pinner at mirrors: PINNER_TORCH_INDEX_URL and UV_DEFAULT_INDEX.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.resolve.uv import argv, pyproject
from tests.support.index import LocalIndex
from tests.support.projects import (
    CU128_MATRIX,
    CUBLAS,
    TORCH_CU128,
    TRITON,
    Project,
    Wheelhouse,
    file_hash,
    hashes_of,
    index_hashes,
    make_project,
    serve,
)
from tests.support.torch_data import REAL_TORCH, TORCH_CPU, TORCH_DEPENDENCIES

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)


def test_cpu_target_locks_torch_from_the_pytorch_index(
    project: Project, cli: Callable[..., Run], lock_wheels: Wheelhouse
) -> None:
    index = project.index
    index.reset_counts()

    result = cli("lock")

    assert result.code == 0, result.err
    assert "wrote pinner.lock: 1 target (cpu resolved)" in result.out
    packages = project.packages()
    torch = packages["torch"]
    assert torch["version"] == TORCH_CPU
    assert torch["layer"] == "torch"
    assert torch["source"] == "pytorch"
    assert file_hash(REAL_TORCH) in hashes_of(torch)
    # the files an installer on the target may pick: the x86_64 cp311 build, not the index's
    # aarch64 cp312 one
    assert hashes_of(torch) == [file_hash(REAL_TORCH)]
    expected_main = {"demo-app", *TORCH_DEPENDENCIES}
    assert set(packages) == {"torch", *expected_main}
    for name in expected_main:
        assert (packages[name]["layer"], packages[name]["source"]) == ("main", "default"), name
        (version,) = {packages[name]["version"]}
        assert hashes_of(packages[name]) == [file_hash(lock_wheels.path("pypi", name, version))], (
            name
        )
    assert packages["demo-app"]["via"] == ["-r requirements.in"]
    assert "torch" in packages["filelock"]["via"]
    # torchvision is only a constraint of the plan: nothing requires it, so it is not locked.
    assert "torchvision" not in packages
    assert index.errors == 0


def test_same_name_on_the_wrong_index_is_never_taken(
    project: Project, cli: Callable[..., Run], lock_wheels: Wheelhouse
) -> None:
    index = project.index
    # The decoys are there: torch 2.13.0+cpu on "pypi", demo-app 1.0 on the PyTorch index.
    (decoy_torch,) = [
        f for f in index.files("pypi", "torch") if f.filename.startswith("torch-2.13.0+cpu")
    ]
    (decoy_app,) = index.files("whl/cpu", "demo-app")
    assert decoy_torch.sha256 != file_hash(REAL_TORCH).removeprefix("sha256:")
    index.reset_counts()

    result = cli("lock")

    assert result.code == 0, result.err
    packages = project.packages()
    assert hashes_of(packages["torch"]) == [file_hash(REAL_TORCH)]
    assert f"sha256:{decoy_torch.sha256}" not in hashes_of(packages["torch"])
    assert hashes_of(packages["demo-app"]) == [
        file_hash(lock_wheels.path("pypi", "demo-app", "1.0"))
    ]
    assert f"sha256:{decoy_app.sha256}" not in hashes_of(packages["demo-app"])
    # The request counters: "pypi" was never asked for torch, the PyTorch index only for torch.
    assert index.hits("pypi", "torch") == 0
    assert index.hits("whl/cpu", "demo-app") == 0
    assert index.hits("whl/cpu", "torch") >= 1
    assert {r.project for r in index.log if r.prefix == "whl/cpu"} == {"torch"}
    assert index.hits("pypi", "demo-app") >= 1


def test_cuda_libraries_come_from_the_build_that_is_installed(
    tmp_path: Path,
    loopback: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    lock_wheels: Wheelhouse,
    uv_runs: list[list[str]],
) -> None:
    """torch 2.7.1+cu128 pins nvidia-cublas-cu12 and triton; "pypi" has files of the same names
    and versions with other bytes (and its own torch 2.7.1 pinning the cu126 cuBLAS)."""
    project = make_project(tmp_path / "proj", loopback, monkeypatch, matrix=CU128_MATRIX)
    loopback.reset_counts()

    first = cli("lock")

    assert first.code == 0, first.err
    packages = project.packages("gpu")
    torch = packages["torch"]
    assert (torch["version"], torch["layer"]) == (TORCH_CU128, "torch")
    assert hashes_of(torch) == [file_hash(lock_wheels.path("cu128", "torch", TORCH_CU128))]
    for name, version in (CUBLAS, TRITON):
        pin = packages[name]
        assert (pin["version"], pin["layer"], pin["source"]) == (version, "torch", "pytorch"), name
        assert hashes_of(pin) == [file_hash(lock_wheels.path("cu128", name, version))], name
        decoy = lock_wheels.path("pypi", name, version)
        assert file_hash(decoy) not in hashes_of(pin)
        assert "torch" in pin["via"]
    assert (packages["filelock"]["layer"], packages["filelock"]["source"]) == ("main", "default")
    assert loopback.hits("pypi", "torch") == 0
    # An index build's CUDA libraries are not known before resolving: two runs the first time.
    assert len(uv_runs) == 2

    # The lock remembers them: a re-lock routes everything in one run, to the same result.
    before = project.lock.read_text()
    loopback.reset_counts()
    uv_runs.clear()

    again = cli("lock")

    assert again.code == 0, again.err
    assert len(uv_runs) == 1
    # pinner's reachability probe, uv's resolution and its files pass
    assert loopback.requests["/whl/cu128/torch/"] == 3
    assert loopback.hits("pypi", CUBLAS[0]) == loopback.hits("pypi", TRITON[0]) == 0
    assert project.lock.read_text() == before


A100_MATRIX = """\
[targets.a100]
gpu = "A100"
torch = "==2.13.0"
requirements = ["requirements.in"]
"""


def test_pypi_build_never_asks_the_pytorch_index(
    tmp_path: Path,
    lock_wheels: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    """torch 2.13.0 for an A100 is PyPI's own build (cu130): the torch layer comes from the
    default index, and the PyTorch index (configured, and up) is never asked."""
    with LocalIndex() as index:
        serve(index, lock_wheels, decoys=False)
        project = make_project(tmp_path / "proj", index, monkeypatch, matrix=A100_MATRIX)

        result = cli("lock")

        assert result.code == 0, result.err
        packages = project.packages("a100")
        torch = packages["torch"]
        assert (torch["version"], torch["layer"], torch["source"]) == ("2.13.0", "torch", "default")
        assert hashes_of(torch) == [file_hash(lock_wheels.path("pypi", "torch", "2.13.0"))]
        assert {r.prefix for r in index.log} == {"pypi"}


def test_pypi_build_refuses_a_local_build_from_the_default_index(
    tmp_path: Path, loopback: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    """`torch==2.13.0` also matches `2.13.0+cpu` (PEP 440). A default index that offers one (a
    mirror merging the PyTorch index in) must not get a CPU build into an A100's lock."""
    project = make_project(tmp_path / "proj", loopback, monkeypatch, matrix=A100_MATRIX)

    result = cli("lock")

    assert result.code == 1  # the target failed to resolve (others would be written)
    assert "Traceback" not in result.err
    assert (
        "pinner: error: target a100: the default index gave torch 2.13.0+cpu for the planned "
        "torch==2.13.0, another build." in result.err
    )
    assert "fix: point the default index at PyPI" in result.err
    assert not project.lock.exists()


def test_unreachable_pytorch_index_fails_fast_with_the_ways_out(
    project: Project,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    uv_runs: list[list[str]],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"http://127.0.0.1:{closed}/whl/cpu"
    monkeypatch.setenv("PINNER_TORCH_INDEX_URL", f"http://127.0.0.1:{closed}/whl/{{variant}}")

    result = cli("lock")

    assert result.code == 1
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.count("pinner: error:") == 1
    message = result.err[result.err.index("pinner: error:") :]
    assert message.startswith(f"pinner: error: target cpu: cannot reach the PyTorch index {url} (")
    fix = message.split("\n", 1)[1]
    assert "torch-index-url" in fix
    assert "PINNER_TORCH_INDEX_URL" in fix
    assert "--offline" in fix
    assert uv_runs == []  # failed before any resolver run (no retry storm inside uv)
    assert not project.lock.exists()


def test_companion_pulled_by_a_requirement_comes_from_the_pytorch_index(
    project: Project, cli: Callable[..., Run], lock_wheels: Wheelhouse, uv_runs: list[list[str]]
) -> None:
    """needs-vision requires torchvision; "pypi" has PyPI's torchvision 0.28.0 (another build).
    Sources route direct requirements only, so pinner routes the companion itself."""
    index = project.index
    project.write("requirements.in", "needs-vision\n")

    first = cli("lock")

    assert first.code == 0, first.err
    vision = project.packages()["torchvision"]
    assert (vision["version"], vision["layer"], vision["source"]) == (
        "0.28.0+cpu",
        "torch",
        "pytorch",
    )
    assert hashes_of(vision) == index_hashes(index, "whl/cpu", "torchvision", "0.28.0+cpu")
    assert "needs-vision" in vision["via"]
    assert file_hash(lock_wheels.path("pypi", "torchvision", "0.28.0")) not in hashes_of(vision)
    assert project.packages()["needs-vision"]["layer"] == "main"

    # The lock remembers the route: one run, and "pypi" is not asked for torchvision again.
    before = project.lock.read_text()
    index.reset_counts()
    uv_runs.clear()

    again = cli("lock")

    assert again.code == 0, again.err
    assert len(uv_runs) == 1
    assert index.hits("pypi", "torchvision") == 0
    assert project.lock.read_text() == before


# --- no --extra-index-url anywhere ---------------------------------------------------------------

EXTRA_INDEX = re.compile(r"extra[-_]index|--index[ =]|UV_INDEX\b|PIP_EXTRA", re.IGNORECASE)


@pytest.mark.usefixtures("project")
def test_uv_job_routes_without_an_extra_index() -> None:
    from pinner import pipeline
    from pinner.resolve.resolve import build_job

    matrix = pipeline.load(None)
    ((target, result),) = pipeline.plan_all(matrix, ())
    assert result.plan is not None
    job = build_job(
        result.plan,
        pipeline.requirements_of(matrix, target),
        matrix.root,
        previous=None,
        upgrade=False,
        offline=False,
    )

    text = pyproject(job)
    cmd = argv(job, "uv", Path("/work"))

    assert not EXTRA_INDEX.search(text)
    assert "explicit = true" in text
    assert not [a for a in cmd if re.match(r"-i$|-f$|--find-links|--(extra-|default-)?index", a)]


INDEX_OPTION = {"pip": "--index-url", "uv": "--default-index"}  # the one index, no extra


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_generated_files_use_index_url_for_the_torch_layer_only(
    project: Project, cli: Callable[..., Run], installer: str
) -> None:
    option = INDEX_OPTION[installer]

    result = cli("generate", "--installer", installer)

    assert result.code == 0, result.err
    files = sorted(p for p in (project.root / "pinned").rglob("*") if p.is_file())
    assert len(files) > 5
    for path in files:
        text = path.read_text()
        assert not EXTRA_INDEX.search(text), path
        for line in text.splitlines():
            if re.search(r"--index-url|--default-index", line) and not line.lstrip().startswith(
                "#"
            ):
                assert f'{option} "$TORCH_INDEX_URL" ' in line, (path, line)
                assert "--no-deps" in line, (path, line)
                assert "-r torch-requirements.txt" in line, (path, line)
    for name in ("Dockerfile", "install.sh"):
        lines = project.read(f"pinned/cpu/{name}").splitlines()
        (torch_layer,) = [line for line in lines if "install --no-deps" in line]
        assert f'{option} "$TORCH_INDEX_URL" -r torch-requirements.txt' in torch_layer, name
    # the committed index is rendered, the loopback mirror never (transport, from the environment)
    committed = "https://download.pytorch.org/whl/cpu"
    assert f"ARG TORCH_INDEX_URL={committed}" in project.read("pinned/cpu/Dockerfile")
    assert f"TORCH_INDEX_URL={committed}" in project.read("pinned/cpu/install.sh")
    assert all(project.index.base_url not in p.read_text() for p in files)


def test_pypi_build_renders_no_index_at_all(
    tmp_path: Path,
    lock_wheels: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    with LocalIndex() as index:
        serve(index, lock_wheels, decoys=False)
        project = make_project(tmp_path / "proj", index, monkeypatch, matrix=A100_MATRIX)

        result = cli("generate")

        assert result.code == 0, result.err
        for path in sorted(p for p in (project.root / "pinned").rglob("*") if p.is_file()):
            text = path.read_text()
            assert not EXTRA_INDEX.search(text), path
            assert "--index-url" not in text, path
            assert "--default-index" not in text, path
            assert "index_url" not in text, path
            assert index.base_url not in text, path
