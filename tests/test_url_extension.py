"""A URL wheel of a known extension is the user's choice (issue 10, 3.): `flash-attn @ <release
wheel URL>` is planned as written when its tags (torch minor, CUDA major, C++ ABI, CPython tag,
platform) match the torch build, and refused with one line naming the mismatch otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.projects import CU128_MATRIX, file_hash, hashes_of, make_project
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pinner.model import Extension, PlanResult
    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

RELEASE = "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
TORCH27 = "flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"


def flash(result: PlanResult) -> Extension:
    assert result.plan is not None, [f.message for f in result.findings]
    (found,) = [e for e in result.plan.extensions if e.name == "flash-attn"]
    return found


def errors(result: PlanResult) -> list[str]:
    assert result.plan is None
    return [f.message for f in result.findings if f.severity == "error"]


def test_matching_url_wheel_is_planned_as_written(plan_for: Callable[..., PlanResult]) -> None:
    result = plan_for("A100", f"flash-attn @ {RELEASE}{TORCH27}")

    ext = flash(result)
    assert (ext.strategy, ext.url, ext.wheel, ext.version) == (
        "wheel",
        RELEASE + TORCH27,
        TORCH27,
        "2.8.3",
    )
    assert "the wheel the requirements name" in ext.why
    assert result.plan is not None
    # torch is chosen among the builds the wheel's tags match: 2.7, CUDA 12, the cxx11 ABI
    assert result.plan.torch.version.startswith("2.7.")
    assert result.plan.torch.cuda.startswith("12.")
    assert all(pin.startswith("2.7.") for segment in result.segments for pin in segment)
    assert "devel" not in result.plan.base_image  # nothing compiles


def test_url_wheel_with_escaped_plus_is_read(plan_for: Callable[..., PlanResult]) -> None:
    url = RELEASE + TORCH27.replace("+", "%2B")
    assert flash(plan_for("A100", f"flash-attn @ {url}")).version == "2.8.3"


@pytest.mark.parametrize(
    ("fields", "wheel", "mismatch"),
    [
        ({"torch": "==2.8.0"}, TORCH27, "is built for torch 2.7, not 2.8"),
        (
            {"torch": ">=2.7,<2.8"},
            TORCH27.replace("cu12", "cu11"),
            "is built for CUDA 11, not 12",
        ),
        (
            {"torch": ">=2.7,<2.8"},
            TORCH27.replace("abiTRUE", "abiFALSE"),
            "is built with C++ ABI FALSE, torch 2.7.1 with TRUE",
        ),
    ],
    ids=["torch-minor", "cuda-major", "cxx11-abi"],
)
def test_url_wheel_for_another_torch_build_is_refused_naming_the_mismatch(
    plan_for: Callable[..., PlanResult], fields: dict[str, str], wheel: str, mismatch: str
) -> None:
    result = plan_for("A100", f"flash-attn @ {RELEASE}{wheel}", **fields)

    (message,) = errors(result)
    assert "\n" not in message
    assert f"the flash-attn wheel {wheel} {mismatch}" in message


@pytest.mark.parametrize(
    ("fields", "wheel", "said"),
    [
        ({"python": "3.12"}, TORCH27, "is built for cp311, but the target runs Python 3.12"),
        (
            {"platform": "linux-aarch64", "gpu": "GH200"},
            TORCH27.replace("cp311-cp311", "cp311-cp311"),
            "is built for linux_x86_64, but the target is linux_aarch64",
        ),
        ({}, "flash_attn-2.8.3-py3-none-any.whl", "is not a flash-attn release wheel"),
    ],
    ids=["python", "platform", "no-tags"],
)
def test_url_wheel_for_another_python_or_platform_is_refused_naming_the_line(
    plan_for: Callable[..., PlanResult], fields: dict[str, str], wheel: str, said: str
) -> None:
    gpu = fields.pop("gpu", "A100")
    result = plan_for(gpu, f"flash-attn @ {RELEASE}{wheel}", **fields)

    messages = errors(result)
    (found,) = [m for m in messages if said in m]
    assert found.startswith("requirements.in:1: "), found
    assert wheel in found


# --- end to end: locked against loopback, with the wheel's hash, in the extension layer ---------


def test_url_wheel_of_an_extension_is_locked_hashed_in_the_extension_layer(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    built = build_wheel(
        tmp_path / "built",
        "flash-attn",
        "2.8.3+cu12torch2.7cxx11abitrue",  # normalized; the release's file name says TRUE
        requires=["torch", "einops"],
        python_tag="cp311",
        abi_tag="cp311",
        platform_tag="linux_x86_64",
    )
    (tmp_path / "files").mkdir()
    wheel = built.rename(tmp_path / "files" / TORCH27)
    url = fresh_index.add("files", wheel)
    for name in ("einops", "packaging", "ninja"):
        fresh_index.add("pypi", build_wheel(tmp_path / "pypi", name, "1.0"))
    project = make_project(
        tmp_path / "proj",
        fresh_index,
        monkeypatch,
        matrix=CU128_MATRIX,
        requirements=f"flash-attn @ {url}\n",
    )

    result = cli("lock")

    assert result.code == 0, result.err
    doc = project.lock_doc()["targets"]["gpu"]
    (ext,) = doc["plan"]["extensions"]
    assert (ext["name"], ext["url"], ext["sha256"]) == ("flash-attn", url, file_hash(wheel)[7:])
    packages = {p["name"]: p for p in doc["packages"]}
    assert packages["flash-attn"]["layer"] == "extension"
    assert hashes_of(packages["flash-attn"]) == [file_hash(wheel)]
    assert cli("generate").code == 0
    rendered = project.read("pinned/gpu/extensions.txt")
    assert f"flash-attn @ {url} \\\n    --hash={file_hash(wheel)}" in rendered
    main = project.read("pinned/gpu/requirements.txt").splitlines()
    assert not [line for line in main if line.startswith("flash-attn")]  # installed once
