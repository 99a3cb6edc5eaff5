"""[indexes] tables: a package bound to another index by an explicit source, end to end through
the CLI against loopback indexes: lock, generate, install of the rendered requirements, verify.

The loopback serves a `fast-kernels 0.3` on "flash/cpu" (the bound index), a decoy of the same
name and version with other bytes on "pypi", and `uses-kernels 1.0` on "pypi", which requires
fast-kernels: the binding reaches a package the requirements pull, not only one they name. The
matrix commits https://flash.example/whl/{variant}; pinner reaches the loopback only through
the mirror setting PINNER_INDEX_FLASH_URL, as a user behind a mirror would.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.index import LocalIndex, Venv
from tests.support.projects import (
    CPU_MATRIX,
    Project,
    Wheelhouse,
    file_hash,
    hashes_of,
    make_project,
    serve,
)
from tests.support.recipes import dockerfile_install_commands, install_sh_commands
from tests.test_dockerfile import hadolint

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

COMMITTED = "https://flash.example/whl"
INDEXES = f"""
[indexes.flash]
url = "{COMMITTED}/{{variant}}"
packages = ["fast-kernels"]
"""


@pytest.fixture(scope="module")
def flash_wheels(lock_wheels: Wheelhouse) -> dict[str, Path]:
    return {
        "real": lock_wheels.build("flash", "fast-kernels", "0.3", requires=["filelock"]),
        "decoy": lock_wheels.build(
            "flash-decoy", "fast-kernels", "0.3", module_source="DECOY = True\n"
        ),
        "user": lock_wheels.build("flash-user", "uses-kernels", "1.0", requires=["fast-kernels"]),
    }


@pytest.fixture
def flash_index(lock_wheels: Wheelhouse, flash_wheels: dict[str, Path]) -> Iterator[LocalIndex]:
    from tests.support.torch_data import REAL_TORCH

    if not REAL_TORCH.is_file():
        pytest.skip(f"{REAL_TORCH} is not on this machine")
    with LocalIndex() as index:
        serve(index, lock_wheels)
        index.add("flash/cpu", flash_wheels["real"])
        index.add("mirror-two/cpu", flash_wheels["real"])
        index.add("pypi", flash_wheels["decoy"])
        index.add("pypi", flash_wheels["user"])
        yield index


@pytest.fixture
def flash_project(
    tmp_path: Path, flash_index: LocalIndex, monkeypatch: pytest.MonkeyPatch
) -> Project:
    project = make_project(
        tmp_path / "proj",
        flash_index,
        monkeypatch,
        matrix=CPU_MATRIX + INDEXES,
        requirements="uses-kernels\n",
    )
    monkeypatch.setenv("PINNER_INDEX_FLASH_URL", flash_index.base_url + "/flash/{variant}/")
    return project


def test_bound_package_is_locked_from_its_index_only(
    flash_project: Project,
    flash_index: LocalIndex,
    flash_wheels: dict[str, Path],
    cli: Callable[..., Run],
) -> None:
    flash_index.reset_counts()

    result = cli("lock")

    assert result.code == 0, result.err
    kernels = flash_project.packages()["fast-kernels"]
    assert (kernels["version"], kernels["source"], kernels["layer"]) == ("0.3", "flash", "main")
    assert hashes_of(kernels) == [file_hash(flash_wheels["real"])]
    assert file_hash(flash_wheels["decoy"]) not in hashes_of(kernels)
    assert kernels["via"] == ["uses-kernels"]
    # the lock keeps the committed index, never the mirror's address
    (file,) = kernels["files"]
    assert file["url"] == f"{COMMITTED}/cpu/fast-kernels/{file['name']}"
    assert flash_project.lock_doc()["targets"]["cpu"]["indexes"]["flash"] == f"{COMMITTED}/cpu"
    assert "127.0.0.1" not in flash_project.lock.read_text()
    # its dependency comes from the default index as usual
    assert flash_project.packages()["filelock"]["source"] == "default"
    # the default index was never asked for it, the bound index for nothing else
    assert flash_index.hits("pypi", "fast-kernels") == 0
    assert {r.project for r in flash_index.log if r.prefix == "flash/cpu"} == {"fast-kernels"}


def test_a_mirror_of_the_bound_index_changes_nothing(
    flash_project: Project,
    flash_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    assert cli("lock").code == 0
    assert cli("generate").code == 0
    first = flash_project.lock.read_text()
    rendered = {p: p.read_bytes() for p in (flash_project.root / "pinned").rglob("*.*")}

    monkeypatch.setenv("PINNER_INDEX_FLASH_URL", flash_index.base_url + "/mirror-two/{variant}")
    flash_index.reset_counts()
    again = cli("lock", "--upgrade")

    assert again.code == 0, again.err
    assert flash_index.hits("mirror-two/cpu", "fast-kernels") >= 1
    assert flash_index.hits("flash/cpu") == 0
    assert flash_project.lock.read_text() == first
    assert cli("generate").code == 0
    assert {p: p.read_bytes() for p in (flash_project.root / "pinned").rglob("*.*")} == rendered
    assert cli("check").code == 0


def test_a_package_from_the_bound_index_that_is_not_bound_is_refused(
    tmp_path: Path,
    flash_index: LocalIndex,
    lock_wheels: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    """The bound index also carries other-app (as flashinfer's index carries its own copies of
    common packages); only the bound name may come from it."""
    flash_index.add("flash/cpu", lock_wheels.path("pypi", "other-app", "1.0"))
    matrix = CPU_MATRIX + INDEXES.replace('["fast-kernels"]', '["fast-kernels", "other-app"]')
    project = make_project(
        tmp_path / "proj", flash_index, monkeypatch, matrix=matrix, requirements="other-app\n"
    )
    monkeypatch.setenv("PINNER_INDEX_FLASH_URL", flash_index.base_url + "/flash/{variant}/")
    assert cli("lock").code == 0
    assert project.packages()["other-app"]["source"] == "flash"
    # fast-kernels is bound but nothing requires it: it is not locked
    assert "fast-kernels" not in project.packages()

    project.write("pinner.toml", CPU_MATRIX + INDEXES)  # other-app no longer bound
    flash_index.reset_counts()
    assert cli("lock").code == 0
    assert project.packages()["other-app"]["source"] == "default"
    assert flash_index.hits("flash/cpu", "other-app") == 0


def test_generated_recipes_install_the_bound_package_from_its_index(
    flash_project: Project,
    flash_index: LocalIndex,
    flash_wheels: dict[str, Path],
    cli: Callable[..., Run],
    tmp_path: Path,
) -> None:
    assert cli("lock").code == 0
    assert cli("generate").code == 0
    folder = flash_project.root / "pinned" / "cpu"
    requirements = (folder / "index-flash.txt").read_text()
    assert f"fast-kernels==0.3 \\\n    --hash={file_hash(flash_wheels['real'])}" in requirements
    assert "fast-kernels==" not in (folder / "requirements.txt").read_text()
    assert "fast-kernels==0.3" in (folder / "constraints.txt").read_text()
    step = 'python -m pip install --no-deps --require-hashes --index-url "$INDEX_FLASH_URL" -r index-flash.txt'
    dockerfile = (folder / "Dockerfile").read_text()
    assert f"ARG INDEX_FLASH_URL={COMMITTED}/cpu\n" in dockerfile
    assert (
        f"COPY index-flash.txt ./\nRUN --mount=type=cache,target=/root/.cache/pip \\\n    {step}\n"
        in dockerfile
    )
    # the index step comes after the torch layer and before the main layer
    assert dockerfile.index("torch-requirements.txt") < dockerfile.index(step)
    assert dockerfile.index(step) < dockerfile.index("-r requirements.txt")
    lint = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", "Dockerfile"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
    install = (folder / "install.sh").read_text()
    assert step in install
    # the Dockerfile runs exactly install.sh's commands, the bound layer's among them
    assert dockerfile_install_commands(dockerfile) == install_sh_commands(install)
    modal = (folder / "modal_image.py").read_text()
    assert "str(HERE / 'index-flash.txt'),\n        index_url=INDEX_FLASH_URL," in modal
    compile(modal, "modal_image.py", "exec")

    # install.sh takes the mirror from the same variable pinner reads when locking
    block = re.search(r"\nINDEX_FLASH_URL=.*?\nfi\n", install, re.DOTALL)
    assert block is not None
    mirror = flash_index.base_url + "/flash/{variant}"
    shown = subprocess.run(
        ["bash", "-c", block.group() + 'echo "$INDEX_FLASH_URL"'],
        env={**os.environ, "PINNER_INDEX_FLASH_URL": mirror},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == flash_index.base_url + "/flash/cpu\n"

    # the rendered step, run as install.sh runs it, installs the locked file from the index
    venv = Venv.create(tmp_path / "venv")
    env = {**os.environ, "PATH": f"{venv.path / 'bin'}:{os.environ['PATH']}"}
    env["INDEX_FLASH_URL"] = flash_index.base_url + "/flash/cpu/"
    subprocess.run(["bash", "-c", step], cwd=folder, env=env, check=True, capture_output=True)
    installed = venv.pip("show", "fast-kernels", check=True).stdout
    assert "Version: 0.3" in installed
    # a file with other bytes (the decoy) fails the hash check
    decoy = LocalIndex()
    with decoy:
        decoy.add("flash/cpu", flash_wheels["decoy"])
        env["INDEX_FLASH_URL"] = decoy.url("flash/cpu")
        other = Venv.create(tmp_path / "venv2")
        env["PATH"] = f"{other.path / 'bin'}:{os.environ['PATH']}"
        refused = subprocess.run(
            ["bash", "-c", step], cwd=folder, env=env, capture_output=True, text=True, check=False
        )
    assert refused.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr

    # verify: the bound package at its locked version, named with its index when it is not
    verify = cli("verify", "--target", "cpu", "--python", str(venv.python))
    assert "fast-kernels is not installed" not in verify.out
    missing = cli("verify", "--target", "cpu", "--python", str(other.python))
    assert missing.code == 1
    assert "fast-kernels is not installed (locked: 0.3 from [indexes.flash])" in missing.out


def test_uv_recipes_install_the_bound_layer_and_read_it_again(
    flash_project: Project, flash_index: LocalIndex, cli: Callable[..., Run], tmp_path: Path
) -> None:
    """uv's hash-checking mode wants a hash for every package of the resolution: the main layer
    reads the bound layer's file again (installed already, so nothing is fetched twice)."""
    from pinner.resolve.uv import uv_binary

    assert cli("lock").code == 0
    assert cli("generate", "--installer", "uv").code == 0
    folder = flash_project.root / "pinned" / "cpu"
    install = (folder / "install.sh").read_text()
    step = (
        'uv pip install --no-deps --require-hashes --default-index "$INDEX_FLASH_URL" '
        "-r index-flash.txt"
    )
    assert step in install
    assert "-r torch-requirements.txt -r index-flash.txt -r requirements.txt" in install

    uv = uv_binary()
    venv = tmp_path / "uv-venv"
    subprocess.run([uv, "venv", "--quiet", str(venv)], check=True, capture_output=True)
    bin_dir = Path(uv).parent
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env["INDEX_FLASH_URL"] = flash_index.base_url + "/flash/cpu/"
    done = subprocess.run(
        ["bash", "-c", step], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [uv, "pip", "list", "--python", str(venv / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert re.search(r"^fast-kernels\s+0\.3$", listed.stdout, re.MULTILINE)


def test_pip_tools_refuses_indexes(flash_project: Project, cli: Callable[..., Run]) -> None:
    result = cli("lock", "--resolver", "pip-tools")
    assert result.code == 1
    assert not flash_project.lock.exists()
    assert "Traceback" not in result.text
    assert "[indexes] binds packages to an index by an explicit source" in result.err
    assert "fix: use --resolver uv" in result.err


def test_check_covers_the_bound_layer_file(flash_project: Project, cli: Callable[..., Run]) -> None:
    assert cli("lock").code == 0
    assert cli("generate").code == 0
    assert cli("check").code == 0
    path = flash_project.root / "pinned" / "cpu" / "index-flash.txt"
    path.write_text(path.read_text().replace("fast-kernels==0.3", "fast-kernels==0.4"))

    edited = cli("check")

    assert edited.code == 1
    assert "index-flash.txt" in edited.text
    assert "edited by hand" in edited.text
    path.unlink()
    missing = cli("check")
    assert missing.code == 1
    assert "index-flash.txt" in missing.text


def test_an_index_file_left_over_is_named_by_check_and_removed_by_generate(
    flash_project: Project, cli: Callable[..., Run]
) -> None:
    """A target that stops using an index leaves its index-<name>.txt behind: `check` names it
    with the command that refreshes it, `generate` removes it; only pinner's own unedited file."""
    import json

    assert cli("generate").code == 0
    folder = flash_project.root / "pinned" / "cpu"
    leftover = folder / "index-flash.txt"
    generated = leftover.read_bytes()
    mine = folder / "index-mine.txt"  # the user's, no seal: never touched nor reported
    mine.write_text("fast-kernels==0.3\n")

    flash_project.write("pinner.toml", CPU_MATRIX)  # the [indexes] table is gone
    regenerated = cli("generate")

    assert regenerated.code == 0, regenerated.err
    assert "removed pinned/cpu/index-flash.txt (an index no longer used)" in regenerated.out
    assert not leftover.exists()
    assert mine.read_text() == "fast-kernels==0.3\n"
    assert cli("check").code == 0

    leftover.write_bytes(generated)  # as a checkout of an older commit would bring it back
    found = cli("check")
    assert found.code == 1
    assert (
        "pinned/cpu/index-flash.txt: left over: target cpu no longer uses [indexes.flash]\n"
        "  refresh: pinner generate --target cpu"
    ) in found.text
    assert "index-mine.txt" not in found.text
    diff = cli("check", "--diff")
    assert diff.code == 1
    assert diff.out.startswith("--- a/pinned/cpu/index-flash.txt\n+++ /dev/null\n@@ -1,")
    assert "\n-fast-kernels==0.3 \\\n" in diff.out
    dry = cli("generate", "--dry-run", "--json")
    assert json.loads(dry.out)["would_remove"] == ["pinned/cpu/index-flash.txt"]
    assert leftover.read_bytes() == generated
    done = cli("generate", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["removed"] == ["pinned/cpu/index-flash.txt"]
    assert not leftover.exists()
    assert cli("check").code == 0

    # edited since it was generated: reported, for the user to remove
    leftover.write_bytes(generated.replace(b"fast-kernels==0.3", b"fast-kernels==0.4"))
    edited = cli("check")
    assert edited.code == 1
    assert "left over: target cpu no longer uses [indexes.flash] (edited by hand since" in (
        edited.text
    )
    assert "refresh: rm -- pinned/cpu/index-flash.txt" in edited.text
    assert cli("generate").code == 0
    assert leftover.exists()
