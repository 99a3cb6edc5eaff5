"""diff: (old LockFile, new LockFile) -> Changes, and Changes -> a pull-request body in Markdown.

Pure: no files, no network. Per target it lists each package that was added, removed, upgraded,
downgraded or rebuilt (same version, another build: a new local tag such as +cu128, or other
files), the plan-level moves a reviewer must see (torch build, minimum driver, base image, image
digests under pin-images), and what held packages back, read from the new plan's own reasons.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pinner.model import LockFile, Pin, Plan, TargetLock

Kind = Literal["major", "minor", "patch", "added", "removed", "build"]
Status = Literal["changed", "unchanged", "added", "removed"]

# The torch family opens every table, in this order; the rest of the torch layer (its CUDA
# libraries) follows, then every other package alphabetically.
FAMILY_ORDER = ("torch", "torchvision", "torchaudio", "triton")
NO_CHANGES = (
    "No changes: every target is at the newest versions its ranges, pinner's knowledge and its "
    "extensions allow."
)
_TORCH_MINOR = re.compile(r"\btorch (\d+)\.(\d+)")


@dataclass(frozen=True, kw_only=True)
class PackageChange:
    name: str
    old: str  # "" when added
    new: str  # "" when removed
    kind: Kind
    downgrade: bool
    torch_family: bool  # installed by the torch layer


@dataclass(frozen=True, kw_only=True)
class PlanChange:
    what: str  # "torch build", "minimum driver", "base image", "extension flash-attn", "image X"
    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class TargetChanges:
    target: str
    status: Status
    packages: tuple[PackageChange, ...]
    plan: tuple[PlanChange, ...]
    held_back: tuple[str, ...]  # why newer versions were not taken, from the new plan


@dataclass(frozen=True, kw_only=True)
class Changes:
    targets: tuple[TargetChanges, ...]

    @property
    def empty(self) -> bool:
        return all(t.status == "unchanged" for t in self.targets)


def diff_locks(old: LockFile | None, new: LockFile, names: Sequence[str] = ()) -> Changes:
    """What moved between two locks, per target (every target of either lock, or `names`)."""
    before = {t.plan.target.name: t for t in (old.targets if old else ())}
    after = {t.plan.target.name: t for t in new.targets}
    wanted = list(names) or sorted(set(before) | set(after))
    return Changes(targets=tuple(_target(n, before.get(n), after.get(n)) for n in wanted))


def _target(name: str, old: TargetLock | None, new: TargetLock | None) -> TargetChanges:
    old_pins = {p.name: p for p in old.pins} if old else {}
    new_pins = {p.name: p for p in new.pins} if new else {}
    packages = []
    for pkg in set(old_pins) | set(new_pins):
        change = package_change(old_pins.get(pkg), new_pins.get(pkg))
        if change is not None:
            packages.append(change)
    packages.sort(key=_order)
    plan = _plan_changes(old.plan, new.plan) if old and new else ()
    status: Status = "changed" if packages or plan else "unchanged"
    if old is None and new is not None:
        status = "added"
    elif new is None and old is not None:
        status = "removed"
    return TargetChanges(
        target=name,
        status=status,
        packages=tuple(packages),
        plan=plan,
        held_back=(
            held_back(new.plan)
            + tuple(
                f.message for f in new.findings if f.code in ("held-back", "newer-than-knowledge")
            )
            if new
            else ()
        ),
    )


def package_change(old: Pin | None, new: Pin | None) -> PackageChange | None:
    """One package's move, None when it did not move."""
    if old is None and new is None:
        return None
    family = any(
        p is not None and (p.layer == "torch" or p.name in FAMILY_ORDER) for p in (old, new)
    )
    if old is None or new is None:
        pin = new or old
        assert pin is not None
        return PackageChange(
            name=pin.name,
            old=old.version if old else "",
            new=new.version if new else "",
            kind="added" if old is None else "removed",
            downgrade=False,
            torch_family=family,
        )
    same_files = (old.hashes, old.url, old.source) == (new.hashes, new.url, new.source)
    if old.version == new.version and same_files:
        return None
    kind, downgrade = version_kind(old.version, new.version)
    return PackageChange(
        name=new.name,
        old=old.version,
        new=new.version,
        kind=kind,
        downgrade=downgrade,
        torch_family=family,
    )


def version_kind(old: str, new: str) -> tuple[Kind, bool]:
    """(major | minor | patch | build, downgrade?) for two versions of one package."""
    from packaging.version import InvalidVersion, Version

    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        ra, rb = _numbers(old), _numbers(new)
        if ra == rb:
            return "build", False
        return _release_kind(ra, rb), rb < ra
    if a.public == b.public:
        return "build", False
    kind = "major" if a.epoch != b.epoch else _release_kind(a.release, b.release)
    return kind, b < a


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+", maxsplit=1)[0]))


def _release_kind(a: tuple[int, ...], b: tuple[int, ...]) -> Kind:
    pad_a, pad_b = (*a, 0, 0, 0)[:3], (*b, 0, 0, 0)[:3]
    if pad_a[0] != pad_b[0]:
        return "major"
    if pad_a[1] != pad_b[1]:
        return "minor"
    return "patch"


def _order(change: PackageChange) -> tuple[int, int, str]:
    if change.name in FAMILY_ORDER:
        return (0, FAMILY_ORDER.index(change.name), change.name)
    return (1 if change.torch_family else 2, 0, change.name)


def _plan_changes(old: Plan, new: Plan) -> tuple[PlanChange, ...]:
    out = []
    pairs = [
        ("torch build", _build(old), _build(new)),
        ("minimum driver", old.min_driver or "none", new.min_driver or "none"),
        ("base image", old.base_image or "none", new.base_image or "none"),
    ]
    old_ext = {e.name: f"{e.version} ({e.strategy})" for e in old.extensions}
    new_ext = {e.name: f"{e.version} ({e.strategy})" for e in new.extensions}
    for name in sorted(set(old_ext) | set(new_ext)):
        pairs.append((f"extension {name}", old_ext.get(name, "none"), new_ext.get(name, "none")))
    old_images, new_images = dict(old.images), dict(new.images)  # pin-images digests
    for ref in sorted(set(old_images) | set(new_images)):
        pairs.append((f"image {ref}", old_images.get(ref, "none"), new_images.get(ref, "none")))
    for what, a, b in pairs:
        if a != b:
            out.append(PlanChange(what=what, old=a, new=b))
    return tuple(out)


def _build(plan: Plan) -> str:
    torch = plan.torch
    where = "PyPI" if torch.on_pypi else "PyTorch index"
    cuda = f"CUDA {torch.cuda}" if torch.cuda else "CPU"
    return f"torch {torch.pin} ({torch.variant}, {cuda}, {where})"


def held_back(plan: Plan) -> tuple[str, ...]:
    """Why the plan did not take newer releases, in its own words.

    torch: a rejected variant whose reason names a newer torch minor than the chosen one (an
    extension without a wheel for it, the matrix's range, the driver, ...), else an extension's
    "torch stays at" reason. Other packages: the upper bounds the plan adds (numpy<2,
    transformers<X) with their reasons.
    """
    notes: list[str] = []
    chosen = _minor(plan.torch.version)
    newer = []
    for rejection in plan.rejected:
        if rejection.reason.startswith("fits with"):
            continue
        minors = [(int(a), int(b)) for a, b in _TORCH_MINOR.findall(rejection.reason)]
        if minors and max(minors) > chosen:
            newer.append((max(minors), rejection.reason))
    if newer:
        top = max(m for m, _ in newer)
        reasons = list(dict.fromkeys(r for m, r in newer if m == top))
        notes.append(f"torch stays at {plan.torch.pin}: " + "; ".join(reasons))
    else:
        for ext in plan.extensions:
            if "torch stays at" in ext.why:
                notes.append(f"{ext.name}: " + ext.why[ext.why.index("torch stays at") :])
    for constraint in plan.constraints:
        if any(op in constraint.requirement for op in ("<", "~=", "==")):  # an upper bound
            notes.append(f"{constraint.requirement}: {constraint.why}")
    return tuple(notes)


def _minor(version: str) -> tuple[int, int]:
    parts = (*_numbers(version), 0, 0)
    return parts[0], parts[1]


# --- rendering -----------------------------------------------------------------------------------


def counts(target: TargetChanges) -> str:
    """'2 upgraded, 1 added' (empty when nothing moved)."""
    tally: dict[str, int] = {}
    for change in target.packages:
        word: str
        if change.kind in ("added", "removed"):
            word = change.kind
        elif change.kind == "build":
            word = "rebuilt"
        else:
            word = "downgraded" if change.downgrade else "upgraded"
        tally[word] = tally.get(word, 0) + 1
    order = ("upgraded", "downgraded", "rebuilt", "added", "removed")
    return ", ".join(f"{tally[w]} {w}" for w in order if w in tally)


def summary(changes: Changes) -> list[str]:
    """One line per target, for the terminal."""
    lines = []
    for t in changes.targets:
        if t.status == "unchanged":
            lines.append(f"{t.target}: no changes")
        elif t.status in ("added", "removed"):
            lines.append(f"{t.target}: target {t.status} ({len(t.packages)} packages)")
        else:
            parts = [p for p in (counts(t), _plan_summary(t)) if p]
            lines.append(f"{t.target}: " + "; ".join(parts))
    return lines


def _plan_summary(target: TargetChanges) -> str:
    return ", ".join(f"{c.what} {c.old} -> {c.new}" for c in target.plan)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "—"


def _kind(change: PackageChange) -> str:
    return f"{change.kind} (downgrade)" if change.downgrade else change.kind


def pr_body(changes: Changes) -> str:
    """The pull-request body: one table per target, torch family first, then held-back notes."""
    lines = ["## pinner update", ""]
    if changes.empty:
        return "\n".join([*lines, NO_CHANGES, ""])
    moved = [t for t in changes.targets if t.status != "unchanged"]
    lines.append(
        f"`pinner update` re-resolved {len(changes.targets)} target"
        f"{'s' if len(changes.targets) != 1 else ''}; "
        f"{len(moved)} changed. Review `pinner.lock` and the generated files; "
        "CI's `pinner check` proves they match."
    )
    for t in changes.targets:
        lines += ["", f"### {t.target}", ""]
        if t.status == "unchanged":
            lines.append("No changes.")
        else:
            if t.status in ("added", "removed"):
                lines += [f"Target {t.status}.", ""]
            if t.plan:
                lines += [f"- **{c.what}**: {c.old} → {c.new}" for c in t.plan]
                if any(c.what == "minimum driver" for c in t.plan):
                    lines.append("- check that every host of this target runs that driver")
                lines.append("")
            if t.packages:
                lines += ["| package | old | new | kind |", "|---|---|---|---|"]
                lines += [
                    f"| {_cell(c.name)} | {_cell(c.old)} | {_cell(c.new)} | {_kind(c)} |"
                    for c in t.packages
                ]
        if t.held_back:
            lines += ["", "Held back:"] + [f"- {note}" for note in t.held_back]
    lines += ["", "---", "Generated by `pinner update`. Refresh locally with `pinner update`."]
    return "\n".join(lines) + "\n"


def to_json(changes: Changes) -> dict[str, Any]:
    return {"changed": not changes.empty, **dataclasses.asdict(changes)}
