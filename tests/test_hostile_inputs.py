"""Hostile and corrupted inputs found by attacking pinner from outside: each test is a defect
that once ended in a traceback, a half-written file or an unquoted value, held to one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pinner.errors import ConfigError
from pinner.lock import read_lock

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llm-service"


def edited_lock(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the example's lock with one edit (`old` must be found)."""
    text = (EXAMPLE / "pinner.lock").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pinner.lock"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def example(tmp_path: Path) -> Path:
    root = tmp_path / "llm-service"
    shutil.copytree(EXAMPLE, root)
    return root


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('version = "2.15.0"\nvariant', "version = 2.15\nvariant", "expected str, found float"),
        ('python = "3.11"', "python = 3", "expected str, found int"),
        ("on_pypi = true", 'on_pypi = "yes"', "expected bool, found str"),
        ("pin_images = false", "pin_images = 0", "expected bool, found int"),
        ('companions = ["torchvision==0.29.2"]', 'companions = "x"', "expected an array"),
        ("extensions = []", "extensions = [1]", "expected a table, found int"),
        ('via = ["-r requirements.in", "peft"]', 'via = "peft"', "via: expected an array"),
        (
            'hashes = ["sha256:97eacca0b73e45cb867dbf8c5d5d4dc32219544300e0c8992c7334dc2ef33cec"]',
            'hashes = "sha256:97eacca0b73e45cb867dbf8c5d5d4dc32219544300e0c8992c7334dc2ef33cec"',
            "hashes: expected an array",
        ),
    ],
)
def test_a_plan_field_of_the_wrong_type_is_refused_when_read(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    """A hand-edited plan value of another TOML type was read as is, and `pinner lock --offline`
    then died writing it back (TypeError: cannot write float to the lock); a string where the
    lock has an array was read as its characters."""
    path = edited_lock(tmp_path, old, new)

    with pytest.raises(ConfigError) as err:
        read_lock(path)

    assert "targets.a100: unreadable" in str(err.value)
    assert fragment in str(err.value)
