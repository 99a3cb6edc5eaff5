"""The bodies of `lock`, `generate` and `explain`, without typer.

`pinner.cli` calls them directly for their common command lines (its fast path), so those runs
never import typer (0.05 s, all of it before the resolver starts); the typer commands in
`pinner.commands.app` parse the other command lines and call the same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pinner.model import Matrix, Target
    from pinner.progress import Progress


def load(matrix: Path | None) -> Matrix:
    """The matrix, saying once which requirements a default chose."""
    from pinner import console, pipeline

    m = pipeline.load(matrix)
    if console.verbose():
        from pinner.load.matrix import discover

        console.detail(f"pinner: matrix: {discover(matrix, Path.cwd()).why}")
    for note in m.notes:
        console.note(note)
    return m


def explain(*, target: str, matrix: Path | None = None, json_out: bool = False) -> None:
    from pinner import pipeline
    from pinner.commands import report

    m = load(matrix)
    results = pipeline.with_resolution(m, pipeline.plan_all(m, (target,)))
    if json_out or results[0][1].plan is not None:
        print(report.explain(m, results[0], as_json=json_out), end="")
    pipeline.require_plans(results)


def lock(
    *,
    target: list[str] | None = None,
    matrix: Path | None = None,
    upgrade: bool = False,
    upgrade_package: list[str] | None = None,
    locked: bool = False,
    dry_run: bool = False,
    resolver: str = "uv",
    offline: bool = False,
    timeout: float = 900,
    json_out: bool = False,
    jobs: int = 4,
) -> None:
    from pinner import pipeline
    from pinner.commands import summary

    exclusive(locked=locked, upgrade=upgrade, upgrade_package=bool(upgrade_package))
    m = load(matrix)
    names = target or ()
    if locked:
        summary.lock_locked(m, [t.name for t in selected(m, names)], json_out=json_out)
        return
    with progress(len(target or m.targets)) as shown:
        result = pipeline.lock_targets(
            m,
            names,
            engine=resolver,
            upgrade=upgrade,
            offline=offline,
            progress=shown,
            timeout=timeout,
            always_note=True,  # `pinner lock` names ignored variables even with nothing to do
            upgrade_packages=packages(upgrade_package),
            dry_run=dry_run,
            jobs=jobs,
        )
    summary.lock_report(m, result, json_out=json_out, dry_run=dry_run)
    pipeline.raise_failures(result)


def generate(
    *,
    target: list[str] | None = None,
    matrix: Path | None = None,
    out: Path | None = None,
    installer: str = "pip",
    locked: bool = False,
    frozen: bool = False,
    dry_run: bool = False,
    resolver: str = "uv",
    offline: bool = False,
    timeout: float = 900,
    json_out: bool = False,
    jobs: int = 4,
) -> None:
    from pinner import console, pipeline
    from pinner.commands import summary
    from pinner.errors import PinnerError, TargetsFailed

    exclusive(locked=locked, frozen=frozen)
    m = load(matrix)
    info = pipeline.RunInfo()
    console.detail(f"lock: {m.lock}\nout: {out or m.out}")
    failed = None
    try:
        with progress(len(target or m.targets)) as shown:
            pipeline.generate(
                m,
                target or (),
                out=out,
                installer=installer,
                frozen=frozen,
                locked=locked,
                engine=resolver,
                offline=offline,
                progress=shown,
                timeout=timeout,
                dry_run=dry_run,
                info=info,
                jobs=jobs,
            )
    except TargetsFailed as e:  # the others were written: said as for a run without failures
        failed = e
    except PinnerError:
        summary.print_findings(info.findings, info.warnings)
        raise
    summary.generate_report(m, out or m.out, info, json_out=json_out, dry_run=dry_run)
    if failed is not None:
        raise failed


def exclusive(**flags: bool) -> None:
    """--locked and --frozen keep the lock as it is: refused with a flag that changes it."""
    given = [f"--{name.replace('_', '-')}" for name, on in flags.items() if on]
    if len(given) > 1:
        from pinner.errors import ConfigError

        msg = f"{given[0]} cannot be combined with {', '.join(given[1:])}; choose one"
        raise ConfigError(msg)


def selected(m: Matrix, names: Sequence[str]) -> tuple[Target, ...]:
    from pinner.load.matrix import select_targets

    return select_targets(m, tuple(names))


def packages(names: list[str] | None) -> tuple[str, ...]:
    """-P names, checked and normalized (PEP 503)."""
    import re

    from pinner.errors import ConfigError

    out = []
    for name in names or ():
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
            msg = f"--upgrade-package: {name!r} is not a package name (e.g. -P transformers)"
            raise ConfigError(msg)
        out.append(re.sub(r"[-_.]+", "-", name).lower())
    return tuple(out)


def progress(total: int) -> Progress:
    """Progress on stderr (with --json too: the document alone is on stdout); none with -q."""
    from pinner.progress import Progress

    return Progress(total=total)
