"""Network: real requirements on the real PyPI, compared with a bare `uv pip compile` of the same
lines for the same Python and platform.

* `vllm` alone on an H100, Python 3.12: the lock's vllm is the one bare uv picks when the torch
  that release pins has a build that fits; otherwise a held-back warning names the pin.
* `mamba-ssm[causal-conv1d]` (the line of mamba's README) on an A100: both packages are compiled
  extensions, built in the extension layer after torch.

The corpus of real projects (tests/data/projects/) is checked offline here: each folder names its
public source and has a matrix and requirements pinner reads. `tools/real_projects.py` locks it.

Each lock runs against PyPI only (PyPI ships the torch builds these targets use), with pinner's
caches under the test's tmp; uv's own cache is the host's (warm after the first run), so these
are `slow`. Transient network failures are retried.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.projects import NETWORK_ERRORS, run_retrying

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.projects import Run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytest_plugins = ("tests.conftest_lock",)

PROJECTS = Path(__file__).parent / "data" / "projects"
NINE = (
    "comfyui", "f5-tts", "mamba", "llama-factory", "text-generation-webui", "axolotl", "unsloth",
    "vllm-deployment", "peft",
)  # fmt: skip
PLATFORM = "x86_64-manylinux_2_28"
SOURCE_LINE = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+", re.MULTILINE)


def uv() -> str:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else "uv"


@pytest.fixture
def real_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder; pinner and uv on the real PyPI with no host index setting leaking in."""
    for key in list(os.environ):
        if key.startswith("PIP_") or key in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX"):
            monkeypatch.delenv(key)
        if key in ("UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "PINNER_INDEX_URL"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("PINNER_TORCH_INDEX_URL", raising=False)
    monkeypatch.setenv("PINNER_CACHE_DIR", str(tmp_path / "pinner-cache"))
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def lock_of(project: Path, target: str) -> dict[str, Any]:
    section: dict[str, Any] = tomllib.loads((project / "pinner.lock").read_text())["targets"][
        target
    ]
    return section


def bare_uv(requirements: str, python: str) -> dict[str, str]:
    """name -> version from one bare `uv pip compile` (retried on transient failures)."""
    cmd = [
        uv(), "pip", "compile", "-", "--python-version", python, "--python-platform", PLATFORM,
        "--no-header", "--no-annotate", "--quiet",
    ]  # fmt: skip
    for attempt in range(3):
        done = subprocess.run(
            cmd, input=requirements, capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode == 0:
            break
        if attempt == 2 or not any(e in done.stderr.lower() for e in NETWORK_ERRORS):
            raise AssertionError(done.stderr)
        time.sleep(2 * (attempt + 1))
    out = {}
    for line in done.stdout.splitlines():
        if "==" in line:
            name, version = line.split("#")[0].strip().split("==", 1)
            out[name.strip()] = version.split(";")[0].strip()
    return out


@pytest.mark.network
@pytest.mark.slow
def test_vllm_on_h100_is_bare_uvs_vllm_or_says_what_pin_held_it_back(
    real_pypi: Path, cli: Callable[..., Run]
) -> None:
    (real_pypi / "pinner.toml").write_text(
        '[targets.h100]\ngpu = "H100"\ncuda = "auto"\npython = "3.12"\n'
        'requirements = ["requirements.in"]\n'
    )
    (real_pypi / "requirements.in").write_text("vllm\n")
    result = run_retrying(cli, "lock")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err

    section = lock_of(real_pypi, "h100")
    packages = {p["name"]: p for p in section["packages"]}
    vllm, torch = packages["vllm"], packages["torch"]
    bare = bare_uv("vllm\n", "3.12")
    held = [
        f
        for f in section.get("findings", [])
        if f["code"] == "held-back" and "vllm" in f["message"]
    ]
    if vllm["version"] == bare["vllm"]:
        assert not held
        assert torch["version"].split("+")[0] == bare["torch"]
    else:
        # Only a torch with no fitting build may hold vllm back, and the warning says which pin.
        assert len(held) == 1, section.get("findings")
        message = held[0]["message"]
        assert message.startswith(f"vllm stays at {vllm['version']}: vllm {bare['vllm']} requires ")
        assert f"torch=={bare['torch']}" in message
        assert "has no build that fits this target" in message
        assert held[0]["severity"] == "warning"
    # a release pinner can install on the runtime image: a cp312/abi3 Linux wheel, not an sdist
    assert any(f["name"].endswith("x86_64.whl") for f in vllm["files"]), vllm["files"]
    resolution = [s for s in section["plan"]["steps"] if s["topic"] == "resolution"]
    assert resolution
    assert resolution[0]["choice"] == f"torch {torch['version']}"


@pytest.mark.network
@pytest.mark.slow
def test_requirements_held_back_by_the_targets_torch_range_on_a_cold_uv_cache(
    real_pypi: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """xformers and tensordict on an L4 with torch = "<2.10" (PyPI's torch build), uv's cache
    empty: the probe reads the pages from the cache the resolution has just filled, and each
    requirement bare uv takes newer is held back, by the target's range (not the hardware)."""
    monkeypatch.setenv("UV_CACHE_DIR", str(real_pypi.parent / "uv-cache"))
    (real_pypi / "pinner.toml").write_text(
        '[targets.l4]\ngpu = "L4"\ncuda = "auto"\ntorch = "<2.10"\npython = "3.12"\n'
        'requirements = ["requirements.in"]\n'
    )
    (real_pypi / "requirements.in").write_text("xformers\ntensordict\n")
    result = run_retrying(cli, "lock")
    assert result.code == 0, result.err

    section = lock_of(real_pypi, "l4")
    assert section["plan"]["torch"]["on_pypi"] is True
    packages = {p["name"]: p["version"] for p in section["packages"]}
    bare = bare_uv("xformers\ntensordict\n", "3.12")
    notes = [f["message"] for f in section.get("findings", []) if f["code"] == "held-back"]
    for name in ("xformers", "tensordict"):
        said = [m for m in notes if m.startswith(f"{name} stays at {packages[name]}: ")]
        if packages[name] == bare[name]:
            assert not said, notes
        else:
            assert len(said) == 1, notes
            assert "the target's torch range (<2.10, on pinner.toml: targets.l4)" in said[0]
    torch = [m for m in notes if m.startswith("torch stays at")]
    assert len(torch) == 1, notes
    assert "the target's torch range (<2.10" in torch[0]


@pytest.mark.network
@pytest.mark.slow
def test_mamba_with_its_causal_conv1d_extra_builds_both_in_the_extension_layer(
    real_pypi: Path, cli: Callable[..., Run]
) -> None:
    (real_pypi / "pinner.toml").write_text(
        '[targets.a100]\ngpu = "A100"\ncuda = "auto"\npython = "3.12"\n'
        'requirements = ["requirements.in"]\n'
    )
    (real_pypi / "requirements.in").write_text("mamba-ssm[causal-conv1d]\n")
    result = run_retrying(cli, "lock")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err

    section = lock_of(real_pypi, "a100")
    packages = {p["name"]: p for p in section["packages"]}
    assert packages["mamba-ssm"]["layer"] == "extension"
    assert {e["name"] for e in section["plan"]["extensions"]} >= {"mamba-ssm", "causal-conv1d"}
    assert section["plan"]["base_image"].endswith(("-devel-ubuntu24.04", "-devel-ubuntu22.04"))
    conv = packages["causal-conv1d"]
    assert conv["via"] == ["mamba-ssm"]
    assert conv["layer"] == "extension", conv


@pytest.mark.parametrize("name", NINE)
def test_corpus_folder_names_its_public_source_and_reads(name: str) -> None:
    """Each corpus folder: a SOURCE naming owner/repo@commit:path, a matrix of GPU targets, and
    requirements pinner reads for each target without a usage error."""
    from pinner.pipeline import load, requirements_of

    folder = PROJECTS / name
    assert SOURCE_LINE.search((folder / "SOURCE").read_text()), name
    matrix = load(folder / "pinner.toml")
    assert matrix.targets
    for target in matrix.targets:
        assert target.gpu != "cpu", name
        assert requirements_of(matrix, target).items, (name, target.name)
