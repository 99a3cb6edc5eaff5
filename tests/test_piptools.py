"""The pip-tools engine: refuses targets whose Python or platform is not the host's (it would
write a wrong lock), locks a host-matching cpu target through the loopback indexes (pip-compile
reads pip's configuration: PIP_INDEX_URL is the fake PyPI, pinner adds the PyTorch index's
project pages with --find-links), and refuses when it cannot keep the indexes apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pinner.resolve.piptools import host
from tests.support.index import LocalIndex
from tests.support.projects import (
    CPU_MATRIX,
    CPU_TAGS,
    Project,
    Wheelhouse,
    file_hash,
    hashes_of,
    index_hashes,
    make_project,
    serve,
)
from tests.support.torch_data import REAL_TORCH, TORCH_CPU, TORCH_DEPENDENCIES, TORCH_REQUIRES
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

HOST_PYTHON, HOST_PLATFORM = host()
host_is_cp311_x86_64 = pytest.mark.skipif(
    (HOST_PYTHON, HOST_PLATFORM) != ("3.11", "linux-x86_64"),
    reason="the real torch wheel is cp311 linux-x86_64",
)


@pytest.mark.parametrize(
    ("key", "value", "python", "platform"),
    [
        ("python", "3.12", "3.12", HOST_PLATFORM),
        ("platform", "linux-aarch64", HOST_PYTHON, "linux-aarch64"),
    ],
    ids=["python", "platform"],
)
def test_piptools_refuses_a_target_that_is_not_the_host(
    project: Project,
    cli: Callable[..., Run],
    key: str,
    value: str,
    python: str,
    platform: str,
) -> None:
    assert (python, platform) != (HOST_PYTHON, HOST_PLATFORM)
    project.write("pinner.toml", CPU_MATRIX + f'{key} = "{value}"\n')
    project.lock.write_text("# an existing lock, not to be touched\nversion = 2\n[inputs]\n")
    project.index.reset_counts()

    result = cli("lock", "--resolver", "pip-tools")

    assert result.code == 1  # the target failed to resolve
    assert "Traceback" not in result.err
    assert (
        f"pinner: error: target cpu: pip-compile resolves for the interpreter running pinner "
        f"(Python {HOST_PYTHON}, {HOST_PLATFORM}), but the target is Python {python}, "
        f"{platform}; it would write a wrong lock.\n  fix: use --resolver uv"
    ) in result.err
    assert (
        project.lock.read_text() == "# an existing lock, not to be touched\nversion = 2\n[inputs]\n"
    )
    assert project.index.log == []  # refused before asking any index


def test_piptools_refusal_writes_no_lock(project: Project, cli: Callable[..., Run]) -> None:
    project.write("pinner.toml", CPU_MATRIX + 'python = "3.12"\n')

    result = cli("lock", "--resolver", "pip-tools")

    assert result.code == 1  # the target failed to resolve
    assert "--resolver uv" in result.err
    assert not project.lock.exists()


@host_is_cp311_x86_64
def test_piptools_locks_a_host_target_through_the_loopback_indexes(
    tmp_path: Path,
    lock_wheels: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    with LocalIndex() as index:
        serve(index, lock_wheels, decoys=False)
        project = make_project(
            tmp_path / "proj", index, monkeypatch, requirements="demo-app\nneeds-vision\n"
        )

        result = cli("lock", "--resolver", "pip-tools")

        assert result.code == 0, result.err
        packages = project.packages()
        # needs-vision pulls torchvision: the index build, from the PyTorch index's page, not
        # PyPI's torchvision 0.28.0 (pip-compile gets every torch-family page with --find-links).
        vision = packages.pop("torchvision")
        assert (vision["version"], vision["layer"], vision["source"]) == (
            "0.28.0+cpu",
            "torch",
            "pytorch",
        )
        assert hashes_of(vision) == index_hashes(index, "whl/cpu", "torchvision", "0.28.0+cpu")
        torch = packages["torch"]
        assert (torch["version"], torch["layer"], torch["source"]) == (
            TORCH_CPU,
            "torch",
            "pytorch",
        )
        assert file_hash(REAL_TORCH) in hashes_of(torch)
        assert hashes_of(torch) == index_hashes(index, "whl/cpu", "torch", TORCH_CPU)
        assert set(packages) == {"torch", "demo-app", "needs-vision", *TORCH_DEPENDENCIES}
        for name, pin in packages.items():
            if name != "torch":
                assert (pin["layer"], pin["source"]) == ("main", "default"), name
                assert hashes_of(pin) == index_hashes(index, "pypi", name, pin["version"]), name
        assert index.hits("whl/cpu", "demo-app") == 0
        assert index.errors == 0


@host_is_cp311_x86_64
def test_piptools_refuses_when_the_default_index_has_the_torch_build_too(
    tmp_path: Path,
    lock_wheels: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    """ "pypi" has a decoy torch 2.13.0+cpu: pip-compile merges it with the --find-links page
    (its hash would be in the lock), so the engine refuses and points to uv. (A small fake
    torch stands in for the real one here: pip-compile downloads wheels to hash them.)"""
    fake = build_wheel(
        tmp_path / "wheels",
        "torch",
        TORCH_CPU,
        requires=TORCH_REQUIRES,
        module_source="REAL = True\n",
        **CPU_TAGS,
    )
    with LocalIndex() as index:
        for wheel in lock_wheels.pypi:  # decoys included
            index.add("pypi", wheel)
        index.add("whl/cpu", fake)
        project = make_project(tmp_path / "proj", index, monkeypatch)

        result = cli("lock", "--resolver", "pip-tools")

        assert result.code == 1  # the target failed to resolve
        assert "Traceback" not in result.err
        assert (
            f"pinner: error: target cpu: torch {TORCH_CPU} must come from the PyTorch index "
            f"{project.torch_index}, but pip-compile also took files from another index"
        ) in result.err
        assert "fix: use --resolver uv" in result.err
        assert not project.lock.exists()
