"""The shipped example stays fresh, and the README's quick start is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.cli import main

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "llm-service"


def test_example_lock_and_generated_files_are_fresh(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regenerate-and-compare, offline: after any change to knowledge, templates or pinner,
    # `cd examples/llm-service && pinner generate` must be run and committed.
    monkeypatch.chdir(EXAMPLE)
    code = main(["check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "targets fresh" in out
    assert (EXAMPLE / "pinned" / "rtx5090" / "Dockerfile").is_file()


def test_readme_quick_start_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quick, flags=re.DOTALL)
    assert len(commands) >= 2
    install, test = commands[0].strip(), commands[1].strip()
    assert "pinner generate --target rtx5090" in install
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install in ci
    assert test in ci
