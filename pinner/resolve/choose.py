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
from pinner.resolve.job import FAMILY, canonical, direct_names
from pinner.resolve.resolve import resolve_target
from pinner.resolve.shared import probe, settled

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from packaging.specifiers import SpecifierSet

    from pinner.model import Pin, Plan, PlanResult, Severity, TargetLock
    from pinner.resolve.job import Job, ResolvedPin, Resolver

TRIES = 4  # segments tried when the preferred ones fail
RAISES = 4  # direct requirements raised in file order (one resolver run each)
NOTES = ("held-back", "newer-than-knowledge")


@dataclass(frozen=True)
class Tried:
    segment: tuple[str, ...]
    torch: str  # what the resolver chose, "" when it failed
    error: str
    asked: str = ""  # a direct requirement raised in file order ("fakeunsloth>=2.0")


def choose(
    resolver: Resolver,
    result: PlanResult,
    *,
    make_job: Callable[[Plan, tuple[str, ...]], Job],
    replan: Callable[[str], Plan],
    inputs: str,
    free_job: Job | None,
    knowledge: tuple[str, str] = ("", ""),
    keep: TargetLock | None = None,
) -> TargetLock:
    """The target's lock from the segment that serves the requirements best. `free_job` is the
    comparison run (None where it cannot tell anything); `keep` the previous lock entry on a
    relock without --upgrade: when the resolution is the same, so are its choice and notes."""
    plan = result.plan
    assert plan is not None
    segments = result.segments or ((plan.torch.pin,),)
    tried: list[Tried] = []

    def attempt(index: int, floors: tuple[str, ...] = ()) -> TargetLock | None:
        segment = segments[index]
        asked = floors[-1] if floors else ""
        try:
            start = plan if index == 0 else replan(segment[0])
            job = make_job(start, segment)
            if floors:
                job = replace(job, constraints=(*job.constraints, *floors))
            locked = resolve_target(resolver, start, job, inputs, replan)
        except ResolveError as e:
            tried.append(Tried(segment, "", str(e), asked))
            return None
        except PinnerError as e:  # another index that cannot be reached: the first error stands
            if index == 0 and not floors:
                raise _with_pypi_way_out(e, segments, plan.target.origin) from None
            tried.append(Tried(segment, "", str(e), asked))
            return None
        tried.append(Tried(segment, locked.plan.torch.pin, "", asked))
        return locked

    best, at = None, -1
    for index in range(min(len(segments), TRIES)):
        best = attempt(index)
        if best is not None:
            at = index
            break
    if best is not None and keep is not None:
        kept = _kept(best, keep)
        if kept is not None:
            return kept
    direct = direct_names(free_job) if free_job is not None else []
    free: tuple[ResolvedPin, ...] = ()
    alone: tuple[ResolvedPin, ...] = ()
    if free_job is not None and (best is None or direct):
        # the probe (each direct requirement and torch alone): the newest release of each; when
        # the lock holds those, the comparison run can tell nothing and is not made. After a
        # resolution of PyPI's torch build it reads the pages that resolution has just read,
        # from the engine's cache (started once it had read them; for an index build, with it)
        fresh = best is not None and best.plan.torch.on_pypi
        alone = probe(resolver, free_job, cache_first=fresh)
        if best is None or not settled(resolver, best, free_job, cache_first=fresh):
            try:
                free = resolver.resolve(free_job)
            except PinnerError:
                free = ()  # the requirements fail even without pinner's bounds: nothing to compare
    wanted = _segment_of(segments, _version(free, "torch"))
    if best is None and wanted is not None and all(t.segment != segments[wanted] for t in tried):
        best = attempt(wanted)  # the segment holding the torch the graph wants (an exact pin)
        at = wanted
    if best is None:
        first = tried[0].error
        more = f"\n  tried {len(tried)} segments of fitting torch builds" if len(tried) > 1 else ""
        raise ResolveError(first + more)
    newest = _newest(free, alone, direct)
    # a relock without --upgrade keeps the locked versions, as uv and pip-compile do: a direct
    # requirement still at its previous version is kept there by the lock, not held back
    before = {p.name: p.version for p in keep.pins} if keep is not None else {}
    have = {p.name: p.version for p in best.pins}
    by_lock = {n for n in direct if n in before and before[n] == have.get(n)}
    movable = [n for n in direct if n not in by_lock]
    held = held_back(best, newest, movable)
    if held and wanted is not None and all(t.segment != segments[wanted] for t in tried):
        alternative = attempt(wanted)
        if alternative is not None and _better(alternative, best, movable):
            best, at = alternative, wanted
    best = _raise_in_order(best, at, newest, direct, attempt, by_lock)
    held = held_back(best, newest, movable)
    direct = movable
    notes = [_held_note(best, name, have, newest[name], free, segments) for name, have, _ in held]
    newer = _newer_torch(best, _version(free, "torch"), _file_of(free, "torch"), *knowledge)
    if newer is not None:
        notes.append(newer)
    elif direct and _torch_lower(best, free):
        notes.append(_torch_note(best, _version(free, "torch"), segments, _file_of(free, "torch")))
    step = _step(best, segments, tried, held)
    plan_steps = (*best.plan.steps, step)
    return replace(
        best, plan=replace(best.plan, steps=plan_steps), findings=(*best.findings, *notes)
    )


def _kept(locked: TargetLock, previous: TargetLock) -> TargetLock | None:
    """A relock of unchanged inputs that resolved to the previous entry's packages keeps that
    entry's resolution step and notes (held back, newer than the knowledge): nothing they say
    has changed, and the comparison runs that found them are not run again. None when an input
    or a package moved: then the comparison runs again."""
    from pinner.knowledge.lint import lint_lock

    same = {(p.name, p.version) for p in locked.pins} == {
        (p.name, p.version) for p in previous.pins
    }
    steps = [s for s in previous.plan.steps if s.topic == "resolution"]
    unchanged = previous.inputs == locked.inputs and locked.plan.torch == previous.plan.torch
    if not same or not unchanged or len(steps) != 1:
        return None
    linted = set(lint_lock(previous))  # added again to every lock entry
    notes = tuple(f for f in previous.findings if f.code in NOTES and f not in linted)
    return replace(
        locked,
        plan=replace(locked.plan, steps=(*locked.plan.steps, steps[0])),
        findings=(*locked.findings, *notes),
    )


def _with_pypi_way_out(
    error: PinnerError, segments: Sequence[tuple[str, ...]], origin: str
) -> PinnerError:
    """An unreachable PyTorch index, when a build PyPI ships (no local tag) also fits: a third
    way out, which needs no index at all."""
    from pinner.errors import NetworkError

    pypi = next((s[0] for s in segments[1:] if "+" not in s[0]), "")
    if not isinstance(error, NetworkError) or not pypi:
        return error
    return NetworkError(
        f"{error}, or use PyPI's own build, which needs no PyTorch index: "
        f'torch = "=={pypi}" on {origin}'
    )


def _newest(
    free: Sequence[ResolvedPin], alone: Sequence[ResolvedPin], direct: list[str]
) -> dict[str, ResolvedPin]:
    """Per direct requirement, the newer of what it takes alone and what the comparison run
    took."""
    out = {p.name: p for p in free if p.name in direct}
    for pin in alone:
        if pin.name in direct and (
            pin.name not in out or _newer(pin.version, out[pin.name].version)
        ):
            out[pin.name] = pin
    return out


def held_back(
    locked: TargetLock, newest: dict[str, ResolvedPin], direct: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(name, locked version, newest installable version) of each direct requirement the lock
    holds below its newest release installable on the target, in file order."""
    have = {p.name: p.version for p in locked.pins}
    return [
        (name, have[name], newest[name].version)
        for name in direct
        if name in have and name in newest and _newer(newest[name].version, have[name])
    ]


def _newer(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return False


def _raise_in_order(
    best: TargetLock,
    at: int,
    newest: dict[str, ResolvedPin],
    direct: Sequence[str],
    attempt: Callable[[int, tuple[str, ...]], TargetLock | None],
    kept: set[str] | frozenset[str] = frozenset(),
) -> TargetLock:
    """Between two direct requirements, file order decides: each one held below its newest
    release is asked for it (in the segment chosen), the ones listed before it kept at least
    where they are. A raise that has no solution leaves the lock as it was (and a note). `kept`:
    requirements the previous lock holds where they are (not raised, but kept at least there)."""
    floors: tuple[str, ...] = ()
    raises = 0
    for name in direct:
        have = {p.name: p.version for p in best.pins}
        if name not in have:
            continue
        movable = name not in kept and name in newest
        if movable and _newer(newest[name].version, have[name]) and raises < RAISES:
            raises += 1
            trial = attempt(at, (*floors, f"{name}>={_plain(newest[name].version)}"))
            if trial is not None:
                best = trial
                have = {p.name: p.version for p in best.pins}
        floors = (*floors, f"{name}>={_plain(have[name])}")
    return best


def _plain(version: str) -> str:
    return version.split("+", maxsplit=1)[0]


def _better(new: TargetLock, old: TargetLock, direct: Sequence[str]) -> bool:
    """Newer direct requirements win, in file order; then the newer torch."""
    a = {p.name: p.version for p in new.pins}
    b = {p.name: p.version for p in old.pins}
    for name in direct:
        if name in a and name in b and a[name] != b[name]:
            return _newer(a[name], b[name])
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
    newest: ResolvedPin,
    free: Sequence[ResolvedPin],
    segments: Sequence[tuple[str, ...]],
) -> Finding:
    """What held `name` back: the first Requires-Dist of its newest release that the lock does
    not meet, and why it cannot be met."""
    conflict = _conflict(locked, newest)
    torch = _version(free, "torch")
    same_torch = torch.split("+")[0] == locked.plan.torch.version.split("+")[0]
    took = _newer_than(locked, free) if conflict is None and same_torch else []
    if took:  # the same torch in both runs: say what the lock took instead
        why = (
            f"{name} {newest.version} does not go with newer releases the resolver took "
            f"(torch {torch} as well): {', '.join(took)}; a bare resolution takes older ones"
        )
    elif conflict is None:
        why = f"{name} {newest.version} needs versions pinner's plan does not allow"
    else:
        text, other, spec = conflict
        why = f"{name} {newest.version} requires {text}"
        target = locked.plan.target
        if other == "torch" and not _fits(spec, segments) and _range_excludes(target.torch, spec):
            # the user's own choice, not the hardware's (as for torch itself: _torch_note)
            why += (
                f", and the target's torch range ({target.torch}, on {target.origin}) excludes "
                "every torch release it admits"
            )
        elif other == "torch" and not _fits(spec, segments):
            if torch and spec.contains(_plain(torch), prereleases=True):
                why += (
                    f", and torch {torch} has no build that fits this target in pinner's knowledge"
                )
            else:
                why += ", and no torch build that fits this target in pinner's knowledge matches it"
        elif other == "torch":
            holders = [v for v in _pin(locked, "torch").via if v not in (name, "pinner plan")]
            by = f" (required by {', '.join(holders)})" if holders else ""
            why += f", which the locked torch {locked.plan.torch.pin}{by} does not meet"
        else:
            why += f", which the locked {other} {_pin(locked, other).version} does not meet"
    return Finding(
        target=locked.plan.target.name,
        severity="warning",
        code="held-back",
        message=f"{name} stays at {version}: {why}",
        fix=f"see `pinner explain --target {locked.plan.target.name}`; pin {name} to silence this, "
        "or allow another GPU/CUDA/Python for the newer release",
        source=next((f.name for f in newest.files if f.name), "") or _file_of(free, name),
    )


def _conflict(locked: TargetLock, release: ResolvedPin) -> tuple[str, str, SpecifierSet] | None:
    """(requirement text, name, specifier) of the first Requires-Dist of `release` (for the
    target's Python and platform) that the locked version of its package does not meet."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    from pinner.load.requirements import marker_environment

    target = locked.plan.target
    env = {**marker_environment(target.python, target.platform), "extra": ""}
    have = {p.name: p.version for p in locked.pins} | {"torch": locked.plan.torch.version}
    for text in release.requires:
        try:
            parsed = Parsed(text)
        except InvalidRequirement:
            continue
        name = canonical(parsed.name)
        if parsed.marker is not None and not parsed.marker.evaluate(env):
            continue
        if name in have and not parsed.specifier.contains(_plain(have[name]), prereleases=True):
            return text.split(";")[0].strip(), name, parsed.specifier
    return None


def _newer_than(locked: TargetLock, free: Sequence[ResolvedPin]) -> list[str]:
    """`name version` of up to three packages the lock holds newer than the comparison run."""
    from packaging.version import InvalidVersion, Version

    out = []
    for pin in sorted(locked.pins, key=lambda p: p.name):
        other = _version(free, pin.name)
        try:
            if other and pin.name not in FAMILY and Version(pin.version) > Version(other):
                out.append(f"{pin.name} {pin.version}")
        except InvalidVersion:
            continue
    return out[:3]


def _range_excludes(torch_range: str, spec: SpecifierSet) -> bool:
    """Whether the target's torch range excludes every torch release in pinner's knowledge that
    `spec` admits (and `spec` admits one)."""
    from packaging.specifiers import InvalidSpecifier
    from packaging.specifiers import SpecifierSet as Specs

    from pinner.knowledge.knowledge import load_knowledge

    try:
        ranged = Specs(torch_range) if torch_range else None
    except InvalidSpecifier:
        return False
    if ranged is None:
        return False
    admitted = [r.version for r in load_knowledge().releases if spec.contains(r.version, True)]
    return bool(admitted) and not any(ranged.contains(v, prereleases=True) for v in admitted)


def _fits(spec: SpecifierSet, segments: Sequence[tuple[str, ...]]) -> bool:
    return any(spec.contains(_plain(pin), prereleases=True) for s in segments for pin in s)


def _pin(locked: TargetLock, name: str) -> Pin:
    return next(p for p in locked.pins if p.name == name)


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
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    severity: Severity = "warning"
    target = locked.plan.target
    try:
        ruled_out = bool(target.torch) and not SpecifierSet(target.torch).contains(wanted, True)
    except InvalidSpecifier:
        ruled_out = False
    if ruled_out:  # the user's own choice: not the hardware's
        why = f"the target's torch range ({target.torch}, on {target.origin}) excludes it"
        severity = "note"
    elif _segment_of(segments, wanted) is None:  # the hardware's limit: expected, as a note
        why = (
            f"torch {wanted} has no build that fits this target and its requirements in "
            "pinner's knowledge (see the rejected variants)"
        )
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


def _step(
    locked: TargetLock,
    segments: Sequence[tuple[str, ...]],
    tried: list[Tried],
    held: list[tuple[str, str, str]],
) -> Step:
    torch = locked.plan.torch.pin
    parts = [
        _describe(t.segment)
        + (f" asking {t.asked}" if t.asked else "")
        + ": "
        + (f"chose torch {t.torch}" if t.torch else "no solution")
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
