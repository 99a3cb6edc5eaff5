"""The command line: parse arguments, call pipeline stages, print. `main(argv) -> int` is the only exit.

Heavy modules (packaging, jinja2, tomlkit, the engines) are imported inside the commands that need
them, so that `pinner check` stays fast enough for a pre-commit hook.
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 a failed check, 2 a usage or config error)."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="pinner")
    except PinnerError as e:
        print(f"pinner: error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:  # typer: --help -> 0, usage errors -> 2
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("pinner: interrupted", file=sys.stderr)
        return 130
    return 0
