"""The typer application: one function per command; each parses, calls pipeline stages, prints.

Heavy modules (packaging, jinja2, tomlkit, the engines) are imported inside the commands that need
them. `pinner.cli.main` is the entry point and the only exit.
"""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from pinner import __version__
from pinner.errors import PinnerError

app = typer.Typer(
    name="pinner",
    help="Turn a GPU hardware matrix into install recipes that cannot drift.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

MatrixOpt = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs a runtime type
    typer.Option(
        "--matrix", "-m", help="Matrix file (default: ./pinner.toml, [tool.pinner], presets)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TargetsOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--target", "-t", help="Target name (repeatable; default: every target)."),
]


def _version(value: bool) -> None:
    if value:
        print(f"pinner {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """pinner: GPU-aware, hash-locked install recipes."""


@app.command()
def gpus(json_out: JsonOpt = False) -> None:
    """List the GPUs pinner knows, with their compute capability."""
    from pinner import report
    from pinner.knowledge import load_knowledge

    print(report.gpus(load_knowledge(), as_json=json_out), end="")


@app.command()
def targets(matrix: MatrixOpt = None, json_out: JsonOpt = False) -> None:
    """List the matrix's targets, each resolved to the torch build it gets."""
    from pinner import pipeline, report

    m = pipeline.load(matrix)
    results = pipeline.plan_all(m, ())
    print(report.targets(m, results, as_json=json_out), end="")
    pipeline.require_plans(results)


@app.command()
def explain(
    target: Annotated[str, typer.Option("--target", "-t", help="The target to explain.")],
    matrix: MatrixOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a target's plan and the reason for each choice: GPU, arch, CUDA variant, torch, ..."""
    from pinner import pipeline, report

    m = pipeline.load(matrix)
    results = pipeline.plan_all(m, (target,))
    if json_out or results[0][1].plan is not None:
        print(report.explain(m, results[0], as_json=json_out), end="")
    pipeline.require_plans(results)


EngineOpt = Annotated[str, typer.Option("--resolver", help="Resolver engine: uv or pip-tools.")]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Resolve from the lock and the caches only; no network.")
]


@app.command()
def lock(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    upgrade: Annotated[bool, typer.Option("--upgrade", "-U", help="Newest versions, not the lock's.")] = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
) -> None:
    """Resolve every target (or the named ones) and write pinner.lock."""
    from pinner import pipeline
    from pinner.progress import Progress

    m = pipeline.load(matrix)
    with Progress(total=len(target or m.targets)) as progress:
        lockfile, resolved = pipeline.lock_targets(
            m, target or (), engine=resolver, upgrade=upgrade, offline=offline, progress=progress
        )
    _print_findings(lockfile)
    print(f"wrote {pipeline._shown(m.lock, m.root)}: {len(lockfile.targets)} targets "
          f"({', '.join(resolved) or 'none'} resolved)")


@app.command()
def check(
    matrix: MatrixOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Generated folder (default: the matrix's out).")] = None,  # noqa: UP045
    diff: Annotated[bool, typer.Option("--diff", help="Show how each stale generated file would change.")] = False,
) -> None:
    """Exit 0 when pinner.lock and the generated files match their inputs; 1, listing each stale
    file and the command that refreshes it, otherwise. Offline; runs no resolver."""
    from pinner.cli import run_check

    run_check(matrix, out, diff=diff)


@app.command()
def generate(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: pinned/).")] = None,  # noqa: UP045
    installer: Annotated[str, typer.Option("--installer", help="pip or uv, in the rendered recipes.")] = "pip",
    frozen: Annotated[bool, typer.Option("--frozen", help="Render from the lock; fail if it is stale.")] = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
) -> None:
    """Lock when needed, then render constraints, requirements, Dockerfile, install.sh, Modal
    image and verify step for each target into OUT/<target>/."""
    from pinner import pipeline
    from pinner.progress import Progress

    m = pipeline.load(matrix)
    with Progress(total=len(target or m.targets)) as progress:
        written = pipeline.generate(m, target or (), out=out, installer=installer, frozen=frozen,
                                    engine=resolver, offline=offline, progress=progress)
    root = out or m.out
    print(f"generated {pipeline._shown(root, m.root)}/: {len(written)} files written"
          + ("" if written else " (all up to date)"))


def _print_findings(lockfile: object) -> None:
    for tl in getattr(lockfile, "targets", ()):
        for f in tl.findings:
            print(f"{f.severity}: {tl.plan.target.name}: {f.message}", file=sys.stderr)
