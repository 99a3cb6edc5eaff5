"""pinner doctor: nvidia-smi output of real GPUs (fixtures served by a fake nvidia-smi), matched
to the knowledge, the presets and the project's matrix."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.cli import main
from pinner.commands.doctor import NOT_FOUND, parse_smi

if TYPE_CHECKING:
    from collections.abc import Callable

FIXTURES = Path(__file__).parent / "data" / "nvidia-smi"


def fake_smi(tmp_path: Path, fixture: str, *, old_driver: bool = False) -> Path:
    """An executable that prints a fixture as nvidia-smi would. With old_driver it refuses the
    compute_cap field, as drivers before it existed do."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir(exist_ok=True)
    refuse = (
        'case "$*" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to '
        "query.'; exit 2;; esac\n"
        if old_driver
        else ""
    )
    script.write_text(f"#!/bin/sh\n{refuse}cat '{FIXTURES / fixture}'\n", encoding="utf-8")
    script.chmod(0o755)
    return script


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """host(fixture) -> serve that fixture through PINNER_NVIDIA_SMI, in an empty project."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)

    def serve(fixture: str, **kwargs: bool) -> Path:
        monkeypatch.setenv("PINNER_NVIDIA_SMI", str(fake_smi(tmp_path, fixture, **kwargs)))
        return project

    return serve


def matrix(project: Path, text: str) -> None:
    (project / "pinner.toml").write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.parametrize(
    ("fixture", "gpu", "preset"),
    [
        (
            "rtx5090.csv",
            (
                "GPU 0: NVIDIA GeForce RTX 5090, compute capability 12.0 (sm_120), "
                "32607 MiB = GeForce RTX 5090 (rtx5090)"
            ),
            "rtx5090",
        ),
        (
            "a100.csv",
            (
                "GPU 0: NVIDIA A100-SXM4-80GB, compute capability 8.0 (sm_80), "
                "81920 MiB = NVIDIA A100 (a100)"
            ),
            "a100",
        ),
        (
            "h100.csv",
            (
                "GPU 0: NVIDIA H100 80GB HBM3, compute capability 9.0 (sm_90), "
                "81559 MiB = NVIDIA H100 (h100)"
            ),
            "h100",
        ),
    ],
    ids=["rtx5090", "a100", "h100"],
)
def test_doctor_names_the_gpu_and_the_preset(host, capsys, fixture, gpu, preset):
    host(fixture)
    assert main(["doctor"]) == 0  # presets never fail doctor, and there is no project matrix
    out = capsys.readouterr().out
    assert f"  {gpu}\n" in out
    assert f"presets that fit:\n  {preset}: " in out
    assert f"try: pinner explain --target {preset}" in out
    assert "matrix " not in out


def test_doctor_driver_too_old_for_the_matrix_build(host, capsys):
    project = host("h100.csv")
    matrix(
        project,
        """\
        [targets.h100]
        gpu = "H100"

        [targets.h100-old-driver]
        gpu = "H100"
        driver = "555.42.02"
        """,
    )
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert "driver 555.42.02:\n" in out
    assert "  CUDA 13 builds (need >= 580.65.06): too old\n" in out
    assert "  CUDA 12 builds (need >= 525.60.13): runs them\n" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("  error   h100 "))
    assert (
        "NVIDIA H100 (9.0), torch 2.15.0, CUDA 13.2: same GPU, but its build (torch 2.15.0, "
        "CUDA 13.2) needs driver >= 580.65.06; this host has 555.42.02"
    ) in line
    assert (
        'fix: upgrade the driver to >= 580.65.06, or set driver = "555.42.02" on pinner.toml: '
        "targets.h100 (pinner then plans torch "
    ) in out
    ok = next(ln for ln in out.splitlines() if "h100-old-driver" in ln)
    assert ok.startswith("  ok      h100-old-driver")
    assert "CUDA 12." in ok
    assert captured.err.startswith("pinner: error: pinner.toml: targets.h100: NVIDIA H100 (9.0)")
    # the preset also fits, but a preset is a suggestion: it warns, with the same fix
    assert 'pinner init --target h100) and set driver = "555.42.02"' in out


def test_doctor_warns_about_a_target_whose_build_has_no_kernel_here(host, capsys):
    project = host("rtx5090.csv")
    matrix(
        project,
        """\
        [targets.p100]
        gpu = "Tesla P100"

        [targets.rtx5090]
        gpu = "RTX 5090"
        """,
    )
    assert main(["doctor"]) == 0  # a target for another GPU only warns
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("  warning p100"))
    assert "other GPU, but its build has no kernels for this GPU's sm_120" in line
    assert "no kernel image is available" in line
    assert next(ln for ln in out.splitlines() if " rtx5090 " in ln).startswith("  ok      rtx5090")


def test_doctor_target_for_another_gpu_whose_build_runs_here(host, capsys):
    project = host("a100.csv")
    matrix(project, '[targets.rtx5090]\ngpu = "RTX 5090"\n')
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert (
        "other GPU" not in out or "for another GPU; its build also runs sm_80 kernels here" in out
    )


def test_doctor_without_nvidia_smi(host, tmp_path, monkeypatch, capsys):
    host("a100.csv")
    monkeypatch.delenv("PINNER_NVIDIA_SMI")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out == f"{NOT_FOUND}.\n"
    assert NOT_FOUND == "no NVIDIA GPU visible (nvidia-smi not found)"


def test_doctor_nvidia_smi_path_that_does_not_exist(host, tmp_path, monkeypatch, capsys):
    host("a100.csv")
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(tmp_path / "missing" / "nvidia-smi"))
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out == f"{NOT_FOUND}.\n"


def test_doctor_when_nvidia_smi_fails(host, tmp_path, monkeypatch, capsys):
    host("a100.csv")
    script = tmp_path / "broken-smi"
    script.write_text(
        "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        'driver. Make sure that the latest NVIDIA driver is installed and running."\nexit 9\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(script))
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out.startswith(
        "no NVIDIA GPU visible (nvidia-smi failed: NVIDIA-SMI has failed because it couldn't "
        "communicate with the NVIDIA driver."
    )


def test_doctor_old_driver_without_compute_cap_falls_back_to_the_name(host, capsys):
    host("t4-old-driver.csv", old_driver=True)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "GPU 0: Tesla T4, compute capability 7.5 (sm_75), 15360 MiB = " in out
    assert "  CUDA 12 builds (need >= 525.60.13): too old\n" in out
    assert "no preset fits this GPU; add a target to pinner.toml:" in out


def test_doctor_json_two_gpus(host, capsys):
    project = host("a100x2.csv")
    matrix(project, '[targets.a100]\ngpu = "A100"\n\n[targets.cpu]\ngpu = "cpu"\n')
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(g["index"], g["key"], g["compute_capability"], g["driver"]) for g in data["gpus"]] == [
        (0, "a100", "8.0", "580.126.09"),
        (1, "a100", "8.0", "580.126.09"),
    ]
    assert [(p["target"], p["match"]) for p in data["presets"]] == [("a100", "same GPU")]
    assert [(t["target"], t["match"], t["level"]) for t in data["targets"]] == [
        ("a100", "same GPU", "ok"),
        ("cpu", "cpu", "ok"),
    ]
    assert data["errors"] == []
    assert data["matrix"] == "pinner.toml"


def test_parse_smi_handles_not_available_fields():
    rows = parse_smi("Orin (nvgpu), [N/A], 540.4.0, [N/A]\nbad line\n")
    assert rows == [
        {"name": "Orin (nvgpu)", "compute_cap": "", "driver_version": "540.4.0", "memory.total": ""}
    ]
