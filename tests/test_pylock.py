"""pinned/<target>/pylock.toml: a PEP 751 lock of the target, valid for packaging.pylock, sealed
like the other files, and installed by `uv pip install -r pylock.toml` (loopback indexes: a fake
torch here, the real CPU wheel in the slow test)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from packaging.pylock import Pylock, PylockValidationError

from pinner.cli import main
from pinner.model import File, Pin
from pinner.render.pylock import document, environment_marker
from pinner.render.render import render_target
from tests.support.index import LocalIndex, Venv, sha256_file, uv_env
from tests.support.recipes import (
    LOCKS,
    build_wheelhouse,
    copy_project,
    cpu_project,
    render_lock,
    target_lock,
)
from tests.support.torch_data import REAL_TORCH, TORCH_CPU

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from pathlib import Path

    from pinner.model import TargetLock


def pylock_text(lock: str, target: str, installer: str = "pip") -> str:
    arts = render_lock(LOCKS / lock / "pinner.lock", installer)[target]
    return next(a.text for a in arts if a.path.name == "pylock.toml")


def parsed(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


# -- the document ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["a100", "rtx5090"])
def test_pylock_is_valid_pep_751_with_every_locked_file(target):
    tl = target_lock(LOCKS / "llm-service" / "pinner.lock", target)
    doc = parsed(pylock_text("llm-service", target))

    pylock = Pylock.from_dict(doc)

    assert str(pylock.lock_version) == "1.0"
    assert pylock.created_by == "pinner"
    assert str(pylock.requires_python) == "==3.11.*"
    assert [str(m) for m in pylock.environments or ()] == [
        'python_version == "3.11" and sys_platform == "linux" and platform_machine == "x86_64"'
    ]
    assert {p.name: str(p.version) for p in pylock.packages} == {p.name: p.version for p in tl.pins}
    for pin, package in zip(sorted(tl.pins, key=lambda p: p.name), doc["packages"], strict=True):
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert sorted((f["name"], f["url"], "sha256:" + f["hashes"]["sha256"]) for f in files) == (
            sorted((f.name, f.url, f.hashes[0]) for f in pin.files)
        ), pin.name


def test_the_same_lock_gives_the_same_bytes_for_both_installers():
    assert pylock_text("llm-service", "a100") == pylock_text("llm-service", "a100")
    pip, uv = pylock_text("llm-service", "a100"), pylock_text("llm-service", "a100", "uv")
    assert pip.split("\n", 3)[3] == uv.split("\n", 3)[3]  # only the header differs


def test_torch_family_names_the_committed_pytorch_index():
    doc = parsed(pylock_text("cu128", "cu128"))
    by_name = {p["name"]: p for p in doc["packages"]}

    assert by_name["torch"]["version"] == "2.11.0+cu128"
    assert by_name["torch"]["index"] == "https://download.pytorch.org/whl/cu128"
    assert by_name["torchvision"]["index"] == "https://download.pytorch.org/whl/cu128"
    assert "index" not in by_name["numpy"]  # the default index is never named by pinner


def test_a_lock_without_urls_says_so_and_installers_refuse_it():
    """The crafted locks record hashes only (as a lock made through PINNER_INDEX_URL does): the
    file names the packages concerned at the top, and packaging refuses it, as uv would."""
    text = pylock_text("cu128", "cu128")
    header = text.split("\nlock-version", 1)[0]

    assert "# Incomplete: 18 package(s) have a file without a URL or a hash" in header
    assert "PINNER_INDEX_URL" in header
    assert "nvidia-cuda-runtime-cu12," in header.replace("\n# ", " ")  # never split at a hyphen
    with pytest.raises(PylockValidationError, match="path or url must be provided"):
        Pylock.from_dict(parsed(text))
    assert "# Incomplete" not in pylock_text("llm-service", "a100")


def test_extension_wheel_is_an_archive_with_its_url_and_sha256():
    tl = target_lock(LOCKS / "extensions" / "pinner.lock", "flash-attn-a100")
    (ext,) = tl.plan.extensions
    doc = parsed(pylock_text("extensions", "flash-attn-a100"))
    (flash,) = [p for p in doc["packages"] if p["name"] == "flash-attn"]

    assert flash == {
        "name": "flash-attn",
        "version": "2.8.3.post1",
        "archive": {"url": ext.url, "hashes": {"sha256": ext.sha256}},
    }


def test_a_source_built_extension_points_to_the_layered_recipe():
    text = pylock_text("extensions", "mamba-a100")

    assert "# Built from source: mamba-ssm. Its sdist is listed" in text
    assert "--no-build-isolation" in text
    assert "Built from source" not in pylock_text("extensions", "flash-attn-a100")


def with_pins(tl: TargetLock, *pins: Pin) -> TargetLock:
    return dataclasses.replace(tl, pins=(*tl.pins, *pins))


def test_local_projects_and_project_files_are_paths_from_the_lock_file():
    tl = target_lock(LOCKS / "llm-service" / "pinner.lock", "a100")
    sha = "ab" * 32
    wheel = "vendored-1.0-py3-none-any.whl"
    tl = with_pins(
        tl,
        Pin(name="my-app", version="0.1", source="local", layer="main", via=(), url="."),
        Pin(
            name="vendored",
            version="1.0",
            source="url",
            layer="main",
            via=(),
            url=f"file:wheels/{wheel}",
            files=(File(name=wheel, hashes=(f"sha256:{sha}",), url=f"file:wheels/{wheel}"),),
        ),
    )

    doc = parsed(document(tl, root="../.."))
    by_name = {p["name"]: p for p in doc["packages"]}

    assert by_name["my-app"] == {
        "name": "my-app",
        "directory": {"path": "../..", "editable": False},
    }
    assert by_name["vendored"]["archive"] == {
        "path": f"../../wheels/{wheel}",
        "hashes": {"sha256": sha},
    }
    Pylock.from_dict(doc)
    nested = {p["name"]: p for p in parsed(document(tl, root="../../.."))["packages"]}
    assert nested["my-app"]["directory"]["path"] == "../../.."


def test_strings_are_quoted_as_toml():
    tl = target_lock(LOCKS / "extensions" / "pinner.lock", "flash-attn-a100")
    odd = 'https://example.test/a"b\\c/flash_attn-1-py3-none-any.whl'
    tl = dataclasses.replace(
        tl,
        pins=tuple(
            dataclasses.replace(p, url=odd) if p.name == "flash-attn" else p for p in tl.pins
        ),
    )

    doc = parsed(document(tl))

    assert next(p for p in doc["packages"] if p["name"] == "flash-attn")["archive"]["url"] == odd


def test_environment_marker():
    assert environment_marker("3.12", "linux-aarch64") == (
        'python_version == "3.12" and sys_platform == "linux" and platform_machine == "aarch64"'
    )


# -- sealed and checked like the other files ------------------------------------------------------


def test_pylock_carries_the_seal_of_the_other_files():
    from pinner.render.output import template_folders
    from pinner.render.render import file_inputs

    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")
    arts = render_target(tl, section="x", installer="uv")
    texts = {a.path.name: a.text for a in arts}

    seal = texts["pylock.toml"].splitlines()[0]
    assert seal.startswith("# pinner: target=cu128 installer=uv inputs=sha256:")
    # its own inputs: what pylock.toml renders from (the plan, the packages, the indexes)
    expected = file_inputs(tl, "x", template_folders(None), "uv")["pylock.toml"]
    assert seal.split()[4] == f"inputs={expected}"


@pytest.fixture
def generated(tmp_path, monkeypatch):
    root = copy_project("cu128", tmp_path / "cu128")
    monkeypatch.chdir(root)
    assert main(["generate", "--frozen"]) == 0
    return root


def test_check_finds_a_hand_edited_or_missing_pylock(generated, capsys):
    path = generated / "pinned" / "cu128" / "pylock.toml"
    assert main(["check"]) == 0
    path.write_text(path.read_text().replace('"2.3.5"', '"2.3.4"', 1))
    capsys.readouterr()

    assert main(["check"]) == 1
    assert "pinned/cu128/pylock.toml: edited by hand" in capsys.readouterr().err
    path.unlink()
    assert main(["check"]) == 1
    assert "pinned/cu128/pylock.toml: missing" in capsys.readouterr().err
    assert main(["generate", "--frozen"]) == 0
    assert main(["check"]) == 0


# -- uv installs it -------------------------------------------------------------------------------


def lock_without_mirror(
    root: Path, index: LocalIndex, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pinner generate` in-process, with the committed `torch-index-url` on loopback and the
    loopback PyPI as uv's own default index (not a PINNER_INDEX_URL mirror), so the lock
    records every file's URL, as a lock made against PyPI does."""
    from pinner.resolve import environment
    from pinner.resolve import uv as uv_resolver

    matrix = root / "pinner.toml"
    matrix.write_text(
        matrix.read_text().replace(
            "[defaults]\n",
            f'[defaults]\ntorch-index-url = "{index.base_url}/whl/{{variant}}"\n',
        )
    )
    own = environment.resolver_environment
    monkeypatch.setattr(
        uv_resolver,
        "resolver_environment",
        lambda: {**own(), "UV_DEFAULT_INDEX": index.url("pypi")},
    )
    for name in ("PINNER_INDEX_URL", "PINNER_TORCH_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PINNER_CACHE_DIR", str(cache / "pinner"))
    monkeypatch.setenv("UV_CACHE_DIR", str(cache / "uv"))
    monkeypatch.chdir(root)
    assert main(["generate"]) == 0


def install_pylock(pylock: Path, venv: Path, index: LocalIndex, cache: Path) -> str:
    from uv import find_uv_bin

    uv = find_uv_bin()
    env = uv_env(index.url("empty"), cache_dir=cache / "uv-install")
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(pylock)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr


def run_e2e(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, real_torch: bool) -> None:
    wheels = build_wheelhouse(tmp_path / "wheels", real_torch=real_torch)
    with LocalIndex() as index:
        project = cpu_project(tmp_path / "project", index, wheels)
        lock_without_mirror(project.root, index, tmp_path / "cache", monkeypatch)
        tl = target_lock(project.root / "pinner.lock", "cpu")
        pylock = project.pinned / "pylock.toml"
        doc = parsed(pylock.read_text())
        Pylock.from_dict(doc)
        assert "# Incomplete" not in pylock.read_text()
        torch = next(p for p in doc["packages"] if p["name"] == "torch")
        assert torch["index"] == index.base_url + "/whl/cpu"
        assert torch["wheels"][0]["hashes"]["sha256"] == sha256_file(project.torch_wheel)
        assert torch["wheels"][0]["url"].startswith(index.base_url + "/whl/cpu/")

        log = install_pylock(pylock, tmp_path / "venv", index, tmp_path / "cache")

        assert f" + torch=={TORCH_CPU}" in log
        assert Venv(tmp_path / "venv").installed() == {p.name: p.version for p in tl.pins}
        assert index.hits("empty") == 0  # every file came from its URL in the lock
        assert index.hits("pypi", "torch") == 0
    if real_torch:
        imported = subprocess.run(
            [
                str(tmp_path / "venv" / "bin" / "python"),
                "-c",
                "import torch; print(torch.__version__)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert imported.stdout.strip() == TORCH_CPU


def test_uv_installs_the_pylock(tmp_path, monkeypatch):
    run_e2e(tmp_path, monkeypatch, real_torch=False)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TORCH.is_file(), reason=f"{REAL_TORCH} is not on this machine")
def test_uv_installs_the_pylock_with_the_real_cpu_torch(tmp_path, monkeypatch):
    run_e2e(tmp_path, monkeypatch, real_torch=True)
