"""`pinner generate`: lock when needed, render into pinned/<target>/, options, template override.

The cpu project is locked once by a real `pinner generate` against loopback indexes; then the
indexes are shut down, so every later command here proves it needs no resolution (a command
that did resolve would fail: its indexes refuse connections).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING

import pytest

from pinner.cli import main
from pinner.lock.fingerprint import unseal
from pinner.render.output import ARTIFACTS, packaged_templates
from tests.support.index import LocalIndex
from tests.support.recipes import (
    build_wheelhouse,
    copy_project,
    cpu_project,
    dockerfile_install_commands,
    install_sh_commands,
    pinner,
    render_lock,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """(project with pinner.lock and pinned/cpu/, environment that locked it); indexes closed."""
    root = tmp_path_factory.mktemp("generate")
    wheels = build_wheelhouse(root / "wheels")
    with LocalIndex() as index:
        project = cpu_project(root / "project", index, wheels)
        env = project.pinner_env(root / "cache")
        proc = pinner("generate", cwd=project.root, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "generated pinned/: 10 files written\n"
        assert "locked cpu: 11 packages" in proc.stderr
        assert index.hits("whl/cpu", "torch") > 0
        assert index.hits("pypi", "demo-app") > 0
    return project.root, env


@pytest.fixture
def project(locked, tmp_path, monkeypatch):
    """A copy of the locked project, as the working folder, in the environment that locked it
    (UV_OFFLINE too: nothing may resolve)."""
    source, env = locked
    root = tmp_path / "project"
    shutil.copytree(source, root)
    for key in list(os.environ):
        if key.startswith(("UV_", "PIP_")):
            monkeypatch.delenv(key)
    for key in ("PINNER_TORCH_INDEX_URL", "UV_DEFAULT_INDEX", "UV_NO_CONFIG", "UV_CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_generate_writes_every_file_and_check_passes(project, capsys):
    files = tree(project / "pinned")

    assert sorted(files) == sorted(f"cpu/{f}" for f in ARTIFACTS)
    assert run(capsys, "check") == (0, "pinner check: 1 target fresh\n", "")
    assert os.access(project / "pinned" / "cpu" / "install.sh", os.X_OK)

    # fresh lock, fresh files: nothing to resolve (the indexes are gone), nothing to write
    assert run(capsys, "generate") == (
        0,
        "generated pinned/: 0 files written (all up to date)\n",
        "",
    )
    assert tree(project / "pinned") == files


def no_digest(text: str) -> str:
    """A rendered file without its seal's digest (which covers the Regenerate line too)."""
    return re.sub(r"digest=sha256:[0-9a-f]{64}", "", text, count=1)


def test_out_writes_elsewhere_and_only_there(project, capsys):
    before = tree(project / "pinned")

    code, out, err = run(capsys, "generate", "--out", "elsewhere")

    assert (code, out, err) == (0, "generated elsewhere/: 10 files written\n", "")
    elsewhere = tree(project / "elsewhere")
    assert elsewhere.keys() == before.keys()
    for name, text in elsewhere.items():
        # the header says how to regenerate these files: with --out elsewhere
        assert "Regenerate: pinner generate --target cpu --out elsewhere" in text, name
        # the same files otherwise (the seal's digest covers the header line too)
        assert no_digest(text.replace(" --out elsewhere", "")) == no_digest(before[name]), name
    assert tree(project / "pinned") == before
    assert run(capsys, "check", "--out", "elsewhere")[0] == 0


def test_installer_uv_renders_uv_commands_everywhere(project, capsys):
    assert run(capsys, "generate", "--installer", "uv", "--out", "uv")[0] == 0
    files = tree(project / "uv" / "cpu")

    for name, text in files.items():
        fields, _ = unseal(text) or ({}, "")
        assert fields["installer"] == "uv", name
    commands = dockerfile_install_commands(files["Dockerfile"])
    assert commands == install_sh_commands(files["install.sh"])
    assert [c.split(" ", 3)[:3] for c in commands[:-1]] == [["uv", "pip", "install"]] * 2
    assert "pip install" not in files["Dockerfile"].replace("uv pip install", "")
    assert files["Dockerfile"].count("RUN --mount=type=cache,target=/root/.cache/uv \\\n") == 2
    assert '--default-index "$TORCH_INDEX_URL"' in commands[0]
    assert "command -v uv >/dev/null" in files["install.sh"]
    # check reads the installer from the headers: the uv files are fresh too
    assert run(capsys, "check", "--out", "uv")[0] == 0
    # and pip again
    assert (
        "# Regenerate: pinner generate --target cpu --installer uv --out uv\n"
        in files["Dockerfile"]
    )
    assert run(capsys, "generate", "--installer", "pip", "--out", "uv")[1] == (
        "generated uv/: 10 files written\n"
    )
    pip_files = tree(project / "uv")
    pinned = tree(project / "pinned")
    assert {n: no_digest(t.replace(" --out uv", "")) for n, t in pip_files.items()} == {
        n: no_digest(t) for n, t in pinned.items()
    }


def test_frozen_renders_from_the_lock_without_resolving(project, capsys):
    shutil.rmtree(project / "pinned")
    lock = (project / "pinner.lock").read_text()

    code, out, err = run(capsys, "generate", "--frozen")

    assert (code, err) == (0, "")
    assert out == "generated pinned/: 10 files written\n"
    assert (project / "pinner.lock").read_text() == lock
    assert run(capsys, "check")[0] == 0


@pytest.mark.parametrize(
    ("file", "old", "new", "why"),
    [
        (
            "pinner.toml",
            'torch = "==2.13.0"',
            'torch = ">=2.13"',
            "its matrix table in pinner.toml",
        ),
        ("requirements.in", "demo-app\n", "demo-app\nnumpy\n", "requirements.in"),
    ],
    ids=["matrix", "requirements"],
)
def test_locked_fails_naming_the_stale_target(project, capsys, file, old, new, why):
    before = tree(project / "pinned")
    path = project / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))

    code, out, err = run(capsys, "generate", "--locked")

    assert code == 1
    assert out == ""
    assert err == (
        "pinner: error: --locked: the lock does not match its inputs:\n"
        f"pinner.lock: target cpu is stale: {why} changed\n"
        "  refresh: pinner lock --target cpu\n"
    )
    assert tree(project / "pinned") == before
    # without --frozen, generate would resolve, and the (closed) indexes make that fail
    code, out, err = run(capsys, "generate")
    assert code == 1
    assert "pinner: error: target cpu: cannot reach the PyTorch index http://127.0.0.1:" in err
    assert tree(project / "pinned") == before


@pytest.mark.usefixtures("project")
def test_unknown_installer_is_a_usage_error(capsys):
    code, _, err = run(capsys, "generate", "--installer", "conda")

    assert code == 2
    assert err == "pinner: error: --installer: 'conda' is not one of pip, uv\n"


@pytest.mark.usefixtures("project")
def test_unknown_target_is_refused(capsys):
    code, _, err = run(capsys, "generate", "--target", "cpux", "--frozen")

    assert code == 2
    assert "cpux" in err
    assert "cpu" in err


# -- template override ---------------------------------------------------------------------------


LABEL = 'LABEL org.opencontainers.image.vendor="ml-platform"\n'


def test_a_project_template_overrides_one_file(tmp_path, monkeypatch, capsys):
    root = copy_project("cu128", tmp_path / "project")
    matrix = root / "pinner.toml"
    matrix.write_text('templates = "my-templates"\n' + matrix.read_text())
    own = root / "my-templates" / "Dockerfile.j2"
    own.parent.mkdir()
    own.write_text((packaged_templates() / "Dockerfile.j2").read_text() + LABEL)
    monkeypatch.chdir(root)

    assert run(capsys, "generate", "--frozen")[0] == 0

    files = tree(root / "pinned" / "cu128")
    default = {a.path.name: a.text for a in render_lock(root / "pinner.lock")["cu128"]}
    assert files["Dockerfile"].endswith(LABEL)
    assert unseal(files["Dockerfile"])[1] == unseal(default["Dockerfile"])[1] + LABEL  # type: ignore[index]
    for name in ARTIFACTS:
        if name != "Dockerfile":  # the rest come from the packaged templates
            assert unseal(files[name])[1] == unseal(default[name])[1], name  # type: ignore[index]
    assert run(capsys, "check") == (0, "pinner check: 1 target fresh\n", "")

    own.write_text(own.read_text().replace("ml-platform", "ml-infra"))
    code, _, err = run(capsys, "check")

    assert code == 1
    # a project's templates may include one another: a change to one dates every file
    assert f"pinned/cu128/: out of date with pinner.lock: {', '.join(ARTIFACTS)}\n" in err
    assert "  refresh: pinner generate --target cu128" in err
    assert run(capsys, "generate", "--frozen")[1] == "generated pinned/: 10 files written\n"
    assert 'vendor="ml-infra"' in (root / "pinned" / "cu128" / "Dockerfile").read_text()
    assert run(capsys, "check")[0] == 0
