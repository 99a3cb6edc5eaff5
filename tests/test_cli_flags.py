"""Issue 14's flags and output, through the CLI: -P, --dry-run, --locked/--frozen, --json with a
schema, -q/-v/--color, shell completion, the change table, and plan warnings said once.

Most tests drive pinner through a fake resolver (versions from a table; the old lock's versions
kept as preferences, as uv keeps them); one runs the real uv against loopback indexes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, ClassVar

import pytest

from pinner.cli import main
from pinner.lock import read_lock
from pinner.model import File
from pinner.resolve import Job, ResolvedPin

if TYPE_CHECKING:
    from pathlib import Path

MATRIX = """\
[defaults]
requirements = ["requirements.in"]

[targets.a100]
gpu = "A100"
cuda = "auto"
"""


class FakeResolver:
    """The newest versions with upgrade, or for a package the old lock does not prefer; the
    preferred (old lock's) version otherwise. Counts its runs."""

    name = "fake"
    runs: ClassVar[list[Job]] = []
    index: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, cache: Path) -> None:
        del cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        self.runs.append(job)
        prefs = dict(job.preferences)
        exact = [d[7:] for d in (*job.direct, *job.constraints) if d.startswith("torch==")]
        torch = exact[0] if exact else "2.15.0"
        pins = [pin("torch", torch, via="pinner plan", source="pytorch" if "+" in torch else "")]
        for name, versions in self.index.items():
            version = versions[-1] if job.upgrade or name not in prefs else prefs[name]
            pins.append(pin(name, version))
        return tuple(pins)


def pin(name: str, version: str, via: str = "-r requirements.in", source: str = "") -> ResolvedPin:
    digest = "sha256:" + hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
    return ResolvedPin(
        name=name,
        version=version,
        files=(File(name="", hashes=(digest,)),),
        source=source or "default",
        via=(via,),
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-target project whose index has six 1.15.0 and packaging 23.0; `publish` adds more."""
    monkeypatch.setattr("pinner.resolve.get_resolver", lambda _name, cache: FakeResolver(cache))
    monkeypatch.setattr(FakeResolver, "runs", [])
    monkeypatch.setattr(FakeResolver, "index", {"six": ("1.15.0",), "packaging": ("23.0",)})
    for name in list(os.environ):
        if name in ("NO_COLOR", "FORCE_COLOR") or name.startswith(("UV_", "PIP_")):
            monkeypatch.delenv(name)
    root = tmp_path / "project"
    root.mkdir()
    (root / "pinner.toml").write_text(MATRIX, encoding="utf-8")
    (root / "requirements.in").write_text("six\npackaging\n", encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def publish(**versions: str) -> None:
    for name, version in versions.items():
        FakeResolver.index[name] = (*FakeResolver.index.get(name, ()), version)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def versions(root: Path) -> dict[str, str]:
    (tl,) = read_lock(root / "pinner.lock").targets
    return {p.name: p.version for p in tl.pins}


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }



# --- 5: plan warnings once per message, naming the targets ---------------------------------------

BNB_MATRIX = """\
[defaults]
requirements = ["requirements.in"]
gpu = "RTX 5090"
cuda = "cu128"
torch = "==2.11.0"

[targets.one]
python = "3.11"

[targets.two]
python = "3.12"
"""
PTX = "the CUDA 12.6 library of bitsandbytes is built for sm_50 to sm_90 (+PTX)"


def test_generate_says_each_plan_warning_once_naming_its_targets(project, capsys):
    (project / "pinner.toml").write_text(BNB_MATRIX, encoding="utf-8")
    (project / "requirements.in").write_text("bitsandbytes==0.45.0\nsix\n", encoding="utf-8")
    publish(bitsandbytes="0.45.0")

    for args in (("generate",), ("generate", "--frozen"), ("generate", "--locked")):
        code, _, err = run(capsys, *args)
        assert code == 0, err
        (line,) = [line for line in err.splitlines() if PTX in line]
        assert line.startswith("warning: one, two: " + PTX), args

    code, out, _ = run(capsys, "generate", "--locked", "--json")
    assert code == 0
    (finding,) = [f for f in json.loads(out)["findings"] if PTX in f["message"]]
    assert (finding["severity"], finding["targets"]) == ("warning", ["one", "two"])


# --- 6: the change table, "no changes", -P ------------------------------------------------------


def test_lock_prints_a_change_table_and_says_when_nothing_changed(project, capsys):
    code, out, _ = run(capsys, "lock")
    assert code == 0
    assert out == "a100: target added (3 packages)\nwrote pinner.lock: 1 target (a100 resolved)\n"

    publish(six="1.17.0", idna="3.10")
    del FakeResolver.index["packaging"]
    (project / "requirements.in").write_text("six\nidna\n", encoding="utf-8")
    code, out, _ = run(capsys, "lock", "--upgrade")
    assert code == 0
    assert out.splitlines() == [
        "a100: 1 upgraded, 1 added, 1 removed",
        "  idna       3.10 (added)",
        "  packaging  23.0 (removed)",
        "  six        1.15.0 → 1.17.0",
        "wrote pinner.lock: 1 target (a100 resolved)",
    ]

    before = (project / "pinner.lock").read_bytes()
    code, out, _ = run(capsys, "lock")
    assert (code, out) == (0, "pinner.lock: no changes (1 target; a100 resolved)\n")
    assert (project / "pinner.lock").read_bytes() == before
