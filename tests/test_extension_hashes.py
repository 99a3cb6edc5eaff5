"""Prebuilt extension wheels are hashed at lock time (issue 15 item 3).

`pinner lock` on the A100 + flash-attn project (tests/data/locks/extensions) with a resolver that
echoes its job, and `PINNER_WHEEL_MIRROR` pointing the GitHub release URL at a stand-in wheel on
127.0.0.1: the lock records the stand-in's sha256, extensions.txt renders `--hash`, the
extension step keeps `--require-hashes`, `--offline` answers from the cache, and pip installs the
wheel only when its bytes are the ones locked.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import urllib.parse
from typing import TYPE_CHECKING

import pytest

from pinner.cli import main
from pinner.download import MIRROR_ENV, transport_url
from tests.support.echo import EchoResolver
from tests.support.index import Venv, pip_env
from tests.support.recipes import copy_project, install_sh_commands, quick_venv, target_lock
from tests.support.stub_server import Reply, StubServer
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TARGET = "flash-attn-a100"
VERSION = "2.8.3.post1"
WHEEL = f"flash_attn-{VERSION}+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl"
URL = f"https://github.com/Dao-AILab/flash-attention/releases/download/v{VERSION}/{WHEEL}"


def stand_in(folder: Path, source: str) -> Path:
    """A stand-in flash-attn wheel under the release asset's exact file name (upper-case local
    tag, as the real one has: the name is not normalized)."""
    built = build_wheel(
        folder,
        "flash-attn",
        f"{VERSION}+cu12torch2.5cxx11abifalse",
        python_tag="cp311",
        abi_tag="cp311",
        platform_tag="linux_x86_64",
        module_source=source,
    )
    return built.rename(folder / WHEEL)


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return stand_in(tmp_path / "wheels", "OK = True\n")


@pytest.fixture
def mirror(wheel: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    """The release asset served on loopback, PINNER_WHEEL_MIRROR pointing there."""
    with StubServer() as stub:
        monkeypatch.setenv(MIRROR_ENV, stub.base_url)
        stub.routes[urllib.parse.urlsplit(transport_url(URL)).path] = lambda _r: Reply(
            body=wheel.read_bytes()
        )
        yield stub


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        "pinner.resolve.engines.get_resolver", lambda _name, cache: EchoResolver(cache)
    )
    root = copy_project("extensions", tmp_path / "project")
    (root / "pinner.lock").unlink()  # lock from scratch
    matrix = (root / "pinner.toml").read_text()
    (root / "pinner.toml").write_text(matrix.split("[targets.mamba-a100]")[0])
    monkeypatch.chdir(root)
    return root


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lock_records_the_downloaded_wheels_sha256_and_generate_renders_it(
    project, mirror, wheel, capsys
):
    assert main(["generate", "--target", TARGET]) == 0, capsys.readouterr().err

    digest = digest_of(wheel)
    tl = target_lock(project / "pinner.lock", TARGET)
    (ext,) = tl.plan.extensions
    assert (ext.url, ext.sha256) == (URL, digest)  # the public URL; the mirror was transport
    (pin,) = [p for p in tl.pins if p.name == "flash-attn"]
    assert (pin.url, pin.hashes) == (URL, (f"sha256:{digest}",))
    pinned = project / "pinned" / TARGET
    assert (
        f"flash-attn @ {URL} \\\n    --hash=sha256:{digest}\n"
        in (pinned / "extensions.txt").read_text()
    )
    step = install_sh_commands((pinned / "install.sh").read_text())[2]
    assert step == (
        "python -m pip install --no-deps --no-build-isolation --require-hashes "
        "-c constraints.txt -r extensions.txt"
    )
    assert "127.0.0.1" not in (project / "pinner.lock").read_text()
    assert mirror.paths() == [urllib.parse.urlsplit(transport_url(URL)).path]
    assert main(["check"]) == 0


def test_offline_lock_uses_the_cache_and_fails_clearly_without_it(project, mirror, capsys):
    assert main(["lock", "--target", TARGET]) == 0, capsys.readouterr().err
    first = (project / "pinner.lock").read_text()
    (project / "pinner.lock").unlink()
    mirror.log.clear()

    assert main(["lock", "--offline", "--target", TARGET]) == 0, capsys.readouterr().err
    assert (project / "pinner.lock").read_text() == first
    assert mirror.log == []  # answered from pinner's cache

    (project / "pinner.lock").unlink()
    shutil.rmtree(project.parent / "cache" / "downloads")
    assert main(["lock", "--offline", "--target", TARGET]) == 1
    err = capsys.readouterr().err
    assert f"target {TARGET}: the prebuilt flash-attn wheel: --offline: the digest of {URL}" in err
    assert "run once without --offline" in err
    assert not (project / "pinner.lock").exists()


def test_a_relock_reuses_the_locked_digest_without_downloading(project, mirror, capsys):
    assert main(["lock", "--target", TARGET]) == 0, capsys.readouterr().err
    shutil.rmtree(project.parent / "cache" / "downloads")
    mirror.log.clear()

    assert main(["lock", "--upgrade", "--target", TARGET]) == 0, capsys.readouterr().err

    assert mirror.log == []
    (ext,) = target_lock(project / "pinner.lock", TARGET).plan.extensions
    assert ext.sha256


@pytest.mark.usefixtures("project")
def test_an_unreachable_release_fails_the_lock_naming_the_url(capsys, monkeypatch):
    with StubServer() as empty:
        monkeypatch.setenv(MIRROR_ENV, empty.base_url)
        monkeypatch.setattr("pinner.download.BACKOFF", 0.0)
        assert main(["lock", "--target", TARGET]) == 1

    err = capsys.readouterr().err
    assert f"cannot download {URL} (via {empty.base_url}/Dao-AILab/" in err
    assert "HTTP 404" in err


# -- the rendered extension step, installed for real -------------------------------------------


def install_extension_step(
    pinned: Path, served_at: str, tmp_path: Path
) -> tuple[Venv, subprocess.CompletedProcess[str]]:
    """Run the rendered extension step in a fresh venv, with extensions.txt fetched from
    `served_at` (what an install-time mirror does; the recipe itself names the public URL)."""
    work = tmp_path / "recipe"
    shutil.copytree(pinned, work)
    text = (work / "extensions.txt").read_text()
    (work / "extensions.txt").write_text(text.replace("https://github.com", served_at))
    venv = quick_venv(tmp_path / "venv")
    step = install_sh_commands((work / "install.sh").read_text())[2]
    env = dict(pip_env(), VIRTUAL_ENV=str(venv.path))
    env["PATH"] = f"{venv.path}/bin:{env['PATH']}"
    return venv, subprocess.run(
        ["bash", "-c", step], cwd=work, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_pip_installs_the_locked_wheel_and_refuses_a_tampered_one(
    project, mirror, wheel, tmp_path, capsys
):
    assert main(["generate", "--target", TARGET]) == 0, capsys.readouterr().err
    pinned = project / "pinned" / TARGET

    venv, good = install_extension_step(pinned, mirror.base_url, tmp_path / "good")

    assert good.returncode == 0, good.stdout + good.stderr
    assert venv.installed()["flash-attn"] == f"{VERSION}+cu12torch2.5cxx11abifalse"

    tampered = stand_in(tmp_path / "evil", "OK = False  # not the locked bytes\n")
    path = urllib.parse.urlsplit(transport_url(URL)).path
    mirror.routes[path] = lambda _r: Reply(body=tampered.read_bytes())

    venv, bad = install_extension_step(pinned, mirror.base_url, tmp_path / "bad")

    assert bad.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in bad.stderr
    assert f"Expected sha256 {digest_of(wheel)}" in bad.stderr
    assert f"Got        {digest_of(tampered)}" in bad.stderr
    assert "flash-attn" not in venv.installed()
