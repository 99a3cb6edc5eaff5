"""pinner init: pinner.toml from the presets, the pre-commit entry, the scheduled workflow."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pinner import __version__
from pinner.cli import main
from pinner.init import REPO_URL, append_hooks
from pinner.matrix import load_matrix

WORKFLOW = Path(".github/workflows/pinner-update.yml")
# PyYAML (a test dependency) parses YAML the way pre-commit and GitHub do; imported this way so
# type checking needs no stubs package.
yaml: Any = importlib.import_module("yaml")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_the_three_files(project, capsys):
    (project / "requirements.in").write_text("six\n", encoding="utf-8")
    assert main(["init", "--target", "rtx5090", "--target", "a100"]) == 0
    out = capsys.readouterr().out
    assert "create    pinner.toml: targets rtx5090, a100; requirements from requirements.in" in out
    matrix = load_matrix(project / "pinner.toml")
    assert [t.name for t in matrix.targets] == ["rtx5090", "a100"]
    assert all(t.requirements == ("requirements.in",) for t in matrix.targets)
    text = (project / "pinner.toml").read_text(encoding="utf-8")
    assert (
        "# A100 (40/80 GB, PCIe or SXM4): Ampere, sm_80.\n[targets.a100]\n" in text
    )  # comments kept
    assert "h100" not in text
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert config == {
        "repos": [
            {
                "repo": REPO_URL,
                "rev": f"v{__version__}",
                "hooks": [{"id": "pinner-check"}, {"id": "pinner-lock"}],
            }
        ]
    }
    assert (project / WORKFLOW).is_file()


def test_init_hook_ids_exist_in_the_hooks_file():  # the ids init writes are the ones shipped
    hooks = yaml.safe_load(
        (Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    )
    assert {"pinner-check", "pinner-lock"} <= {h["id"] for h in hooks}


def test_init_without_requirements_and_with_every_preset(project, capsys):
    assert main(["init"]) == 0
    assert "no requirements.in: add requirements = [...] to [defaults]" in capsys.readouterr().out
    matrix = load_matrix(project / "pinner.toml")
    assert [t.name for t in matrix.targets] == ["rtx5090", "a100", "h100", "l4", "cpu"]
    assert all(t.requirements == () for t in matrix.targets)


def test_init_refuses_to_overwrite_without_force(project, capsys):
    (project / "pinner.toml").write_text("# mine\n", encoding="utf-8")
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "pinner: error: pinner.toml: already exists; pinner init does not overwrite files: "
        "move them away, or run `pinner init --force` to replace them\n"
    )
    assert (project / "pinner.toml").read_text(encoding="utf-8") == "# mine\n"
    assert not (project / ".pre-commit-config.yaml").exists()  # a refusal writes nothing
    assert not (project / WORKFLOW).exists()
    assert main(["init", "--force", "--target", "cpu"]) == 0
    assert "overwrite pinner.toml" in capsys.readouterr().out
    assert [t.name for t in load_matrix(project / "pinner.toml").targets] == ["cpu"]


def test_init_unknown_target_suggests_a_preset(project, capsys):
    assert main(["init", "--target", "rtx5009"]) == 2
    err = capsys.readouterr().err
    assert "--target: no preset named 'rtx5009' (did you mean 'rtx5090'?)" in err
    assert not (project / "pinner.toml").exists()


def test_init_refuses_when_pyproject_has_a_matrix(project, capsys):
    (project / "pyproject.toml").write_text('[tool.pinner.targets.a]\ngpu = "cpu"\n', "utf-8")
    assert main(["init"]) == 2
    assert "pyproject.toml: tool.pinner: this project already has a matrix" in (
        capsys.readouterr().err
    )


EXISTING = """\
# my hooks
default_stages: [pre-commit]
repos:
- repo: https://github.com/pre-commit/pre-commit-hooks
  rev: v5.0.0
  hooks:
  - id: trailing-whitespace
  # the formatter
- repo: https://github.com/astral-sh/ruff-pre-commit
  rev: v0.6.9
  hooks:
  - id: ruff-format

# CI settings
ci:
  autofix_prs: false
"""


def test_init_appends_to_an_existing_pre_commit_config(project):
    path = project / ".pre-commit-config.yaml"
    path.write_text(EXISTING, encoding="utf-8")
    assert main(["init", "--target", "cpu"]) == 0
    text = path.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert [r["repo"] for r in config["repos"]] == [
        "https://github.com/pre-commit/pre-commit-hooks",
        "https://github.com/astral-sh/ruff-pre-commit",
        REPO_URL,
    ]
    assert config["ci"] == {"autofix_prs": False}
    assert config["default_stages"] == ["pre-commit"]
    for line in EXISTING.splitlines():
        assert line in text.splitlines()  # every line of the user's file is kept
    # a second run leaves it alone (the entry is there already)
    (project / "pinner.toml").unlink()
    WORKFLOW.unlink()
    assert main(["init", "--target", "cpu"]) == 0
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    "text",
    [
        (
            "repos:\n  - repo: local\n    hooks:\n      - id: x\n        name: x\n"
            "        entry: x\n        language: system\n"
        ),
        (
            "repos:\n- repo: local\n  hooks:\n  - id: x\n    name: x\n    entry: x\n"
            "    language: system\nexclude: ^vendor/\n"
        ),
        "exclude: ^vendor/\n",
        "repos:\n",
    ],
    ids=["indented", "column-0-then-key", "no-repos", "empty-repos"],
)
def test_append_hooks_keeps_valid_yaml(text):
    result = yaml.safe_load(append_hooks(text))
    assert result["repos"][-1]["repo"] == REPO_URL
    before = yaml.safe_load(text) or {}
    assert result["repos"][:-1] == (before.get("repos") or [])
    assert {k: v for k, v in result.items() if k != "repos"} == {
        k: v for k, v in before.items() if k != "repos"
    }


def test_append_hooks_refuses_a_flow_list():
    from pinner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"repos: is not a block list"):
        append_hooks("repos: []\n")


def test_workflow_matches_githubs_schema_and_the_brief(project):
    assert main(["init", "--target", "a100"]) == 0
    path = project / WORKFLOW
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flow = yaml.safe_load(path.read_text(encoding="utf-8"))
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in triggers
    assert len(triggers["schedule"]) == 1
    steps = flow["jobs"]["update"]["steps"]
    uses = [s.get("uses") for s in steps if "uses" in s]
    assert uses == [
        "actions/checkout@v6",
        "actions/setup-python@v6",
        "peter-evans/create-pull-request@v8",
    ]
    runs = [s["run"] for s in steps if "run" in s]
    assert f'python -m pip install "pinner=={__version__}"' in runs
    assert "pinner update --pr-body pinner-update.md" in runs
    pr = steps[-1]["with"]
    assert pr["branch"] == "pinner/update"
    assert pr["body-path"] == "pinner-update.md"
    assert pr["delete-branch"] is True
    assert pr["title"]
    assert pr["commit-message"]
    assert pr["add-paths"].split() == ["pinner.lock", "pinned/"]
    assert flow["permissions"] == {"contents": "write", "pull-requests": "write"}


def test_workflow_cron_is_weekly(project):
    assert main(["init", "--target", "cpu"]) == 0
    flow = yaml.safe_load((project / WORKFLOW).read_text(encoding="utf-8"))
    minute, hour, dom, month, dow = flow[True]["schedule"][0]["cron"].split()
    assert (dom, month) == ("*", "*")
    assert dow.isdigit()
    assert minute.isdigit()
    assert hour.isdigit()


@pytest.mark.usefixtures("project")
def test_init_result_locks_with_pinner_check_stale_until_locked(capsys):
    """The written matrix is one pinner reads: `pinner check` asks for `pinner lock`."""
    assert main(["init", "--target", "cpu"]) == 0
    capsys.readouterr()
    assert main(["check"]) == 1
    assert "pinner.lock: missing" in capsys.readouterr().err
