"""write: artifacts to files, atomically (temporary file + rename), and diffs against disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pinner.model import Artifact, Stale

ARTIFACTS = (
    "constraints.txt",
    "torch-requirements.txt",
    "requirements.txt",
    "extensions.txt",
    "Dockerfile",
    "install.sh",
    "modal_image.py",
    "verify_env.py",
    "sbom.cdx.json",
)


def packaged_templates() -> Path:
    """Templates inside the wheel, or templates/ of a source checkout."""
    inside = Path(__file__).parent / "templates"
    return inside if inside.is_dir() else Path(__file__).parent.parent / "templates"


def template_folders(override: Path | None) -> list[Path]:
    """Where templates are looked up: the project's own folder (matrix key `templates`) first."""
    return ([override] if override is not None else []) + [packaged_templates()]


def write_text_atomic(path: Path, text: str, *, executable: bool = False) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        Path(tmp).chmod(0o755 if executable else 0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifacts(artifacts: Iterable[Artifact], root: Path) -> list[Path]:
    """Write every artifact whose content changed; return the paths written."""
    written = []
    for artifact in artifacts:
        path = root / artifact.path
        if path.is_file() and path.read_text(encoding="utf-8") == artifact.text:
            continue
        write_text_atomic(path, artifact.text, executable=artifact.executable)
        written.append(path)
    return written


def diff_artifacts(artifacts: Iterable[Artifact], root: Path) -> tuple[Stale, ...]:
    """Compare rendered artifacts with the files on disk (`check --diff`)."""
    import difflib

    from pinner.model import Stale

    out = []
    for artifact in artifacts:
        path = root / artifact.path
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        if old != artifact.text:
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(True),
                    artifact.text.splitlines(True),
                    f"a/{artifact.path}",
                    f"b/{artifact.path}",
                )
            )
            out.append(
                Stale(path=artifact.path, problem="out of date" if old else "missing", diff=diff)
            )
    return tuple(out)
