"""The typer application: one function per command; each parses, calls pipeline stages, prints.

Heavy modules (packaging, jinja2, tomlkit, the engines) are imported inside the commands that need
them. `pinner.cli.main` is the entry point and the only exit.
"""

import os
from pathlib import Path
from typing import Annotated

import typer

from pinner import __version__
from pinner.commands import report, run, summary
from pinner.commands.run import load as _load
from pinner.commands.run import packages as _packages
from pinner.commands.run import progress as _progress

app = typer.Typer(
    name="pinner",
    help="Turn a GPU hardware matrix into install recipes that cannot drift.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

if "_PINNER_COMPLETE" in os.environ:  # the shell asks for completions (`pinner completion`)
    from typer._completion_classes import completion_init  # what add_completion would do

    completion_init()

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
        from pinner.knowledge.knowledge import knowledge_as_of

        print(f"pinner {__version__} (knowledge {knowledge_as_of()})")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    # -q, -v and --color are global, before or after the command; `cli.main` takes them off the
    # arguments first (so `check`'s fast path sees them too). Declared here for --help only.
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors and warnings only (any command).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Also say which files were read and written."),
    ] = False,
    color: Annotated[
        str,
        typer.Option(
            "--color",
            metavar="auto|always|never",
            help="Colour (auto: a terminal, unless NO_COLOR is set or FORCE_COLOR is).",
        ),
    ] = "auto",
) -> None:
    """pinner: GPU-aware, hash-locked install recipes."""


@app.command()
def gpus(json_out: JsonOpt = False) -> None:
    """List the GPUs pinner knows, with their compute capability."""
    from pinner.knowledge.knowledge import load_knowledge

    print(report.gpus(load_knowledge(), as_json=json_out), end="")


@app.command()
def completion(
    shell: Annotated[str, typer.Argument(metavar="bash|zsh|fish", help="The shell.")],
) -> None:
    """Print the shell completion script: `eval "$(pinner completion bash)"` in ~/.bashrc,
    `pinner completion fish > ~/.config/fish/completions/pinner.fish`."""
    from typer._completion_shared import get_completion_script

    from pinner.errors import ConfigError

    if shell not in ("bash", "zsh", "fish"):
        msg = f"completion: {shell!r} is not one of bash, zsh, fish"
        raise ConfigError(msg)
    print(get_completion_script(prog_name="pinner", complete_var="_PINNER_COMPLETE", shell=shell))


@app.command()
def targets(matrix: MatrixOpt = None, json_out: JsonOpt = False) -> None:
    """List the matrix's targets, each resolved to the torch build it gets."""
    from pinner import pipeline

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
    run.explain(target=target, matrix=matrix, json_out=json_out)


EngineOpt = Annotated[str, typer.Option("--resolver", help="Resolver engine: uv or pip-tools.")]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Seconds one resolver run may take (0: no limit)."),
]
JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Targets resolved at once (default 4). 1: one uv client on the network at a time, "
        "for a network whose DNS drops simultaneous queries (5 s stalls).",
    ),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Resolve from the lock and the caches only; no network.")
]


UpgradePackageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--upgrade-package",
        "-P",
        metavar="NAME",
        help="Resolve this package afresh; keep every other package's locked version (repeatable).",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="List what would change; write nothing.")
]


@app.command()
def lock(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", "-U", help="Newest versions, not the lock's.")
    ] = False,
    upgrade_package: UpgradePackageOpt = None,
    locked: Annotated[
        bool,
        typer.Option(
            "--locked",
            help="Resolve nothing; exit 1 when the lock does not match the targets' inputs.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 900,
    jobs: JobsOpt = 4,
    json_out: JsonOpt = False,
) -> None:
    """Resolve every target (or the named ones) and write pinner.lock."""
    run.lock(
        target=target, matrix=matrix, upgrade=upgrade, upgrade_package=upgrade_package,
        locked=locked, dry_run=dry_run, resolver=resolver, offline=offline, timeout=timeout,
        json_out=json_out, jobs=jobs,
    )  # fmt: skip


@app.command()
def check(
    matrix: MatrixOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Generated folder (default: the matrix's out).")
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show how each stale generated file would change.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Exit 0 when pinner.lock and the generated files match their inputs; 1, listing each stale
    file and the command that refreshes it, otherwise. Offline; runs no resolver."""
    from pinner.commands.check import run_check

    run_check(matrix, out, diff=diff, as_json=json_out)


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
    locked: Annotated[
        bool,
        typer.Option(
            "--locked",
            help="Render from the lock without resolving; exit 1 when it does not match its "
            "inputs.",
        ),
    ] = False,
    frozen: Annotated[
        bool,
        typer.Option(
            "--frozen", help="Render from the lock as it is: no resolving, no staleness check."
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    resolver: EngineOpt = "uv",
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 900,
    jobs: JobsOpt = 4,
    json_out: JsonOpt = False,
) -> None:
    """Lock when needed, then render constraints, requirements, Dockerfile, install.sh, Modal
    image and verify step for each target into OUT/<target>/."""
    run.generate(
        target=target, matrix=matrix, out=out, installer=installer, locked=locked, frozen=frozen,
        dry_run=dry_run, resolver=resolver, offline=offline, timeout=timeout, json_out=json_out,
        jobs=jobs,
    )  # fmt: skip


# --- update, init, verify, doctor (issue 6) ------------------------------------------------------


@app.command()
def update(
    target: TargetsOpt = None,
    matrix: MatrixOpt = None,
    upgrade_package: UpgradePackageOpt = None,
    pr_body: Annotated[
        Path | None,
        typer.Option("--pr-body", help="Write a pull-request body (Markdown) to this file."),
    ] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    resolver: EngineOpt = "uv",
    jobs: JobsOpt = 4,
) -> None:
    """Re-resolve to the newest versions the ranges, the knowledge and the extensions allow;
    rewrite pinner.lock and the generated files; describe what moved (and what was held back).
    With -P, only the named packages move."""
    from pinner import console, pipeline
    from pinner.errors import ConfigError
    from pinner.lock import diff
    from pinner.render.output import write_text_atomic

    m = _load(matrix)
    if pr_body is not None and (
        (pr_body.exists() and not pr_body.is_file())
        or (pr_body.parent.exists() and not pr_body.parent.is_dir())
    ):  # refused before anything is resolved or written
        msg = f"--pr-body: {pr_body} is not a regular file; give the path of a Markdown file"
        raise ConfigError(msg)
    info = pipeline.RunInfo()
    with _progress(len(target or m.targets)) as progress:
        changes, written = pipeline.update(
            m,
            target or (),
            engine=resolver,
            progress=progress,
            upgrade_packages=_packages(upgrade_package),
            dry_run=dry_run,
            info=info,
            jobs=jobs,
        )
    if pr_body is not None and not dry_run:
        write_text_atomic(pr_body, diff.pr_body(changes))
    shown = [pipeline._shown(p, m.root) for p in written]
    removed = [pipeline._shown(p, m.root) for p in info.removed]
    if json_out:
        data = diff.to_json(changes) | {
            "dry_run": dry_run,
            "written": [] if dry_run else shown,
            "would_write": shown if dry_run else [],
            "removed": [] if dry_run else removed,
            "would_remove": removed if dry_run else [],
            "failed": info.lock.failed if info.lock else {},
        }
        print(console.dump_json(data), end="")
    else:
        summary.print_notes(info.notes)
        summary.update_summary(changes, m, shown, dry_run=dry_run)
        for path in removed:
            console.out(
                f"{'would remove' if dry_run else 'removed'} {path} (an index no longer used)"
            )
        if pr_body is not None and not dry_run:
            console.out(f"pull-request body: {pr_body}")
    if info.lock is not None:
        pipeline.raise_failures(info.lock)


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
    from pinner.commands import init as init_mod
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
    from pinner import pipeline
    from pinner.errors import CheckFailed
    from pinner.verify import checks as verify_checks
    from pinner.verify import verify as verify_mod

    path = lock_path if lock_path is not None else pipeline.load(matrix).lock
    expected, results = verify_mod.verify_target(path, target, python=python, gpu=gpu)
    failed = [r for r in results if r["status"] == verify_checks.FAIL]
    if not any(r["status"] in (verify_checks.OK, verify_checks.FAIL) for r in results):
        msg = f"verify {target}: no check ran; nothing was verified"
        raise CheckFailed(msg)
    if json_out:
        from pinner.console import dump_json

        doc = {"target": target, "lock": str(path), "ok": not failed, "results": results}
        print(dump_json(doc), end="")
    else:
        print(verify_checks.report(results, expected["target"]), end="")
    if failed:
        msg = f"verify {target}: {len(failed)} check{'s' if len(failed) != 1 else ''} failed"
        raise CheckFailed(msg)


@app.command()
def doctor(matrix: MatrixOpt = None, json_out: JsonOpt = False) -> None:
    """Read this host's GPUs and driver (nvidia-smi), name the preset and matrix targets that fit,
    and warn about targets whose GPU or CUDA build this host cannot run."""
    from pinner import pipeline
    from pinner.commands import doctor as doctor_mod
    from pinner.errors import CheckFailed

    diagnosis = pipeline.doctor(matrix)
    if json_out:
        from pinner.console import dump_json

        print(dump_json(doctor_mod.to_json(diagnosis)), end="")
    else:
        print(doctor_mod.report(diagnosis), end="")
    if diagnosis.errors:
        raise CheckFailed(
            diagnosis.errors[0]
            if len(diagnosis.errors) == 1
            else f"{len(diagnosis.errors)} targets cannot run on this host"
        )


# -q, -v and --color are taken off the arguments before typer sees them (`cli.main`), so no
# command declares them: each command's --help names them in its epilog.
GLOBAL_OPTIONS = (
    "Global options, before or after the command: -q/--quiet (errors and warnings only), "
    "-v/--verbose (also which matrix, lock and output folder were used, and each file written), "
    "--color auto|always|never (auto: colour on a terminal; NO_COLOR turns it off and "
    "FORCE_COLOR on)."
)
for _command in app.registered_commands:
    _command.epilog = _command.epilog or GLOBAL_OPTIONS
