"""verify: lock + the running environment -> Report. The checks themselves live in
`verify_checks` (standard library only), whose source every rendered verify_env.py embeds, so
`pinner verify` and the recipes' last step run the very same code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinner.errors import CheckFailed, ConfigError
from pinner.verify import checks as verify_checks

if TYPE_CHECKING:
    from pinner.model import TargetLock

Results = list[dict[str, str]]
MARK = "PINNER-RESULTS"
# Runs the embedded checks in another interpreter: the expectation comes in on stdin, the
# results go out on one marked line (whatever else the environment prints is ignored).
_RUNNER = f"""
import json as _json, sys as _sys
_expected = _json.loads(_sys.stdin.read())
print({MARK!r} + _json.dumps(run_checks(_expected)))
"""


def module_name(package: str) -> str:
    """The import name of an extension distribution: flash-attn -> flash_attn."""
    return package.replace("-", "_")


def expected_from_lock(tl: TargetLock) -> dict[str, Any]:
    """What the environment must look like, as plain JSON-able data."""
    plan = tl.plan
    from pinner.knowledge.knowledge import load_knowledge

    kb = load_knowledge()
    release = kb.release(plan.torch.version)
    gpu = kb.find_gpu(plan.target.gpu) if plan.compute_capability else None
    packages = {p.name: p.version for p in sorted(tl.pins, key=lambda p: p.name)}
    builds = {
        e.name: e.wheel or f"source build against torch {plan.torch.pin}" for e in plan.extensions
    }
    # packages bound to an [indexes] table: a report names the index they come from
    named = {name for name, _, _ in plan.target.indexes}
    sources = {p.name: p.source for p in sorted(tl.pins, key=lambda p: p.name) if p.source in named}
    return ({"sources": sources} if sources else {}) | {
        "target": plan.target.name,
        "python": plan.target.python,
        "platform": plan.target.platform,
        "packages": packages,
        "torch": {
            "version": next((p.version for p in tl.pins if p.name == "torch"), plan.torch.pin),
            "cuda": plan.torch.cuda or None,
            "numpy2": release.numpy2 if release else True,
        },
        "gpu": {
            "name": plan.gpu_name,
            "compute_capability": plan.compute_capability,
            "brand": gpu.brand if gpu else "",
        }
        if plan.compute_capability
        else None,
        "image": _image(plan.base_image),
        "min_driver": plan.min_driver,
        "extensions": [
            {
                "name": e.name,
                "module": module_name(e.name),
                "version": e.version,
                "build": e.wheel or f"source build against torch {plan.torch.pin}",
            }
            for e in plan.extensions
        ],
        "loads": compiled_loads(
            plan.torch.cuda, packages | {e.name: e.version for e in plan.extensions}, builds
        ),
    }


def _image(name: str) -> dict[str, Any] | None:
    """The base image's NVIDIA_REQUIRE_CUDA, for verify to apply to the host's driver."""
    from pinner.knowledge import images
    from pinner.knowledge.knowledge import load_knowledge

    kb = load_knowledge()
    image = next((i for i in kb.images if name in (i.runtime, i.devel)), None)
    if image is None or not image.require_cuda:
        return None
    return {
        "name": name,
        "cuda": image.require_cuda,
        "min_driver": images.toolkit_driver(kb, image.require_cuda),
        "branches": list(image.require_branches),
        "brands": list(image.require_brands),
    }


def compiled_loads(
    cuda: str, packages: dict[str, str], builds: dict[str, str]
) -> list[dict[str, Any]]:
    """What verify loads for each torch-linked package of the lock (knowledge/verify.toml)."""
    from pinner.knowledge.knowledge import load_knowledge

    out = []
    for entry in load_knowledge().docs["verify"]["package"]:
        name = entry["name"]
        if name not in packages and name not in builds:
            continue
        library = entry["library"] if cuda else entry.get("library_cpu", entry["library"])
        out.append(
            {
                "name": name,
                "version": packages.get(name, ""),
                "build": builds.get(name, ""),
                "import": list(entry["import"]),
                "dir": entry["import"][0].split(".")[0],
                "library": [lib.replace("{cuda}", cuda.replace(".", "")) for lib in library],
                "fallback": list(entry["fallback"]),
            }
        )
    return out


def source_text() -> str:
    """The checks, as embedded into verify_env.py (the module docstring is kept)."""
    return Path(verify_checks.__file__).read_text(encoding="utf-8")


def target_lock(lock_path: Path, name: str) -> TargetLock:
    """One target of a lock file; a ConfigError naming the targets it has otherwise."""
    import difflib

    from pinner.lock.lockfile import read_lock

    lockfile = read_lock(lock_path)
    by_name = {t.plan.target.name: t for t in lockfile.targets}
    if name not in by_name:
        close = difflib.get_close_matches(name, list(by_name), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it has: {', '.join(by_name) or 'none'}"
        msg = (
            f"{lock_path}: no target {name!r} ({hint}); lock it with `pinner lock --target {name}`"
        )
        raise ConfigError(msg)
    return by_name[name]


def run(expected: dict[str, Any], python: str | None = None) -> Results:
    """The checks, in this interpreter's environment or in `python`'s (a child process)."""
    if python is None:
        return verify_checks.run_checks(expected)
    exe = shutil.which(python) or str(Path(python).absolute())
    if not Path(exe).is_file() or not os.access(exe, os.X_OK):
        msg = f"--python: {python}: no such interpreter; give the path of the environment's python"
        raise ConfigError(msg)
    try:
        proc = subprocess.run(
            [exe, "-c", source_text() + _RUNNER],
            input=json.dumps(expected),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=1800,
            check=False,
        )
    except OSError as e:
        msg = f"--python: {python}: cannot run it ({e.strerror}); give the path of a Python interpreter"
        raise ConfigError(msg) from None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), "")
    if not line:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        msg = f"--python: {python}: the checks could not run there: {tail}"
        raise CheckFailed(msg)
    try:
        results = json.loads(line[len(MARK) :])
    except (ValueError, RecursionError):
        results = None
    if not _well_formed(results):
        msg = (
            f"--python: {python}: the checks printed malformed results; run "
            f"`{python} -c 'import sys; print(sys.version)'` to see that it is a working "
            "Python 3 interpreter"
        )
        raise CheckFailed(msg)
    checked: Results = results
    return checked


def _well_formed(results: object) -> bool:
    """A list of {status, check, message} string maps, as `verify_checks.run_checks` returns."""
    return isinstance(results, list) and all(
        isinstance(r, dict)
        and all(isinstance(r.get(k), str) for k in ("status", "check", "message"))
        for r in results
    )


def verify_target(
    lock_path: Path, name: str, *, python: str | None = None, gpu: bool = False
) -> tuple[dict[str, Any], Results]:
    """The expectation for one locked target, and the checks' results against an environment.
    `gpu`: a GPU must be visible (the smoke test runs whenever one is)."""
    expected = expected_from_lock(target_lock(lock_path, name))
    if gpu:
        expected["require_gpu"] = True
    return expected, run(expected, python)
