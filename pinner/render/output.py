"""write: artifacts to files, atomically (temporary file + rename), and diffs against disk."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.errors import OutputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

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
    "pylock.toml",
    "sbom.cdx.json",
)


def packaged_templates() -> Path:
    """Templates inside the wheel, or templates/ of a source checkout."""
    inside = Path(__file__).parent.parent / "templates"
    return inside if inside.is_dir() else Path(__file__).parent.parent.parent / "templates"


def template_folders(override: Path | None) -> list[Path]:
    """Where templates are looked up: the project's own folder (matrix key `templates`) first."""
    return ([override] if override is not None else []) + [packaged_templates()]


@contextlib.contextmanager
def project_lock(root: Path, cache: Path) -> Iterator[None]:
    """Hold the project's write lock: one pinner run at a time reads the old lock, resolves and
    writes the lock and `pinned/`, so concurrent runs end as one run would (the later ones find
    the lock fresh). Reentrant within a process (generate -> lock, update -> generate).

    The lock file lives in pinner's cache, keyed by the project's resolved root, not in the
    user's repository. The OS lock (flock; a byte-range lock on Windows) dies with its process:
    a killed run never leaves the project locked.
    """
    import hashlib

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    folder = cache / "locks"
    path = folder / f"{key}.lock"
    held = _HELD.get(str(path))
    if held is not None:  # nested in this process: already ours
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise _cache_error(e, path if folder.is_dir() else folder) from None
    try:
        try:
            _os_lock(fd, root)
        except OSError as e:  # no locks on this file system (ENOLCK)
            raise _cache_error(e, path) from None
        _HELD[str(path)] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[str(path)]
    finally:
        os.close(fd)  # closing the descriptor releases the OS lock


_HELD: dict[str, list[int]] = {}  # lock file -> [descriptor, depth] held by this process


def _os_lock(fd: int, root: Path) -> None:
    """Take the exclusive OS lock on `fd`, saying on stderr when another run holds it."""
    import sys

    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt
        import time

        said = False
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if not said:
                    print(
                        f"pinner: waiting for another pinner run in {root} to finish",
                        file=sys.stderr,
                    )
                    said = True
                time.sleep(0.1)
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"pinner: waiting for another pinner run in {root} to finish", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)


def write_text_atomic(path: Path, text: str, *, executable: bool = False) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file.
    An OSError (disk full, read-only, not a folder) becomes an OutputError naming the file."""
    _regular_or_absent(path)
    tmp = None
    try:
        tmp = _stage(path, text, executable=executable)
        tmp.replace(path)
    except OSError as e:
        if tmp is not None:
            _discard([tmp])
        raise _output_error(e, path, "it was left as it was") from None


def write_artifacts(artifacts: Iterable[Artifact], root: Path) -> list[Path]:
    """Write every artifact whose content changed; return the paths written.

    Every file is staged first (a temporary file next to it), then all are renamed, in the
    order given (per target: requirements files, recipes, verify step). A failure while staging
    changes nothing; each file is always either its old or its new version, never half of one.
    """
    artifacts = list(artifacts)
    for folder in sorted({(root / a.path).parent for a in artifacts} - {root}):
        _real_folder_or_absent(folder)
    sweep_staged([root / a.path for a in artifacts])
    todo = [(root / a.path, a) for a in artifacts if not unchanged(root / a.path, a.text)]
    for path, _ in todo:
        _regular_or_absent(path)
    staged: list[tuple[Path, Path]] = []
    try:
        for path, artifact in todo:
            staged.append((_stage(path, artifact.text, executable=artifact.executable), path))
    except OSError as e:
        _discard([tmp for tmp, _ in staged])
        raise _output_error(e, root, "nothing was changed") from None
    done = 0
    try:
        for tmp, path in staged:
            tmp.replace(path)
            done += 1
    except OSError as e:
        _discard([tmp for tmp, _ in staged[done:]])
        raise _output_error(
            e, root, f"{done} of {len(staged)} files were replaced: run the command again"
        ) from None
    return [path for _, path in staged]


def remove_leftovers(paths: Iterable[Path]) -> None:
    """Remove the files `check.leftovers` found (under the project's write lock)."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise _output_error(e, path, "the files were written; it was left") from None


def sweep_staged(paths: Iterable[Path]) -> None:
    """Remove the temporary files a killed run left next to `paths` (`.<name>.<random>.tmp`,
    as `_stage` names them). Called under the project's write lock, so no live run is staging
    there; a file that cannot be removed is left (it changes nothing pinner reads)."""
    import glob

    for path in paths:
        with contextlib.suppress(OSError):
            for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
                _discard([tmp])


def _regular_or_absent(path: Path) -> None:
    """pinner replaces regular files only: never a folder, a device (/dev/null) or a socket."""
    if path.exists() and not path.is_file():
        msg = (
            f"{path}: exists and is not a regular file; nothing was changed; move it away "
            "or choose another path"
        )
        raise OutputError(msg)


def _real_folder_or_absent(folder: Path) -> None:
    """A target's folder is never written through a symbolic link: one committed as
    `pinned/a100 -> ~/bin` would put install.sh and the rest wherever it points."""
    if folder.is_symlink():
        from pinner.safe import comment

        msg = (
            f"{comment(folder)}: a symbolic link (to {comment(folder.readlink())}); nothing "
            "was changed; pinner writes a target's files into a real folder: remove the link, "
            "or render there with --out"
        )
        raise OutputError(msg)


def unchanged(path: Path, text: str) -> bool:
    """The file holds exactly `text` (False when it is missing or unreadable)."""
    try:
        return path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def _stage(path: Path, text: str, *, executable: bool) -> Path:
    """The text in a temporary file next to `path` (same file system, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here only: `pinner check` imports this module for its lists

    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        tmp.chmod(0o755 if executable else 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _discard(paths: list[Path]) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _cache_error(e: OSError, where: Path) -> OutputError:
    """The project's write lock could not be taken in pinner's cache: the folder to change is
    the cache's (PINNER_CACHE_DIR), not the output's."""
    target = e.filename or where
    if e.errno == errno.ENOSPC:
        fix = "free some disk space and run the command again"
    elif e.errno == errno.ENOLCK:
        fix = "set PINNER_CACHE_DIR to a folder on a file system with locks (a local disk)"
    else:
        fix = "set PINNER_CACHE_DIR to a folder pinner can write"
    return OutputError(
        f"{target}: cannot take the project's write lock in pinner's cache: "
        f"{e.strerror or e}; nothing was changed; {fix}"
    )


def _output_error(e: OSError, where: Path, state: str) -> OutputError:
    """One line: the file, what went wrong, what state things are in, what to do."""
    target = e.filename or where
    if e.errno == errno.ENOSPC:
        fix = "free some disk space and run the command again"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "make the folder writable, or choose another with --out"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        fix = "give a folder path that is not an existing file (or a file that is not a folder)"
    else:
        fix = "check the path and run the command again"
    return OutputError(f"{target}: cannot write: {e.strerror or e}; {state}; {fix}")


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
