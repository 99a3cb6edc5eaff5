"""The typer application: one function per command; each parses, calls pipeline stages, prints.

Heavy modules (packaging, jinja2, tomlkit, the engines) are imported inside the commands that need
them. `pinner.cli.main` is the entry point and the only exit.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pinner import __version__

if TYPE_CHECKING:
    from pinner.model import Matrix

app = typer.Typer(
    name="pinner",
    help="Turn a GPU hardware matrix into install recipes that cannot drift.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

MatrixOpt = Annotated[
    Path | None,
    typer.Option(
        "--matrix", "-m", help="Matrix file (default: ./pinner.toml, \\[tool.pinner], presets)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TargetsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target", "-t", metavar="NAME", help="Target name (repeatable; default: every target)."
    ),
]


def _version(value: bool) -> None:
    if value:
        from pinner.knowledge import knowledge_as_of

        print(f"pinner {__version__} (knowledge {knowledge_as_of()})")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """pinner: GPU-aware, hash-locked install recipes."""


def _load(matrix: Path | None) -> "Matrix":
    """The matrix, saying once which requirements a default chose."""
    from pinner import pipeline

    m = pipeline.load(matrix)
    for note in m.notes:
        print(f"note: {note}", file=sys.stderr)
    return m


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

    m = _load(matrix)
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

    m = _load(matrix)
    results = pipeline.with_resolution(m, pipeline.plan_all(m, (target,)))
    if json_out or results[0][1].plan is not None:
        print(report.explain(m, results[0], as_json=json_out), end="")
    pipeline.require_plans(results)


EngineOpt = Annotated[str, typer.Option("--resolver", help="Resolver engine: uv or pip-tools.")]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Seconds one resolver run may take (0: no limit)."),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Resolve from the lock and the caches only; no network.")
]


@app.command()
def lock(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", "-U", help="Newest versions, not the lock's.")
    ] = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 900,
) -> None:
    """Resolve every target (or the named ones) and write pinner.lock."""
    from pinner import pipeline
    from pinner.progress import Progress

    m = _load(matrix)
    with Progress(total=len(target or m.targets)) as progress:
        result = pipeline.lock_targets(
            m,
            target or (),
            engine=resolver,
            upgrade=upgrade,
            offline=offline,
            progress=progress,
            timeout=timeout,
            always_note=True,  # `pinner lock` names ignored variables even with nothing to do
        )
    _print_notes(result.notes)
    _print_findings(result.lockfile)
    if result.lockfile.targets:
        print(
            f"wrote {pipeline._shown(m.lock, m.root)}: {len(result.lockfile.targets)} targets "
            f"({', '.join(result.resolved) or 'none'} resolved)"
        )
    pipeline.raise_failures(result)


@app.command()
def check(
    matrix: MatrixOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Generated folder (default: the matrix's out).")
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show how each stale generated file would change.")
    ] = False,
) -> None:
    """Exit 0 when pinner.lock and the generated files match their inputs; 1, listing each stale
    file and the command that refreshes it, otherwise. Offline; runs no resolver."""
    from pinner.cli import run_check

    run_check(matrix, out, diff=diff)


@app.command()
def generate(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: pinned/).")
    ] = None,
    installer: Annotated[
        str, typer.Option("--installer", help="pip or uv, in the rendered recipes.")
    ] = "pip",
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Render from the lock; fail if it is stale.")
    ] = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 900,
) -> None:
    """Lock when needed, then render constraints, requirements, Dockerfile, install.sh, Modal
    image and verify step for each target into OUT/<target>/."""
    from pinner import pipeline
    from pinner.progress import Progress

    m = _load(matrix)
    notes: list[str] = []
    with Progress(total=len(target or m.targets)) as progress:
        written = pipeline.generate(
            m,
            target or (),
            out=out,
            installer=installer,
            frozen=frozen,
            engine=resolver,
            offline=offline,
            progress=progress,
            timeout=timeout,
            notes=notes,
        )
    _print_notes(notes)
    root = out or m.out
    print(
        f"generated {pipeline._shown(root, m.root)}/: {len(written)} files written"
        + ("" if written else " (all up to date)")
    )


def _print_notes(notes: list[str]) -> None:
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)


def _print_findings(lockfile: object) -> None:
    seen: set[str] = set()  # a note with the same words for many targets is printed once per run
    for tl in getattr(lockfile, "targets", ()):
        for f in tl.findings:
            if f.severity == "note" and f.message in seen:
                continue
            seen.add(f.message)
            print(f"{f.severity}: {tl.plan.target.name}: {f.message}", file=sys.stderr)


# --- update, init, verify, doctor (issue 6) ------------------------------------------------------


@app.command()
def update(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    pr_body: Annotated[
        Path | None,
        typer.Option("--pr-body", help="Write a pull-request body (Markdown) to this file."),
    ] = None,
    json_out: JsonOpt = False,
    resolver: EngineOpt = "uv",
) -> None:
    """Re-resolve to the newest versions the ranges, the knowledge and the extensions allow;
    rewrite pinner.lock and the generated files; describe what moved (and what was held back)."""
    import json

    from pinner import diff, pipeline
    from pinner.errors import ConfigError
    from pinner.output import write_text_atomic
    from pinner.progress import Progress

    m = _load(matrix)
    if pr_body is not None and (
        (pr_body.exists() and not pr_body.is_file())
        or (pr_body.parent.exists() and not pr_body.parent.is_dir())
    ):  # refused before anything is resolved or written
        msg = f"--pr-body: {pr_body} is not a regular file; give the path of a Markdown file"
        raise ConfigError(msg)
    with Progress(total=len(target or m.targets)) as progress:
        changes, written = pipeline.update(m, target or (), engine=resolver, progress=progress)
    if pr_body is not None:
        write_text_atomic(pr_body, diff.pr_body(changes))
    if json_out:
        data = diff.to_json(changes) | {"written": [pipeline._shown(p, m.root) for p in written]}
        print(json.dumps(data, indent=2))
        return
    if changes.empty:
        n = len(changes.targets)
        print(
            f"pinner update: no changes ({n} target{'s' if n != 1 else ''} at the newest "
            "versions allowed)"
        )
    else:
        for line in diff.summary(changes):
            print(line)
        print(
            f"wrote {pipeline._shown(m.lock, m.root)}"
            + (f" and {len(written)} generated files" if written else "")
        )
    if pr_body is not None:
        print(f"pull-request body: {pr_body}")


@app.command()
def init(
    target: TargetsOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace pinner.toml and the workflow (numbered backups are kept)."
        ),
    ] = False,
    no_workflow: Annotated[
        bool, typer.Option("--no-workflow", help="Write no GitHub workflow.")
    ] = False,
    no_hooks: Annotated[
        bool, typer.Option("--no-hooks", help="Leave .pre-commit-config.yaml alone.")
    ] = False,
    hooks: Annotated[
        str,
        typer.Option(
            "--hooks",
            help="remote: pinner's repository at this version's tag; local: a `repo: local` "
            "entry that runs the project's own pinner.",
        ),
    ] = "remote",
    hook_repo: Annotated[
        str,
        typer.Option(
            "--hook-repo",
            help="Repository URL of the pre-commit hooks (default: pinner's Project-URL).",
        ),
    ] = "",
) -> None:
    """Add what is missing of pinner.toml (from the presets), a .pre-commit-config.yaml entry
    and a weekly GitHub workflow that opens one pull request with `pinner update`."""
    from pinner import init as init_mod
    from pinner.errors import ConfigError

    if hooks not in ("remote", "local"):
        msg = f"--hooks: {hooks!r} is not remote or local"
        raise ConfigError(msg)
    options = init_mod.InitOptions(
        force=force,
        workflow=not no_workflow,
        hooks=None if no_hooks else ("local" if hooks == "local" else "remote"),
        hook_repo=hook_repo,
    )
    for line in init_mod.init_project(Path.cwd(), target or (), options):
        print(line)


@app.command()
def verify(
    target: Annotated[str, typer.Option("--target", "-t", help="The target to verify.")],
    lock_path: Annotated[
        Path | None,
        typer.Option("--lock", help="Lock file (default: the matrix's, ./pinner.lock)."),
    ] = None,
    matrix: MatrixOpt = None,
    python: Annotated[
        str | None,
        typer.Option("--python", help="Check this interpreter's environment (default: pinner's)."),
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Require a visible GPU (the smoke test runs on it).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check that the environment is what the lock says: distributions, torch's CUDA build, GPU
    arch, driver and a CUDA smoke test, numpy, compiled modules. Exit 1 on any failure."""
    import json

    from pinner import pipeline, verify_checks
    from pinner import verify as verify_mod
    from pinner.errors import CheckFailed

    path = lock_path if lock_path is not None else pipeline.load(matrix).lock
    expected, results = verify_mod.verify_target(path, target, python=python, gpu=gpu)
    failed = [r for r in results if r["status"] == verify_checks.FAIL]
    if not any(r["status"] in (verify_checks.OK, verify_checks.FAIL) for r in results):
        msg = f"verify {target}: no check ran; nothing was verified"
        raise CheckFailed(msg)
    if json_out:
        print(
            json.dumps(
                {"target": target, "lock": str(path), "ok": not failed, "results": results},
                indent=2,
            )
        )
    else:
        print(verify_checks.report(results, expected["target"]), end="")
    if failed:
        msg = f"verify {target}: {len(failed)} check{'s' if len(failed) != 1 else ''} failed"
        raise CheckFailed(msg)


@app.command()
def doctor(matrix: MatrixOpt = None, json_out: JsonOpt = False) -> None:
    """Read this host's GPUs and driver (nvidia-smi), name the preset and matrix targets that fit,
    and warn about targets whose GPU or CUDA build this host cannot run."""
    import json

    from pinner import doctor as doctor_mod
    from pinner import pipeline
    from pinner.errors import CheckFailed

    diagnosis = pipeline.doctor(matrix)
    if json_out:
        print(json.dumps(doctor_mod.to_json(diagnosis), indent=2))
    else:
        print(doctor_mod.report(diagnosis), end="")
    if diagnosis.errors:
        raise CheckFailed(
            diagnosis.errors[0]
            if len(diagnosis.errors) == 1
            else f"{len(diagnosis.errors)} targets cannot run on this host"
        )
