"""The CLI end to end through `main(argv)`: gpus, targets, explain; exit codes and messages."""

# Tests leave fixtures unannotated (STYLE.md 7.7); pyproject's `tests.*` mypy override
# does not match these rootdir modules (test_plan, not tests.test_plan).
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pinner.cli import main

DATA = Path(__file__).parent / "data" / "matrices"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every command runs in an empty project: the built-in presets apply."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


NO_REQUIREMENTS = "note: no requirements: locking the torch layer alone"  # test_requirements_cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr without the note that the empty project has no requirements)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.splitlines(keepends=True)
    return code, out, "".join(line for line in lines if not line.startswith(NO_REQUIREMENTS))


def use_matrix(tmp_path: Path, name: str) -> Path:
    """Copy a matrix from tests/data/matrices into the project as pinner.toml."""
    return Path(shutil.copy(DATA / name, tmp_path / "pinner.toml"))


def text_rejections(text: str) -> list[tuple[str, str]]:
    """The (variant, reason) rows of explain's 'rejected variants:' table."""
    lines = text.split("rejected variants:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert lines[0].split() == ["variant", "reason"]
    return [tuple(line.split(maxsplit=1)) for line in lines[1:]]  # type: ignore[misc]


# --- gpus -----------------------------------------------------------------------------------


def test_cli_gpus_lists_known_hardware(capsys, kb):
    code, out, err = run(capsys, "gpus")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["key", "name", "cc", "sm", "architecture", "nvidia-smi", "name"]
    assert len(lines) == len(kb.gpus) + 1
    (row,) = [line for line in lines if line.startswith("rtx5090 ")]
    assert re.split(r"\s{2,}", row) == [
        "rtx5090",
        "GeForce RTX 5090",
        "12.0",
        "sm_120",
        "Blackwell",
        "NVIDIA GeForce RTX 5090",
    ]


def test_cli_gpus_json(capsys, kb):
    code, out, _ = run(capsys, "gpus", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["schema"] == 1
    assert len(data["gpus"]) == len(kb.gpus)
    (a100,) = [g for g in data["gpus"] if g["key"] == "a100"]
    assert (a100["compute_capability"], a100["sm"]) == ("8.0", "sm_80")
    assert "NVIDIA A100-SXM4-80GB" in a100["nvidia_smi"]


# --- targets --------------------------------------------------------------------------------


def test_cli_targets_presets(capsys):
    code, out, err = run(capsys, "targets")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "targets of built-in presets"
    assert lines[1].split() == ["target", "gpu", "python", "torch", "variant", "index"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["rtx5090", "a100", "h100", "l4", "cpu"]
    # facts.md 1b: PyPI 2.15.0 (cu132) runs on all four GPUs; cpu builds come from the cpu index
    assert rows["rtx5090"].split()[-3:] == ["2.15.0", "cu132", "PyPI"]
    assert rows["cpu"].split()[-3:] == ["2.14.1+cpu", "cpu", "https://download.pytorch.org/whl/cpu"]


def test_cli_targets_json(capsys):
    code, out, _ = run(capsys, "targets", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["matrix"] == "presets"
    pins = {t["name"]: t["plan"]["torch"]["pin"] for t in data["targets"]}
    assert pins == {
        "rtx5090": "2.15.0",
        "a100": "2.15.0",
        "h100": "2.15.0",
        "l4": "2.15.0",
        "cpu": "2.14.1+cpu",
    }


def test_cli_targets_matrix_file(capsys, in_tmp):
    use_matrix(in_tmp, "two_targets.toml")
    code, out, _ = run(capsys, "targets")
    assert code == 0
    assert out.splitlines()[0] == f"targets of {in_tmp.resolve() / 'pinner.toml'}"
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["rtx5090"][-3:] == [
        "2.11.0+cu128",
        "cu128",
        "https://download.pytorch.org/whl/cu128",
    ]
    assert rows["a100"][-3:] == ["2.8.0", "cu128", "PyPI"]


def test_cli_targets_impossible_target_exits_2(capsys, in_tmp):
    use_matrix(in_tmp, "impossible_cu124.toml")
    code, out, err = run(capsys, "targets")
    assert code == 2
    assert "error: impossible-target" in out
    assert err.startswith("pinner: error: ")


# --- explain --------------------------------------------------------------------------------


def test_cli_explain_prints_the_chain(capsys):
    code, out, err = run(capsys, "explain", "--target", "rtx5090")
    assert (code, err) == (0, "")
    steps = out.split("\n\n")[1].splitlines()  # after the title, before the rejected table
    topics = [line[:11].strip() for line in steps if not line[0].isspace()]
    assert topics == ["gpu", "arch", "variant", "torch", "driver", "companions", "base image"]
    assert "gpu         GeForce RTX 5090 (rtx5090)" in out
    assert "arch        sm_120 served by sm_120" in out
    assert "torch       2.15.0" in out
    assert "companions  torchvision==0.29.2" in out
    assert "base image  nvidia/cuda:13.2.1-runtime-ubuntu24.04" in out
    rows = dict(text_rejections(out))
    assert rows["cu124"].endswith("no kernels for sm_120")
    assert "cu132" not in rows


def test_cli_explain_json_has_the_same_content(capsys):
    _, text, _ = run(capsys, "explain", "--target", "rtx5090")
    code, out, _ = run(capsys, "explain", "--target", "rtx5090", "--json")
    assert code == 0
    data = json.loads(out)
    plan = data["plan"]
    assert data["target"] == "rtx5090"
    assert f"torch       {plan['torch']['pin']}\n" in text
    assert [(r["variant"], r["reason"]) for r in plan["rejected"]] == text_rejections(text)
    for s in plan["steps"]:
        assert s["choice"] in text
        assert f"why: {s['why']}" in text
    notes = [f["message"] for f in data["findings"]]
    assert notes
    assert all(f"note: {m}" in text for m in notes)


def test_cli_explain_impossible_target_exits_2(capsys, in_tmp):
    use_matrix(in_tmp, "impossible_cu124.toml")
    code, out, err = run(capsys, "explain", "--target", "rtx5090")
    assert code == 2
    assert out == ""
    assert err.startswith(
        "pinner: error: pinner.toml: targets.rtx5090: the GeForce RTX 5090 is sm_120"
    )
    assert "no cu124 build carries kernels for it" in err
    assert "fix: the GeForce RTX 5090 needs a CUDA >= 12.8 build with torch >= 2.7" in err
    assert "Traceback" not in err


def test_cli_explain_json_impossible_target_still_reports(capsys, in_tmp):
    use_matrix(in_tmp, "impossible_cu124.toml")
    code, out, err = run(capsys, "explain", "--target", "rtx5090", "--json")
    assert code == 2
    data = json.loads(out)
    assert data["plan"] is None
    assert [f["code"] for f in data["findings"] if f["severity"] == "error"] == [
        "impossible-target"
    ]
    assert "Traceback" not in err


def test_cli_explain_unknown_target_suggests(capsys):
    code, out, err = run(capsys, "explain", "--target", "rtx509")
    assert (code, out) == (2, "")
    assert err == (
        "pinner: error: --target: unknown target 'rtx509' (did you mean 'rtx5090'?) in the "
        "built-in presets; known targets: rtx5090, a100, h100, l4, cpu\n"
    )


def test_cli_explain_unknown_gpu_suggests(capsys, in_tmp):
    use_matrix(in_tmp, "bad_gpu.toml")
    code, _, err = run(capsys, "explain", "--target", "rtx5090")
    assert code == 2
    assert "unknown GPU 'rtx5009' (did you mean 'rtx5090'" in err
    assert "Traceback" not in err


def test_cli_malformed_toml_exits_2_naming_file_and_line(capsys, in_tmp):
    path = use_matrix(in_tmp, "bad_syntax.toml")
    code, out, err = run(capsys, "explain", "--target", "a100")
    assert (code, out) == (2, "")
    assert err.startswith(f"pinner: error: {path.resolve()}: invalid TOML: ")
    assert "line 3" in err
    assert "Traceback" not in err


def test_cli_unknown_key_exits_2(capsys, in_tmp):
    use_matrix(in_tmp, "bad_unknown_key.toml")
    code, _, err = run(capsys, "targets")
    assert code == 2
    assert err == (
        "pinner: error: pinner.toml: targets.rtx5090.torhc: unknown key (did you mean 'torch'?)\n"
    )


def test_cli_matrix_option(capsys, in_tmp):
    shutil.copy(DATA / "two_targets.toml", in_tmp / "m.toml")
    code, out, _ = run(capsys, "explain", "--matrix", "m.toml", "--target", "a100", "--json")
    assert code == 0
    assert json.loads(out)["plan"]["torch"]["pin"] == "2.8.0"


def test_cli_help_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("gpus", "targets", "explain"):
        assert command in out


def test_cli_explain_needs_target(capsys):
    code, out, err = run(capsys, "explain")
    assert code == 2
    assert "--target" in err
    assert "Traceback" not in err + out


def test_module_entry_point(in_tmp):
    result = subprocess.run(
        [sys.executable, "-m", "pinner", "explain", "--target", "a100"],
        cwd=in_tmp,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr.startswith(NO_REQUIREMENTS)
    assert result.stdout.startswith("a100  (built-in presets: targets.a100)\n")
    assert "torch       2.15.0" in result.stdout
