"""Files of the project in the recipes (issue 10, 3.): a wheel by path and a local project
(`-e ./pkg`). Their dependencies are locked and installed hashed; the project itself is installed
last, in its own `--no-deps` step; the Dockerfile then builds from the project root and COPYs
each file to the same path under /opt/project, so the paths the requirements name resolve.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from pinner.errors import ConfigError
from pinner.model import File, Pin, TargetLock
from tests.support.projects import CPU_MATRIX, make_project
from tests.support.recipes import LOCKS, target_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

PKG = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "mypkg"
version = "0.3"
dependencies = ["six"]
"""


def with_project_files(
    tl: TargetLock, wheel: str = "wheels/bare_wheel-1.5-py3-none-any.whl", pkg: str = "pkg"
) -> TargetLock:
    local = Pin(name="mypkg", version="", source="local", layer="main", via=("-r r.in",), url=pkg)
    bare = Pin(
        name="bare-wheel",
        version="1.5",
        source="url",
        layer="main",
        via=("-r r.in",),
        url=f"file:{wheel}",
        files=(File(name="bare_wheel-1.5-py3-none-any.whl", hashes=("sha256:" + "a" * 64,)),),
    )
    return dataclasses.replace(tl, pins=(*tl.pins, local, bare))


def rendered(tl: TargetLock, installer: str = "pip", folder: str | None = None) -> dict[str, str]:
    from pinner.render.render import render_target

    arts = render_target(tl, section="", installer=installer, folder=folder)
    return {a.path.name: a.text for a in arts}


@pytest.fixture
def cu128() -> TargetLock:
    return target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")


def docker_steps(text: str) -> list[tuple[str, str]]:
    return [(i["instruction"], i["value"]) for i in DockerfileParser(fileobj=_io(text)).structure]


def _io(text: str) -> io.BytesIO:  # dockerfile-parse wants a binary file object
    return io.BytesIO(text.encode())


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_recipes_install_the_project_last_without_dependencies(cu128, installer):
    files = rendered(with_project_files(cu128), installer)
    pip = "python -m pip install" if installer == "pip" else "uv pip install"

    steps = docker_steps(files["Dockerfile"])
    runs = [v for i, v in steps if i == "RUN"]
    assert runs[-1] == "python verify_env.py"
    assert runs[-2].split(maxsplit=1)[1] == f"{pip} --no-deps ../../pkg"  # last, no deps
    install = [x for x in files["install.sh"].splitlines() if x.startswith(("python", "uv "))]
    assert install[-2:] == [f"{pip} --no-deps ../../pkg", "python verify_env.py"]
    # its dependencies stay in the hashed main layer; the project is in no requirements file
    assert "mypkg" not in files["requirements.txt"]
    assert "../../wheels/bare_wheel-1.5-py3-none-any.whl \\" in files["requirements.txt"]


def test_dockerfile_builds_from_the_project_root_and_copies_what_the_steps_read(cu128, tmp_path):
    files = rendered(with_project_files(cu128))
    dockerfile = files["Dockerfile"]
    assert "docker build -f pinned/cu128/Dockerfile -t cu128 ." in dockerfile
    steps = docker_steps(dockerfile)
    (workdir,) = [v for i, v in steps if i == "WORKDIR"]
    assert workdir == "/opt/project/pinned/cu128"

    # Play the build: each COPY puts files of the project root (as generate lays them out) into
    # an image root; each RUN is checked for the paths it reads, from WORKDIR.
    project, image = tmp_path / "project", tmp_path / "image"
    for rel in ("wheels/bare_wheel-1.5-py3-none-any.whl", "pkg/pyproject.toml"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("x")
    for name, text in files.items():
        (project / "pinned" / "cu128").mkdir(parents=True, exist_ok=True)
        (project / "pinned" / "cu128" / name).write_text(text)
    for instruction, value in steps:
        if instruction == "COPY" and not value.startswith("--from"):
            *sources, dest = value.split()
            for source in sources:
                assert (project / source).exists(), source  # inside the build context
                into = image / posixpath.join(workdir, dest).lstrip("/")
                target = into / Path(source).name if dest.endswith("/") else into
                if (project / source).is_dir():
                    shutil.copytree(project / source, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(project / source, target)
        if instruction == "RUN":
            for word in re.findall(r"(?:-[rc] )?(\S+\.txt|\.\./\S+|verify_env\.py)", value):
                path = image / posixpath.normpath(posixpath.join(workdir, word)).lstrip("/")
                assert path.exists(), (value, word)
            if "-r requirements.txt" in value:
                requirements = (image / workdir.lstrip("/") / "requirements.txt").read_text()
                for line in requirements.splitlines():
                    if line.startswith("../"):
                        wheel = line.split()[0]
                        here = posixpath.normpath(posixpath.join(workdir, wheel))
                        assert (image / here.lstrip("/")).is_file(), line


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_dockerfile_with_project_files_passes_hadolint(cu128, tmp_path, installer):
    from tests.test_dockerfile import hadolint

    path = tmp_path / "Dockerfile"
    path.write_text(rendered(with_project_files(cu128), installer)["Dockerfile"])
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_without_project_files_builds_from_its_folder(cu128):
    dockerfile = rendered(cu128)["Dockerfile"]
    assert "docker build -t cu128 ." in dockerfile
    assert "WORKDIR /opt/pinner" in dockerfile
    assert "/opt/project" not in dockerfile


def test_modal_image_copies_the_project_and_installs_it_last(cu128):
    text = rendered(with_project_files(cu128))["modal_image.py"]
    ast.parse(text)  # valid Python
    assert "ROOT = (HERE / '../..').resolve()" in text
    assert ".add_local_dir(ROOT / 'pkg', '/opt/project/pkg', copy=True)" in text
    assert ".run_commands('python -m pip install --no-deps /opt/project/pkg')" in text
    wheel = "wheels/bare_wheel-1.5-py3-none-any.whl"
    assert f".add_local_file(ROOT / '{wheel}', '/opt/project/{wheel}', copy=True)" in text
    assert "'cd /opt/project/pinned/cu128 && python -m pip install --require-hashes" in text
    assert text.index("/opt/project/pkg") > text.index("requirements.txt")


@pytest.mark.parametrize(
    "path",
    ["a b.whl", "w/$(id).whl", "../outside.whl", "-e.whl", "w/*.whl", "w/../x.whl", "/abs.whl"],
)
def test_a_path_that_is_not_plain_is_refused_naming_the_package(cu128, path):
    for tl, name in (
        (with_project_files(cu128, wheel=path), "bare-wheel"),
        (with_project_files(cu128, pkg=path.removesuffix(".whl")), "mypkg"),
    ):
        with pytest.raises(ConfigError) as e:
            rendered(tl)
        assert f"({name})" in str(e.value)
        assert "plain path inside the project" in str(e.value)


def test_a_generated_folder_outside_the_project_is_refused(cu128):
    with pytest.raises(ConfigError) as e:
        rendered(with_project_files(cu128), folder="")
    assert "build from the project root" in str(e.value)
    assert "--out inside it" in str(e.value)


# --- end to end: `-e ./pkg` locked with the real uv and generated -------------------------------


def test_editable_local_project_is_locked_and_installed_by_its_own_step(
    tmp_path: Path, loopback: LocalIndex, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    project = make_project(
        tmp_path / "proj", loopback, monkeypatch, matrix=CPU_MATRIX, requirements="-e ./pkg\n"
    )
    project.write("pkg/pyproject.toml", PKG.replace('["six"]', '["demo-app"]'))
    project.write("pkg/mypkg/__init__.py", "")

    assert cli("lock").code == 0
    result = cli("generate")

    assert result.code == 0, result.err
    packages = {p["name"]: p for p in project.lock_doc()["targets"]["cpu"]["packages"]}
    assert packages["mypkg"]["source"] == "local"
    assert "demo-app" in packages  # its dependency, locked and hashed
    install = project.read("pinned/cpu/install.sh")
    assert "python -m pip install --no-deps ../../pkg\n" in install
    dockerfile = project.read("pinned/cpu/Dockerfile")
    assert "COPY pkg /opt/project/pkg\n" in dockerfile
    assert "COPY pinned/cpu/verify_env.py ./\n" in dockerfile
    assert cli("check").code == 0
    # generated outside the project, the Dockerfile could not copy it: refused, nothing written
    outside = tmp_path / "elsewhere"
    refused = cli("generate", "--out", str(outside))
    assert refused.code == 2, refused.text
    assert "--out inside it" in refused.err
    assert "Traceback" not in refused.text
    assert not outside.exists()


@pytest.mark.slow
def test_the_project_step_installs_the_project_from_the_generated_folder(tmp_path: Path) -> None:
    """The step's own command, run where install.sh runs it, in a fresh venv (pip's build
    isolation fetches setuptools from the configured index)."""
    root = tmp_path / "proj"
    (root / "pkg" / "mypkg").mkdir(parents=True)
    (root / "pkg" / "pyproject.toml").write_text(PKG)
    (root / "pkg" / "mypkg" / "__init__.py").write_text("")
    folder = root / "pinned" / "cpu"
    folder.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    from pinner.render.render import from_target

    command = [str(python), "-m", "pip", "install", "-q", "--no-deps", from_target("pkg", "../..")]
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "setuptools" in proc.stderr and "find" in proc.stderr:
        pytest.skip("no index with setuptools reachable")
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "mypkg==0.3" in listed.stdout
    assert "six" not in listed.stdout  # --no-deps: the lock installs the dependencies
