"""plan: (Target, Knowledge, Requirements) -> PlanResult, with the real packaged knowledge.

Every expected value is taken from shared/reference/facts.md (section cited per case), so a wrong
rule or a wrong fact in the data fails here.
"""

# Tests leave fixtures unannotated (STYLE.md 7.7); pyproject's `tests.*` mypy override
# does not match these rootdir modules (test_plan, not tests.test_plan).
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from packaging.version import Version

if TYPE_CHECKING:
    from pinner.model import Finding, Plan, PlanResult

INDEX = "https://download.pytorch.org/whl/"


def chosen(result: PlanResult) -> Plan:
    errors = [f for f in result.findings if f.severity == "error"]
    assert errors == []
    assert result.plan is not None
    return result.plan


def error(result: PlanResult) -> Finding:
    assert result.plan is None
    (found,) = [f for f in result.findings if f.severity == "error"]
    return found


def step(plan: Plan, topic: str) -> str:
    """'choice -- why' of the step about `topic`."""
    (found,) = [s for s in plan.steps if s.topic == topic]
    return f"{found.choice} -- {found.why}"


def rejection(plan: Plan, variant: str) -> str:
    (found,) = [r.reason for r in plan.rejected if r.variant == variant]
    return found


# --- which build each target gets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "fields", "pin", "index"),
    [
        # 1b: PyPI 2.15.0 is CUDA 13.2; 3: its arch list sm_75..sm_120 covers sm_120 and sm_80
        pytest.param("RTX 5090", {}, "2.15.0", "", id="rtx5090-auto"),
        pytest.param("A100", {}, "2.15.0", "", id="a100-auto"),
        # 3: 2.11 cu128 has sm_120; it is the newest release with a cu128 variant (addendum Q1)
        pytest.param("RTX 5090", {"cuda": "cu128"}, "2.11.0+cu128", "cu128", id="rtx5090-cu128"),
        # 10.2: PyPI 2.7.x is cu126 without sm_120; only the cu128 variant of 2.7 has it
        pytest.param(
            "RTX 5090",
            {"cuda": "cu128", "torch": "<2.8"},
            "2.7.1+cu128",
            "cu128",
            id="rtx5090-cu128-torch27",
        ),
        pytest.param(
            "RTX 5090", {"torch": "<2.8"}, "2.7.1+cu128", "cu128", id="rtx5090-auto-torch27"
        ),
        # 4: CUDA 13 needs driver >= 580.65.06; newest CUDA 12 build with sm_120 is 2.11 cu128
        pytest.param(
            "RTX 5090", {"driver": "570.86"}, "2.11.0+cu128", "cu128", id="rtx5090-driver570"
        ),
        pytest.param("RTX 5090", {"driver": "580.65.06"}, "2.15.0", "", id="rtx5090-driver580"),
        # 3 and 10.3: cu13x builds drop Volta, 2.11 cu128 dropped sm_70: 2.14 cu126 is the last
        pytest.param("V100", {}, "2.14.1+cu126", "cu126", id="v100-auto"),
        # 3: 2.10 is the last release whose PyPI build (cu128) still has sm_70
        pytest.param("V100", {"cuda": "cu128"}, "2.10.0", "", id="v100-cu128"),
        # 3 and 10.4: PyPI 2.0.x (cu117) has no sm_90; H100 on 2.0 needs the cu118 variant
        pytest.param("H100", {"torch": "==2.0.1"}, "2.0.1+cu118", "cu118", id="h100-torch20"),
        # addendum Q1: Pascal's last build is 2.14 cu126 (sm_60 cubin; sm_61 runs sm_60 code)
        pytest.param("P100", {}, "2.14.1+cu126", "cu126", id="p100-auto"),
        pytest.param("GTX 1080", {}, "2.14.1+cu126", "cu126", id="gtx1080-auto"),
        # 2: sm_89 runs sm_86 cubins
        pytest.param("L4", {"cuda": "cu126"}, "2.14.1+cu126", "cu126", id="l4-cu126"),
        # 1a: torch 2.15 has no cp310 wheel; 2.14.1's PyPI build (cu130) runs on sm_80
        pytest.param("A100", {"python": "3.10"}, "2.14.1", "", id="a100-python310"),
        # 1a: cp314 from 2.9 on
        pytest.param("A100", {"python": "3.14", "torch": "<2.15"}, "2.14.1", "", id="a100-py314"),
        # addendum Q1 / 1b: cu132 is PyPI's 2.15 build; cu130 is PyPI's 2.14 build
        pytest.param("A100", {"cuda": "cu132"}, "2.15.0", "", id="a100-cu132"),
        pytest.param("A100", {"cuda": "cu130"}, "2.14.1", "", id="a100-cu130"),
        # 4: CUDA 11 builds need >= 450.80.02, CUDA 12 >= 525.60.13; 3: 2.7 cu118 has no
        # verified arch list, so 2.6 is the newest cu118 build pinner offers
        pytest.param("A100", {"driver": "515.65.01"}, "2.6.0+cu118", "cu118", id="a100-driver515"),
        # 1b: every cpu build comes from the cpu index; 2.15's variants are unverified
        pytest.param("cpu", {}, "2.14.1+cpu", "cpu", id="cpu"),
    ],
)
def test_plan_target_chooses_build(plan_for, gpu, fields, pin, index):
    plan = chosen(plan_for(gpu, **fields))
    assert plan.torch.pin == pin
    assert plan.index_url == (INDEX + index if index else "")
    assert plan.torch.on_pypi == (not index)


@pytest.mark.parametrize("gpu", ["RTX 5090", "A100"])
def test_plan_target_auto_uses_pypi_215(plan_for, gpu):
    # facts.md 1a/1b: 2.15.0 on PyPI is CUDA 13.2 with sm_75..sm_120; torchvision 0.29.2;
    # torchaudio 2.11.1 admits torch>=2.11 but stays free unless asked for; 4: CUDA 13 needs
    # driver >= 580.65.06
    plan = chosen(plan_for(gpu))
    assert (plan.torch.version, plan.torch.variant, plan.torch.cuda) == ("2.15.0", "cu132", "13.2")
    assert plan.torch.on_pypi
    assert plan.companions == ("torchvision==0.29.2",)
    assert plan.base_image == "nvidia/cuda:13.2.1-runtime-ubuntu24.04"
    assert plan.min_driver == "580.65.06"
    assert "torchaudio 2.11.1 is the newest release whose requirement (torch>=2.11) admits" in (
        step(plan, "companions")
    )


def test_plan_target_index_build_pins_local_tags(plan_for):
    # facts.md 9: index wheels carry the variant as local version label; companions exactly paired
    plan = chosen(plan_for("RTX 5090", cuda="cu128"))
    assert plan.companions == ("torchvision==0.26.0+cu128", "torchaudio==2.11.0+cu128")
    assert plan.base_image == "nvidia/cuda:12.8.2-runtime-ubuntu24.04"
    # CUDA 12 builds need 525.60.13 (minor-version compatibility); Blackwell GPUs need 570.26
    assert plan.min_driver == "570.26"
    assert plan.torch.arches[-1] == "sm_120"


def test_plan_target_aarch64_cpu_follows_knowledge(kb, plan_for):
    # 1b: PyPI aarch64 wheels are CPU-only up to 2.10; later CPU builds come from the cpu index
    # (where the knowledge lists one). Expected: the newest such build, PyPI's preferred.
    expected = None
    for release in kb.releases:
        if "3.11" not in release.python:
            continue
        if release.pypi_cuda_aarch64 == "":
            expected = (release.version, "")
            break
        if "cpu" in release.variants_aarch64:
            expected = (f"{release.version}+cpu", INDEX + "cpu")
            break
    assert expected is not None
    plan = chosen(plan_for("cpu", platform="linux-aarch64"))
    assert (plan.torch.pin, plan.index_url) == expected
    assert Version(plan.torch.version) >= Version("2.10.0")
    assert plan.base_image == "ubuntu:24.04"


def test_plan_target_l4_arch_step_names_serving_cubin(plan_for):
    # facts.md 2: a cubin for sm_8.6 runs on sm_8.9 (same major, higher minor)
    plan = chosen(plan_for("L4", cuda="cu126"))
    assert step(plan, "arch").startswith("sm_89 served by sm_86 -- ")
    assert "never across majors" in step(plan, "arch")


@pytest.mark.parametrize(
    ("gpu", "arch"), [("GTX 1080", "sm_61 served by sm_60"), ("P100", "sm_60 served by sm_60")]
)
def test_plan_target_pascal_arch_step(plan_for, gpu, arch):
    assert step(chosen(plan_for(gpu)), "arch").startswith(arch)


def test_plan_target_steps_follow_the_chain(plan_for):
    # issue 2: GPU -> arch -> CUDA variant -> torch -> companions -> base image
    plan = chosen(plan_for("RTX 5090"))
    assert [s.topic for s in plan.steps] == [
        "gpu",
        "arch",
        "variant",
        "torch",
        "driver",
        "companions",
        "base image",
    ]
    assert all(s.why for s in plan.steps)


def test_plan_target_base_image_override(plan_for):
    plan = chosen(plan_for("A100", base_image="registry.example/cuda:custom"))
    assert plan.base_image == "registry.example/cuda:custom"
    assert (
        step(plan, "base image") == "registry.example/cuda:custom -- base-image set in the matrix"
    )


# --- impossible targets -------------------------------------------------------------------


def test_plan_target_rtx5090_cu124_is_impossible(plan_for):
    # facts.md 3 and 10.1: every cu124 build (2.4-2.6) stops at sm_90 without PTX
    found = error(plan_for("RTX 5090", cuda="cu124"))
    assert found.code == "impossible-target"
    assert found.message.startswith("pinner.toml: targets.t: the GeForce RTX 5090 is sm_120")
    assert "no cu124 build carries kernels for it" in found.message
    assert "CUDA >= 12.8" in found.fix
    assert "torch >= 2.7" in found.fix


def test_plan_target_rtx5090_before_27_is_impossible(plan_for):
    # facts.md 3: the first torch with sm_120 kernels is 2.7.0 (cu128)
    found = error(plan_for("RTX 5090", torch="<2.7"))
    assert found.code == "impossible-target"
    assert "the GeForce RTX 5090 needs a CUDA >= 12.8 build with torch >= 2.7" in found.fix


def test_plan_target_jetson_thor_on_x86_64_is_impossible(plan_for):
    # facts.md 2/3: sm_110 is in no x86_64 torch build (only aarch64 cu130 carries it)
    found = error(plan_for("Jetson Thor"))
    assert found.code == "impossible-target"
    assert "no kernels for sm_110" in found.message
    assert (
        found.fix
        == "no torch build in pinner's knowledge runs on the Jetson Thor (Jetson T5000 / T4000)"
    )


def test_plan_target_python314_needs_torch29(plan_for):
    # facts.md 1a: cp314 wheels from 2.9.0 only
    found = error(plan_for("A100", python="3.14", torch="<2.9"))
    assert found.code == "impossible-target"
    assert 'python = "3.13" (torch 2.8.0 has wheels for it)' in found.fix


def test_plan_target_unknown_variant(plan_for):
    found = error(plan_for("A100", cuda="cu125"))
    assert found.code == "unknown-variant"
    assert "no torch release in pinner's knowledge has a cu125 build" in found.message


def test_plan_target_unknown_gpu_suggests(plan_for):
    found = error(plan_for("rtx5009"))
    assert found.code == "unknown-gpu"
    assert found.message.startswith(
        "pinner.toml: targets.t.gpu: unknown GPU 'rtx5009' (did you mean 'rtx5090'"
    )
    assert "pinner gpus" in found.fix


# --- rejected variants ---------------------------------------------------------------------


def test_plan_target_driver_rejections_name_the_driver(plan_for):
    plan = chosen(plan_for("RTX 5090", driver="570.86"))
    for variant in ("cu130", "cu132"):
        assert rejection(plan, variant) == (
            "CUDA 13 builds need driver >= 580.65.06; the target's driver is 570.86"
        )
    assert "driver 570.86: ok" in step(plan, "driver")


def test_plan_target_rtx5090_rejections_explain_arches(plan_for):
    plan = chosen(plan_for("RTX 5090"))
    assert rejection(plan, "cu124").endswith("no kernels for sm_120")
    assert rejection(plan, "cu126").endswith("no kernels for sm_120")
    assert rejection(plan, "cu128") == (
        "fits with torch 2.11.0, but torch 2.15.0 (cu132) is preferred"
    )


@pytest.mark.parametrize(
    ("gpu", "fields"),
    [
        ("RTX 5090", {}),
        ("A100", {}),
        ("V100", {}),
        ("RTX 5090", {"driver": "570.86"}),
        ("RTX 5090", {"cuda": "cu128"}),
        ("cpu", {}),
    ],
)
def test_plan_target_rejected_table_is_complete(kb, plan_for, gpu, fields):
    plan = chosen(plan_for(gpu, **fields))
    variants = [r.variant for r in plan.rejected]
    assert all(r.reason for r in plan.rejected)
    assert plan.torch.variant not in variants
    assert len(set(variants)) == len(variants)
    offered = {v for r in kb.releases for v in (*r.variants, r.pypi_variant)}
    assert set(variants) == offered - {plan.torch.variant}


# --- bounds from requirements --------------------------------------------------------------


def test_plan_target_torch_requirement_bounds_choice(plan_for):
    plan = chosen(plan_for("A100", "torch<2.9"))
    assert plan.torch.pin == "2.8.0"  # 1b: PyPI 2.8.0 is cu128, sm_70..sm_120
    assert "requirements.in:1 asks for torch<2.9" in step(plan, "torch")


def test_plan_target_torchvision_pin_implies_torch(plan_for):
    # facts.md 1a: torchvision 0.22.1 is exactly pinned to torch 2.7.1
    plan = chosen(plan_for("A100", "torchvision==0.22.1"))
    assert plan.torch.version == "2.7.1"
    assert plan.companions == ("torchvision==0.22.1", "torchaudio==2.7.1")


def test_plan_target_torch_range_and_requirement_conflict(plan_for):
    found = error(plan_for("A100", "torch<2.5", torch=">=2.6"))
    assert found.code == "impossible-target"
    # each way out is true: 2.15.0 is inside torch = ">=2.6" (the requirement rules it out)
    assert "change the requirement (requirements.in:1 asks for torch<2.5): torch 2.15" in found.fix
    assert "widen torch = '>=2.6': torch 2.4.1 would fit" in found.fix


@pytest.mark.parametrize(
    ("asked", "cause"),
    [
        # no torch release pinner knows pairs with torchaudio 2.12.0: the target's (empty) torch
        # range is not what to widen
        ("torchaudio==2.12.0", "requirements.in:1 asks for torchaudio==2.12.0, which no torch"),
        ("torch>=9", "requirements.in:1 asks for torch>=9, which no torch release"),
    ],
)
def test_plan_target_requirement_bound_fix_names_the_requirement(plan_for, asked, cause):
    found = error(plan_for("A100", asked))
    assert found.code == "impossible-target"
    assert "widen torch" not in found.fix
    assert f"change the requirement ({cause}" in found.fix


@pytest.mark.parametrize(
    ("fields", "companions", "warnings"),
    [
        # PyPI's torch 2.15.0: torchaudio-2.11.1 (py3-none) declares torch>=2.11
        ({}, ("torchvision==0.29.2", "torchaudio==2.11.1"), []),
        # PyPI's torch 2.12.1 (cu130): the same ranged release
        ({"torch": "<2.13"}, ("torchvision==0.27.1", "torchaudio==2.11.1"), []),
        # torch 2.10 pins torchaudio 2.10.0 exactly; 2.11.x's torch>=2.11 does not admit it
        ({"torch": "<2.11"}, ("torchvision==0.25.0", "torchaudio==2.10.0"), []),
        # the cu126 index pairs 2.11.0+cu126 with torch 2.14 (secondary)
        ({"cuda": "cu126"}, ("torchvision==0.29.1+cu126", "torchaudio==2.11.0+cu126"), []),
        # the stable cu132 index carries no torchaudio for 2.12-2.14
        ({"cuda": "cu132", "torch": "<2.15"}, ("torchvision==0.29.1+cu132",), ["no-torchaudio"]),
    ],
)
def test_plan_target_torchaudio_pairs_newest_admitting_release(
    plan_for, fields, companions, warnings
):
    result = plan_for("A100", "torchaudio", **fields)
    plan = chosen(result)
    assert plan.companions == companions
    assert [f.code for f in result.findings if f.severity == "warning"] == warnings


@pytest.mark.parametrize(
    ("asked", "companions"),
    [
        # the project's own pin wins over the newer ranged release: torch 2.11.0 pairs exactly
        # with torchaudio 2.11.0 (the H200 host's image); 2.11.1 would contradict the pin
        ("torchaudio==2.11.0", ("torchvision==0.26.0", "torchaudio==2.11.0")),
        ("torchaudio<2.11.1", ("torchvision==0.26.0", "torchaudio==2.11.0")),
        ("torchaudio>=2.11", ("torchvision==0.26.0", "torchaudio==2.11.1")),
    ],
)
def test_plan_target_torchaudio_pin_within_the_projects_requirement(plan_for, asked, companions):
    result = plan_for("H200", "torch==2.11.0", asked, cuda="cu130")
    assert chosen(result).companions == companions


@pytest.mark.parametrize(
    ("asked", "pin", "companions"),
    [
        # the usual pin of an index build: SpecifierSet("==2.10.0+cu128") admits no "2.10.0", so
        # every release was ruled out ("no torch build fits"); the label names the index build
        ("torch==2.10.0+cu128", "2.10.0+cu128", ("torchvision==0.25.0+cu128", "torchaudio==2.10.0+cu128")),
        ("torchaudio==2.10.0+cu128", "2.10.0+cu128", ("torchvision==0.25.0+cu128", "torchaudio==2.10.0+cu128")),
        ("torchaudio==2.11.0+cu126", "2.14.1+cu126", ("torchvision==0.29.1+cu126", "torchaudio==2.11.0+cu126")),
    ],
)  # fmt: skip
def test_plan_target_local_label_pin_chooses_that_index_build(plan_for, asked, pin, companions):
    plan = chosen(plan_for("A100", asked))
    assert plan.torch.pin == pin
    assert plan.companions == companions


def test_plan_target_local_label_of_another_variant_is_said(plan_for):
    found = error(plan_for("A100", "torchaudio==2.11.0+cu126", cuda="cu128"))
    assert "the cu128 build is not the +cu126 build: requirements.in:1 asks for" in found.message
    assert 'set cuda = "12.6" (torch 2.14.1)' in found.fix


def test_plan_target_torchaudio_the_project_rules_out_is_named(plan_for):
    # the cu126 index pairs torch 2.14.1 with torchaudio 2.11.0 only: a project asking for
    # 2.11.1 gets no torchaudio pin, and is told which one pinner knows (not that it knows none)
    result = plan_for("A100", "torchaudio==2.11.1", cuda="cu126")
    plan = chosen(result)
    assert plan.companions == ("torchvision==0.29.1+cu126",)
    [warning] = [f for f in result.findings if f.code == "no-torchaudio"]
    assert "torchaudio==2.11.1 is required" in warning.message
    assert warning.message.endswith("on the cu126 index is 2.11.0")
    assert "allow torchaudio 2.11.0" in warning.fix
    assert "no torchaudio known to pinner" not in step(plan, "companions")
    assert "pinner knows torchaudio 2.11.0 for it" in step(plan, "companions")


# --- companion constraints (facts.md 1b and 7) ---------------------------------------------


@pytest.mark.parametrize(
    ("torch", "constraints"),
    [
        # 1b: torch <= 2.2 is built against NumPy 1.x; 7: transformers 4.52 needs torch >= 2.1
        ("==2.0.1", ["numpy<2", "transformers<4.52.0"]),
        # 7: transformers 5.1 needs torch >= 2.4
        ("==2.2.2", ["numpy<2", "transformers<5.1.0"]),
        ("==2.3.1", ["transformers<5.1.0"]),
        # 7: transformers 5.15 needs torch >= 2.5
        ("==2.4.1", ["transformers<5.15.0"]),
        # 7: transformers 5.20 needs torch >= 2.6
        ("==2.5.1", ["transformers<5.20.0"]),
        ("==2.6.0", []),
        ("", []),
    ],
)
def test_plan_target_companion_constraints(plan_for, torch, constraints):
    plan = chosen(plan_for("A100", torch=torch))
    assert [c.requirement for c in plan.constraints] == constraints
    assert all(c.why and c.source for c in plan.constraints)


# --- unverified variants ------------------------------------------------------------------


def test_plan_target_notes_unverified_variants(plan_for):
    # facts-addendum.md Q1: torch 2.15's index variants were never read
    result = plan_for("A100")
    (note,) = [f for f in result.findings if f.code == "variants-unverified"]
    assert note.severity == "note"
    assert "torch 2.15.0" in note.message
    assert "only PyPI's own build (CUDA 13.2) is offered" in note.message


def test_plan_target_no_unverified_note_below_215(plan_for):
    result = plan_for("A100", torch="<2.15")
    assert "variants-unverified" not in [f.code for f in result.findings]


def test_plan_target_driver_note_only_without_driver(plan_for):
    assert "driver-unchecked" in [f.code for f in plan_for("A100").findings]
    with_driver = plan_for("A100", driver="595.58.03")
    assert "driver-unchecked" not in [f.code for f in with_driver.findings]


def test_plan_torch_newer_than_knowledge_says_where_knowledge_ends(plan_for, kb):
    # DESIGN "Knowledge": pinner warns when a target asks for something newer than it knows.
    result = plan_for("H100", torch=">=2.16")
    assert result.plan is None
    (error,) = [f for f in result.findings if f.severity == "error"]
    assert f"as of {kb.as_of}" in error.message
    assert f"ends at torch {kb.releases[0].version}" in error.message
