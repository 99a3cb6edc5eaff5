"""Nothing lost: `pinner generate` and `pinner lock --upgrade`, SIGKILLed at 20 points in time
spread over a measured run (seed fixed), leave pinner.lock either byte for byte as it was or
fully new (and readable), each file of pinned/ old or new, `pinner check` saying which (exit 0
only when everything is new, never a traceback), and no temporary file in the project (a kill
inside the few milliseconds of staging may leave one: the next run removes it).

Real processes against loopback indexes. The kill goes to the whole process group, as a
terminal's or a CI runner's would, so the resolver pinner started dies with it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from pinner.lock.lockfile import read_lock
from tests.support.index import LocalIndex
from tests.support.recipes import build_wheelhouse, cpu_project
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

POINTS = 20
SEED = 20261130
COMMANDS = (("generate",), ("lock", "--upgrade"))

pytestmark = pytest.mark.slow


def run(
    args: tuple[str, ...], project: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinner", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def temps(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*.tmp"))


class Before:
    """A project generated with demo-app 1.0, whose requirements now ask for the 1.1 that the
    index serves since; and, for each command, the state one whole run ends in."""

    def __init__(self, root: Path, index: LocalIndex) -> None:
        wheels = build_wheelhouse(root / "wheels")
        project = cpu_project(root / "old", index, wheels)
        self.env = project.pinner_env(root / "cache")
        assert run(("generate",), project.root, self.env).returncode == 0
        index.add(
            "pypi",
            build_wheel(root / "wheels" / "pypi", "demo-app", "1.1", requires=["torch>=2.0"]),
        )
        (project.root / "requirements.in").write_text("demo-app>=1.1\n", encoding="utf-8")
        self.root = project.root
        self.lock = (self.root / "pinner.lock").read_bytes()
        self.pinned = files(self.root / "pinned")
        self.after: dict[tuple[str, ...], tuple[bytes, dict[str, bytes], float]] = {}
        for args in COMMANDS:
            whole = root / ("whole-" + args[0])
            shutil.copytree(self.root, whole)
            started = time.monotonic()
            done = run(args, whole, self.env)
            took = time.monotonic() - started
            assert done.returncode == 0, done.stderr
            lock = (whole / "pinner.lock").read_bytes()
            assert lock != self.lock
            self.after[args] = (lock, files(whole / "pinned"), took)
        assert self.after[("generate",)][1] != self.pinned  # generate rewrites pinned/


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Before]:
    with LocalIndex() as index:
        yield Before(tmp_path_factory.mktemp("kill"), index)


def test_a_killed_run_loses_nothing(before: Before, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    left_temps = 0
    outcomes = []
    for point in range(POINTS):
        args = COMMANDS[point % 2]
        new_lock, new_pinned, took = before.after[args]
        delay = took * (point + rng.random()) / (POINTS - 2)  # the last ones land after the end
        project = tmp_path / f"p{point}"
        shutil.copytree(before.root, project)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pinner", *args],
            cwd=project,
            env=before.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # ended already: nothing left to kill
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

        lock = (project / "pinner.lock").read_bytes()
        assert lock in (before.lock, new_lock), f"point {point}: the lock is neither old nor new"
        read_lock(project / "pinner.lock")  # parses, every field checked
        pinned = files(project / "pinned")
        assert pinned.keys() == before.pinned.keys()
        for name, data in pinned.items():
            assert data in (before.pinned[name], new_pinned[name]), f"point {point}: {name}"
        check = run(("check",), project, before.env)
        assert "Traceback" not in check.stderr
        everything_new = lock == new_lock and pinned == new_pinned and args == ("generate",)
        assert check.returncode == (0 if everything_new else 1), check.stderr
        outcomes.append("new" if lock == new_lock else "old")
        if temps(project):  # killed while staging: the next run sweeps what it left
            left_temps += 1
            assert run(args, project, before.env).returncode == 0
            assert temps(project) == []
    assert "old" in outcomes  # the points do span the run: some kills came before the lock
    assert "new" in outcomes  # was written, some after
    assert left_temps <= 2
