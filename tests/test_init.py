"""pinner init: pinner.toml from the presets, the pre-commit entry, the update workflow and the
hashed requirements it installs pinner from; only what is missing is added."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinner import __version__
from pinner.cli import main
from pinner.commands import workflow
from pinner.commands.hooks import HOOKS, PRE_COMMIT, append_hooks, hook_block
from pinner.commands.workflow import REQUIREMENTS, PinnerSource
from pinner.load.matrix import load_matrix
from tests.support.index import LocalIndex, uv_env
from tests.support.wheels import build_wheel

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = Path(".github/workflows/pinner-update.yml")
URL = "https://github.com/pinner-dev/pinner"  # pyproject's [project.urls] Repository
COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMPILED = "six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """init as a released pinner would run it, with the resolution stubbed (recorded)."""
    calls: list[list[str]] = []

    def compile_hashed(root: Path, requirements: list[str], python: str) -> str:  # noqa: ARG001
        calls.append([*requirements, python])
        return COMPILED

    monkeypatch.setattr(workflow, "pinner_source", lambda: PinnerSource(version=__version__))
    monkeypatch.setattr(workflow, "compile_hashed", compile_hashed)
    return calls


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.usefixtures("released")
def test_init_writes_the_four_files(project, capsys):
    (project / "requirements.in").write_text("six\n", encoding="utf-8")
    assert main(["init", "--target", "rtx5090", "--target", "a100"]) == 0
    out = capsys.readouterr().out
    assert "create    pinner.toml: targets rtx5090, a100; requirements from requirements.in" in out
    assert f"create    .github/pinner-requirements.txt: pinner {__version__} (released)" in out
    matrix = load_matrix(project / "pinner.toml")
    assert [t.name for t in matrix.targets] == ["rtx5090", "a100"]
    assert all(t.requirements == ("requirements.in",) for t in matrix.targets)
    text = (project / "pinner.toml").read_text(encoding="utf-8")
    assert "# A100 (40/80 GB, PCIe or SXM4): Ampere, sm_80.\n[targets.a100]\n" in text
    assert "h100" not in text
    assert load(project / PRE_COMMIT) == {
        "repos": [
            {
                "repo": URL,
                "rev": f"v{__version__}",
                "hooks": [{"id": "pinner-check"}, {"id": "pinner-lock"}],
            }
        ]
    }
    assert (project / WORKFLOW).is_file()
    assert (project / REQUIREMENTS).read_text(encoding="utf-8").endswith(COMPILED)


def test_the_remote_hook_repo_is_the_distributions_project_url():
    assert workflow.repository_url() == URL


def test_hooks_agree_with_the_hooks_file():
    """The ids of the remote entry and the local entry's definitions are .pre-commit-hooks.yaml's."""
    shipped = {h["id"]: h for h in load(REPO / ".pre-commit-hooks.yaml")}
    for hook in HOOKS:
        assert {k: shipped[hook["id"]][k] for k in ("id", "name", "entry", "files")} == hook
        assert shipped[hook["id"]]["pass_filenames"] is False
    local = yaml.safe_load("repos:\n" + hook_block("local", "", __version__))["repos"][0]
    assert local["repo"] == "local"
    for written, hook in zip(local["hooks"], HOOKS, strict=True):
        assert written == {**hook, "language": "system", "pass_filenames": False}


@pytest.mark.usefixtures("released")
def test_init_without_requirements_and_with_every_preset(project, capsys):
    assert main(["init"]) == 0
    assert "no requirements.in: add requirements = [...] to [defaults]" in capsys.readouterr().out
    matrix = load_matrix(project / "pinner.toml")
    assert [t.name for t in matrix.targets] == ["rtx5090", "a100", "h100", "l4", "cpu"]
    assert all(t.requirements == () for t in matrix.targets)


def test_init_keeps_an_existing_matrix_byte_for_byte_and_adds_the_rest(project, capsys, released):
    mine = '# mine\nlock = "gpu.lock"\nout = "recipes"\n[defaults]\npython = "3.12"\n'
    mine += '[targets.box]\ngpu = "cpu"\n'
    (project / "pinner.toml").write_text(mine, encoding="utf-8")
    assert main(["init", "--target", "a100"]) == 0
    out = capsys.readouterr().out
    assert "keep      pinner.toml: kept as it is (--target a100 not applied" in out
    assert (project / "pinner.toml").read_bytes() == mine.encode()
    assert (project / PRE_COMMIT).is_file()
    flow = load(project / WORKFLOW)
    assert released == [[f"torch-pinner=={__version__}", "3.12"]]  # the matrix's Python
    setup = flow["jobs"]["resolve"]["steps"][1]
    assert setup["with"] == {"python-version": "3.12"}
    pr = flow["jobs"]["pull-request"]["steps"][-1]["with"]
    assert pr["add-paths"].split() == ["gpu.lock", "recipes/"]
    # nothing is missing now: a second run changes nothing
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert main(["init"]) == 0
    assert capsys.readouterr().out.count("keep ") == 4
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


@pytest.mark.usefixtures("released")
def test_force_keeps_numbered_backups_and_says_so(project, capsys):
    (project / "pinner.toml").write_text("# mine\n", encoding="utf-8")
    assert main(["init", "--target", "cpu"]) == 0
    flow_before = (project / WORKFLOW).read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["init", "--force", "--target", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "replace   pinner.toml: targets cpu" in out
    assert "(the old file is now pinner.toml.~1~)" in out
    assert f"(the old file is now {WORKFLOW.as_posix()}.~1~)" in out
    assert (project / "pinner.toml.~1~").read_text(encoding="utf-8") == "# mine\n"
    assert (project / f"{WORKFLOW}.~1~").read_text(encoding="utf-8") == flow_before
    assert [t.name for t in load_matrix(project / "pinner.toml").targets] == ["cpu"]
    assert main(["init", "--force", "--target", "a100"]) == 0
    assert "(the old file is now pinner.toml.~2~)" in capsys.readouterr().out
    assert "[targets.cpu]" in (project / "pinner.toml.~2~").read_text(encoding="utf-8")
    assert "[targets.a100]" in (project / "pinner.toml").read_text(encoding="utf-8")


def test_no_workflow_and_no_hooks_need_no_network(project, capsys, monkeypatch):
    def offline(*args: object) -> str:  # noqa: ARG001
        msg = "resolved without a workflow"
        raise AssertionError(msg)

    monkeypatch.setattr(workflow, "compile_hashed", offline)
    assert main(["init", "--target", "cpu", "--no-workflow", "--no-hooks"]) == 0
    assert sorted(p.name for p in project.iterdir()) == ["pinner.toml"]
    assert main(["init", "--no-workflow", "--hooks", "local"]) == 0
    config = load(project / PRE_COMMIT)
    assert config["repos"][0]["repo"] == "local"
    assert "pinner hooks (repo: local)" in capsys.readouterr().out
    assert not (project / ".github").exists()


def test_a_failed_write_leaves_nothing_half_written(project, released):
    (project / ".github").write_text("a file where the folder should be\n", encoding="utf-8")
    from pinner.commands.init import InitOptions, init_project

    # the staging fails: no matrix, no hooks, no temporary files
    with pytest.raises(OSError, match=r"File exists|Not a directory"):
        init_project(project, ["cpu"], InitOptions())
    assert sorted(p.name for p in project.iterdir()) == [".github"]
    assert released  # it got as far as the workflow


def test_no_repository_says_it_cannot_write_a_remote_hook(project, capsys, monkeypatch):
    monkeypatch.setattr(workflow, "repository_url", lambda: "")
    assert main(["init", "--no-workflow"]) == 2
    err = capsys.readouterr().err
    assert "cannot write a remote hook" in err
    assert "--hooks local" in err
    assert not (project / "pinner.toml").exists()
    assert main(["init", "--no-workflow", "--hook-repo", "https://example.org/me/pinner"]) == 0
    assert load(project / PRE_COMMIT)["repos"][0] == {
        "repo": "https://example.org/me/pinner",
        "rev": f"v{__version__}",
        "hooks": [{"id": "pinner-check"}, {"id": "pinner-lock"}],
    }


@pytest.mark.usefixtures("project")
def test_hook_repo_is_validated(capsys):
    assert main(["init", "--no-workflow", "--hook-repo", "x; rm -rf /"]) == 2
    assert "--hook-repo: 'x; rm -rf /' is not a repository URL" in capsys.readouterr().err


def test_init_unknown_target_suggests_a_preset(project, capsys):
    assert main(["init", "--target", "rtx5009"]) == 2
    err = capsys.readouterr().err
    assert "--target: no preset named 'rtx5009' (did you mean 'rtx5090'?)" in err
    assert not (project / "pinner.toml").exists()


@pytest.mark.usefixtures("released")
def test_a_pyproject_matrix_is_kept_and_only_the_rest_added(project, capsys):
    (project / "pyproject.toml").write_text('[tool.pinner.targets.a]\ngpu = "cpu"\n', "utf-8")
    assert main(["init"]) == 0
    assert "keep      pyproject.toml: [tool.pinner]" in capsys.readouterr().out
    assert not (project / "pinner.toml").exists()
    assert (project / WORKFLOW).is_file()
    assert main(["init", "--force"]) == 2
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
  # the formatter; see also https://github.com/pinner-dev/pinner
- repo: https://github.com/astral-sh/ruff-pre-commit
  rev: v0.6.9
  hooks:
  - id: ruff-format

# CI settings
ci:
  autofix_prs: false
"""


def test_a_url_in_a_comment_is_not_pinners_hooks(project):
    path = project / PRE_COMMIT
    path.write_text(EXISTING, encoding="utf-8")
    assert main(["init", "--target", "cpu", "--no-workflow"]) == 0
    text = path.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert [r["repo"] for r in config["repos"]] == [
        "https://github.com/pre-commit/pre-commit-hooks",
        "https://github.com/astral-sh/ruff-pre-commit",
        URL,
    ]
    assert config["ci"] == {"autofix_prs": False}
    assert config["default_stages"] == ["pre-commit"]
    assert text.startswith(
        EXISTING.split("\n# CI settings", maxsplit=1)[0]
    )  # the user's lines are kept
    # a second run leaves it alone: the parsed config has pinner's hooks now
    assert main(["init", "--no-workflow"]) == 0
    assert path.read_text(encoding="utf-8") == text


def test_hooks_under_another_url_or_local_count_as_present(project, capsys):
    path = project / PRE_COMMIT
    fork = "repos:\n  - repo: https://example.org/fork/pinner\n    rev: v9\n    hooks:\n"
    fork += "      - id: pinner-check\n"
    path.write_text(fork, encoding="utf-8")
    assert main(["init", "--no-workflow"]) == 0
    assert "already has pinner's hooks (https://example.org/fork/pinner)" in (
        capsys.readouterr().out
    )
    assert path.read_text(encoding="utf-8") == fork


def test_broken_yaml_is_refused_with_its_line(project, capsys):
    (project / PRE_COMMIT).write_text("repos:\n  - repo: [\n", encoding="utf-8")
    assert main(["init", "--no-workflow"]) == 2
    assert capsys.readouterr().err.startswith("pinner: error: .pre-commit-config.yaml: line 3:")
    assert not (project / "pinner.toml").exists()


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
@pytest.mark.parametrize("mode", ["remote", "local"])
def test_append_hooks_keeps_valid_yaml(text, mode):
    result = yaml.safe_load(append_hooks(text, hook_block(mode, URL, __version__)))
    assert result["repos"][-1]["repo"] == (URL if mode == "remote" else "local")
    before = yaml.safe_load(text) or {}
    assert result["repos"][:-1] == (before.get("repos") or [])
    assert {k: v for k, v in result.items() if k != "repos"} == {
        k: v for k, v in before.items() if k != "repos"
    }


def test_append_hooks_refuses_a_flow_list():
    from pinner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"repos: is not a block list"):
        append_hooks("repos: []\n", hook_block("remote", URL, __version__))


# --- the workflow --------------------------------------------------------------------------------


def check_jsonschema(schema: str, path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    actionlint = shutil.which("actionlint")
    if actionlint and schema == "vendor.github-workflows":
        lint = subprocess.run([actionlint, str(path)], capture_output=True, text=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


@pytest.mark.parametrize("unreleased", [False, True], ids=["released", "git-commit"])
def test_workflow_is_hardened_and_matches_githubs_schema(project, monkeypatch, unreleased):
    git = f"git+{URL}@{COMMIT}" if unreleased else ""
    monkeypatch.setattr(
        workflow, "pinner_source", lambda: PinnerSource(version=__version__, git=git, note="n")
    )
    monkeypatch.setattr(workflow, "compile_hashed", lambda *_: COMPILED)
    assert main(["init", "--target", "a100"]) == 0
    path = project / WORKFLOW
    check_jsonschema("vendor.github-workflows", path)
    flow = load(path)
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in triggers
    assert flow["permissions"] == {}
    resolve, pr = flow["jobs"]["resolve"], flow["jobs"]["pull-request"]
    assert resolve["permissions"] == {"contents": "read"}
    assert pr["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert pr["needs"] == "resolve"
    actions = workflow.pinned_actions()
    text = path.read_text(encoding="utf-8")
    for job in (resolve, pr):
        for step in steps_of(job):
            if "uses" in step:
                name, sha = step["uses"].split("@")
                assert sha == actions[name].sha
                assert f"uses: {name}@{sha}  # {actions[name].tag}\n" in text
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    install = next(s["run"] for s in steps_of(resolve) if "Install pinner" in s.get("name", ""))
    assert (
        "python -m pip install --require-hashes --no-deps -r .github/pinner-requirements.txt"
        in (install)
    )
    assert (f'--no-build-isolation "{git}"' in install) is unreleased
    runs = [s.get("run", "") for s in steps_of(resolve)]
    assert 'pinner update --pr-body "$RUNNER_TEMP/pinner-update/body.md"' in runs
    save = next(
        s["run"] for s in steps_of(resolve) if s.get("name") == "Save the changes as a binary diff"
    )
    assert "git diff --binary --no-renames -- pinner.lock pinned/" in save
    # the job with write permissions runs no pinner and no script of the first job
    pr_runs = " ".join(s.get("run", "") for s in steps_of(pr))
    assert "pinner " not in pr_runs
    assert "python" not in pr_runs
    create = steps_of(pr)[-1]["with"]
    assert create["branch"] == "pinner/update"
    assert create["body-path"] == "${{ runner.temp }}/pinner-update/body.md"
    assert create["add-paths"].split() == ["pinner.lock", "pinned/"]
    assert flow[True]["schedule"][0]["cron"].split()[2:4] == ["*", "*"]  # weekly


def script(project: Path, job: str, name: str) -> str:
    flow = load(project / WORKFLOW)
    return str(next(s["run"] for s in flow["jobs"][job]["steps"] if s.get("name") == name))


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def bash(text: str, cwd: Path, temp: Path) -> subprocess.CompletedProcess[str]:
    """A step's script as the workflow runs it (`shell: bash`: bash -eo pipefail)."""
    env = {**os.environ, "RUNNER_TEMP": str(temp)}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.usefixtures("released")
def test_the_jobs_hand_over_a_binary_diff_of_the_lock_and_pinned_only(project, tmp_path_factory):
    """The `resolve` job's diff script and the `pull-request` job's apply script, run with bash
    in two checkouts of one commit, as the two jobs run them."""
    assert main(["init", "--target", "cpu", "--no-hooks"]) == 0
    (project / "pinner.lock").write_text("old\n", encoding="utf-8")
    (project / "README.md").write_text("readme\n", encoding="utf-8")
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-qm", "x"], cwd=project, check=True)
    second = tmp_path_factory.mktemp("pr") / "checkout"
    subprocess.run([*GIT, "clone", "-q", str(project), str(second)], check=True)
    temp = tmp_path_factory.mktemp("runner-temp")
    (temp / "pinner-update").mkdir()

    # resolve: pinner update changed the lock, added a (binary) file, and something else moved
    (project / "pinner.lock").write_text("new\n", encoding="utf-8")
    (project / "pinned" / "cpu").mkdir(parents=True)
    (project / "pinned" / "cpu" / "wheel.bin").write_bytes(bytes(range(256)))
    (project / "README.md").write_text("changed by a build step\n", encoding="utf-8")
    saved = bash(script(project, "resolve", "Save the changes as a binary diff"), project, temp)
    assert saved.returncode == 0, saved.stderr
    diff = (temp / "pinner-update" / "changes.diff").read_bytes()
    assert b"README" not in diff

    apply = script(project, "pull-request", "Apply the diff (only pinner.lock and pinned/)")
    applied = bash(apply, second, temp)
    assert applied.returncode == 0, applied.stderr
    assert (second / "pinner.lock").read_text(encoding="utf-8") == "new\n"
    assert (second / "pinned" / "cpu" / "wheel.bin").read_bytes() == bytes(range(256))
    assert (second / "README.md").read_text(encoding="utf-8") == "readme\n"

    # a diff that reaches beyond the lock and pinned/ is refused, and nothing is applied
    subprocess.run([*GIT, "checkout", "-q", "--", "."], cwd=second, check=True)
    subprocess.run([*GIT, "clean", "-qfd"], cwd=second, check=True)
    evil = diff.replace(b"pinned/cpu/wheel.bin", b".github/workflows/x.yml")
    (temp / "pinner-update" / "changes.diff").write_bytes(evil)
    refused = bash(apply, second, temp)
    assert refused.returncode == 1
    assert "::error::the diff touches .github/workflows/x.yml" in refused.stdout
    assert (second / "pinner.lock").read_text(encoding="utf-8") == "old\n"
    (temp / "pinner-update" / "changes.diff").write_bytes(b"")
    assert bash(apply, second, temp).stdout == "no changes\n"


def test_released_pinner_is_resolved_with_hashes_by_uv(project, tmp_path, monkeypatch, capsys):
    """The real `uv pip compile --generate-hashes`, against a loopback index with a torch-pinner
    of this version (and then without one: init says the index lacks it and writes nothing)."""
    wheel = build_wheel(tmp_path / "w", "torch-pinner", __version__, requires=["six"])
    six = build_wheel(tmp_path / "w", "six", "1.17.0")
    monkeypatch.setattr(workflow, "pinner_source", lambda: PinnerSource(version=__version__))
    with LocalIndex() as index:
        index.add("pypi", wheel)
        index.add("pypi", six)
        index.add("empty", six)
        env = uv_env(index.url("pypi"), cache_dir=tmp_path / "uv")
        for key in [k for k in os.environ if k.startswith("UV_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert main(["init", "--target", "cpu", "--no-hooks"]) == 0
        text = (project / REQUIREMENTS).read_text(encoding="utf-8")
        assert f"torch-pinner=={__version__} \\\n    --hash=sha256:" in text
        assert "six==1.17.0 \\\n    --hash=sha256:" in text
        assert "git+" not in (project / WORKFLOW).read_text(encoding="utf-8")

        monkeypatch.setenv("UV_DEFAULT_INDEX", index.url("empty"))
        shutil.rmtree(project / ".github")
        (project / "pinner.toml").unlink()
        capsys.readouterr()
        assert main(["init", "--target", "cpu", "--no-hooks"]) == 2
        err = capsys.readouterr().err
        assert f"pinner {__version__} (torch-pinner) is not on the package index" in err
        assert "--no-workflow" in err
        assert sorted(p.name for p in project.iterdir()) == ["uv", "w"]  # the test's own


@pytest.mark.network
def test_development_install_pins_its_commit_and_hashes_its_dependencies(project, capsys):
    """This checkout's editable install: git+<Project-URL>@HEAD, dependencies from PyPI, hashed."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert main(["init", "--target", "cpu", "--no-hooks"]) == 0
    out = capsys.readouterr().out
    assert f"is a development install, not a release: the workflow installs commit {head[:12]}" in (
        out
    )
    assert f'"git+{URL}@{head}"' in (project / WORKFLOW).read_text(encoding="utf-8")
    text = (project / REQUIREMENTS).read_text(encoding="utf-8")
    for name in ("typer", "jinja2", "tomlkit", "packaging", "uv", "pyyaml", "hatchling"):
        assert f"\n{name}==" in text
    assert "pytest" not in text  # extras are not pinner's dependencies
    pins = [ln for ln in text.splitlines() if "==" in ln]
    assert all(ln.endswith("\\") for ln in pins)  # each pin carries --hash lines


class _Metadata(dict[str, list[str]]):
    def get_all(self, key: str) -> list[str]:
        return self.get(key, [])


class FakeDistribution:
    """What pinner_source reads of an installed distribution."""

    def __init__(self, direct_url: dict[str, Any] | None, urls: tuple[str, ...] = ()) -> None:
        self.version = "1.2.3"
        self.direct_url = direct_url
        self.metadata = _Metadata({"Project-URL": list(urls)})

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


@pytest.mark.parametrize(
    ("direct_url", "git"),
    [
        (None, ""),  # from an index
        ({"url": "file:///w/torch_pinner-1.2.3-py3-none-any.whl", "archive_info": {}}, ""),
        (
            {
                "url": "https://example.org/me/pinner.git",
                "vcs_info": {"vcs": "git", "commit_id": COMMIT},
            },
            f"git+https://example.org/me/pinner.git@{COMMIT}",
        ),
        (  # a local clone: the runner fetches the commit from the Project-URL repository
            {"url": "file:///home/me/pinner", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
            f"git+{URL}@{COMMIT}",
        ),
    ],
    ids=["index", "wheel-file", "git-https", "git-local-clone"],
)
def test_pinner_source_from_direct_url(monkeypatch, direct_url, git):
    dist = FakeDistribution(direct_url, (f"Repository, {URL}",))
    monkeypatch.setattr(workflow, "_distribution", lambda: dist)
    source = workflow.pinner_source()
    assert (source.version, source.git) == ("1.2.3", git)


def test_a_development_install_outside_git_cannot_pin_the_workflow(monkeypatch, tmp_path):
    dist = FakeDistribution({"url": tmp_path.as_uri(), "dir_info": {}}, (f"Repository, {URL}",))
    monkeypatch.setattr(workflow, "_distribution", lambda: dist)
    from pinner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"is a development install from .* not a git checkout"):
        workflow.pinner_source()
