"""pinner update: re-resolve with upgrade, rewrite the lock and the generated files, describe it.

Offline tests drive `pinner update` through a fake resolver; the network test runs the real uv
against PyPI in a git repository made by the test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from typing import TYPE_CHECKING, ClassVar

import pytest

from pinner.cli import main
from pinner.lock.diff import NO_CHANGES
from pinner.lock.lockfile import read_lock
from pinner.model import File
from pinner.render.output import ARTIFACTS
from pinner.resolve.job import Job, ResolvedPin

if TYPE_CHECKING:
    from pathlib import Path

MATRIX = """\
[defaults]
requirements = ["requirements.in"]

[targets.a100]
gpu = "A100"
cuda = "auto"
"""

# --- offline, through a fake resolver ------------------------------------------------------------


class FakeResolver:
    """Newest versions with upgrade; the old lock's versions (preferences) otherwise."""

    name = "fake"
    index: ClassVar[dict[str, tuple[str, str]]] = {
        "six": ("1.15.0", "1.17.0"),
        "packaging": ("23.0", "26.0"),
    }

    def __init__(self, cache: Path) -> None:
        del cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        prefs = dict(job.preferences)
        pins = [
            ResolvedPin(
                name="torch",
                version="2.15.0",
                files=(File(name="", hashes=(fake_hash("torch"),)),),
                source="default",
                via=("pinner plan",),
            )
        ]
        for name, versions in self.index.items():
            version = versions[-1] if job.upgrade else prefs.get(name, versions[0])
            pins.append(
                ResolvedPin(
                    name=name,
                    version=version,
                    files=(File(name="", hashes=(fake_hash(f"{name}-{version}"),)),),
                    source="default",
                    via=("-r requirements.in",),
                )
            )
        return tuple(pins)


def fake_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        "pinner.resolve.engines.get_resolver", lambda _name, cache: FakeResolver(cache)
    )
    root = tmp_path / "project"
    root.mkdir()
    (root / "pinner.toml").write_text(MATRIX, encoding="utf-8")
    (root / "requirements.in").write_text("six\npackaging\n", encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def versions(root: Path) -> dict[str, str]:
    (tl,) = read_lock(root / "pinner.lock").targets
    return {p.name: p.version for p in tl.pins}


def test_update_moves_versions_keeps_installer_and_writes_body(project, capsys):
    assert main(["generate", "--installer", "uv"]) == 0
    assert versions(project)["six"] == "1.15.0"
    capsys.readouterr()
    body = project.parent / "body.md"
    assert main(["update", "--pr-body", str(body)]) == 0
    out = capsys.readouterr().out
    assert "a100: 2 upgraded" in out
    assert versions(project) == {"torch": "2.15.0", "six": "1.17.0", "packaging": "26.0"}
    text = body.read_text(encoding="utf-8")
    assert "| packaging | 23.0 | 26.0 | major |\n| six | 1.15.0 | 1.17.0 | minor |\n" in text
    header = (project / "pinned/a100/constraints.txt").read_text(encoding="utf-8")
    assert "installer=uv" in header  # re-rendered with the installer it was generated for
    assert "six==1.17.0" in header
    assert main(["check"]) == 0


def test_update_without_changes_says_so_and_writes_a_no_changes_body(project, capsys):
    assert main(["update"]) == 0  # no lock yet: everything is new
    capsys.readouterr()
    lock_before = (project / "pinner.lock").read_text(encoding="utf-8")
    body = project / "body.md"
    assert main(["update", "--pr-body", str(body)]) == 0
    assert "pinner update: no changes (1 target at the newest versions allowed)" in (
        capsys.readouterr().out
    )
    assert body.read_text(encoding="utf-8") == f"## pinner update\n\n{NO_CHANGES}\n"
    assert (project / "pinner.lock").read_text(encoding="utf-8") == lock_before
    assert not (project / "pinned").exists()  # nothing generated before: nothing rendered now


@pytest.mark.usefixtures("project")
def test_update_json(capsys):
    assert main(["lock"]) == 0
    capsys.readouterr()
    assert main(["update", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is True
    (target,) = data["targets"]
    assert [(p["name"], p["old"], p["new"], p["kind"]) for p in target["packages"]] == [
        ("packaging", "23.0", "26.0", "major"),
        ("six", "1.15.0", "1.17.0", "minor"),
    ]
    assert data["written"] == []


@pytest.mark.usefixtures("project")
def test_update_unknown_target_is_a_usage_error(capsys):
    assert main(["update", "--target", "a10"]) == 2
    err = capsys.readouterr().err
    assert "a10" in err
    assert "Traceback" not in err


# --- network: the real uv against PyPI, in a real git repository -------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str], attempts: int = 3) -> str:
    """main(argv), retried on failure (PyPI hiccups); returns stdout; fails with stderr."""
    err = ""
    for attempt in range(attempts):
        code = main(argv)
        captured = capsys.readouterr()
        if code == 0:
            return captured.out
        err = captured.err
        time.sleep(2 * (attempt + 1))
    pytest.fail(f"pinner {' '.join(argv)} failed {attempts} times:\n{err}")


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=pinner-tests", "-c", "user.email=tests@pinner.invalid", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


@pytest.mark.network
def test_update_against_pypi_in_a_git_repository(tmp_path, monkeypatch, capsys):
    root = tmp_path / "service"
    root.mkdir()
    monkeypatch.chdir(root)
    (root / "pinner.toml").write_text(MATRIX, encoding="utf-8")
    reqs = root / "requirements.in"
    # An old lock: resolved with old pins, then the pins relaxed and re-locked, which keeps the
    # lock's versions (pinner lock prefers them) while the inputs are current.
    reqs.write_text("packaging==23.0\nsix==1.15.0\n", encoding="utf-8")
    run(["generate", "--target", "a100"], capsys)
    reqs.write_text("packaging\nsix\n", encoding="utf-8")
    run(["lock"], capsys)
    old = versions(root)
    assert (old["packaging"], old["six"]) == ("23.0", "1.15.0")
    assert run(["check"], capsys).startswith("pinner check: 1 target fresh")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "old lock")

    body = tmp_path / "pinner-update.md"
    out = run(["update", "--pr-body", str(body)], capsys)
    assert "a100: 2 upgraded" in out
    new = versions(root)
    moved = {n for n in old if old[n] != new.get(n)} | (set(new) - set(old))
    assert moved == {"packaging", "six"}  # nothing else: everything else was already newest
    changed = set(git(root, "diff", "--name-only").split())
    assert "pinner.lock" in changed
    assert changed <= {"pinner.lock"} | {f"pinned/a100/{f}" for f in ARTIFACTS}
    assert "pinned/a100/requirements.txt" in changed
    assert "??" not in git(root, "status", "--porcelain", "--untracked-files=all")
    text = body.read_text(encoding="utf-8")
    assert f"| packaging | 23.0 | {new['packaging']} | " in text
    assert f"| six | 1.15.0 | {new['six']} | minor |" in text
    assert text.count("\n| ") == 3  # the header row and the two packages
    assert run(["check"], capsys).startswith("pinner check: 1 target fresh")

    git(root, "commit", "-q", "-am", "pinner update")
    out = run(["update", "--pr-body", str(body)], capsys)
    assert "no changes" in out
    assert git(root, "status", "--porcelain") == ""
    assert body.read_text(encoding="utf-8") == f"## pinner update\n\n{NO_CHANGES}\n"
