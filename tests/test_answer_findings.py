"""Findings read from the resolver's answer (issue 10, 3.): a package built against torch that
nothing ties to the chosen torch (torchcodec, deepspeed) is a warning, and so is a direct
requirement only an sdist serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pinner.model import File
from pinner.resolve.bound import answer_findings
from pinner.resolve.job import ResolvedPin
from tests.support.projects import make_project
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pinner.model import Plan, PlanResult
    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

LINUX = "cp311-cp311-manylinux_2_28_x86_64.whl"


@pytest.fixture
def plan(plan_for: Callable[..., PlanResult]) -> Plan:
    result = plan_for("cpu", "torch", torch="==2.9.1")
    assert result.plan is not None
    return result.plan


def pin(
    name: str,
    version: str,
    files: list[str],
    requires: tuple[str, ...] = (),
    via: tuple[str, ...] = ("torch",),
) -> ResolvedPin:
    return ResolvedPin(
        name=name,
        version=version,
        files=tuple(File(name=f, hashes=("sha256:" + "0" * 64,)) for f in files),
        source="default",
        via=tuple(via),
        requires=requires,
    )


def codes(plan: Plan, *pins: ResolvedPin) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for finding in answer_findings(plan, pins):
        out.setdefault(finding.message.split()[0], []).append(finding.code)
    return out


def test_compiled_torch_package_outside_the_knowledge_is_a_warning(plan: Plan) -> None:
    torchcodec = pin("torchcodec", "0.10.0", [f"torchcodec-0.10.0-{LINUX}"], via=("-r r.in",))

    (finding,) = answer_findings(plan, [torchcodec])

    assert (finding.code, finding.severity) == ("torch-bound", "warning")
    assert finding.message == (
        "torchcodec 0.10.0 ships code compiled for torch, and neither its requirements nor "
        "pinner's knowledge tie it to torch 2.9.1: it may fail to load next to it"
    )
    assert finding.source == f"torchcodec-0.10.0-{LINUX}"


def test_sdist_built_against_torch_on_install_is_a_warning(plan: Plan) -> None:
    deepspeed = pin("deepspeed", "0.18.2", ["deepspeed-0.18.2.tar.gz"], ("torch",), ("-r r.in",))

    found = codes(plan, deepspeed)

    assert found == {"deepspeed": ["sdist-only", "torch-bound"]}
    (bound,) = [f for f in answer_findings(plan, [deepspeed]) if f.code == "torch-bound"]
    assert "builds against torch when installed" in bound.message


@pytest.mark.parametrize(
    "requirement", ["torch==2.9.1", "torch>=2.9,<2.10", "torch==2.9.*", "torch (==2.9.1)"]
)
def test_a_torch_requirement_that_pins_the_minor_ties_it(plan: Plan, requirement: str) -> None:
    compiled = pin("fastops", "1.0", [f"fastops-1.0-{LINUX}"], (requirement,))
    assert codes(plan, compiled) == {}


@pytest.mark.parametrize("requirement", ["torch", "torch>=2.0", "torch<2.10", "torch>=2.9"])
def test_a_loose_torch_requirement_does_not(plan: Plan, requirement: str) -> None:
    compiled = pin("fastops", "1.0", [f"fastops-1.0-{LINUX}"], (requirement,))
    assert codes(plan, compiled) == {"fastops": ["torch-bound"]}


def test_a_package_tied_to_torch_that_pins_it_exactly_ties_it(plan: Plan) -> None:
    codec = pin("torchcodec", "0.17.0", [f"torchcodec-0.17.0-{LINUX}"], via=("app",))
    loose = pin("app", "1.0", ["app-1.0-py3-none-any.whl"], ("torch==2.9.1", "torchcodec>=0.14"))
    exact = pin("app", "1.0", ["app-1.0-py3-none-any.whl"], ("torch==2.9.1", "torchcodec==0.17.0"))
    untied = pin("app", "1.0", ["app-1.0-py3-none-any.whl"], ("torch>=2", "torchcodec==0.17.0"))

    assert codes(plan, codec, loose) == {"torchcodec": ["torch-bound"]}
    assert codes(plan, codec, exact) == {}
    assert codes(plan, codec, untied) == {"torchcodec": ["torch-bound"]}


def test_pure_python_planned_and_known_packages_are_quiet(plan: Plan) -> None:
    quiet = [
        pin("accelerate", "1.0", ["accelerate-1.0-py3-none-any.whl"], ("torch>=2.0",)),
        pin("glibcish", "1.0", [f"glibcish-1.0-{LINUX}"]),  # compiled, nothing to do with torch
        pin("torchvision", "0.24.1", [f"torchvision-0.24.1-{LINUX}"], ("torch==2.9.1",)),
        pin("xformers", "0.0.33", [f"xformers-0.0.33-{LINUX}"], ("torch>=2.9",)),
        pin("bitsandbytes", "0.48.0", [f"bitsandbytes-0.48.0-{LINUX}"], ("torch>=2.3,<3",)),
        pin("causal-conv1d", "1.5.2", ["causal_conv1d-1.5.2.tar.gz"], ("torch",), ("-r r.in",)),
        pin("extra-only", "1.0", [f"extra_only-1.0-{LINUX}"], ('torch; extra == "gpu"',)),
    ]
    assert codes(plan, *quiet) == {}


def test_sdist_only_is_said_for_direct_requirements_only(plan: Plan) -> None:
    direct = pin("oldlib", "0.1", ["oldlib-0.1.tar.gz"], via=("-r requirements.in",))
    pulled = pin("deeplib", "0.2", ["deeplib-0.2.tar.gz"], via=("oldlib",))

    (finding,) = answer_findings(plan, [direct, pulled])

    assert finding.code == "sdist-only"
    assert finding.message == (
        "oldlib 0.1 has no wheel for Python 3.11 on linux-x86_64, only the sdist "
        "oldlib-0.1.tar.gz: every install builds it from source"
    )


def test_lock_warns_about_a_compiled_torch_package_it_cannot_pair(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    wheel = build_wheel(
        tmp_path / "pypi",
        "torchcodec",
        "0.10.0",
        python_tag="cp311",
        abi_tag="cp311",
        platform_tag="manylinux_2_28_x86_64",
    )
    fresh_index.add("pypi", wheel)
    project = make_project(
        tmp_path / "proj", fresh_index, monkeypatch, requirements="demo-app\ntorchcodec\n"
    )

    result = cli("lock")

    assert result.code == 0, result.err
    found = project.lock_doc()["targets"]["cpu"].get("findings", [])
    (bound,) = [f for f in found if f["code"] == "torch-bound"]
    assert bound["message"].startswith("torchcodec 0.10.0 ships code compiled for torch")
    assert bound["source"] == wheel.name
    assert "torchcodec 0.10.0 ships code compiled for torch" in result.err
