"""Text and JSON views of plans and knowledge for the CLI. Pure: returns strings."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pinner.knowledge.knowledge import Knowledge
    from pinner.lock.diff import Changes, TargetChanges
    from pinner.model import Finding, Matrix, Plan, PlanResult, Target


def _json(data: dict[str, Any]) -> str:
    from pinner.console import dump_json

    return dump_json(data)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def gpus(kb: Knowledge, *, as_json: bool) -> str:
    if as_json:
        return _json({"gpus": [dataclasses.asdict(g) | {"sm": g.sm} for g in kb.gpus]})
    rows = [
        [g.key, g.name, g.compute_capability, g.sm, g.architecture, ", ".join(g.nvidia_smi)]
        for g in sorted(kb.gpus, key=lambda g: (-float(g.compute_capability), g.key))
    ]
    return _table(rows, ["key", "name", "cc", "sm", "architecture", "nvidia-smi name"])


def plan_dict(plan: Plan) -> dict[str, Any]:
    data = dataclasses.asdict(plan)
    data["torch"]["pin"] = plan.torch.pin
    data["env"] = dict(plan.env)
    return data


def finding_dict(finding: Finding) -> dict[str, str]:
    return dataclasses.asdict(finding)


def bindings(target: Target, plan: Plan | None) -> dict[str, Any]:
    """What the matrix adds to a target's recipes: `apt` packages, `env` variables and the
    [indexes] tables that serve it (URL as written and, with a plan, for its torch variant; the
    packages bound to it; the variable that names a mirror)."""
    from pinner.load.matrix import index_env

    variant = plan.torch.variant if plan is not None else ""
    return {
        "apt": list(target.apt),
        "env": dict(target.env),
        "indexes": {
            name: {
                "url": url,
                "resolved": url.replace("{variant}", variant).rstrip("/") if variant else "",
                "packages": list(packages),
                "mirror": index_env(name),
            }
            for name, url, packages in target.indexes
        },
    }


def bindings_lines(target: Target, plan: Plan | None, indent: str = "  ") -> list[str]:
    """`bindings` as text, one line per binding; [] when the target has none."""
    import json

    data = bindings(target, plan)
    out = []
    if data["apt"]:
        out.append(f"{indent}apt: {', '.join(data['apt'])}")
    for name, value in data["env"].items():
        out.append(f"{indent}env: {name}={json.dumps(value, ensure_ascii=False)}")
    for name, index in data["indexes"].items():
        out.append(
            f"{indent}[indexes.{name}]: {', '.join(index['packages'])} from "
            f"{index['resolved'] or index['url']} (mirror: ${index['mirror']})"
        )
    return out


def targets(matrix: Matrix, results: list[tuple[Target, PlanResult]], *, as_json: bool) -> str:
    if as_json:
        return _json(
            {
                "matrix": str(matrix.path) if matrix.path else "presets",
                "targets": [
                    {
                        "name": t.name,
                        "target": dataclasses.asdict(t),
                        "plan": plan_dict(r.plan) if r.plan else None,
                        "findings": [finding_dict(f) for f in r.findings],
                        **bindings(t, r.plan),
                    }
                    for t, r in results
                ],
            }
        )
    rows = []
    for t, r in results:
        if r.plan is None:
            error = next(f for f in r.findings if f.severity == "error")
            rows.append([t.name, t.gpu, t.python, "-", "-", "error: " + error.code])
            continue
        p = r.plan
        where = "PyPI" if p.torch.on_pypi else p.index_url
        rows.append([t.name, p.gpu_name, t.python, p.torch.pin, p.torch.variant, where])
    source = str(matrix.path) if matrix.path else "built-in presets"
    extra = [
        line
        for t, r in results
        for line in (
            [f"  {t.name}:", *bindings_lines(t, r.plan, "    ")]
            if bindings_lines(t, r.plan)
            else []
        )
    ]
    table = _table(rows, ["target", "gpu", "python", "torch", "variant", "index"])
    more = "\nsystem packages, environment and [indexes] of the matrix:\n" if extra else ""
    return f"targets of {source}\n" + table + more + "".join(f"{x}\n" for x in extra)


def explain(matrix: Matrix, result: tuple[Target, PlanResult], *, as_json: bool) -> str:
    target, outcome = result
    if as_json:
        return _json(
            {
                "target": target.name,
                "matrix": str(matrix.path) if matrix.path else "presets",
                "plan": plan_dict(outcome.plan) if outcome.plan else None,
                "segments": [list(s) for s in outcome.segments],
                "findings": [finding_dict(f) for f in outcome.findings],
                **bindings(target, outcome.plan),
            }
        )
    plan = outcome.plan
    assert plan is not None
    out = [f"{target.name}  ({target.origin})", ""]
    for step in plan.steps:
        out.append(f"{step.topic:<11} {step.choice}")
        out.append(f"{'':<11} why: {step.why}")
        if step.source:
            out.append(f"{'':<11} source: {step.source}")
    if plan.constraints:
        out += ["", "constraints added to the resolution:"]
        for c in plan.constraints:
            out.append(f"  {c.requirement}  -- {c.why}")
            out.append(f"  {'':<{len(c.requirement)}}     source: {c.source}")
    if plan.env:
        out += ["", "environment:"] + [f"  {k}={v}" for k, v in plan.env]
    matrix_lines = bindings_lines(target, plan)
    if matrix_lines:
        out += ["", "from the matrix (system packages, environment, [indexes]):", *matrix_lines]
    if len(outcome.segments) > 1 or any(len(s) > 1 for s in outcome.segments):
        shown = [
            s[0] if len(s) == 1 else f"{s[-1]} .. {s[0]} ({len(s)} builds)"
            for s in outcome.segments[:8]
        ]
        more = f" and {len(outcome.segments) - 8} more" if len(outcome.segments) > 8 else ""
        out += [
            "",
            "fitting torch builds, in segments the resolver chooses within (preferred first):",
            *(f"  {i}. {text}" for i, text in enumerate(shown, 1)),
        ] + ([f"  ...{more}"] if more else [])
    if plan.rejected:
        out += ["", "rejected variants:"]
        out.append(
            _table([[r.variant, r.reason] for r in plan.rejected], ["variant", "reason"]).rstrip()
        )
    notes = [f for f in outcome.findings if f.severity != "error"]
    if notes:
        out += [""] + [
            f"{f.severity}: {f.message}" + (f"\n  fix: {f.fix}" if f.fix else "") for f in notes
        ]
    return "\n".join(out) + "\n"


# --- what lock, generate and update say after a run ---------------------------------------------


def grouped_findings(findings: Iterable[Finding]) -> list[tuple[str, str, list[str]]]:
    """(severity, message, targets): each distinct message once, with every target that has it,
    in the order first seen; warnings before notes."""
    groups: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        if f.severity == "error":
            continue
        names = groups.setdefault((f.severity, f.message), [])
        if f.target not in names:
            names.append(f.target)
    rows = [(sev, message, names) for (sev, message), names in groups.items()]
    return sorted(rows, key=lambda r: r[0] != "warning")  # stable: first seen within each


def findings_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The grouped findings for --json: one entry per distinct message."""
    first: dict[tuple[str, str], Finding] = {}
    for f in findings:
        first.setdefault((f.severity, f.message), f)
    return [
        {
            "severity": severity,
            "code": first[severity, message].code,
            "message": message,
            "targets": names,
            "source": first[severity, message].source,
        }
        for severity, message, names in grouped_findings(findings)
    ]


def change_table(changes: Changes, stream: TextIO) -> list[str]:
    """The terminal's change table after lock and update: a line per changed target (as
    `diff.summary` says it), then one per package: "transformers  5.23.0 → 5.24.0", added and
    removed packages marked; targets without changes are left out."""
    from pinner.console import arrow, paint
    from pinner.lock.diff import summary

    lines = []
    for target, head in zip(changes.targets, summary(changes), strict=True):
        if target.status == "unchanged":
            continue
        lines.append(head)
        if target.status == "changed":
            rows = _change_rows(target, arrow(stream))
            width = max(len(name) for name, _, _ in rows)
            lines += [
                f"  {name:<{width}}  {paint(text, style, stream) if style else text}"
                for name, text, style in rows
            ]
    return lines


def _change_rows(target: TargetChanges, to: str) -> list[tuple[str, str, str]]:
    """(name, change, colour) for the plan's moves, then each package."""
    rows = [(c.what, f"{c.old} {to} {c.new}", "") for c in target.plan]
    for c in target.packages:
        if c.kind == "added":
            rows.append((c.name, f"{c.new} (added)", "green"))
        elif c.kind == "removed":
            rows.append((c.name, f"{c.old} (removed)", "red"))
        elif c.kind == "build":
            rows.append((c.name, f"{c.old} {to} {c.new} (rebuilt)", ""))
        else:
            rows.append(
                (c.name, f"{c.old} {to} {c.new}" + (" (downgrade)" if c.downgrade else ""),
                 "yellow" if c.downgrade else "")
            )  # fmt: skip
    return rows
