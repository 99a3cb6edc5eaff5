"""`pinner check` through `main(["check"])`: 0 when the lock and the generated files are fresh, 1
listing each stale thing with the command that refreshes it; offline, no resolver, and none of
typer, jinja2, packaging or tomlkit imported (it is a pre-commit hook)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.projects import CPU_MATRIX, Project, make_project, point_at
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated_template(tmp_path_factory: pytest.TempPathFactory, loopback: LocalIndex) -> Path:
    """One project locked and generated once per module (copied for each test)."""
    from pinner.cli import main

    root = tmp_path_factory.mktemp("check-template") / "proj"
    root.mkdir()
    (root / "pinner.toml").write_text(CPU_MATRIX)
    (root / "requirements.in").write_text("-r base.in\ndemo-app\n")
    (root / "base.in").write_text("other-app\n")
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, loopback, root.parent / "caches")
        mp.setenv("PINNER_CACHE_DIR", str(root.parent / "cache"))
        mp.chdir(root)
        assert main(["generate"]) == 0
    return root


@pytest.fixture
def generated(
    generated_template: Path, tmp_path: Path, loopback: LocalIndex, monkeypatch: pytest.MonkeyPatch
) -> Project:
    root = tmp_path / "proj"
    shutil.copytree(generated_template, root)
    point_at(monkeypatch, loopback, tmp_path / "caches")
    monkeypatch.chdir(root)
    return Project(root=root, index=loopback)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket connection fails (and is recorded)."""
    attempts: list[object] = []

    def refuse(_self: socket.socket, address: object) -> None:
        attempts.append(address)
        msg = f"test: pinner check must not connect ({address})"
        raise OSError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def problems(run: Run) -> list[tuple[str, str]]:
    """(stale path and what is wrong, refresh command) pairs of a failed check."""
    found = re.findall(r"^(.+)\n  refresh: (.+)$", run.err, re.MULTILINE)
    return [(a.removeprefix("pinner: error: stale:").strip(), b) for a, b in found]


@pytest.mark.usefixtures("generated")
def test_check_fresh_right_after_generate(
    cli: Callable[..., Run], no_network: list[object]
) -> None:
    result = cli("check")

    assert (result.code, result.out, result.err) == (0, "pinner check: 1 target fresh\n", "")
    assert no_network == []


def test_check_fresh_with_the_indexes_shut_down(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    make_project(tmp_path / "proj", fresh_index, monkeypatch)
    assert cli("generate").code == 0
    fresh_index.close()
    attempts: list[object] = []

    def refuse(_self: socket.socket, address: object) -> None:
        attempts.append(address)
        msg = f"test: pinner check must not connect ({address})"
        raise OSError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)

    result = cli("check")

    assert (result.code, result.err) == (0, "")
    assert attempts == []


def test_check_after_a_matrix_edit(generated: Project, cli: Callable[..., Run]) -> None:
    generated.write("pinner.toml", CPU_MATRIX + 'python = "3.12"\n')

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        (
            "pinner.lock: target cpu is stale: its matrix table in pinner.toml changed",
            "pinner generate --target cpu",
        )
    ]  # one line for the target: its files follow the lock, with the same command


@pytest.mark.parametrize("edited", ["requirements.in", "base.in"])
def test_check_after_a_requirements_edit(
    generated: Project, cli: Callable[..., Run], edited: str
) -> None:
    path = generated.root / edited
    path.write_text(path.read_text() + "needs-vision\n")

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        (f"pinner.lock: target cpu is stale: {edited} changed", "pinner generate --target cpu")
    ]
    assert cli("generate", "--target", "cpu").code == 0
    assert cli("check").code == 0


def test_check_after_a_matrix_comment_is_fresh(generated: Project, cli: Callable[..., Run]) -> None:
    generated.write("pinner.toml", "# our only box\n" + CPU_MATRIX.replace(" = ", "="))

    assert cli("check").code == 0


def test_check_finds_a_hand_edited_file(generated: Project, cli: Callable[..., Run]) -> None:
    path = generated.root / "pinned" / "cpu" / "constraints.txt"
    path.write_text(path.read_text().replace("demo-app==1.0", "demo-app==1.1"))

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        ("pinned/cpu/constraints.txt: edited by hand", "pinner generate --target cpu")
    ]


def test_check_finds_a_hand_edited_lock_package(
    generated: Project, cli: Callable[..., Run]
) -> None:
    """Per-package integrity digests: an edit of a locked package is named with its target and
    package (an accidental edit; an attacker who can rewrite the lock can rewrite digests too)."""
    lock = generated.root / "pinner.lock"
    text = lock.read_text()
    start = text.index('name = "demo-app"')
    lock.write_text(text[:start] + text[start:].replace('version = "1.0"', 'version = "1.1"', 1))

    result = cli("check")

    assert result.code == 1
    assert (
        "pinner.lock: target cpu: package demo-app was edited by hand (its integrity digest "
        "does not match its content)"
    ) in result.err
    assert "refresh: pinner lock --target cpu" in result.err
    frozen = cli("generate", "--frozen")  # renders nothing from an edited lock
    assert frozen.code == 2
    assert "digest: edited by hand" in frozen.err
    assert "(package 'demo-app')" in frozen.err


@pytest.mark.parametrize(
    ("file", "edit"),
    [
        # the attack: a line above the old seal passed
        ("install.sh", lambda t: t.replace("\n", "\ntouch x\n", 1)),
        ("install.sh", lambda t: "touch x\n" + t),
        ("Dockerfile", lambda t: t.replace("Do not edit.", "Do not edit.\nRUN touch x\n#")),
        ("requirements.txt", lambda t: t + "\n"),
        ("verify_env.py", lambda t: t.replace("python3", "python2", 1)),
        ("sbom.cdx.json", lambda t: t.replace('"name": "demo-app"', '"name": "demo-apq"', 1)),
    ],
    ids=[
        "line-after-shebang",
        "line-before-shebang",
        "header",
        "trailing-newline",
        "preamble",
        "sbom-value",
    ],
)
def test_check_finds_any_changed_byte(
    generated: Project, cli: Callable[..., Run], file: str, edit: Callable[[str], str]
) -> None:
    path = generated.root / "pinned" / "cpu" / file
    path.write_text(edit(path.read_text()))

    result = cli("check")

    assert result.code == 1
    ((what, command),) = problems(result)
    assert what.startswith(f"pinned/cpu/{file}: edited by hand")
    assert command == "pinner generate --target cpu"


def test_check_finds_a_file_that_is_no_longer_utf8(
    generated: Project, cli: Callable[..., Run]
) -> None:
    path = generated.root / "pinned" / "cpu" / "install.sh"
    path.write_bytes(path.read_bytes() + b"\xff")

    result = cli("check")

    assert (result.code, problems(result)) == (
        1,
        [("pinned/cpu/install.sh: edited by hand", "pinner generate --target cpu")],
    )


def test_check_refuses_a_lock_of_an_unknown_format(
    generated: Project, cli: Callable[..., Run]
) -> None:
    lock = generated.root / "pinner.lock"
    lock.write_text(lock.read_text().replace("version = 2\n", "version = 99\n", 1))

    result = cli("check")

    assert result.code == 2
    assert "lock format version 99 is not one this pinner reads (2)" in result.err


def test_check_reads_the_lock_format_pinner_writes() -> None:
    from pinner.lock.lockfile import FORMAT
    from pinner.render.check import LOCK_FORMATS

    assert FORMAT in LOCK_FORMATS


def test_check_notes_targets_never_generated(generated: Project, cli: Callable[..., Run]) -> None:
    shutil.rmtree(generated.root / "pinned")
    generated.lock.unlink()
    assert cli("lock").code == 0  # a lock that never saw `generate`
    assert "generated" not in generated.lock_doc()

    result = cli("check")

    assert result.code == 0
    assert "note: target cpu has no generated files (pinner generate --target cpu)" in result.out


def test_generate_records_its_out_folder_in_the_lock_head(
    generated: Project, cli: Callable[..., Run]
) -> None:
    text = generated.lock.read_text(encoding="utf-8")
    head = text.split("\n[targets.", 1)[0]

    assert generated.lock_doc()["generated"] == {"cpu": "pinned"}
    assert head.endswith('\n\n[generated]\ncpu = "pinned"\n')  # after [inputs], in the head
    assert cli("generate", "--out", "out/else").code == 0
    assert generated.lock_doc()["generated"] == {"cpu": "out/else"}
    assert cli("check", "--out", "out/else").code == 0


def test_check_fails_on_a_missing_folder_of_a_generated_target(
    generated: Project, cli: Callable[..., Run]
) -> None:
    shutil.rmtree(generated.root / "pinned")

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        ("pinned/cpu/: missing (generated before)", "pinner generate --target cpu")
    ]
    assert "Traceback" not in result.text
    assert cli("generate").code == 0
    assert cli("check").code == 0


def test_check_fails_on_a_missing_folder_in_the_recorded_out(
    generated: Project, cli: Callable[..., Run]
) -> None:
    assert cli("generate", "--out", "elsewhere").code == 0
    shutil.rmtree(generated.root / "elsewhere")

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        (
            "elsewhere/cpu/: missing (generated before)",
            "pinner generate --target cpu --out elsewhere",
        )
    ]


def test_check_finds_a_missing_file(generated: Project, cli: Callable[..., Run]) -> None:
    (generated.root / "pinned" / "cpu" / "Dockerfile").unlink()

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [("pinned/cpu/Dockerfile: missing", "pinner generate --target cpu")]


def test_check_finds_files_out_of_date_with_the_lock(
    generated: Project, cli: Callable[..., Run]
) -> None:
    """The lock moved (`pinner lock` after a requirements edit) but the files were not
    regenerated: one line for the target, listing the files whose content would change."""
    generated.write("requirements.in", "-r base.in\ndemo-app\nneeds-vision\n")
    assert cli("lock").code == 0

    result = cli("check")

    assert result.code == 1
    ((what, command),) = problems(result)
    assert what.startswith("pinned/cpu/: out of date with pinner.lock: constraints.txt, ")
    assert command == "pinner generate --target cpu"


def test_a_one_line_bump_rewrites_only_the_files_whose_content_changed(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    """Each file's header fingerprints what that file renders from: a version bump of one
    requirement leaves the recipes and the torch layer byte for byte as they were."""
    project = make_project(tmp_path / "proj", fresh_index, monkeypatch, requirements="other-app\n")
    assert cli("generate").code == 0
    folder = project.root / "pinned" / "cpu"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    fresh_index.add("pypi", build_wheel(tmp_path / "new", "other-app", "2.0"))
    assert cli("lock", "--upgrade").code == 0

    stale = cli("check")
    result = cli("generate")

    assert (stale.code, result.code) == (1, 0), result.text
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == sorted(
        ["constraints.txt", "requirements.txt", "verify_env.py", "pylock.toml", "sbom.cdx.json"]
    )
    assert b"other-app==2.0" in after["requirements.txt"]
    ((what, _),) = problems(stale)
    assert what == (
        "pinned/cpu/: out of date with pinner.lock: constraints.txt, requirements.txt, "
        "verify_env.py, pylock.toml, sbom.cdx.json"
    )
    assert cli("check").code == 0


def test_check_names_a_lock_section_edited_by_hand(
    generated: Project, cli: Callable[..., Run]
) -> None:
    text = generated.lock.read_text()
    assert "a CPU-only build" in text
    generated.lock.write_text(text.replace("a CPU-only build", "a CPU build"))

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        (
            (
                "pinner.lock: target cpu: its [targets.cpu] section was edited by hand (its digest "
                "in [renders] does not match)"
            ),
            "pinner lock --target cpu",
        )
    ]


def test_check_diff_shows_the_change(generated: Project, cli: Callable[..., Run]) -> None:
    path = generated.root / "pinned" / "cpu" / "constraints.txt"
    path.write_text(path.read_text().replace("demo-app==1.0", "demo-app==1.1"))

    result = cli("check", "--diff")

    assert result.code == 1
    diff = result.out  # on stdout, paths from the project root; the verdict on stderr
    assert diff.startswith(
        "--- a/pinned/cpu/constraints.txt\n+++ b/pinned/cpu/constraints.txt\n@@ "
    )
    assert "--- " not in result.err
    assert "pinned/cpu/constraints.txt: edited by hand" in result.err
    # "-" is the file as it is, "+" what the lock renders
    assert re.search(r"^-demo-app==1\.1", diff, re.MULTILINE)
    assert re.search(r"^\+demo-app==1\.0", diff, re.MULTILINE)
    assert re.search(r"^@@ ", diff, re.MULTILINE)


def test_check_without_a_lock(generated: Project, cli: Callable[..., Run]) -> None:
    generated.lock.unlink()

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [("pinner.lock: missing", "pinner lock")]


@pytest.mark.parametrize("value", ["5", "[1, 2]", "{ a = 1 }"])
def test_check_names_a_hand_edited_input_that_is_not_a_digest(
    generated: Project, cli: Callable[..., Run], value: str
) -> None:
    text = generated.lock.read_text(encoding="utf-8")
    edited = re.sub(
        r'^cpu = "sha256:[0-9a-f]+"$', f"cpu = {value}", text, count=1, flags=re.MULTILINE
    )
    assert edited != text
    generated.lock.write_text(edited, encoding="utf-8")

    result = cli("check")

    assert result.code == 1
    (found,) = problems(result)
    assert found[0].startswith("pinner.lock: inputs.cpu is "), found  # not "has no entry"
    assert found[0].endswith(", not a digest (edited by hand)")


def test_check_names_targets_missing_from_the_lock_and_gone_from_the_matrix(
    generated: Project, cli: Callable[..., Run]
) -> None:
    generated.write("pinner.toml", CPU_MATRIX.replace("[targets.cpu]", "[targets.cpu2]"))

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        ("pinner.lock: has no entry for target cpu2", "pinner lock --target cpu2"),
        ("pinner.lock: target cpu is no longer in the matrix", "pinner lock"),
    ]


def test_check_imports_no_typer_jinja2_packaging_or_engine(generated: Project) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    code = "import sys; from pinner.cli import main; sys.exit(main(['check']))"

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=generated.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "pinner check: 1 target fresh\n"
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "pinner.render.check" in imported  # the measurement works
    heavy = {
        "typer",
        "click",
        "jinja2",
        "packaging",
        "tomlkit",
        "rich",
        "pinner.resolve",
        "pinner.render.render",
    }
    assert not {m for m in imported if m.split(".")[0] in heavy or m in heavy}


def test_update_regenerates_into_the_recorded_out(
    generated: Project, cli: Callable[..., Run]
) -> None:
    assert cli("generate", "--out", "elsewhere").code == 0
    shutil.rmtree(generated.root / "pinned")
    (generated.root / "elsewhere" / "cpu" / "Dockerfile").unlink()

    result = cli("update")

    assert result.code == 0, result.text
    assert (generated.root / "elsewhere" / "cpu" / "Dockerfile").is_file()
    assert not (generated.root / "pinned").exists()
    assert cli("check", "--out", "elsewhere").code == 0


def test_check_names_each_changed_input(generated: Project, cli: Callable[..., Run]) -> None:
    generated.write("pinner.toml", CPU_MATRIX + 'torch-index-url = "https://m.example/{variant}"\n')
    (generated.root / "base.in").write_text("other-app\n# a comment\n")

    result = cli("check")

    assert result.code == 1
    assert problems(result) == [
        (
            (
                "pinner.lock: target cpu is stale: torch-index-url changed "
                "(https://download.pytorch.org/whl/{variant} -> https://m.example/{variant}); "
                "base.in changed"
            ),
            "pinner generate --target cpu",
        )
    ]


def test_check_names_a_knowledge_or_pinner_change_with_dates_and_versions(
    generated: Project, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinner.lock import fingerprint

    knowledge = generated.root.parent / "knowledge"
    shutil.copytree(fingerprint.KNOWLEDGE, knowledge)
    for name in fingerprint.KNOWLEDGE_FILES:  # every file newer: the oldest date is the date
        path = knowledge / name
        path.write_text(re.sub(r'(?m)^as_of = ".*"$', 'as_of = "2030-01-01"', path.read_text()))
    monkeypatch.setattr(fingerprint, "KNOWLEDGE", knowledge)
    monkeypatch.setattr(fingerprint, "__version__", "9.9.9")
    fingerprint.knowledge_as_of.cache_clear()
    locked = generated.lock_doc()["inputs-detail"]["cpu"]

    try:
        result = cli("check")
    finally:
        fingerprint.knowledge_as_of.cache_clear()

    assert result.code == 1
    ((what, command),) = problems(result)
    assert what == (
        f"pinner.lock: target cpu is stale: pinner's knowledge changed (as of "
        f"{locked['knowledge-as-of']} -> 2030-01-01); pinner version changed "
        f"({locked['pinner']} -> 9.9.9)"
    )
    assert command == "pinner generate --target cpu"


@pytest.mark.usefixtures("generated")
def test_check_is_not_moved_by_a_torch_mirror(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNER_TORCH_INDEX_URL", "https://mirror.example/whl/{variant}")

    assert cli("check").code == 0


def test_an_earlier_lock_without_per_input_digests_still_reads(
    generated: Project, cli: Callable[..., Run]
) -> None:
    """A format-2 lock of an earlier pinner has `[inputs]` only: its staleness is said without a
    cause, its files are compared with its sections; `generate` adds the digests."""
    text = generated.lock.read_text()
    head, sep, rest = text.partition("\n[targets.")
    blocks = head.split("\n\n[")
    old = "\n\n[".join(b for b in blocks if not b.startswith(("inputs-detail.", "renders.")))
    generated.lock.write_text(old + sep + rest)
    generated.write("requirements.in", "-r base.in\ndemo-app\n# a comment\n")

    stale = cli("check")

    assert stale.code == 1
    assert problems(stale) == [
        (
            (
                "pinner.lock: target cpu is stale (its matrix table, requirements files, pinner's "
                "knowledge or pinner version changed; this lock keeps no digest per input to say "
                "which)"
            ),
            "pinner generate --target cpu",
        )
    ]
    assert cli("generate").code == 0
    assert {"inputs-detail", "renders"} <= set(generated.lock_doc())
    assert cli("check").code == 0


def test_check_reads_the_files_where_generate_wrote_them(
    generated: Project, cli: Callable[..., Run]
) -> None:
    assert cli("generate", "--out", "deploy").code == 0
    shutil.rmtree(generated.root / "pinned")

    assert cli("check").code == 0  # no --out: the lock says where
    path = generated.root / "deploy" / "cpu" / "install.sh"
    path.write_text(path.read_text() + "\n")
    result = cli("check")

    assert problems(result) == [
        ("deploy/cpu/install.sh: edited by hand", "pinner generate --target cpu --out deploy")
    ]


@pytest.mark.parametrize("where", ["pinned", "pinned/cpu"])
def test_check_finds_the_matrix_from_a_subfolder(
    generated: Project, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.chdir(generated.root / where)

    assert cli("check").out == "pinner check: 1 target fresh\n"
    (generated.root / "pinned" / "cpu" / "Dockerfile").unlink()
    shown = "Dockerfile" if where == "pinned/cpu" else "cpu/Dockerfile"  # from where it ran
    assert problems(cli("check")) == [(f"{shown}: missing", "pinner generate --target cpu")]


def test_check_finds_tool_pinner_in_a_pyproject_above(
    generated: Project, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    (generated.root / "pinner.toml").unlink()
    generated.write(
        "pyproject.toml",
        "[project]\nname = 'x'\n\n"
        + CPU_MATRIX.replace("[targets.cpu]", "[tool.pinner.targets.cpu]"),
    )
    monkeypatch.chdir(generated.root / "pinned" / "cpu")

    assert cli("check").out == "pinner check: 1 target fresh\n"


@pytest.mark.parametrize("boundary", [".git", "HOME"])
def test_discovery_stops_at_the_repository_root_or_home(
    generated: Project, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, boundary: str
) -> None:
    """A pinner.toml above the repository (or the home folder) is not this project's."""
    inner = generated.root / "repo"
    (inner / "src").mkdir(parents=True)
    if boundary == ".git":
        (inner / ".git").mkdir()
    else:
        monkeypatch.setenv("HOME", str(inner))
    monkeypatch.chdir(inner / "src")

    result = cli("check")

    assert problems(result) == [("pinner.lock: missing", "pinner lock")]  # the presets
    from pinner.load.matrix import read_matrix

    assert read_matrix()["found"] == (
        f"the built-in presets (no pinner.toml or [tool.pinner] from {inner / 'src'} up to {inner})"
    )
    monkeypatch.chdir(generated.root / "pinned")
    assert read_matrix()["found"] == (
        f"{generated.root / 'pinner.toml'} (the nearest above the working folder)"
    )


def test_check_can_say_which_matrix_it_used(
    generated: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `-v` prints (the flag itself is parsed with the other global flags)."""
    from pinner import console
    from pinner.commands.check import run_check

    monkeypatch.chdir(generated.root / "pinned" / "cpu")
    monkeypatch.setattr(console.settings, "verbosity", 1)

    run_check(None, None, diff=False)

    err = capsys.readouterr().err
    assert err == (
        f"pinner: matrix: {generated.root / 'pinner.toml'} (the nearest above the working folder)\n"
    )
