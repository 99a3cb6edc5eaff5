"""--offline: works from the lock and the caches with every index shut down, and fails clearly
(naming the target and the way out, exit 2, no traceback) when they do not suffice."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from pinner.lock.lockfile import with_generated
from tests.support.projects import Project, make_project

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)


@pytest.fixture
def locked_offline(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> Iterator[Project]:
    """A project locked and generated online, then every index shut down and any other
    connection refused."""
    project = make_project(tmp_path / "proj", fresh_index, monkeypatch)
    result = cli("generate")
    assert result.code == 0, result.err
    fresh_index.close()

    def refuse(_self: socket.socket, address: object) -> None:
        msg = f"test: no network in offline mode ({address})"
        raise OSError(msg)

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", refuse)
        yield project


def test_offline_lock_with_unchanged_inputs_needs_no_index(
    locked_offline: Project, cli: Callable[..., Run]
) -> None:
    before = locked_offline.lock.read_text()

    result = cli("lock", "--offline")

    assert result.code == 0, result.err
    assert "pinner.lock: no changes (1 target; none resolved)" in result.out
    assert locked_offline.lock.read_text() == before


def test_offline_generate_renders_from_the_lock(
    locked_offline: Project, cli: Callable[..., Run]
) -> None:
    constraints = locked_offline.root / "pinned" / "cpu" / "constraints.txt"
    expected = constraints.read_text()
    constraints.unlink()

    result = cli("generate", "--offline")

    assert result.code == 0, result.err
    assert constraints.read_text() == expected
    assert cli("check").code == 0


def test_offline_lock_after_a_change_fails_clearly(
    locked_offline: Project, cli: Callable[..., Run], uv_runs: list[list[str]]
) -> None:
    """uv's cache cannot answer for a new requirement (the loopback index sends no-store), so
    the resolution fails: one message, the target, the way out; the lock is left alone."""
    before = locked_offline.lock.read_text()
    locked_offline.write("requirements.in", "demo-app\nother-app\n")

    result = cli("lock", "--offline")

    assert result.code == 1  # the target failed to resolve
    assert "Traceback" not in result.err
    assert result.err.count("pinner: error:") == 1
    assert "pinner: error: target cpu: offline resolution failed" in result.err
    assert "fix: run once without --offline" in result.err
    assert locked_offline.lock.read_text() == before
    assert len(uv_runs) == 1
    assert "--offline" in uv_runs[0]  # uv itself was told: it never tried the network


def test_offline_generate_after_a_change_fails_clearly(
    locked_offline: Project, cli: Callable[..., Run]
) -> None:
    locked_offline.write("requirements.in", "demo-app\nother-app\n")

    result = cli("generate", "--offline")

    assert result.code == 1  # the target failed to resolve
    assert "Traceback" not in result.err
    assert "target cpu: offline resolution failed" in result.err
    assert "without --offline" in result.err


def test_offline_lock_reuses_a_cached_resolution(
    locked_offline: Project, cli: Callable[..., Run], uv_runs: list[list[str]]
) -> None:
    """A resolution pinner has made before (same job: requirements, plan, kept versions) is
    answered from pinner's cache, offline, after the lock lost its entry."""
    before = locked_offline.lock.read_text()
    locked_offline.lock.unlink()
    # The first online lock had no old lock to keep versions from: the same job again.

    result = cli("lock", "--offline")

    assert result.code == 0, result.err
    assert "(cpu resolved)" in result.out
    # the same lock, but for `generate`'s note of where it wrote, which went with the old lock
    assert locked_offline.lock.read_text() == with_generated(before, {})
    assert uv_runs == []  # answered by pinner's cache, not by uv


def test_offline_without_a_lock_or_cache_fails_clearly(
    project: Project, cli: Callable[..., Run], uv_runs: list[list[str]]
) -> None:
    project.index.reset_counts()

    result = cli("lock", "--offline")

    assert result.code == 1  # the target failed to resolve
    assert "Traceback" not in result.err
    assert "target cpu: offline resolution failed" in result.err
    assert "fix: run once without --offline" in result.err
    assert not project.lock.exists()
    assert [("--offline" in c) for c in uv_runs] == [True]
    assert project.index.log == []  # the indexes are up, and nobody asked them
