"""Compiled extensions in a plan (issue 5): flash-attn wheels, source builds, torch pins, bnb.

Expected wheel names come from shared/reference/facts.toml [[flash_attn_wheels]] (the newest
release tag whose list holds a name with the target's tags); the other rules from facts.md
sections 5, 6 and 8.
"""

# Tests leave fixtures unannotated (STYLE.md 7.7); pyproject's `tests.*` mypy override
# does not match these rootdir modules (test_plan, not tests.test_plan).
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.plan.wheels import expand_flash_attn_wheels

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from pinner.model import Extension, Finding, Plan, PlanResult

# shared/reference/facts.toml [[flash_attn_wheels]], vendored: the tests must not need ../shared
FACTS_TOML = Path(__file__).resolve().parent / "data" / "flash_attn_wheels.toml"
RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download/"


def chosen(result: PlanResult) -> Plan:
    assert [f for f in result.findings if f.severity == "error"] == []
    assert result.plan is not None
    return result.plan


def error(result: PlanResult) -> Finding:
    assert result.plan is None
    (found,) = [f for f in result.findings if f.severity == "error"]
    return found


def extension(plan: Plan, name: str) -> Extension:
    (found,) = [e for e in plan.extensions if e.name == name]
    return found


# --- flash-attn: the prebuilt wheel whose tags match exactly ---------------------------------


@pytest.mark.parametrize(
    ("fields", "torch_pin", "wheel"),
    [
        pytest.param(
            {"torch": ">=2.4,<2.5", "cuda": "cu124", "python": "3.11"},
            "2.4.1+cu124",
            # torch <= 2.6 is pre-cxx11 ABI (facts.md 1b): cxx11abiFALSE
            "flash_attn-2.8.3.post1+cu12torch2.4cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
            id="torch24-cu124-cp311",
        ),
        pytest.param(
            {"torch": ">=2.6,<2.7", "cuda": "cu124", "python": "3.11"},
            "2.6.0",  # PyPI's 2.6.0 is the cu124 build
            "flash_attn-2.8.3.post1+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
            id="torch26-cu124-cp311",
        ),
        pytest.param(
            {"torch": ">=2.7,<2.8", "cuda": "cu128", "python": "3.12"},
            "2.7.1+cu128",
            # torch >= 2.7 x86_64 wheels use the cxx11 ABI (facts.md 1b, 10.5)
            "flash_attn-2.8.3.post1+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch27-cu128-cp312",
        ),
    ],
)
def test_flash_attn_wheel_matches_torch_build(plan_for, fields, torch_pin, wheel):
    plan = chosen(plan_for("A100", "flash-attn", **fields))
    assert plan.torch.pin == torch_pin
    flash = extension(plan, "flash-attn")
    assert (flash.strategy, flash.wheel) == ("wheel", wheel)
    assert flash.url == f"{RELEASES}v2.8.3.post1/{wheel}"
    assert flash.version == "2.8.3.post1"
    assert "devel" not in plan.base_image  # nothing compiles
    assert plan.apt == ()


def test_flash_attn_wheel_holds_torch_back(plan_for):
    # facts.md 10.12: the released cu12 wheels stop at torch 2.8, so `auto` stays there
    plan = chosen(plan_for("A100", "flash-attn"))
    assert plan.torch.pin == "2.8.0"
    assert extension(plan, "flash-attn").wheel == (
        "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"
    )
    assert "torch stays at 2.8.0" in extension(plan, "flash-attn").why


def test_flash_attn_no_wheel_falls_back_to_source(plan_for):
    # facts-addendum Q2: no official flash-attn wheel for torch >= 2.11
    result = plan_for("A100", "flash-attn", torch=">=2.11,<2.12")
    plan = chosen(result)
    assert plan.torch.pin == "2.11.0"
    flash = extension(plan, "flash-attn")
    assert (flash.strategy, flash.wheel, flash.url) == ("source", "", "")
    assert ("FLASH_ATTENTION_FORCE_BUILD", "TRUE") in flash.env
    assert ("FLASH_ATTN_CUDA_ARCHS", "80") in flash.env  # setup.py knows 80/90/100/120 only
    assert {"packaging", "ninja", "wheel", "setuptools"} <= set(flash.build_deps)
    assert plan.base_image == "nvidia/cuda:13.0.3-devel-ubuntu24.04"  # nvcc for the build
    assert "build-essential" in plan.apt
    (warning,) = [f for f in result.findings if f.severity == "warning"]
    assert warning.code == "source-build"
    assert "no prebuilt flash-attn wheel fits any torch build for this target" in warning.message


def test_flash_attn_wheel_only_fails_without_wheel(plan_for):
    result = plan_for("A100", "flash-attn", torch=">=2.11,<2.12", builds=(("flash-attn", "wheel"),))
    found = error(result)
    assert found.code == "impossible-target"
    assert found.message.endswith(
        "no torch build fits: no prebuilt flash-attn wheel for torch 2.11 + CUDA 13 + cp311"
    )
    # the nearest torch that has a wheel (facts.md 5: v2.8.3.post1 builds torch 2.4-2.8)
    assert "torch 2.8.0 would fit" in found.fix
    # and the nearest releases that have wheels, newest first (issue 5)
    assert "torch releases with the prebuilt extension wheels for this target: 2.8.0 (cu128)" in (
        found.fix
    )


def test_flash_attn_source_forced(plan_for):
    plan = chosen(plan_for("A100", "flash-attn", builds=(("flash-attn", "source"),)))
    assert plan.torch.pin == "2.15.0"  # no wheel needed: torch is not held back
    assert extension(plan, "flash-attn").strategy == "source"
    assert plan.base_image == "nvidia/cuda:13.2.1-devel-ubuntu24.04"


@pytest.mark.parametrize(("gpu", "what"), [("T4", "the NVIDIA T4 is sm_75"), ("cpu", "no GPU")])
def test_flash_attn_needs_ampere(plan_for, gpu, what):
    # facts.md 5: FlashAttention-2 needs Ampere or newer (README: Turing -> FlashAttention 1.x)
    found = error(plan_for(gpu, "flash-attn"))
    assert found.code == "extension-gpu"
    assert "compute capability >= 8.0" in found.message
    assert found.message.endswith(what)


def test_flash_attn_expansion_counts_match_publish_yml(kb):
    # facts.md 5, wheel matrix per tag ("wheels" column) and its seed check
    names = expand_flash_attn_wheels(kb)
    assert len(names) == len(set(names))
    counts = {
        tag: sum(n.startswith(f"flash_attn-{tag}+") for n in names)
        for tag in ("2.6.3", "2.7.0.post2", "2.7.4.post1", "2.8.0.post2", "2.8.3", "2.8.3.post1")
    }
    assert counts == {
        "2.6.3": 84,
        "2.7.0.post2": 92,
        "2.7.4.post1": 44,
        "2.8.0.post2": 38,
        "2.8.3": 48,
        "2.8.3.post1": 48,
    }
    assert "flash_attn-2.8.0.post2+cu12torch2.4cxx11abiFALSE-cp311-cp311-linux_x86_64.whl" in names
    assert not [n for n in names if "torch2.4" in n and "-cp313-" in n and "2.8." in n]


def test_flash_attn_expansion_equals_facts_toml_lists(kb):
    lists = tomllib.loads(FACTS_TOML.read_text(encoding="utf-8"))["flash_attn_wheels"]
    names = set(expand_flash_attn_wheels(kb))
    for entry in lists:
        ours = {n for n in names if n.startswith(f"flash_attn-{entry['tag'].removeprefix('v')}+")}
        assert ours == set(entry["files"]), entry["tag"]


# --- source builds --------------------------------------------------------------------------


def test_mamba_ssm_builds_from_source_on_devel(plan_for):
    # facts.md 8: PyPI has only sdists; MAMBA_FORCE_BUILD; build after torch, no isolation
    plan = chosen(plan_for("A100", "mamba-ssm", cuda="cu121"))
    assert plan.torch.pin == "2.5.1+cu121"  # the newest release with a cu121 variant (1a)
    mamba = extension(plan, "mamba-ssm")
    assert mamba.strategy == "source"
    assert mamba.env == (("MAMBA_FORCE_BUILD", "TRUE"),)
    assert {"packaging", "ninja", "wheel"} <= {d.split(">")[0] for d in mamba.build_deps}
    assert mamba.version == "2.3.1"  # 2.3.2.post1 needs triton>=3.5.0, i.e. torch >= 2.9
    assert plan.base_image == "nvidia/cuda:12.1.1-devel-ubuntu22.04"
    assert {"build-essential", "ninja-build"} <= set(plan.apt)
    assert any("--no-build-isolation" in s.why for s in plan.steps if s.topic.endswith("mamba-ssm"))


def test_causal_conv1d_builds_from_source(plan_for):
    plan = chosen(plan_for("A100", "causal-conv1d"))
    conv = extension(plan, "causal-conv1d")
    assert (conv.strategy, conv.env) == ("source", (("CAUSAL_CONV1D_FORCE_BUILD", "TRUE"),))
    assert "devel" in plan.base_image


def test_matrix_build_source_marks_any_package(plan_for):
    plan = chosen(plan_for("A100", "apex", builds=(("apex", "source"),)))
    assert extension(plan, "apex").strategy == "source"
    assert "devel" in plan.base_image


def test_plain_package_is_no_extension(plan_for):
    plan = chosen(plan_for("A100", "numpy", "transformers"))
    assert plan.extensions == ()
    assert "devel" not in plan.base_image


# --- packages that pin torch exactly (facts.md 8) -----------------------------------------


def test_xformers_pin_conflicting_with_range_fails(plan_for):
    found = error(plan_for("A100", "xformers==0.0.30", torch=">=2.8"))
    assert found.code == "torch-pin-conflict"
    assert "xformers 0.0.30" in found.message
    assert "torch==2.7.0" in found.message
    assert "excludes torch 2.7.0" in found.message


@pytest.mark.parametrize(
    ("requirement", "torch"),
    [
        ("xformers==0.0.30", "2.7.0"),
        ("xformers==0.0.31.post1", "2.7.1"),
        ("vllm==0.10.0", "2.7.1"),
        ("vllm==0.33.0", "2.14.0"),
        ("vllm<0.33,>=0.27", "2.13.0"),  # 0.27.0-0.32.0 all pin torch 2.13.0
    ],
)
def test_torch_pin_bounds_choice(plan_for, requirement, torch):
    plan = chosen(plan_for("A100", requirement))
    assert plan.torch.version == torch
    (why,) = [s.why for s in plan.steps if s.topic == "torch"]
    assert f"requirements.in:1 {requirement} (" in why
    assert f"pins torch=={torch}" in why


def test_xformers_pin_with_rtx5090_picks_cu128_variant(plan_for):
    # xformers 0.0.30 pins torch 2.7.0; on sm_120 only 2.7's cu128 variant runs (facts.md 3)
    plan = chosen(plan_for("RTX 5090", "xformers==0.0.30"))
    assert plan.torch.pin == "2.7.0+cu128"


# --- bitsandbytes (facts.md 6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"cuda": "cu128"}, "bitsandbytes>=0.45.3"),  # 0.45.0-0.45.2 have no cuda128 library
        ({"cuda": "cu129", "torch": "<2.9"}, "bitsandbytes>=0.46.1"),
        ({"cuda": "cu130"}, "bitsandbytes>=0.48.0"),
        ({}, "bitsandbytes>=0.50.0"),  # PyPI 2.15 is cu132: only 0.50 bundles cuda132
    ],
)
def test_bitsandbytes_minimum_for_cuda(plan_for, fields, constraint):
    plan = chosen(plan_for("RTX 5090", "bitsandbytes", **fields))
    assert [c.requirement for c in plan.constraints] == [constraint]
    assert plan.env == ()


def test_bitsandbytes_old_cuda_needs_no_bound(plan_for):
    plan = chosen(plan_for("A100", "bitsandbytes", cuda="cu121"))
    assert not [c for c in plan.constraints if c.requirement.startswith("bitsandbytes")]


@pytest.mark.parametrize(
    "pin", ["bitsandbytes==0.49.2", "bitsandbytes==0.48.0", "bitsandbytes<0.50"]
)
def test_bitsandbytes_pinned_below_050_on_cu132_sets_override(plan_for, pin):
    # facts.md 6: 0.48/0.49 bundle cuda130 but no cuda132: BNB_CUDA_VERSION=130 is needed
    result = plan_for("RTX 5090", pin)
    plan = chosen(result)
    assert plan.torch.cuda == "13.2"
    assert plan.env == (("BNB_CUDA_VERSION", "130"),)
    (note,) = [f for f in result.findings if f.code == "bnb-cuda-version"]
    assert "no libbitsandbytes_cuda132.so" in note.message
    assert not [c for c in plan.constraints if c.requirement.startswith("bitsandbytes")]


@pytest.mark.parametrize(
    ("pin", "fields"),
    [
        ("bitsandbytes>=0.50", {}),
        ("bitsandbytes==0.47.0", {"cuda": "cu129", "torch": "<2.9"}),  # 0.47.0 bundles cuda129
        ("bitsandbytes==0.45.3", {"cuda": "cu128"}),
    ],
)
def test_bitsandbytes_covering_pin_needs_no_override(plan_for, pin, fields):
    plan = chosen(plan_for("RTX 5090", pin, **fields))
    assert plan.env == ()


def test_bitsandbytes_pin_without_a_library_of_the_cuda_major_is_refused(plan_for):
    # bitsandbytes 0.45.0 bundles cuda117..126 only: on a CUDA 13 build it would silently load
    # its CPU library (facts.md 6), so the plan refuses it and names the version that works.
    result = plan_for("A100", "bitsandbytes==0.45.0", cuda="cu130")
    assert result.plan is None
    (error,) = [f for f in result.findings if f.severity == "error"]
    assert error.code == "bnb-no-cuda-library"
    assert "no CUDA 13 library" in error.message
    assert "bitsandbytes>=0.48.0" in error.message


def test_bitsandbytes_override_on_blackwell_warns_ptx_is_unverified(plan_for):
    # 0.45.0 on cu128 falls back to its cuda126 library (BNB_CUDA_VERSION=126), built for
    # sm_50..sm_90 + PTX: on sm_120 that relies on PTX JIT, unverified (facts.md 6).
    result = plan_for("RTX 5090", "bitsandbytes==0.45.0", cuda="cu128")
    plan = chosen(result)
    assert dict(plan.env)["BNB_CUDA_VERSION"] == "126"
    assert [f.code for f in result.findings if f.severity == "warning"] == ["bnb-ptx-unverified"]


def test_bitsandbytes_override_on_ampere_does_not_warn(plan_for):
    result = plan_for("A100", "bitsandbytes==0.45.0", cuda="cu128")
    assert dict(chosen(result).env)["BNB_CUDA_VERSION"] == "126"
    assert not [f for f in result.findings if f.code == "bnb-ptx-unverified"]
