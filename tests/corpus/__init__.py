"""The bad-input corpus: hostile, malformed and faulty inputs, each with the outcome pinner owes.

Cases live in ``cases.toml`` next to this file (one ``[[case]]`` table each); ``run_case`` plays
one in a fresh copy of a small project and reports what happened, and ``python -m tests.corpus``
prints the figures (cases, clean refusals, accepted, tracebacks, files changed).

A case says:

* ``id``, ``kind`` (hostile-matrix, hostile-template, hostile-lock, bad-encoding, io-failure,
  bad-cli, deep-nesting, seal, requirement-options, resolver-env) and ``why`` (one line);
* ``base``: ``"llm"`` (the example project: two targets, a fresh lock, ``pinned/`` generated) or
  ``"empty"`` (nothing but the case's own files);
* what to do to it: ``files`` (path -> text; ``{{ROOT}}`` stands for the project folder),
  ``hex`` (path -> bytes as hex, for encodings), ``append`` (path -> text appended),
  ``append_hex``, ``prepend``, ``replace`` (path -> [[old, new], ...], each ``old`` must be found),
  ``remove`` (paths), ``mkdir`` (paths), ``make`` (a generator in ``MAKERS``, for inputs too
  large to write out), ``env`` (variables set for the run), ``fault`` (an I/O
  fault injected in-process: see ``FAULTS``), ``executable`` (paths made executable);
* ``argv``: the pinner command (a list, or a list of lists: one case per command), run in-process
  through ``pinner.cli.main`` unless ``subprocess = true``;
* what must happen: ``exit``, ``message`` (a fragment of the output, stderr then stdout),
  ``changed`` (glob patterns of the files allowed to change; default: none), ``created_not``
  (paths that must not exist afterwards: a hostile value's side effect);
* ``xfail``: the reason a case is expected to fail until other work lands.

No case uses the network: every command either fails before resolving or renders from the lock;
a proxy that refuses connections is set for any child process all the same.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CASES = HERE / "cases.toml"
KINDS = (
    "hostile-matrix",
    "hostile-template",
    "hostile-lock",
    "bad-encoding",
    "io-failure",
    "bad-cli",
    "deep-nesting",
    "seal",
    "requirement-options",
    "resolver-env",
)
# Any child process that tries the network meets a proxy that refuses at once.
OFFLINE_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


@dataclass
class Case:
    id: str
    kind: str
    why: str
    argv: list[str]
    exit: int
    message: str = ""
    base: str = "llm"
    files: dict[str, str] = field(default_factory=dict)
    hex: dict[str, str] = field(default_factory=dict)
    append: dict[str, str] = field(default_factory=dict)
    append_hex: dict[str, str] = field(default_factory=dict)
    make: str = ""
    prepend: dict[str, str] = field(default_factory=dict)
    replace: dict[str, list[list[str]]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    mkdir: list[str] = field(default_factory=list)
    executable: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    fault: str = ""
    changed: list[str] = field(default_factory=list)
    created_not: list[str] = field(default_factory=list)
    subprocess: bool = False
    xfail: str = ""
    group: str = ""  # the id in cases.toml (a case with several commands shares it)


@dataclass
class Outcome:
    case: Case
    code: int | None
    out: str
    err: str
    traceback: str  # "" when pinner ended without one
    changed: list[str]  # files added, removed or modified under the project
    created: list[str]  # created_not paths that exist afterwards

    @property
    def refused(self) -> bool:
        return not self.traceback and self.code not in (0, None)

    @property
    def problems(self) -> list[str]:
        """What differs from the case's expectations ([] when it held)."""
        c = self.case
        found = []
        if self.traceback:
            found.append(f"traceback:\n{self.traceback}")
        if self.code != c.exit:
            found.append(f"exit {self.code}, expected {c.exit}")
        text = self.err + self.out
        if c.message and c.message not in text:
            found.append(f"message {c.message!r} not in the output")
        unexpected = [p for p in self.changed if not any(fnmatch.fnmatch(p, g) for g in c.changed)]
        if unexpected:
            found.append(f"files changed that must not: {unexpected}")
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", self.err):
            found.append("a raw control character reached the output")
        if self.created:
            found.append(f"a hostile value had an effect: {self.created} exist")
        return found


def load_cases(path: Path = CASES) -> list[Case]:
    """Every case of the file; a case with several commands becomes one case per command."""
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    for raw in doc["case"]:
        argvs = raw["argv"] if raw["argv"] and isinstance(raw["argv"][0], list) else [raw["argv"]]
        for i, argv in enumerate(argvs):
            fields = {**raw, "argv": argv, "group": raw["id"]}
            if len(argvs) > 1:
                fields["id"] = f"{raw['id']}-{argv[0]}" + (f"{i}" if i else "")
            cases.append(Case(**fields))
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate case ids: {duplicates}"
    unknown = {c.kind for c in cases} - set(KINDS)
    assert not unknown, f"unknown kinds: {unknown}"
    return cases


# --- the base projects ---------------------------------------------------------------------------

_BASES: dict[str, Path] = {}


def base_project(name: str, workdir: Path) -> Path:
    """A project folder to copy for each case, made once per process."""
    if name in _BASES:
        return _BASES[name]
    root = workdir / f"base-{name}"
    if name == "empty":
        root.mkdir(parents=True)
    elif name == "llm":
        from tests.support.recipes import copy_project

        copy_project("llm-service", root)
        with _environment(root, {}), _captured():
            from pinner.cli import main

            assert main(["generate", "--frozen"]) == 0
    else:
        msg = f"unknown base {name!r}"
        raise ValueError(msg)
    _BASES[name] = root
    return root


def _prepare(case: Case, root: Path) -> None:
    def path(rel: str) -> Path:
        return root / rel.replace("{{ROOT}}", str(root))

    for rel in case.remove:
        target = path(rel)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    for rel in case.mkdir:
        path(rel).mkdir(parents=True, exist_ok=True)
    for rel, text in case.files.items():
        path(rel).parent.mkdir(parents=True, exist_ok=True)
        path(rel).write_text(text.replace("{{ROOT}}", str(root)), encoding="utf-8")
    for rel, hexed in case.hex.items():
        path(rel).parent.mkdir(parents=True, exist_ok=True)
        path(rel).write_bytes(bytes.fromhex(hexed))
    for rel, text in case.append.items():
        with path(rel).open("a", encoding="utf-8", newline="") as f:
            f.write(text)
    for rel, hexed in case.append_hex.items():
        with path(rel).open("ab") as raw:
            raw.write(bytes.fromhex(hexed))
    for rel, text in case.prepend.items():
        path(rel).write_text(text + path(rel).read_text(encoding="utf-8"), encoding="utf-8")
    for rel, pairs in case.replace.items():
        text = path(rel).read_text(encoding="utf-8")
        for old, new in pairs:
            assert old in text, f"case {case.id}: {old!r} not found in {rel}"
            text = text.replace(old, new, 1)
        path(rel).write_text(text, encoding="utf-8")
    for rel in case.executable:
        path(rel).chmod(0o755)
    if case.make:
        MAKERS[case.make](root)


def _deep_matrix(root: Path) -> None:
    (root / "pinner.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")


def _r_chain(root: Path) -> None:
    for i in range(1500):
        (root / f"r{i}.in").write_text(f"-r r{i + 1}.in\n", encoding="utf-8")
    (root / "r1500.in").write_text("numpy\n", encoding="utf-8")
    (root / "requirements.in").write_text("-r r0.in\n", encoding="utf-8")


def _deep_lock(root: Path) -> None:
    lock = root / "pinner.lock"
    text = lock.read_text(encoding="utf-8")
    deep = "deep = " + "[" * 5000 + "]" * 5000 + "\n"
    lock.write_text(text.replace("[inputs]\n", "[inputs]\n" + deep, 1), encoding="utf-8")


def _huge_line(root: Path) -> None:
    (root / "requirements.in").write_text("numpy" + " ;" * 100_000 + "\n", encoding="utf-8")


def _copy_constraints(root: Path) -> None:
    source = root / "pinned" / "a100" / "constraints.txt"
    shutil.copyfile(source, root / "pinned" / "rtx5090" / "constraints.txt")


def _target_folder_symlink(root: Path) -> None:
    """pinned/a100 as a link to a folder outside the project (created inside the project's
    copy, so the case stays self-contained: `outside/` is where it points)."""
    outside = root / "outside"
    outside.mkdir()
    shutil.rmtree(root / "pinned" / "a100")
    (root / "pinned" / "a100").symlink_to(outside, target_is_directory=True)


MAKERS: dict[str, Callable[[Path], None]] = {
    "matrix-deep-arrays": _deep_matrix,
    "r-chain-1500": _r_chain,
    "lock-deep-arrays": _deep_lock,
    "requirements-huge-line": _huge_line,
    "copy-a100-constraints-to-rtx5090": _copy_constraints,
    "target-folder-symlink": _target_folder_symlink,
}


def _snapshot(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            try:
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            except OSError:
                found[rel] = "unreadable"
    return found


@contextlib.contextmanager
def _environment(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(OFFLINE_ENV)
    os.environ.pop("PINNER_TORCH_INDEX_URL", None)
    os.environ.pop("PINNER_CUSTOM_COMMAND", None)
    os.environ.setdefault("PINNER_CACHE_DIR", str(cwd.parent / "cache"))
    os.environ.update({k: v.replace("{{ROOT}}", str(cwd)) for k, v in env.items()})
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


# --- faults injected in-process ------------------------------------------------------------------


def _failing_write(code: int) -> Callable[..., Any]:
    real = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        f = real(fd, *args, **kwargs)

        def write(_text: str) -> int:
            raise OSError(code, os.strerror(code))

        f.write = write
        return f

    return fdopen


def _mkstemp_fails(code: int) -> Callable[..., Any]:
    def mkstemp(*_args: Any, dir: str | None = None, **_kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), dir)

    return mkstemp


def _rename_fails_after(n: int) -> Callable[..., Any]:
    real = Path.replace
    calls = [0]

    def replace(self: Path, target: Any) -> Path:
        calls[0] += 1
        if calls[0] > n:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(target))
        return real(self, target)

    return replace


def _read_fails(code: int) -> Callable[..., Any]:
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "pinner.toml":
            raise OSError(code, os.strerror(code), str(self))
        return real(self)

    return read_bytes


FAULTS: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "enospc-write": lambda: mock.patch("os.fdopen", _failing_write(errno.ENOSPC)),
    "eio-write": lambda: mock.patch("os.fdopen", _failing_write(errno.EIO)),
    "erofs-create": lambda: mock.patch("tempfile.mkstemp", _mkstemp_fails(errno.EROFS)),
    "eacces-create": lambda: mock.patch("tempfile.mkstemp", _mkstemp_fails(errno.EACCES)),
    "rename-fails-after-3": lambda: mock.patch.object(Path, "replace", _rename_fails_after(3)),
    "eacces-read-matrix": lambda: mock.patch.object(Path, "read_bytes", _read_fails(errno.EACCES)),
}


# --- running a case ------------------------------------------------------------------------------


def run_case(case: Case, workdir: Path) -> Outcome:
    """Play one case in a fresh copy of its base project under `workdir`."""
    base = base_project(case.base, workdir)
    root = Path(tempfile.mkdtemp(dir=workdir, prefix="case-")) / "proj"
    shutil.copytree(base, root, symlinks=True)
    _prepare(case, root)
    before = _snapshot(root)
    if case.subprocess:
        code, out, err, tb = _run_subprocess(case, root)
    else:
        code, out, err, tb = _run_in_process(case, root)
    after = _snapshot(root)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    created = [p for p in case.created_not if (root / p).exists() or Path(p).exists()]
    return Outcome(case, code, out, err, tb, changed, created)


def _argv(case: Case, root: Path) -> list[str]:
    return [a.replace("{{ROOT}}", str(root)) for a in case.argv]


def _run_in_process(case: Case, root: Path) -> tuple[int | None, str, str, str]:
    from pinner.cli import main

    fault = FAULTS[case.fault]() if case.fault else contextlib.nullcontext()
    with _environment(root, case.env), _captured() as (out, err):
        try:
            with fault:
                code: int | None = main(_argv(case, root))
        except BaseException:  # noqa: BLE001 - what the corpus exists to count
            return None, out.getvalue(), err.getvalue(), traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), ""


def _run_subprocess(case: Case, root: Path) -> tuple[int | None, str, str, str]:
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO)}
    env.pop("PINNER_TORCH_INDEX_URL", None)
    env.setdefault("PINNER_CACHE_DIR", str(root.parent / "cache"))
    env.update({k: v.replace("{{ROOT}}", str(root)) for k, v in case.env.items()})
    proc = subprocess.run(
        [sys.executable, "-m", "pinner", *_argv(case, root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    tb = proc.stderr if "Traceback (most recent call last)" in proc.stderr else ""
    return proc.returncode, proc.stdout, proc.stderr, tb


# --- figures -------------------------------------------------------------------------------------


def figures(outcomes: list[Outcome]) -> dict[str, Any]:
    """The corpus's numbers, overall and per kind."""
    per_kind: dict[str, dict[str, int]] = {}
    for o in outcomes:
        k = per_kind.setdefault(
            o.case.kind, {"cases": 0, "refused": 0, "accepted": 0, "tracebacks": 0, "failed": 0}
        )
        k["cases"] += 1
        k["refused"] += o.refused
        k["accepted"] += o.code == 0 and not o.traceback
        k["tracebacks"] += bool(o.traceback)
        k["failed"] += bool(o.problems) and not o.case.xfail
    return {
        "cases": len(outcomes),
        "clean refusals": sum(o.refused for o in outcomes),
        "accepted": sum(o.code == 0 and not o.traceback for o in outcomes),
        "tracebacks": sum(bool(o.traceback) for o in outcomes),
        "files changed by refused cases": sum(len(o.changed) for o in outcomes if o.refused),
        "files changed by accepted cases": sum(
            len(o.changed) for o in outcomes if o.code == 0 and not o.traceback
        ),
        "expectations not met": sum(bool(o.problems) and not o.case.xfail for o in outcomes),
        "expected to fail (waiting on other work)": sum(bool(o.case.xfail) for o in outcomes),
        "per kind": per_kind,
    }
