"""Requirements through the CLI: the default a matrix without `requirements` reads (said once),
pyproject.toml named in `requirements`, and hostile lines that must never reach the resolver
(issue 11), on loopback indexes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from pinner.load.matrix import load_matrix
from tests.support.index import LocalIndex
from tests.support.projects import CPU_MATRIX, make_project
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


pytest_plugins = ("tests.conftest_lock",)

NO_REQUIREMENTS = "note: no requirements: locking the torch layer alone"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def torch_of(explain_out: str) -> str:
    found = re.search(r"^torch\s+(\S+)", explain_out, re.MULTILINE)
    assert found, explain_out
    return found.group(1)


# --- defaults (explain: no resolver, no network) ------------------------------------------------


@pytest.mark.parametrize(
    ("files", "note"),
    [
        (
            {"pinner.toml": '[targets.a]\ngpu = "A100"\n', "requirements.in": "torch<2.9\n"},
            "note: requirements: requirements.in beside pinner.toml (the matrix names none)",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "app"\ndependencies = ["torch<2.9"]\n'
                '[tool.pinner.targets.a]\ngpu = "A100"\n'
            },
            "note: requirements: its [project] dependencies beside pyproject.toml",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "app"\ndependencies = ["torch>=2.9"]\n'
                '[tool.pinner.targets.a]\ngpu = "A100"\n',
                "requirements.in": "torch<2.9\n",  # requirements.in comes first
            },
            "note: requirements: requirements.in beside pyproject.toml",
        ),
    ],
    ids=["requirements.in", "tool.pinner: project dependencies", "tool.pinner: requirements.in"],
)
def test_default_requirements_are_read_and_said_once(in_tmp, cli, files, note):
    for name, text in files.items():
        (in_tmp / name).write_text(text, encoding="utf-8")
    result = cli("explain", "--target", "a")
    assert result.code == 0, result.err
    assert result.err.count("note: ") == 1
    assert note in result.err
    assert torch_of(result.out).startswith("2.8.")  # the requirement bounded torch


def test_no_requirements_locks_the_torch_layer_alone(in_tmp, cli):
    (in_tmp / "pinner.toml").write_text('[targets.a]\ngpu = "A100"\n', encoding="utf-8")
    result = cli("explain", "--target", "a")
    assert result.code == 0, result.err
    assert result.err.startswith(NO_REQUIREMENTS)
    assert "create requirements.in beside pinner.toml" in result.err
    assert not torch_of(result.out).startswith("2.8.")


def test_presets_say_which_requirements_they_read(in_tmp, cli):
    assert NO_REQUIREMENTS in cli("explain", "--target", "a100").err
    (in_tmp / "requirements.in").write_text("torch<2.9\n", encoding="utf-8")
    result = cli("explain", "--target", "a100")
    assert result.err == (
        "note: requirements: requirements.in in the working folder (the built-in presets name "
        "none)\n"
    )
    assert torch_of(result.out).startswith("2.8.")


def test_default_applies_only_to_targets_without_requirements(in_tmp):
    (in_tmp / "pinner.toml").write_text(
        '[targets.a]\ngpu = "A100"\n[targets.b]\ngpu = "A100"\nrequirements = []\n'
        '[targets.c]\ngpu = "L4"\n',
        encoding="utf-8",
    )
    (in_tmp / "requirements.in").write_text("six\n", encoding="utf-8")
    matrix = load_matrix(None, cwd=in_tmp)
    assert [t.requirements for t in matrix.targets] == [
        ("requirements.in",),
        (),
        ("requirements.in",),
    ]
    assert matrix.notes == (
        "targets a, c: requirements: requirements.in beside pinner.toml (the matrix names none)",
    )


# --- pyproject.toml in `requirements` --------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("pyproject.toml[train]", ""),
        ("pyproject.toml[train,eval]", ""),
        ("sub/pyproject.toml", "sub/pyproject.toml does not exist"),
        ("pyproject.toml[bad extra!]", 'name extras as in "pyproject.toml[train,eval]"'),
    ],
)
def test_matrix_accepts_pyproject_spellings(in_tmp, entry, problem):
    (in_tmp / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    (in_tmp / "pinner.toml").write_text(
        f'[targets.a]\ngpu = "A100"\nrequirements = ["{entry}"]\n', encoding="utf-8"
    )
    if not problem:
        (target,) = load_matrix(None, cwd=in_tmp).targets
        assert target.requirements == (entry,)
        return
    with pytest.raises(Exception, match=re.escape(problem)):
        load_matrix(None, cwd=in_tmp)


def test_explain_reads_pyproject_extras(in_tmp, cli):
    (in_tmp / "pyproject.toml").write_text(
        '[project]\nname = "app"\ndependencies = []\n'
        '[project.optional-dependencies]\nold = ["torch<2.9"]\n'
        '[tool.pinner.targets.a]\ngpu = "A100"\nrequirements = ["pyproject.toml[old]"]\n',
        encoding="utf-8",
    )
    result = cli("explain", "--target", "a")
    assert (result.code, result.err) == (0, "")
    assert torch_of(result.out).startswith("2.8.")


def test_explain_names_a_refused_line(in_tmp, cli):
    (in_tmp / "requirements.in").write_text("six\n-f ./wheels\n", encoding="utf-8")
    result = cli("explain", "--target", "a100")
    assert result.code == 2
    assert result.err.splitlines()[-1].startswith(
        "pinner: error: requirements.in:2: -f is not allowed: pinner chooses the indexes"
    )


# --- lock, on loopback indexes -------------------------------------------------------------------

NO_REQUIREMENTS_MATRIX = CPU_MATRIX.replace('requirements = ["requirements.in"]\n', "")


def test_lock_uses_requirements_in_by_default(tmp_path, loopback, monkeypatch, cli):
    project = make_project(tmp_path / "p", loopback, monkeypatch, matrix=NO_REQUIREMENTS_MATRIX)
    result = cli("lock")
    assert result.code == 0, result.err
    assert "note: requirements: requirements.in beside pinner.toml" in result.err
    assert "demo-app" in project.packages()


def test_lock_without_requirements_locks_torch_alone(tmp_path, loopback, monkeypatch, cli):
    project = make_project(tmp_path / "p", loopback, monkeypatch, matrix=NO_REQUIREMENTS_MATRIX)
    (project.root / "requirements.in").unlink()
    result = cli("lock")
    assert result.code == 0, result.err
    assert NO_REQUIREMENTS in result.err
    assert "torch" in project.packages()
    assert "demo-app" not in project.packages()


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[Callable[[], LocalIndex]]:
    """An index that serves `six 99.0`; the test asserts nobody asked it for anything."""
    wheel = build_wheel(tmp_path / "evil", "six", "99.0")
    servers: list[LocalIndex] = []

    def start() -> LocalIndex:
        index = LocalIndex().start()
        index.add("simple", wheel)
        servers.append(index)
        return index

    yield start
    for index in servers:
        index.close()


@pytest.mark.parametrize(
    ("lines", "option"),
    [
        ("six --hash=sha256:{sha} --extra-index-url={url}\n", "--extra-index-url"),
        ("six \\\n--index-url {url}\n", "--index-url"),
        ("six\n--find-links {url}six/\n", "--find-links"),
    ],
    ids=["after --hash", "continuation", "own line"],
)
def test_hostile_lines_never_reach_the_resolver(
    tmp_path, loopback, monkeypatch, cli, attacker, lines, option
):
    evil = attacker()
    project = make_project(
        tmp_path / "p",
        loopback,
        monkeypatch,
        requirements=lines.format(sha="0" * 64, url=evil.url("simple")),
    )
    result = cli("lock")
    assert result.code == 2
    assert f"requirements.in:1: {option} is not allowed" in result.err or (
        f"requirements.in:2: {option} is not allowed" in result.err
    )
    assert evil.hits("simple") == 0
    assert not project.lock.exists()


def test_marker_false_line_is_not_locked(tmp_path, loopback, monkeypatch, cli):
    project = make_project(
        tmp_path / "p",
        loopback,
        monkeypatch,
        requirements='demo-app ; sys_platform == "win32"\nother-app\n',
    )
    result = cli("lock")
    assert result.code == 0, result.err
    assert "other-app" in project.packages()
    assert "demo-app" not in project.packages()
