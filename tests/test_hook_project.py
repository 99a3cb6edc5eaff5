"""pinner's pre-commit hooks on a committed sample project (tests/data/hook-project): the remote
hooks through `pre-commit try-repo` (pre-commit installs pinner from this repository, as it does
for `repo: <url>` at a `rev`), and the `repo: local` entry `pinner init --hooks local` writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "hook-project"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.network


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(SAMPLE, project)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "sample"], cwd=project, check=True)
    return project


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [str(BIN / "pre-commit"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_try_repo_runs_both_remote_hooks(sample, tmp_path):
    home = tmp_path / "pre-commit-home"
    first = pre_commit("try-repo", str(REPO), "--all-files", cwd=sample, home=home)
    assert first.returncode == 1, first.stdout
    assert "pinner.lock: missing" in first.stdout  # pinner-check: nothing is locked yet
    # pinner-lock locked and rendered (new files: pre-commit reports only changes of tracked ones)
    assert "pinner generate (re-lock and re-render when inputs change)....." in first.stdout
    assert (sample / "pinner.lock").is_file()
    assert (sample / "pinned" / "rtx5090" / "constraints.txt").is_file()
    second = pre_commit("try-repo", str(REPO), "--all-files", cwd=sample, home=home)
    assert second.returncode == 0, second.stdout
    assert second.stdout.count("Passed") == 2


def test_local_hooks_run_the_projects_own_pinner(sample, tmp_path):
    init = subprocess.run(
        [str(BIN / "pinner"), "init", "--no-workflow", "--hooks", "local"],
        cwd=sample,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert "keep      pinner.toml: kept as it is" in init.stdout
    home = tmp_path / "pre-commit-home"
    subprocess.run(["git", "add", "-A"], cwd=sample, check=True)
    first = pre_commit("run", "--all-files", cwd=sample, home=home)
    assert first.returncode == 1
    assert "pinner.lock: missing" in first.stdout
    assert (sample / "pinner.lock").is_file()  # written by pinner-lock
    subprocess.run(["git", "add", "-A"], cwd=sample, check=True)
    second = pre_commit("run", "--all-files", cwd=sample, home=home)
    assert second.returncode == 0, second.stdout
    (sample / "pinned" / "rtx5090" / "constraints.txt").write_text("tampered\n", encoding="utf-8")
    stale = pre_commit("run", "pinner-check", "--all-files", cwd=sample, home=home)
    assert stale.returncode == 1
    assert "pinned/rtx5090/constraints.txt" in stale.stdout
