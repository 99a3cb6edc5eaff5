"""What lock, generate and update say after a run: the change table, each finding once with
its targets, the closing line, or one JSON document (docs/json.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pinner import console
from pinner.commands import report

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from pinner.lock.diff import Changes
    from pinner.model import Finding, Matrix
    from pinner.pipeline import LockResult, RunInfo


def lock_report(m: Matrix, result: LockResult, *, json_out: bool, dry_run: bool) -> None:
    """`lock`'s output: the JSON document, or notes, findings, the change table and one line."""
    from pinner import pipeline
    from pinner.lock.diff import diff_locks

    lock_name = pipeline._shown(m.lock, m.root)
    changes = diff_locks(result.previous, result.lockfile)
    findings = [*result.findings, *(f for t in result.lockfile.targets for f in t.findings)]
    if json_out:
        print(
            console.dump_json(
                {
                    "lock": lock_name,
                    "dry_run": dry_run,
                    "written": result.changed and not dry_run,
                    "changed": result.changed,
                    "resolved": result.resolved,
                    "failed": result.failed,
                    "changes": changes_json(changes),
                    "findings": report.findings_json(findings),
                    "notes": list(dict.fromkeys(result.notes)),
                }
            ),
            end="",
        )
    else:
        print_notes(result.notes)
        print_findings(findings)
        print_changes(changes)
        if result.lockfile.targets:
            console.out(lock_line(lock_name, result, dry_run=dry_run))


def lock_locked(m: Matrix, names: list[str], *, json_out: bool) -> None:
    """`lock --locked`: resolve nothing; exit 1 when the lock would change for these targets."""
    from pinner import pipeline
    from pinner.errors import StaleError

    lock_name = pipeline._shown(m.lock, m.root)
    if not json_out:
        pipeline.require_locked(m, names)
        n = len(names)
        console.out(f"{lock_name} matches its inputs ({n} target{'s' if n != 1 else ''})")
        return
    problems = pipeline.check_lock(m, list(names))
    rows = [{"path": p, "problem": what, "refresh": cmd} for p, what, cmd in problems]
    print(console.dump_json({"lock": lock_name, "fresh": not problems, "problems": rows}), end="")
    if problems:
        msg = f"--locked: {lock_name} does not match its inputs (listed in the JSON on stdout)"
        raise StaleError(msg)


def lock_line(lock_name: str, result: LockResult, *, dry_run: bool) -> str:
    n = len(result.lockfile.targets)
    resolved = f"{', '.join(result.resolved) or 'none'} resolved"
    if not result.changed:
        return f"{lock_name}: no changes ({n} target{'s' if n != 1 else ''}; {resolved})"
    verb = "would write" if dry_run else "wrote"
    return f"{verb} {lock_name}: {n} target{'s' if n != 1 else ''} ({resolved})"


def generate_report(m: Matrix, root: Path, info: RunInfo, *, json_out: bool, dry_run: bool) -> None:
    from pinner import pipeline

    shown = [pipeline._shown(p, m.root) for p in info.written]
    removed = [pipeline._shown(p, m.root) for p in info.removed]
    where = pipeline._shown(root, m.root)
    if json_out:
        lock = info.lock
        doc = {
            "out": where,
            "dry_run": dry_run,
            "written": [] if dry_run else shown,
            "would_write": shown if dry_run else [],
            "removed": [] if dry_run else removed,
            "would_remove": removed if dry_run else [],
            "lock": pipeline._shown(m.lock, m.root),
            "lock_changed": info.lock_changed,
            "resolved": lock.resolved if lock else [],
            "failed": lock.failed if lock else {},
            "findings": report.findings_json(info.findings),
            "warnings": info.warnings,
            "notes": list(dict.fromkeys(info.notes)),
        }
        print(console.dump_json(doc), end="")
        return
    print_notes(info.notes)
    print_findings(info.findings, info.warnings)
    from pinner.safe import comment  # a folder named with a newline is shown on one line

    shown, where = [comment(p) for p in shown], comment(where)
    for path in shown:
        console.detail(f"{'would write' if dry_run else 'wrote'} {path}")
    for path in removed:  # said at any verbosity but -q: a file disappears
        console.out(f"{'would remove' if dry_run else 'removed'} {path} (an index no longer used)")
    if dry_run:
        lock_name = pipeline._shown(m.lock, m.root)
        also = f" and {lock_name}" if info.lock_changed else ""
        console.out(f"generate --dry-run: would write {len(shown)} files in {where}/{also}")
        return
    console.out(
        f"generated {where}/: {len(shown)} files written"
        + ("" if shown or removed else " (all up to date)")
    )


def print_notes(notes: list[str]) -> None:
    for note in dict.fromkeys(notes):
        console.note(note)


def print_findings(findings: Sequence[Finding], warnings: Sequence[str] = ()) -> None:
    """Each distinct message once, naming its targets: `warning: a100, rtx5090: ...`."""
    for text in warnings:
        console.warn(text)
    for severity, message, names in report.grouped_findings(findings):
        text = f"{', '.join(names)}: {message}"
        if severity == "note":
            console.note(text)
        else:
            console.warn(text)


def print_changes(changes: Changes) -> None:
    for line in report.change_table(changes, sys.stdout):
        console.out(line)


def changes_json(changes: Changes) -> dict[str, Any]:
    from pinner.lock import diff

    return diff.to_json(changes)


def update_summary(changes: Changes, m: Matrix, shown: list[str], *, dry_run: bool) -> None:
    from pinner import pipeline

    lock_name = pipeline._shown(m.lock, m.root)
    if changes.empty:
        n = len(changes.targets)
        console.out(
            f"pinner update: no changes ({n} target{'s' if n != 1 else ''} at the newest "
            "versions allowed)"
        )
        return
    print_changes(changes)
    verb = "would write" if dry_run else "wrote"
    files = f" and {len(shown)} generated files" if shown else ""
    console.out(f"{verb} {lock_name}{files}")
