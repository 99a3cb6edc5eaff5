"""Torch chosen together with the dependency graph.

Knowledge decides which torch builds fit a target; planning splits them into segments (one
index, one set of plan constraints each). The preferred segment is resolved first, and the
resolver picks torch within it together with the requirements. Another segment is resolved only
when the first fails, or holds a direct requirement back: a comparison run (the requirements
without pinner's torch bounds, what a bare `uv pip compile` picks) names the releases the graph
would take, and the segment holding the torch they want is tried. A user who writes `vllm` wants
a current vllm with the torch it supports, so the newest direct requirements (in file order) win
over the newest torch. Whatever stays held back is said, naming the requirement that bound it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pinner.errors import PinnerError, ResolveError
from pinner.model import Finding, Step
from pinner.resolve import canonical, resolve_target
from pinner.resolve.shared import settled

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pinner.model import Pin, Plan, PlanResult, Severity, TargetLock
    from pinner.resolve import Job, ResolvedPin, Resolver

TRIES = 4  # segments tried when the preferred ones fail
FAMILY = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class Tried:
    segment: tuple[str, ...]
    torch: str  # what the resolver chose, "" when it failed
    error: str


def choose(
    resolver: Resolver,
    result: PlanResult,
    *,
    make_job: Callable[[Plan, tuple[str, ...]], Job],
    replan: Callable[[str], Plan],
    inputs: str,
    free_job: Job | None,
    knowledge: tuple[str, str] = ("", ""),
) -> TargetLock:
    plan = result.plan
    assert plan is not None
    segments = result.segments or ((plan.torch.pin,),)
    tried: list[Tried] = []

    def attempt(index: int) -> TargetLock | None:
        segment = segments[index]
        try:
            start = plan if index == 0 else replan(segment[0])
            locked = resolve_target(resolver, start, make_job(start, segment), inputs, replan)
        except ResolveError as e:
            tried.append(Tried(segment, "", str(e)))
            return None
        except PinnerError as e:  # another index that cannot be reached: the first error stands
            if index == 0:
                raise
            tried.append(Tried(segment, "", str(e)))
            return None
        tried.append(Tried(segment, locked.plan.torch.pin, ""))
        return locked

    best = None
    for index in range(min(len(segments), TRIES)):
        best = attempt(index)
        if best is not None:
            break
    free: tuple[ResolvedPin, ...] = ()
    if free_job is not None and not (best is not None and settled(resolver, best, free_job)):
        try:
            free = resolver.resolve(free_job)
        except PinnerError:
            free = ()  # the requirements fail even without pinner's bounds: nothing to compare
    if best is None:  # the segment holding the torch the graph wants, when not tried yet
        wanted = _segment_of(segments, _version(free, "torch"))
        if wanted is not None and all(t.segment != segments[wanted] for t in tried):
            best = attempt(wanted)
    if best is None:
        first = tried[0].error
        more = f"\n  tried {len(tried)} segments of fitting torch builds" if len(tried) > 1 else ""
        raise ResolveError(first + more)
    held: list[tuple[str, str, str]] = []
    if free_job is not None:
        held = held_back(best, free, free_job)
        target = _segment_of(segments, _version(free, "torch"))
        if held and target is not None and all(t.segment != segments[target] for t in tried):
            alternative = attempt(target)
            if alternative is not None and _better(alternative, best, free, free_job):
                best = alternative
                held = held_back(best, free, free_job)
    notes = [
        _held_note(best, name, locked, newest, free, segments) for name, locked, newest in held
    ]
    newer = _newer_torch(best, _version(free, "torch"), _file_of(free, "torch"), *knowledge)
    if newer is not None:
        notes.append(newer)
    elif free_job is not None and _torch_lower(best, free):
        notes.append(_torch_note(best, _version(free, "torch"), segments, _file_of(free, "torch")))
    step = _step(best, segments, tried, held)
    plan_steps = (*best.plan.steps, step)
    return replace(
        best, plan=replace(best.plan, steps=plan_steps), findings=(*best.findings, *notes)
    )


def direct_names(job: Job) -> list[str]:
    """The user's direct requirements that name a range (not an exact pin, URL or path), in
    file order: the ones that can be held back."""
    out = []
    for text in job.requirements:
        head = text.split(";")[0]
        if "@" in head or "==" in head:
            continue
        name = canonical(head.split("[")[0].split("<")[0].split(">")[0].split("=")[0]
                         .split("!")[0].split("~")[0].strip())  # fmt: skip
        if name not in FAMILY and name not in out:
            out.append(name)
    return out


def held_back(
    locked: TargetLock, free: Sequence[ResolvedPin], free_job: Job
) -> list[tuple[str, str, str]]:
    """(name, locked version, what the comparison run took) of each direct requirement the lock
    holds below the comparison run."""
    from packaging.version import InvalidVersion, Version

    have = {p.name: p.version for p in locked.pins}
    other = {p.name: p.version for p in free}
    out = []
    for name in direct_names(free_job):
        if name in have and name in other:
            try:
                if Version(other[name]) > Version(have[name]):
                    out.append((name, have[name], other[name]))
            except InvalidVersion:
                continue
    return out


def _better(new: TargetLock, old: TargetLock, free: Sequence[ResolvedPin], job: Job) -> bool:
    """Newer direct requirements win, in file order; then the newer torch."""
    from packaging.version import Version

    a = {p.name: p.version for p in new.pins}
    b = {p.name: p.version for p in old.pins}
    for name in direct_names(job):
        if name in a and name in b and a[name] != b[name]:
            return Version(a[name]) > Version(b[name])
    del free
    return False


def _version(pins: Sequence[ResolvedPin], name: str) -> str:
    return next((p.version for p in pins if p.name == name), "")


def _segment_of(segments: Sequence[tuple[str, ...]], version: str) -> int | None:
    if not version:
        return None
    plain = version.split("+", maxsplit=1)[0]
    for index, segment in enumerate(segments):
        if any(pin.split("+")[0] == plain for pin in segment):
            return index
    return None


def _held_note(
    locked: TargetLock,
    name: str,
    version: str,
    newest: str,
    free: Sequence[ResolvedPin],
    segments: Sequence[tuple[str, ...]],
) -> Finding:
    """What held `name` back, from the Requires-Dist of the release the comparison run took."""
    requires = next((p.requires for p in free if p.name == name), ())
    moved = {p.name for p in locked.pins if _version(free, p.name) not in ("", p.version)}
    bound = [r for r in requires if canonical(_req_name(r)) in (*FAMILY, *moved)]
    torch = _version(free, "torch")
    if bound:
        why = f"{name} {newest} requires {bound[0].split(';')[0].strip()}"
    else:
        why = f"{name} {newest} needs versions pinner's plan does not allow"
    if torch and _segment_of(segments, torch) is None:
        why += f", and torch {torch} has no build that fits this target in pinner's knowledge"
    elif torch:
        why += f" (torch {torch}), but newer direct requirements listed earlier won"
    return Finding(
        target=locked.plan.target.name,
        severity="warning",
        code="held-back",
        message=f"{name} stays at {version}: {why}",
        fix=f"see `pinner explain --target {locked.plan.target.name}`; pin {name} to silence this, "
        "or allow another GPU/CUDA/Python for the newer release",
        source=_file_of(free, name),
    )


def _newer_torch(
    locked: TargetLock, free_torch: str, free_file: str, newest: str, as_of: str
) -> Finding | None:
    """A note when the graph would take a torch release newer than pinner's knowledge: it is
    held back under `auto`, never chosen silently."""
    from packaging.version import InvalidVersion, Version

    try:
        if not free_torch or not newest or Version(free_torch) <= Version(newest):
            return None
    except InvalidVersion:
        return None
    return Finding(
        target=locked.plan.target.name,
        severity="note",
        code="newer-than-knowledge",
        message=f"torch {free_torch} is newer than pinner's knowledge ({as_of}): torch stays at "
        f"{locked.plan.torch.pin}",
        fix="upgrade pinner (its knowledge says which builds of a release fit which GPU)",
        source=free_file,
    )


def _torch_lower(locked: TargetLock, free: Sequence[ResolvedPin]) -> bool:
    from packaging.version import InvalidVersion, Version

    wanted = _version(free, "torch")
    try:
        return bool(wanted) and Version(wanted) > Version(locked.plan.torch.version)
    except InvalidVersion:
        return False


def _torch_note(
    locked: TargetLock, wanted: str, segments: Sequence[tuple[str, ...]], source: str
) -> Finding:
    """torch itself below what the requirements alone would take: say why."""
    severity: Severity = "warning"
    if _segment_of(segments, wanted) is None:  # the hardware's limit: expected, said as a note
        why = f"torch {wanted} has no build that fits this target in pinner's knowledge"
        severity = "note"
    else:
        why = (
            f"a build of torch {wanted} fits, in a segment tried later (or not at all) in "
            "preference order"
        )
    return Finding(
        target=locked.plan.target.name,
        severity=severity,
        code="held-back",
        message=f"torch stays at {locked.plan.torch.pin}: the requirements alone would take "
        f"torch {wanted}; {why}",
        fix=f"see `pinner explain --target {locked.plan.target.name}`",
        source=source,
    )


def _file_of(pins: Sequence[ResolvedPin] | Sequence[Pin], name: str) -> str:
    """A file of the release a run took: the public locator of what it says (a PyPI file name)."""
    pin = next((p for p in pins if p.name == name), None)
    return next((f.name for f in pin.files if f.name), "") if pin is not None else ""


def _req_name(text: str) -> str:
    import re

    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return match.group(1) if match else ""


def _step(
    locked: TargetLock,
    segments: Sequence[tuple[str, ...]],
    tried: list[Tried],
    held: list[tuple[str, str, str]],
) -> Step:
    torch = locked.plan.torch.pin
    parts = [
        f"{_describe(t.segment)}: " + (f"chose torch {t.torch}" if t.torch else "no solution")
        for t in tried
    ]
    bound = [p.name for p in locked.pins if p.name != "torch" and _requires_torch(locked, p.name)]
    why = (
        f"{len(segments)} segments of fitting builds; resolved "
        + "; ".join(parts)
        + (f"; torch required by {', '.join(bound[:4])}" if bound else "")
        + (f"; held back: {', '.join(n for n, _, _ in held)}" if held else "")
    )
    return Step(
        topic="resolution", choice=f"torch {torch}", why=why, source=_file_of(locked.pins, "torch")
    )


def _requires_torch(locked: TargetLock, name: str) -> bool:
    torch = next((p for p in locked.pins if p.name == "torch"), None)
    return torch is not None and name in torch.via


def _describe(segment: tuple[str, ...]) -> str:
    if len(segment) == 1:
        return f"[{segment[0]}]"
    return f"[{segment[-1]} .. {segment[0]}]"
