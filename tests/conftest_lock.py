"""Fixtures for the lock, resolve and check tests (helpers in tests/support/projects.py).

Not a conftest.py: test modules that want these fixtures say
``pytest_plugins = ("tests.conftest_lock",)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support.index import LocalIndex
from tests.support.projects import (
    Project,
    Run,
    Wheelhouse,
    build_wheelhouse,
    make_project,
    serve,
)
from tests.support.torch_data import REAL_TORCH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def lock_wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """Every fake wheel of the standard indexes, built once per session."""
    return build_wheelhouse(tmp_path_factory.mktemp("lock-wheels"))


def _require_real_torch() -> None:
    if not REAL_TORCH.is_file():
        pytest.skip(f"{REAL_TORCH} is not on this machine")


@pytest.fixture(scope="module")
def loopback(lock_wheels: Wheelhouse) -> Iterator[LocalIndex]:
    """The standard indexes, shared by the tests of one module. Tests that add files to an
    index, or shut it down, use ``fresh_index``."""
    _require_real_torch()
    with LocalIndex() as index:
        yield serve(index, lock_wheels)


@pytest.fixture
def fresh_index(lock_wheels: Wheelhouse) -> Iterator[LocalIndex]:
    """The standard indexes on a server of the test's own."""
    _require_real_torch()
    with LocalIndex() as index:
        yield serve(index, lock_wheels)


@pytest.fixture
def project(tmp_path: Path, loopback: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A cpu target (torch ==2.13.0) requiring demo-app, on the module's loopback indexes; the
    working directory is its root."""
    return make_project(tmp_path / "proj", loopback, monkeypatch)


@pytest.fixture
def uv_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command line of every resolving `uv pip compile` pinner runs during the test (not the
    files pass, which lists the files of versions already chosen: `--no-deps`, nor the
    comparison run without pinner's bounds)."""
    from pinner.resolve.uv import UvResolver

    runs: list[list[str]] = []
    real = UvResolver._run

    def recording(self: UvResolver, job: Any, cmd: list[str]) -> None:
        if "--no-deps" not in cmd and job.files_pass:  # not the comparison run either
            runs.append(cmd)
        real(self, job, cmd)

    monkeypatch.setattr(UvResolver, "_run", recording)
    return runs


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """cli("lock", "--target", "cpu") -> Run(code, out, err) of `pinner.cli.main`, in-process."""
    from pinner.cli import main

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run
