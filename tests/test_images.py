"""The base image must start on the target's driver (issue 9.4).

nvidia/cuda images set NVIDIA_REQUIRE_CUDA (cuda>=X.Y, or brand=B,driver>=N,driver<N+1 clauses),
which the NVIDIA container runtime enforces; the torch wheels only need the CUDA major's floor.
"""

from __future__ import annotations

import pytest

from pinner.cli import main
from pinner.knowledge import images
from pinner.knowledge.knowledge import load_knowledge
from pinner.lock.lockfile import dump_lock
from pinner.model import LockFile, Pin, Plan, PlanResult, Step, TargetLock
from pinner.render.render import render_target
from tests.test_doctor import fake_smi

BRANDS = {
    "tesla",
    "nvidia",
    "quadro",
    "quadrortx",
    "nvidiartx",
    "geforce",
    "titan",
    "titanrtx",
    "unknown",
}


def chosen(result: PlanResult) -> Plan:
    assert result.plan is not None, result.findings
    return result.plan


def step(plan: Plan, topic: str) -> Step:
    return next(s for s in plan.steps if s.topic == topic)


def test_every_gpu_has_a_brand_and_every_cuda_image_its_requirement(kb):
    assert {g.brand for g in kb.gpus} <= BRANDS
    assert all(g.brand for g in kb.gpus)
    assert kb.find_gpu("RTX 4090").brand == "geforce"
    assert kb.find_gpu("A100").brand == "tesla"
    assert kb.find_gpu("RTX A6000").brand == "nvidiartx"
    for image in kb.images:
        if image.cuda:
            assert image.require_cuda == image.cuda
            assert image.require_source.startswith(
                (
                    "pranavmishra90/nvidia-container-images-cuda@",
                    "https://gitlab.com/nvidia/container-images/cuda/",
                )
            )
    twelve_six = kb.image("12.6")
    assert twelve_six.require.startswith("cuda>=12.6 brand=unknown,driver>=470,driver<471 ")
    assert "brand=tesla,driver>=535,driver<536" in twelve_six.require
    assert "geforce" not in twelve_six.require  # 12.6+ images admit no GeForce on old branches
    assert "brand=geforce,driver>=535,driver<536" in kb.image("12.4").require


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [("550.54.15", "12.4"), ("535.104.05", "12.2"), ("580.159.04", "13.0"), ("470.82.01", "")],
)
def test_the_cuda_a_driver_runs_natively(kb, driver, cuda):
    assert images.driver_cuda(kb, driver) == cuda


def test_rtx4090_on_550_gets_a_plain_image_not_the_12_6_it_cannot_start(plan_for):
    plan = chosen(plan_for("RTX 4090", driver="550.54.15"))
    assert plan.torch.pin == "2.14.1+cu126"  # the case: CUDA 13 needs 580
    assert plan.base_image == "ubuntu:24.04"
    why = step(plan, "base image").why
    assert why.startswith(
        "nvidia/cuda:12.6.3-runtime-ubuntu24.04 needs driver >= 560.28.03 (CUDA 12.6), or a "
        "data-center or workstation GPU (not GeForce) on driver branch 470, 535, 550"
    )
    assert "driver 550.54.15 on a geforce GPU meets neither" in why
    assert "need only driver >= 525.60.13" in why


def test_a100_on_the_535_branch_starts_the_12_6_image_through_its_brand_clause(plan_for):
    plan = chosen(plan_for("A100", driver="535.104.05"))
    assert plan.torch.cuda == "12.6"
    assert plan.base_image == "nvidia/cuda:12.6.3-runtime-ubuntu24.04"
    assert step(plan, "base image").why.endswith(
        "driver 535.104.05 starts it: its clause brand=tesla,driver>=535,driver<536 admits "
        "535.104.05"
    )


def test_without_a_driver_explain_states_what_the_image_needs(plan_for):
    result = plan_for("A100", cuda="cu126")
    plan = chosen(result)
    assert (
        "lets the container runtime start it on driver >= 560.28.03 (CUDA 12.6)"
        in step(plan, "base image").why
    )
    note = next(f for f in result.findings if f.code == "driver-unchecked")
    assert note.message == (
        "this build needs NVIDIA driver >= 525.60.13, and its base image (nvidia/cuda, CUDA 12.6) "
        "starts on driver >= 560.28.03 (CUDA 12.6), or a data-center or workstation GPU (not "
        "GeForce) on driver branch 470, 535, 550; no driver was given"
    )


def test_a_source_build_takes_an_older_devel_image_of_the_same_major(plan_for):
    plan = chosen(
        plan_for(
            "RTX 4090",
            "flash-attn",
            cuda="cu126",
            driver="550.54.15",
            builds=(("flash-attn", "source"),),
        )
    )
    assert plan.base_image == "nvidia/cuda:12.4.1-devel-ubuntu22.04"
    why = step(plan, "base image").why
    assert why.startswith("CUDA 12.4 devel image (torch's CUDA major 12; nvcc knows sm_89)")
    assert "driver 550.54.15 starts it: driver 550.54.15 supports CUDA 12.4 >= 12.4" in why


def test_a_source_build_the_driver_cannot_start_is_refused_with_the_fix(plan_for):
    from pinner.knowledge import images

    result = plan_for(
        "RTX 5090",
        "flash-attn",
        cuda="cu128",
        driver="565.57.01",
        builds=(("flash-attn", "source"),),
    )
    assert result.plan is None
    # the GPU's own driver floor (Blackwell: 570.26) is said first
    assert [f.code for f in result.findings if f.severity == "error"] == ["gpu-driver"]
    # and the image rule alone would refuse every CUDA 12 devel image that knows sm_120
    kb = load_knowledge()
    devel = [i for i in kb.images if i.cuda.startswith("12.") and images.fits_arch(i, "12.0")]
    assert devel
    assert not [i.devel for i in devel if images.starts(i, kb, "565.57.01", "geforce")]


def test_the_dockerfile_says_why_and_sets_the_runtime_env(plan_for):
    plan = chosen(plan_for("RTX 4090", driver="550.54.15"))
    pin = Pin(name="torch", version="2.14.1+cu126", source="pytorch", layer="torch", via=())
    tl = TargetLock(plan=plan, pins=(pin,), inputs="sha256:test", findings=())
    lock = LockFile(pinner="0.1.0", knowledge="2026-11-23", targets=(tl,))
    text = dump_lock(lock, {"t": "sha256:test"})
    section = text.split("[targets.t]", 1)[1]
    docker = next(a for a in render_target(tl, section=section) if a.path.name == "Dockerfile")
    body = docker.text
    assert "\nFROM ubuntu:24.04\n" in body
    assert (
        "ENV NVIDIA_VISIBLE_DEVICES=all \\\n    NVIDIA_DRIVER_CAPABILITIES=compute,utility\n"
        in body
    )
    assert "# Base image: nvidia/cuda:12.6.3-runtime-ubuntu24.04 needs driver >= 560.28.03" in body


def test_doctor_applies_the_image_rule_to_the_host(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    (project / "pinner.toml").write_text(
        '[targets.box]\ngpu = "RTX 4090"\ncuda = "cu126"\n', encoding="utf-8"
    )
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(fake_smi(tmp_path, "rtx4090-550.csv")))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert (
        "its base image nvidia/cuda:12.6.3-runtime-ubuntu24.04 needs driver >= 560.28.03 "
        "(CUDA 12.6), or a data-center or workstation GPU (not GeForce) on driver branch 470, "
        "535, 550; the NVIDIA container runtime refuses to start it on driver 550.54.15"
    ) in out
    assert 'set driver = "550.54.15" on pinner.toml: targets.box' in out
    # with the driver declared, the plan takes an image this driver starts: doctor is content
    (project / "pinner.toml").write_text(
        '[targets.box]\ngpu = "RTX 4090"\ncuda = "cu126"\ndriver = "550.54.15"\n',
        encoding="utf-8",
    )
    assert main(["doctor"]) == 0, capsys.readouterr().out


def test_doctor_accepts_an_a100_on_535_through_the_brand_clause(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    (project / "pinner.toml").write_text(
        '[targets.box]\ngpu = "A100"\ncuda = "cu126"\n', encoding="utf-8"
    )
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(fake_smi(tmp_path, "a100-535.csv")))
    assert main(["doctor"]) == 0, capsys.readouterr().out
