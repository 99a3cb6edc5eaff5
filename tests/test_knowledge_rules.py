"""Table-driven cases for the knowledge fixes of issue 12: each data item with the rule using it."""

from __future__ import annotations

import pytest

from pinner.knowledge.knowledge import spec_admits
from pinner.model import Pin, Plan, TargetLock

# --- extension builds: the CUDA major and torch build of PyPI wheels (xformers, vllm) -------------


@pytest.mark.parametrize(
    ("package", "version", "cuda", "built_for"),
    [
        # xformers/cpp_lib.json inside each wheel
        ("xformers", "0.0.35", "12", "2.10.0+cu128"),
        ("xformers", "0.0.33", "13", "2.9.0+cu130"),
        ("xformers", "0.0.33.post1", "12", "2.9.0+cu128"),
        ("xformers", "0.0.29.post2", "12", "2.6.0+cu124"),
        # vllm 0.33.0 requires nvidia-cutlass-dsl[cu13] and torch==2.14.0
        ("vllm", "0.33.0", "13", "2.14.0+cu130"),
        ("vllm", "0.19.1", "12", "2.10.0+cu128"),
    ],
)
def test_extension_builds_record_cuda_major_and_torch_build(kb, package, version, cuda, built_for):
    (build,) = [b for b in kb.extension_builds(package) if b.version == version]
    assert (build.cuda, build.built_for) == (cuda, built_for)
    assert build.source.startswith(f"{package}-{version}-")


def test_extension_builds_newest_first_and_empty_for_unknown(kb):
    versions = [b.version for b in kb.extension_builds("xformers")]
    assert versions[0] == "0.0.35"
    assert kb.extension_builds("flash-attn") == ()  # PyPI ships only sdists of flash-attn


@pytest.mark.parametrize(
    ("gpu", "requirements", "fields", "torch", "constraint"),
    [
        # xformers 0.0.35 links libcudart.so.12: never next to PyPI's CUDA 13 torch 2.15
        ("A100", ("xformers",), {}, "2.14.1+cu126", "xformers>=0.0.35,<=0.0.35"),
        # a CUDA 12 torch on PyPI (2.10.0, cu128) carries 0.0.34 and 0.0.35
        ("A100", ("xformers",), {"torch": "<2.11"}, "2.10.0", "xformers>=0.0.34,<=0.0.35"),
        # vllm 0.33.0 needs cu13 packages: a CUDA 12.6 V100 target gets the newest CUDA 12 vllm
        ("V100", ("vllm",), {"cuda": "cu126"}, "2.10.0+cu126", "vllm>=0.17.0,<=0.19.1"),
    ],
)
def test_compiled_wheels_pair_only_with_their_cuda_major(
    plan_for, gpu, requirements, fields, torch, constraint
):
    plan = plan_for(gpu, *requirements, **fields).plan
    assert plan is not None
    assert plan.torch.pin == torch
    assert constraint in [c.requirement for c in plan.constraints]


def test_compiled_wheel_without_a_build_for_the_range_is_refused(plan_for):
    result = plan_for("A100", "xformers", torch=">=2.15")
    assert result.plan is None
    (error,) = [f for f in result.findings if f.severity == "error"]
    assert "no xformers wheel on PyPI is built for torch 2.15.0 with CUDA 13" in error.message


def test_compiled_constraint_holds_back_versions_newer_than_knowledge(plan_for, kb):
    plan = plan_for("A100", "xformers").plan
    assert plan is not None
    (c,) = [c for c in plan.constraints if c.requirement.startswith("xformers")]
    assert f"newer than pinner's knowledge ({kb.as_of}): upgrade pinner" in c.why


# --- torch builds: PTX and aarch64 --------------------------------------------------------------


@pytest.mark.parametrize("minor", ["2.11", "2.12", "2.13", "2.14"])
def test_cu130_builds_carry_no_ptx(kb, minor):
    build = kb.build(minor, "cu130")
    assert build is not None
    assert build.ptx == ""


@pytest.mark.parametrize(
    ("minor", "variant"),
    [("2.11", "cu130"), ("2.12", "cu130"), ("2.13", "cu130"), ("2.14", "cu130"), ("2.15", "cu132")],
)
def test_aarch64_pypi_builds_are_known(kb, minor, variant):
    build = kb.build(minor, variant, "linux-aarch64")
    assert build is not None
    assert build.arches == ("sm_80", "sm_90", "sm_100", "sm_110", "sm_120")


@pytest.mark.parametrize("gpu", ["GH200", "GB200"])
def test_grace_gpus_get_current_torch_on_aarch64(plan_for, gpu):
    plan = plan_for(gpu, platform="linux-aarch64").plan
    assert plan is not None
    assert plan.torch.version == "2.15.0"
    assert plan.torch.on_pypi


# --- Jetson and per-GPU driver floors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "driver", "code"),
    [
        ("Jetson AGX Orin", "", "jetson-platform"),
        ("Jetson AGX Orin", "540.4.0", "jetson-platform"),  # JetPack 6
        ("Jetson Thor", "", "jetson-platform"),
        ("RTX 5090", "565.57.01", "gpu-driver"),  # Blackwell needs >= 570.26
    ],
)
def test_hardware_refusals(plan_for, gpu, driver, code):
    result = plan_for(
        gpu, platform="linux-aarch64" if "Jetson" in gpu else "linux-x86_64", driver=driver
    )
    assert result.plan is None
    assert code in [f.code for f in result.findings if f.severity == "error"]


def test_jetson_thor_on_jetpack7_is_planned(plan_for):
    plan = plan_for("Jetson Thor", platform="linux-aarch64", driver="580.65.06").plan
    assert plan is not None
    assert "sm_110" in plan.torch.arches


def test_jetson_refusal_says_why(plan_for):
    result = plan_for("Jetson AGX Orin", platform="linux-aarch64")
    (error,) = [f for f in result.findings if f.severity == "error"]
    assert "driver >= 580 (JetPack 7)" in error.message
    assert "no sm_87" in error.message


# --- source builds: per-version arch floors ------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "package", "fields", "version"),
    [
        # 2.3.2.post1 compiles sm_75+ only; 2.3.1 still compiles sm_70 with nvcc <= 12.9
        ("V100", "mamba-ssm", {"cuda": "cu126"}, "2.3.1"),
        # causal-conv1d >= 1.6.2.post1 compiles sm_75+ only
        ("V100", "causal-conv1d", {"cuda": "cu126"}, "1.6.1"),
        ("A100", "mamba-ssm", {}, "2.3.2.post1"),
        # mamba-ssm <= 2.2.5 has no sm_120: an RTX 5090 needs 2.2.6.post3 or newer
        ("RTX 5090", "mamba-ssm", {}, "2.3.2.post1"),
    ],
)
def test_source_builds_pick_a_release_with_kernels(plan_for, gpu, package, fields, version):
    plan = plan_for(gpu, package, **fields).plan
    assert plan is not None
    (ext,) = [e for e in plan.extensions if e.name == package]
    assert ext.version == version


def test_source_build_without_kernels_is_refused_with_the_fix(plan_for):
    result = plan_for("RTX 5090", "mamba-ssm<=2.2.5")
    assert result.plan is None
    (error,) = [f for f in result.findings if f.severity == "error"]
    assert error.code == "extension-arch"
    assert "sm_120" in error.message


# --- bitsandbytes --------------------------------------------------------------------------------


def test_bitsandbytes_0_43_2_bundles_cuda125(kb):
    (row,) = [b for b in kb.docs["packages"]["bitsandbytes"] if b["version"] == "0.43.2"]
    assert "125" in row["cuda"]


def test_bitsandbytes_constraint_names_the_runtime_error(plan_for):
    plan = plan_for("A100", "bitsandbytes").plan
    assert plan is not None
    (c,) = [c for c in plan.constraints if c.requirement.startswith("bitsandbytes")]
    assert "Configured CUDA binary not found" in c.why


# --- the small specifier evaluator the knowledge uses ---------------------------------------------


@pytest.mark.parametrize(
    ("spec", "version", "ok"),
    [
        (">=2.11", "2.11.0", True),
        (">=2.11", "2.10.0", False),
        ("==2.0.1", "2.0.1", True),
        ("==2.0.1", "2.0.10", False),
        (">=2.10,<2.12", "2.12.0", False),
        ("", "2.9.0", True),
    ],
)
def test_spec_admits(spec, version, ok):
    assert spec_admits(spec, version) is ok


# --- as-of honesty ---------------------------------------------------------------------------------


def _locked(plan: Plan, *pins: tuple[str, str]) -> TargetLock:

    return TargetLock(
        plan=plan,
        pins=tuple(
            Pin(
                name=n,
                version=v,
                source="default",
                layer="main",
                via=("requirements.in",),
            )
            for n, v in pins
        ),
        inputs="sha256:0",
        findings=(),
    )


def test_version_shows_the_knowledge_date(capsys, kb):
    from pinner.cli import main

    assert main(["--version"]) == 0
    assert f"(knowledge {kb.as_of})" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("pins", "codes"),
    [
        # a pure-Python package newer than the knowledge: locked, with a note (not a warning)
        ((("transformers", "5.24.0"),), [("note", "newer-than-knowledge")]),
        ((("transformers", "5.23.0"),), []),
        # a compiled wheel newer than the knowledge: its CUDA build is unknown
        ((("xformers", "0.0.36"),), [("warning", "newer-than-knowledge")]),
        # torchaudio 2.11.1 admits PyPI's torch 2.15; 2.10.0 is built for torch 2.10 only
        ((("torchaudio", "2.11.1"),), []),
        ((("torchaudio", "2.10.0"),), [("warning", "torchaudio-mismatch")]),
    ],
)
def test_lint_after_resolution(plan_for, pins, codes):
    from pinner.knowledge.lint import lint_lock

    plan = plan_for("A100").plan
    assert plan is not None
    found = lint_lock(_locked(plan, *pins))
    assert [(f.severity, f.code) for f in found] == codes


def test_newer_than_knowledge_note_reads_the_same_for_every_target(plan_for, kb):
    from pinner.knowledge.lint import lint_lock

    a, b = plan_for("A100").plan, plan_for("RTX 5090").plan
    notes = {f.message for p in (a, b) for f in lint_lock(_locked(p, ("transformers", "5.24.0")))}
    expected = (
        f"transformers 5.24.0 is newer than pinner's knowledge ({kb.as_of}): its import-time "
        "minimum torch is not verified; upgrade pinner"
    )
    assert notes == {expected}


def test_a_run_prints_an_identical_note_once(plan_for, capsys):
    from dataclasses import replace

    from pinner.commands.summary import print_findings
    from pinner.knowledge.lint import lint_lock
    from pinner.model import LockFile

    targets = []
    for gpu in ("A100", "RTX 5090"):
        plan = plan_for(gpu).plan
        assert plan is not None
        tl = _locked(plan, ("transformers", "5.24.0"), ("torchaudio", "2.10.0"))
        targets.append(replace(tl, findings=lint_lock(tl)))
    lockfile = LockFile(pinner="0", knowledge="2026-11-23", targets=tuple(targets))
    print_findings([f for t in lockfile.targets for f in t.findings])
    err = capsys.readouterr().err
    assert err.count("transformers 5.24.0 is newer than pinner's knowledge") == 1
    # each distinct message once, naming its targets (issue 14): both plans are target "t"
    assert err.count("torchaudio 2.10.0 is locked") == 1
    assert "warning: t: torchaudio 2.10.0 is locked, but it is not built for torch" in err


def test_blackwell_driver_floor_raises_a_cuda12_plans_minimum(plan_for):
    plan = plan_for("RTX 5090", cuda="cu128").plan
    assert plan is not None
    assert plan.min_driver == "570.26"  # CUDA 12 alone would say 525.60.13
    (step,) = [s for s in plan.steps if s.topic == "driver"]
    assert "the GeForce RTX 5090 (Blackwell) needs it" in step.why


@pytest.mark.parametrize(
    ("package", "version", "note"),
    [
        (
            "torch",
            "2.16.0",
            "torch 2.16.0 is newer than pinner's knowledge (2026-11-23): upgrade pinner",
        ),
        ("torch", "2.15.0", ""),
        (
            "xformers",
            "0.0.36",
            "xformers 0.0.36 is newer than pinner's knowledge (2026-11-23): upgrade pinner",
        ),
        ("vllm", "0.33.0", ""),
        ("numpy", "9.0", ""),  # no release table: nothing to compare with
    ],
)
def test_newer_than_knowledge_note(kb, package, version, note):
    from pinner.knowledge.lint import newer_than_knowledge

    assert newer_than_knowledge(kb, package, version) == note
