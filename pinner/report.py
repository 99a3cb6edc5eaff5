"""Text and JSON views of plans and knowledge for the CLI. Pure: returns strings."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinner.knowledge import Knowledge
    from pinner.model import Finding, Matrix, Plan, PlanResult, Target


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def gpus(kb: Knowledge, *, as_json: bool) -> str:
    if as_json:
        return _json([dataclasses.asdict(g) | {"sm": g.sm} for g in kb.gpus])
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
    return f"targets of {source}\n" + _table(
        rows, ["target", "gpu", "python", "torch", "variant", "index"]
    )


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
