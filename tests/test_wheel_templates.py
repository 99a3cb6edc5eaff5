"""The templates ship inside the wheel: build it, install it alone, and render from it.

An editable install reads templates/ of the checkout, so only a built wheel shows whether the
templates (mapped into pinner/templates by hatchling's force-include) and the presets are inside.
The wheel is installed with --no-deps into a fresh venv; pinner's dependencies come from the
development venv through a .pth file (a path added that way is not scanned for .pth files, so
the editable pinner of the development venv stays out).
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pinner.render.output import ARTIFACTS
from tests.support.index import uv_env
from tests.support.recipes import REPO, copy_project, pinner


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (built,) = out.glob("torch_pinner-*-py3-none-any.whl")
    return built


@pytest.fixture(scope="module")
def wheel_python(wheel, tmp_path_factory):
    """The python of a fresh venv holding only the built wheel (and the dev venv's deps)."""
    from uv import find_uv_bin

    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    env = uv_env(cache_dir=tmp_path_factory.mktemp("uv-cache"))
    uv = find_uv_bin()
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)],
        env=env,
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)],
        env=env,
        check=True,
        capture_output=True,
    )
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_wheel_holds_templates_presets_and_knowledge(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    # the SBOM and pylock.toml are written in code
    templated = [a for a in ARTIFACTS if a not in ("sbom.cdx.json", "pylock.toml")]
    for artifact in templated:
        assert f"pinner/templates/{artifact}.j2" in names
    assert {n for n in names if n.startswith("pinner/templates/")} == {
        *(f"pinner/templates/{a}.j2" for a in templated),
        "pinner/templates/init/pinner-update.yml.j2",
        "pinner/templates/index-requirements.txt.j2",  # one file per [indexes] table in use
    }
    assert "pinner/presets/default.toml" in names
    for data in ("gpus", "cuda", "torch", "packages", "extensions"):
        assert f"pinner/knowledge/{data}.toml" in names
    assert "pinner/verify/checks.py" in names
    assert not any(n.startswith(("templates/", "tests/", "matrices/")) for n in names)


def test_the_installed_wheel_renders_what_the_source_tree_renders(wheel_python, tmp_path):
    probe = subprocess.run(
        [
            str(wheel_python),
            "-I",  # isolated: neither the working folder nor PYTHONPATH on sys.path
            "-c",
            (
                "import pinner, pinner.render.output as o, pinner.load.matrix as m; "
                "print(pinner.__file__); print(o.packaged_templates()); print(m.preset_path())"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    module, templates, presets = probe.stdout.split()
    venv = wheel_python.parent.parent
    assert Path(module).is_relative_to(venv)
    assert Path(templates).is_relative_to(venv)
    assert Path(templates).name == "templates"
    assert Path(presets).is_relative_to(venv)
    project = copy_project(str(REPO / "examples" / "llm-service"), tmp_path / "llm-service")

    from_wheel = pinner(
        "generate", "--frozen", "--out", "wheel", cwd=project, python=str(wheel_python)
    )
    from_source = pinner("generate", "--frozen", "--out", "source", cwd=project)

    assert from_wheel.returncode == 0, from_wheel.stderr
    assert from_source.returncode == 0, from_source.stderr
    assert from_wheel.stdout == "generated wheel/: 20 files written\n"
    rendered = {
        p.relative_to(project / "wheel") for p in (project / "wheel").rglob("*") if p.is_file()
    }
    assert rendered == {Path(t) / a for t in ("a100", "rtx5090") for a in ARTIFACTS}
    for rel in rendered:
        wheel_text = (project / "wheel" / rel).read_text()
        source_text = (project / "source" / rel).read_text()
        # only the header's regenerate line names the --out folder (and the seal's digest
        # covers that line); the rest is byte-identical
        assert no_digest(wheel_text.replace("--out wheel", "--out source")) == no_digest(
            source_text
        ), rel
    # the wheel's pinner checks the files it wrote as fresh
    check = pinner("check", "--out", "wheel", cwd=project, python=str(wheel_python))
    assert check.returncode == 0, check.stderr


def no_digest(text: str) -> str:
    return re.sub(r"digest=sha256:[0-9a-f]{64}", "", text, count=1)
