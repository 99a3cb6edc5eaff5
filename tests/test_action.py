"""The composite GitHub Action (action.yml): valid by GitHub's schema, and its `run:` steps run
with bash the way the runner runs them (inputs as environment variables) on a sample project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.index import LocalIndex
from tests.support.recipes import build_wheelhouse, copy_project, cpu_project, pinner
from tests.test_init import check_jsonschema

REPO = Path(__file__).resolve().parent.parent
ACTION = REPO / "action.yml"


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return data


def step(name: str) -> dict[str, Any]:
    (found,) = [s for s in action()["runs"]["steps"] if s.get("name", "").startswith(name)]
    return dict(found)


def run_step(
    name: str, cwd: Path, path: str, base: dict[str, str] | None = None, **inputs: str
) -> subprocess.CompletedProcess[str]:
    """Run a step's script as the runner does (`bash --noprofile --norc -eo pipefail`), its env
    with ${{ inputs.X }} replaced by the given inputs (or the action's defaults)."""
    s = step(name)
    assert s["shell"] == "bash"
    defaults = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()}
    values = defaults | {k.replace("_", "-"): v for k, v in inputs.items()}
    env = {**(os.environ if base is None else base), "PATH": path}
    for key, value in s["env"].items():
        if value == "${{ github.action_path }}":
            env[key] = str(REPO)
        else:
            assert value.startswith("${{ inputs.")  # inputs reach the script only this way
            env[key] = values[value.removeprefix("${{ inputs.").removesuffix(" }}")]
    assert "${{" not in s["run"]  # no expression is pasted into the script
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_action_matches_githubs_schema():
    check_jsonschema("vendor.github-actions", ACTION)
    data = action()
    assert data["runs"]["using"] == "composite"
    assert set(data["inputs"]) == {"command", "python-version", "working-directory", "pr-body"}
    assert data["inputs"]["command"]["default"] == "check"
    assert data["runs"]["steps"][0]["uses"].startswith("actions/setup-python@")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    project = copy_project("llm-service", tmp_path / "work" / "svc")
    done = pinner("generate", "--frozen", cwd=project)
    assert done.returncode == 0, done.stderr
    return project


DEV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def test_run_step_checks_the_project(sample):
    work = sample.parent
    fresh = run_step("Run pinner", work, DEV_PATH, working_directory="svc")
    assert fresh.returncode == 0, fresh.stderr
    (sample / "pinned" / "a100" / "constraints.txt").write_text("tampered\n", encoding="utf-8")
    stale = run_step("Run pinner", work, DEV_PATH, working_directory="svc", command="check")
    assert stale.returncode == 1
    assert "pinned/a100/constraints.txt" in stale.stderr


def test_run_step_refuses_an_unknown_command(sample):
    bad = run_step("Run pinner", sample, DEV_PATH, command="check; rm -rf ~")
    assert bad.returncode == 2
    assert "::error::pinner action: input command is 'check; rm -rf ~'; use check or update" in (
        bad.stdout
    )


def test_run_step_update_locks_and_writes_the_pr_body(tmp_path):
    """`update` on the loopback cpu project (a fake PyPI and PyTorch index): the lock is written
    and the pull-request body lists what was added; `check` then passes."""
    wheels = build_wheelhouse(tmp_path / "wheels")
    with LocalIndex() as index:
        project = cpu_project(tmp_path / "cpu", index, wheels)
        env = project.pinner_env(tmp_path / "cache")
        body = tmp_path / "body.md"
        done = run_step(
            "Run pinner", project.root, DEV_PATH, env, command="update", pr_body=str(body)
        )
        assert done.returncode == 0, done.stderr
        assert (project.root / "pinner.lock").is_file()
        assert "demo-app" in body.read_text(encoding="utf-8")
        check = run_step("Run pinner", project.root, DEV_PATH, env)
        assert check.returncode == 0, check.stderr


@pytest.mark.network
@pytest.mark.slow
def test_install_step_installs_this_commit_with_hashed_dependencies(tmp_path):
    """The install step in a fresh venv: dependencies from PyPI, every file hash-checked,
    pinner from this checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    done = run_step("Install pinner", tmp_path, path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith(f"pinner {__import__('pinner').__version__} ")
    )
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pinner; print(pinner.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert Path(where.strip()).is_relative_to(venv)
