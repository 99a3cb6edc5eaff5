"""Shared fixtures: matrix files, the real knowledge, targets and requirements, golden files."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pinner.knowledge.knowledge import Knowledge, load_knowledge
from pinner.load.matrix import DEFAULT_TORCH_INDEX
from pinner.load.requirements import read_requirements
from pinner.model import PlanResult, Requirements, Target
from pinner.plan.plan import plan_target

if TYPE_CHECKING:
    from collections.abc import Callable

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden from current output"
    )


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's cache, or follows a mirror set in the environment."""
    monkeypatch.setenv("PINNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PINNER_TORCH_INDEX_URL", raising=False)
    for name in ("NO_COLOR", "FORCE_COLOR"):  # output is compared as plain text
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_matrix(tmp_path: Path) -> Callable[..., Path]:
    """write_matrix(text, name="pinner.toml") -> path of the dedented TOML in tmp_path."""

    def write(text: str, name: str = "pinner.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def kb() -> Knowledge:
    """The real packaged knowledge."""
    return load_knowledge()


@pytest.fixture
def make_target() -> Callable[..., Target]:
    """make_target(gpu, cuda="auto", **fields) -> a Target as the matrix loader builds it."""

    def make(gpu: str, cuda: str = "auto", **fields: Any) -> Target:
        values: dict[str, Any] = {
            "name": "t",
            "gpu": gpu,
            "cuda": "cpu" if gpu == "cpu" else cuda,
            "torch": "",
            "python": "3.11",
            "platform": "linux-x86_64",
            "driver": "",
            "base_image": "",
            "requirements": (),
            "builds": (),
            "torch_index_url": DEFAULT_TORCH_INDEX,
            "origin": "pinner.toml: targets.t",
        }
        return Target(**(values | fields))

    return make


@pytest.fixture
def make_requirements(tmp_path: Path) -> Callable[..., Requirements]:
    """make_requirements("torch<2.9", ...) -> the lines written to requirements.in and read back."""

    def make(*lines: str) -> Requirements:
        path = tmp_path / "requirements.in"
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return read_requirements((path,), tmp_path, python="3.11", platform="linux-x86_64")

    return make


@pytest.fixture
def plan_for(
    kb: Knowledge,
    make_target: Callable[..., Target],
    make_requirements: Callable[..., Requirements],
) -> Callable[..., PlanResult]:
    """plan_for(gpu, *requirement_lines, **target_fields) -> the plan with the real knowledge."""

    def plan(gpu: str, *requirements: str, **fields: Any) -> PlanResult:
        return plan_target(make_target(gpu, **fields), kb, make_requirements(*requirements))

    return plan


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == text, (
            f"{name} differs; run pytest --update-golden and review git diff"
        )

    return check
