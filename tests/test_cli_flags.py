"""Issue 14's flags and output, through the CLI: -P, --dry-run, --locked/--frozen, --json with a
schema, -q/-v/--color, shell completion, the change table, and plan warnings said once.

Most tests drive pinner through a fake resolver (versions from a table; the old lock's versions
kept as preferences, as uv keeps them); one runs the real uv against loopback indexes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

from pinner.cli import main
from pinner.errors import ResolveError
from pinner.lock.lockfile import read_lock
from pinner.model import File
from pinner.resolve.job import Job, ResolvedPin

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

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
    failing: ClassVar[set[str]] = set()

    def __init__(self, cache: Path) -> None:
        del cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        self.runs.append(job)
        if job.target in self.failing:
            msg = f"target {job.target}: no solution (the fake index says so)"
            raise ResolveError(msg)
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
    monkeypatch.setattr(
        "pinner.resolve.engines.get_resolver", lambda _name, cache: FakeResolver(cache)
    )
    monkeypatch.setattr(FakeResolver, "runs", [])
    monkeypatch.setattr(FakeResolver, "failing", set())
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


def test_upgrade_package_moves_only_that_package(project, capsys):
    assert run(capsys, "generate")[0] == 0
    publish(six="1.17.0", packaging="26.0")

    code, out, _ = run(capsys, "lock", "-P", "six")
    assert code == 0
    assert versions(project) == {"torch": "2.15.0", "six": "1.17.0", "packaging": "23.0"}
    assert "  six  1.15.0 → 1.17.0" in out.splitlines()

    code, out, _ = run(capsys, "update", "--upgrade-package", "Packaging")
    assert code == 0
    assert versions(project)["packaging"] == "26.0"
    assert "  packaging  23.0 → 26.0" in out.splitlines()
    assert "wrote pinner.lock and 5 generated files" in out  # only files that render packaging
    assert run(capsys, "check")[0] == 0

    code, _, err = run(capsys, "lock", "-P", "six;rm")  # refused before anything runs
    assert code == 2
    assert "--upgrade-package: 'six;rm' is not a package name" in err


def test_upgrade_package_with_uv_on_loopback_indexes(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    from tests.support.projects import make_project
    from tests.support.wheels import build_wheel

    project = make_project(
        tmp_path / "proj", fresh_index, monkeypatch, requirements="demo-app\nother-app\n"
    )
    assert cli("lock").code == 0
    newer = tmp_path / "newer"
    fresh_index.add("pypi", build_wheel(newer, "demo-app", "1.1", requires=["torch>=2.0"]))
    fresh_index.add("pypi", build_wheel(newer, "other-app", "1.1"))

    moved = cli("lock", "-P", "other_app")

    assert moved.code == 0, moved.err
    assert project.packages()["other-app"]["version"] == "1.1"
    assert project.packages()["demo-app"]["version"] == "1.0"
    assert "  other-app  1.0 → 1.1" in moved.out.splitlines()


# --- --dry-run, --locked, --frozen -------------------------------------------------------------


def test_dry_run_lists_the_changes_and_writes_nothing(project, capsys):
    assert run(capsys, "generate")[0] == 0
    publish(six="1.17.0")
    before = snapshot(project)

    code, out, _ = run(capsys, "update", "--dry-run", "--pr-body", "body.md")
    assert code == 0
    assert out.splitlines() == [
        "a100: 1 upgraded",
        "  six  1.15.0 → 1.17.0",
        "would write pinner.lock and 5 generated files",
    ]
    code, out, _ = run(capsys, "lock", "--upgrade", "--dry-run")
    assert (code, out.splitlines()[-1]) == (0, "would write pinner.lock: 1 target (a100 resolved)")
    (project / "requirements.in").write_text("six\n", encoding="utf-8")
    del FakeResolver.index["packaging"]
    code, out, _ = run(capsys, "generate", "--dry-run", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["dry_run"], doc["lock_changed"], doc["written"]) == (True, True, [])
    assert "pinned/a100/requirements.txt" in doc["would_write"]
    assert snapshot(project) == {**before, "requirements.in": b"six\n"}


def test_locked_checks_without_resolving_and_frozen_renders_as_is(project, capsys):
    assert run(capsys, "generate")[0] == 0
    assert run(capsys, "lock", "--locked") == (
        0,
        "pinner.lock matches its inputs (1 target)\n",
        "",
    )
    code, _, err = run(capsys, "lock", "--locked", "-P", "six")
    assert (code, err) == (
        2,
        "pinner: error: --locked cannot be combined with --upgrade-package; choose one\n",
    )
    assert run(capsys, "generate", "--locked", "--frozen")[0] == 2
    (project / "requirements.in").write_text("six\n", encoding="utf-8")
    FakeResolver.runs.clear()

    code, out, err = run(capsys, "lock", "--locked")
    assert (code, out) == (1, "")
    assert err.startswith("pinner: error: --locked: the lock does not match its inputs:\n")
    assert run(capsys, "generate", "--locked")[0] == 1
    assert FakeResolver.runs == []

    lock = (project / "pinner.lock").read_bytes()
    (project / "pinned/a100/Dockerfile").unlink()
    code, out, err = run(capsys, "generate", "--frozen")
    assert (code, out) == (0, "generated pinned/: 1 files written\n")
    assert err == (  # the deprecation: --frozen changed meaning
        "warning: pinner.lock does not match the inputs of a100; --frozen renders it as it is "
        "(uv's meaning). pinner 0.1's --frozen refused a stale lock: use --locked for that\n"
    )
    assert (project / "pinner.lock").read_bytes() == lock
    assert FakeResolver.runs == []


# --- --json -------------------------------------------------------------------------------------


def test_every_json_output_carries_its_schema(project, capsys):
    documents = {}
    for args in (
        ("lock", "--json"),
        ("generate", "--json"),
        ("check", "--json"),
        ("update", "--json"),
        ("targets", "--json"),
        ("explain", "--target", "a100", "--json"),
        ("gpus", "--json"),
    ):
        code, out, _ = run(capsys, *args)
        assert code == 0, args
        documents[args[0]] = doc = json.loads(out)
        assert next(iter(doc)) == "schema", args
        assert doc["schema"] == 1
    assert documents["lock"]["resolved"] == ["a100"]
    assert documents["lock"]["changes"]["targets"][0]["status"] == "added"
    assert documents["generate"]["written"][0].startswith("pinned/a100/")
    assert documents["check"] == {
        "schema": 1,
        "fresh": True,
        "targets": ["a100"],
        "problems": [],
        "not_generated": [],
    }

    (project / "pinned/a100/Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    code, out, err = run(capsys, "check", "--json")
    assert code == 1
    (problem,) = json.loads(out)["problems"]
    assert problem["path"] == "pinned/a100/Dockerfile"
    assert problem["refresh"] == "pinner generate --target a100"
    assert err == "pinner: error: stale: 1 problem (listed in the JSON on stdout)\n"


def test_json_when_some_targets_failed_and_the_others_were_written(project, capsys):
    (project / "pinner.toml").write_text(MATRIX + '[targets.bad]\ngpu = "A100"\npython = "3.12"\n')
    FakeResolver.failing.add("bad")

    code, out, err = run(capsys, "generate", "--json")

    assert code == 1
    doc = json.loads(out)
    assert doc["resolved"] == ["a100"]
    assert list(doc["failed"]) == ["bad"]
    assert len(doc["written"]) == 10
    assert all(path.startswith("pinned/a100/") for path in doc["written"])
    assert err.endswith("1 of 2 targets failed; written: a100\n")

    code, out, _ = run(capsys, "lock", "--locked", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["fresh"] is False
    assert doc["problems"][0]["refresh"] == "pinner lock --target bad"


# --- -q, -v, --color, completion ----------------------------------------------------------------


def said_matrix(err: str, path: Path) -> bool:
    """-v names the matrix file and why that one."""
    return any(line.startswith(f"pinner: matrix: {path} (") for line in err.splitlines())


def test_quiet_verbose_and_color(project, capsys):
    assert run(capsys, "-q", "lock") == (0, "", "")
    code, _, err = run(capsys, "generate", "-v")
    assert code == 0
    assert said_matrix(err, project / "pinner.toml")
    assert "wrote pinned/a100/Dockerfile" in err.splitlines()
    code, _, err = run(capsys, "check", "--verbose")  # the fast path, without typer
    assert said_matrix(err, project / "pinner.toml")

    (project / "requirements.in").write_text("six\n", encoding="utf-8")
    plain = run(capsys, "check")
    assert plain[0] == 1
    assert plain[2].startswith("pinner: error: stale:")
    assert run(capsys, "check", "--color", "always")[2].startswith("pinner: \x1b[31merror\x1b[0m:")
    os.environ["FORCE_COLOR"] = "1"
    try:
        assert "\x1b[31m" in run(capsys, "check")[2]
        assert run(capsys, "--color=never", "check") == plain
        os.environ["NO_COLOR"] = "1"
        assert run(capsys, "check") == plain
    finally:
        os.environ.pop("FORCE_COLOR")
        os.environ.pop("NO_COLOR", None)
    assert run(capsys, "check", "--color", "sometimes")[0] == 2


def test_every_commands_help_names_the_global_options(capsys):
    """-q, -v and --color are parsed before typer (no command declares them): each command's
    --help names them, `check`'s too (its --help goes through typer; its run does not)."""
    from pinner.commands.app import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert {"check", "lock", "generate", "update", "explain", "verify", "doctor"} <= set(names)
    for name in names:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0, name
        text = " ".join(out.replace("│", " ").split())
        assert (
            "Global options, before or after the command: -q/--quiet (errors and warnings "
            "only), -v/--verbose (also which matrix, lock and output folder were used, and "
            "each file written), --color auto|always|never"
        ) in text, name


def test_quiet_check_prints_nothing_when_fresh(project, capsys):
    """-q is "errors and warnings only": `check` (its fast path, and typer's) still printed
    "pinner check: 1 target fresh" and its notes."""
    assert run(capsys, "generate")[0] == 0
    assert run(capsys, "check")[1] == "pinner check: 1 target fresh\n"
    for args in (("-q", "check"), ("check", "--quiet"), ("check", "-q", "--out", "pinned")):
        assert run(capsys, *args) == (0, "", "")
    shutil.rmtree(project / "pinned")  # a target with no generated files is a note
    (project / "pinner.lock").write_text(
        re.sub(r"\n\[generated\]\n[^\[]*", "\n", (project / "pinner.lock").read_text("utf-8")),
        encoding="utf-8",
    )
    assert "note: target a100 has no generated files" in run(capsys, "check")[1]
    assert run(capsys, "check", "-q") == (0, "", "")
    assert run(capsys, "check", "-q", "--json")[1].startswith('{\n  "schema": 1,')


@pytest.mark.usefixtures("project")
def test_completion_scripts_and_completing(capsys):
    for shell in ("bash", "zsh", "fish"):
        code, out, _ = run(capsys, "completion", shell)
        assert code == 0
        assert "_PINNER_COMPLETE" in out
    assert run(capsys, "completion", "tcsh")[0] == 2

    env = {
        **os.environ,
        "_PINNER_COMPLETE": "complete_bash",
        "COMP_WORDS": "pinner ge",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pinner"], env=env, capture_output=True, text=True, check=False
    )
    assert "generate" in proc.stdout.split()
    env |= {"COMP_WORDS": "pinner check --d", "COMP_CWORD": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "pinner", "check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "--diff" in proc.stdout.split()


@pytest.mark.usefixtures("project")
def test_check_fast_path_never_imports_typer(capsys):
    assert run(capsys, "generate")[0] == 0
    code = (
        "import sys; from pinner.cli import main; "
        "rc = main(['-q', 'check', '--json', '--color', 'always']); "
        "assert rc == 0, rc; assert 'typer' not in sys.modules, 'typer imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fresh"] is True
