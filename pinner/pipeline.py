"""The only place stages are chained: load -> plan -> resolve -> lock -> render -> write/check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pinner.errors import PlanError
from pinner.load.matrix import load_matrix, select_targets

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pinner.commands.doctor import Diagnosis
    from pinner.knowledge.knowledge import Knowledge
    from pinner.lock.diff import Changes
    from pinner.model import (
        Artifact,
        Finding,
        LockFile,
        Matrix,
        Pin,
        Plan,
        PlanResult,
        Requirements,
        Target,
        TargetLock,
    )
    from pinner.progress import Progress
    from pinner.resolve.job import Job, ResolvedPin, Resolver
    from pinner.resolve.shared import Shared


JOBS = 4  # resolutions at once (--jobs): each is a uv process that mostly waits on the network


def load(matrix_path: Path | None, cwd: Path | None = None) -> Matrix:
    return load_matrix(matrix_path, cwd)


def requirements_of(matrix: Matrix, target: Target) -> Requirements:
    from pinner.load.requirements import read_requirements

    return read_requirements(
        tuple(matrix.root / r for r in target.requirements),
        matrix.root,
        python=target.python,
        platform=target.platform,
    )


def plan_all(matrix: Matrix, names: Sequence[str]) -> list[tuple[Target, PlanResult]]:
    """Plan every selected target; never raises for an impossible target (see `require_plans`)."""
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.plan.plan import plan_target

    kb = load_knowledge()
    return [
        (target, plan_target(target, kb, requirements_of(matrix, target)))
        for target in select_targets(matrix, tuple(names))
    ]


def with_resolution(
    matrix: Matrix, results: list[tuple[Target, PlanResult]]
) -> list[tuple[Target, PlanResult]]:
    """Plans as the lock finished them, when the lock holds a fresh entry: the torch the resolver
    chose within the fitting segments, the resolution step and the held-back notes (`explain`)."""
    import dataclasses

    from pinner.errors import ConfigError
    from pinner.knowledge import knowledge
    from pinner.lock.fingerprint import target_inputs
    from pinner.lock.lockfile import read_lock
    from pinner.model import plain

    if not matrix.lock.is_file():
        return results
    try:
        locked = {t.plan.target.name: t for t in read_lock(matrix.lock).targets}
    except ConfigError:
        return results
    out = []
    for target, result in results:
        entry = locked.get(target.name)
        fresh = entry is not None and entry.inputs == target_inputs(
            plain(target), matrix.root, knowledge.digest()
        )
        if entry is None or not fresh or result.plan is None:
            out.append((target, result))
            continue
        said = ("held-back", "newer-than-knowledge", "torch-bound", "sdist-only")
        notes = tuple(f for f in entry.findings if f.code in said)
        out.append(
            (target, dataclasses.replace(result, plan=entry.plan, findings=result.findings + notes))
        )
    return out


def require_plans(results: list[tuple[Target, PlanResult]]) -> None:
    """One PlanError listing every refused target with its fix, so all are fixed in one pass."""
    errors = [f for _, r in results for f in r.findings if f.severity == "error"]
    if errors:
        raise PlanError("\n".join(format_finding(f) for f in errors))


def format_finding(finding: Finding) -> str:
    text = finding.message
    if finding.fix:
        text += f"\n  fix: {finding.fix}"
    return text


# --- lock ----------------------------------------------------------------------------------------


def cache_dir() -> Path:
    import os

    env = os.environ.get("PINNER_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinner"


P = ParamSpec("P")
R = TypeVar("R")


def _locked(run: Callable[Concatenate[Matrix, P], R]) -> Callable[Concatenate[Matrix, P], R]:
    """Run holding the project's write lock, from reading the old lock to writing the new lock
    and `pinned/`: concurrent runs in one project take turns and end as one run would (a run
    that waited finds the lock fresh), and no run's lock entries are lost to another's."""
    import functools

    @functools.wraps(run)
    def holding(matrix: Matrix, /, *args: P.args, **kwargs: P.kwargs) -> R:
        from pinner.render.output import project_lock

        with project_lock(matrix.root, cache_dir()):
            return run(matrix, *args, **kwargs)

    return holding


@dataclass(frozen=True, kw_only=True)
class LockResult:
    lockfile: LockFile
    resolved: list[str]  # targets resolved in this run
    failed: dict[str, str]  # target -> why it could not be resolved (its old entry is kept)
    notes: list[str]  # said once per run: ignored resolver variables, ...
    text: str = ""  # the lock as written (or, with write=False, to be written); "" for none
    previous: LockFile | None = None  # the lock before this run (for the change table)
    changed: bool = False  # the text differs from the lock file on disk (or there is none)
    findings: tuple[Finding, ...] = ()  # plan warnings of the targets planned in this run


@_locked
def lock_targets(
    matrix: Matrix,
    names: Sequence[str],
    *,
    engine: str = "uv",
    upgrade: bool = False,
    offline: bool = False,
    only_stale: bool = False,
    progress: Progress | None = None,
    timeout: float = 0.0,
    always_note: bool = False,
    write: bool = True,
    upgrade_packages: Sequence[str] = (),
    dry_run: bool = False,
    jobs: int = JOBS,
) -> LockResult:
    """Plan, resolve (in parallel) and write the lock; return it, the targets re-resolved and the
    targets that failed.

    Targets not selected keep their entries; targets no longer in the matrix are dropped. With
    `only_stale`, a target whose lock entry matches its inputs is kept without resolving. A
    target that fails to resolve keeps its previous entry; the others are written. With
    `write=False` the new text comes back (`LockResult.text`) for the caller to write last.
    `upgrade_packages` (-P) are resolved afresh, every other package keeps its locked version;
    `dry_run` writes nothing at all.
    """
    import dataclasses

    from pinner.knowledge import knowledge
    from pinner.lock import lockfile as lock
    from pinner.lock.fingerprint import input_digests
    from pinner.model import plain
    from pinner.resolve.engines import get_resolver
    from pinner.resolve.environment import ignored

    selected = select_targets(matrix, tuple(names))
    default_mirror = checked_settings()  # before anything runs
    old = _read_old_lock(matrix.lock, upgrade=upgrade)
    old_by_name = {t.plan.target.name: t for t in old.targets} if old else {}
    digest = knowledge.digest()
    digests = {t.name: input_digests(plain(t), matrix.root, digest) for t in matrix.targets}
    inputs = {name: both[0] for name, both in digests.items()}
    if old is not None and old.legacy:
        selected = matrix.targets  # a previous format: every entry is re-resolved, versions kept
    todo = [
        t
        for t in selected
        if not (
            (only_stale or offline)
            and t.name in old_by_name
            and old_by_name[t.name].inputs == inputs[t.name]
        )
    ]
    results = plan_all(matrix, [t.name for t in todo]) if todo else []
    require_plans(results)
    results = _finish_plans(results, old_by_name, upgrade=upgrade, offline=offline)
    resolver = get_resolver(engine, cache_dir())
    notes = []
    skipped = ignored()
    if skipped and (todo or always_note):
        notes.append(
            f"ignored when resolving: {', '.join(skipped)} (pinner chooses the indexes; "
            "PINNER_INDEX_URL sets a mirror of the default index)"
        )
    kb = knowledge.load_knowledge()
    settings = Settings(
        root=matrix.root,
        kb=kb,
        upgrade=upgrade,
        offline=offline,
        mirror=default_mirror,
        timeout=timeout,
        upgrade_packages=frozenset(upgrade_packages),
        jobs=max(1, jobs),
    )
    works = [
        make_work(
            target, result, requirements_of(matrix, target), old_by_name.get(target.name), settings
        )
        for target, result in results
    ]
    resolved, failed = _resolve_parallel(resolver, works, inputs, progress, workers=settings.jobs)
    kept = {
        n: t
        for n, t in old_by_name.items()
        if n in inputs and n not in resolved and not (old and old.legacy)
    }
    merged = [resolved.get(t.name) or kept.get(t.name) for t in matrix.targets]
    lockfile = lock.new_lock([t for t in merged if t is not None], knowledge.load_knowledge().as_of)
    locked = {t.plan.target.name for t in lockfile.targets}
    lockfile = dataclasses.replace(  # where targets were generated stays known
        lockfile,
        generated=tuple((n, o) for n, o in (old.generated if old else ()) if n in locked),
    )
    from pinner.render.output import sweep_staged, write_text_atomic

    if not dry_run:
        sweep_staged([matrix.lock])  # what a killed run left; no other run writes while we hold it
    # Each entry keeps the fingerprint of the inputs it was resolved from: a kept entry whose
    # inputs have changed since stays stale for `pinner check`.
    fingerprints = {t.plan.target.name: t.inputs for t in lockfile.targets}
    details = lock.input_details(fingerprints, digests, matrix.lock)
    text = lock.dump_lock(lockfile, fingerprints, details)
    changed = bool(lockfile.targets) and (
        not matrix.lock.is_file() or matrix.lock.read_text(encoding="utf-8") != text
    )
    if write and changed and not dry_run:
        write_text_atomic(matrix.lock, text)
    return LockResult(
        lockfile=lockfile,
        text=text if lockfile.targets else "",
        resolved=[t.name for t in matrix.targets if t.name in resolved],
        failed=failed,
        notes=notes,
        previous=old,
        changed=changed,
        findings=tuple(f for _, r in results for f in r.findings if f.severity == "warning"),
    )


def checked_settings() -> str:
    """Both mirror settings checked (a ConfigError for a bad one, even with nothing to do);
    the default index's mirror for this run."""
    import os

    from pinner.load.matrix import TORCH_INDEX_ENV
    from pinner.resolve.environment import checked_url, mirror

    default_mirror = mirror()
    if os.environ.get(TORCH_INDEX_ENV, "").strip():
        checked_url(TORCH_INDEX_ENV, os.environ[TORCH_INDEX_ENV].strip())
    return default_mirror


def _finish_plans(
    results: list[tuple[Target, PlanResult]],
    old: dict[str, TargetLock],
    *,
    upgrade: bool,
    offline: bool,
) -> list[tuple[Target, PlanResult]]:
    """What planning cannot know without the network: the sha256 of each prebuilt extension
    wheel (downloaded once, cached by URL) and, with pin-images, image digests (kept from the
    old lock until `update`)."""
    from dataclasses import replace

    out = []
    for target, result in results:
        assert result.plan is not None
        previous = old[target.name].plan if target.name in old else None
        plan = finish_plan(result.plan, previous, upgrade=upgrade, offline=offline)
        out.append((target, replace(result, plan=plan)))
    return out


def finish_plan(plan: Plan, previous: Plan | None, *, upgrade: bool, offline: bool) -> Plan:
    """One plan with its extension wheels' hashes and, with pin-images, its image digests."""
    from pinner.lock.extension_hashes import hash_extension_wheels

    plan = hash_extension_wheels(plan, offline=offline, cache=cache_dir(), previous=previous)
    if plan.target.pin_images:
        from pinner.knowledge.knowledge import load_knowledge
        from pinner.lock.registry import pin_images

        uv_image = load_knowledge().docs["packages"]["uv"]["image"]
        plan = pin_images(
            plan,
            (plan.base_image, uv_image),
            previous=previous.images if previous else (),
            refresh=upgrade,
            offline=offline,
        )
    return plan


def torch_mirror(plan: Plan) -> str:
    """The PyTorch index this run reads for `plan`: PINNER_TORCH_INDEX_URL (a mirror, with
    {variant}) when set, else the committed index. Transport only: the lock and the rendered
    files name the committed index."""
    import os

    from pinner.load.matrix import TORCH_INDEX_ENV
    from pinner.resolve.environment import checked_url

    template = os.environ.get(TORCH_INDEX_ENV, "").strip()
    if template:
        checked_url(TORCH_INDEX_ENV, template)
    if plan.torch.on_pypi:
        return ""
    if not template:
        return plan.index_url
    if "{variant}" not in template:
        msg = f"{TORCH_INDEX_ENV}={template!r} must contain {{variant}} (e.g. .../whl/{{variant}})"
        from pinner.errors import ConfigError

        raise ConfigError(msg)
    return template.replace("{variant}", plan.torch.variant).rstrip("/")


def raise_failures(result: LockResult) -> None:
    """Exit 1 naming every target that could not be resolved, each with its fix."""
    from pinner.errors import TargetsFailed

    if result.failed:
        lines = [
            why if why.startswith("target ") else f"target {name}: {why}"
            for name, why in sorted(result.failed.items())
        ]
        written = result.resolved
        lines.append(
            f"{len(result.failed)} of {len(result.failed) + len(written)} targets failed"
            + (f"; written: {', '.join(written)}" if written else "")
        )
        raise TargetsFailed("\n".join(lines))


def _read_old_lock(path: Path, *, upgrade: bool = False) -> LockFile | None:
    """The lock as it is. A lock that cannot be read is an error naming the line (a silent
    re-resolve would move versions), unless `--upgrade` starts over anyway."""
    from pinner.errors import ConfigError
    from pinner.lock.lockfile import read_lock

    if not path.is_file():
        return None
    try:
        return read_lock(path)
    except ConfigError:
        if upgrade:
            return None
        raise


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What every target's resolution of one run shares."""

    root: Path
    kb: Knowledge
    upgrade: bool
    offline: bool
    mirror: str
    timeout: float
    upgrade_packages: frozenset[str] = frozenset()  # -P: canonical names resolved afresh
    jobs: int = JOBS  # --jobs: resolutions at once; 1: one uv client on the network at a time


@dataclass(frozen=True, kw_only=True)
class Work:
    """One target's resolution: its first job, and how to make the others."""

    target: Target
    result: PlanResult
    job: Job
    make_job: Callable[[Plan, tuple[str, ...]], Job]
    replan: Callable[[str], Plan]
    free_job: Job | None
    reqs: Requirements
    previous: TargetLock | None
    settings: Settings


def make_work(
    target: Target,
    result: PlanResult,
    reqs: Requirements,
    previous: TargetLock | None,
    settings: Settings,
) -> Work:
    import dataclasses
    import functools

    from pinner.plan.plan import segment_spec
    from pinner.resolve.job import canonical
    from pinner.resolve.resolve import build_job

    assert result.plan is not None

    def make_job(plan: Plan, segment: tuple[str, ...]) -> Job:
        job = build_job(
            plan,
            reqs,
            settings.root,
            previous=previous,
            upgrade=settings.upgrade,
            offline=settings.offline,
            mirror=settings.mirror,
            torch_mirror=torch_mirror(plan),
            timeout=settings.timeout,
            torch_spec=segment_spec(settings.kb, segment),
        )
        if not settings.upgrade_packages:
            return job
        keep = tuple(p for p in job.preferences if canonical(p[0]) not in settings.upgrade_packages)
        return dataclasses.replace(job, preferences=keep)

    segment = result.segments[0] if result.segments else (result.plan.torch.pin,)
    job = make_job(result.plan, segment)
    finish = functools.partial(
        finish_plan,
        previous=previous.plan if previous else None,
        upgrade=settings.upgrade,
        offline=settings.offline,
    )
    compare = _compare(result, settings.offline)
    return Work(
        target=target,
        result=result,
        job=job,
        make_job=make_job,
        replan=_replanner(target, settings.kb, reqs, finish),
        free_job=_free_job(job, reqs) if compare else None,
        reqs=reqs,
        previous=previous,
        settings=settings,
    )


def pulled_extensions(kb: Knowledge, locked: TargetLock) -> list[Pin]:
    """Compiled extensions the graph pulled in (through an extra, or another package) that the
    plan does not know yet: they belong in the extension layer, built after torch."""
    from pinner.plan.extensions import is_extension

    planned = {e.name for e in locked.plan.extensions}
    return [p for p in locked.pins if p.name not in planned and is_extension(kb, p.name)]


def _with_pulled(work: Work, pulled: list[Pin]) -> Work:
    """The target planned again with the pulled extensions as requirements of their own."""
    from dataclasses import replace

    from pinner.model import Requirement
    from pinner.plan.plan import plan_target

    def parent(pin: Pin) -> str:
        named = [v for v in pin.via if not v.startswith("-r ") and v != "pinner plan"]
        extra = [r.name for r in work.reqs.items if pin.name in r.extras]
        return (extra or named or ["the graph"])[0]

    added = tuple(
        Requirement(
            name=p.name,
            text=f"{p.name}=={p.version}",  # the release the graph took
            specifier=f"=={p.version}",
            origin=f"via {parent(p)}",
            constraint=False,
        )
        for p in pulled
    )
    reqs = replace(work.reqs, items=work.reqs.items + added)
    result = plan_target(work.target, work.settings.kb, reqs)
    if result.plan is None:
        errors = [f.message for f in result.findings if f.severity == "error"]
        from pinner.errors import ResolveError

        msg = (
            f"target {work.target.name}: the graph pulls the compiled extension(s) "
            f"{', '.join(p.name for p in pulled)}, which cannot be built for this target: "
            + "; ".join(errors)
        )
        raise ResolveError(msg)
    result = replace(
        result,
        plan=finish_plan(
            result.plan,
            work.previous.plan if work.previous else None,
            upgrade=work.settings.upgrade,
            offline=work.settings.offline,
        ),
    )
    return make_work(work.target, result, reqs, work.previous, work.settings)


def _replanner(
    target: Target, kb: Knowledge, reqs: Requirements, finish: Callable[[Plan], Plan]
) -> Callable[[str], Plan]:
    """The plan finished from the torch build the resolver chose."""
    from pinner.plan.plan import plan_target

    def replan(pin: str) -> Plan:
        result = plan_target(target, kb, reqs, torch=pin)
        assert result.plan is not None
        return finish(result.plan)

    return replan


def _compare(result: PlanResult, offline: bool) -> bool:
    """Whether a comparison run can tell anything: more than one torch build to choose from,
    and the network. (A relock that resolves to the old lock's packages keeps its notes and
    runs no comparison; see choose.)"""
    builds = sum(len(s) for s in result.segments)
    return not offline and builds > 1


def _free_job(job: Job, reqs: Requirements) -> Job | None:
    """The comparison run: the user's requirements as a bare `uv pip compile` would take them
    (no torch bounds, no plan constraints), for the same Python and platform."""
    from dataclasses import replace

    if not job.requirements:
        return None
    return replace(
        job,
        direct=(),
        constraints=tuple(r.text for r in reqs.items if r.constraint),
        torch_index="",
        torch_committed="",
        routed=(),
        optional=(),
        preferences=(),
        upgrade=True,
        files_pass=False,
        roots=tuple(r for r in job.roots if r[2] != "pinner plan"),
    )


def _resolve_parallel(
    resolver: Resolver,
    jobs: list[Work],
    inputs: dict[str, str],
    progress: Progress | None,
    workers: int = 4,
) -> tuple[dict[str, TargetLock], dict[str, str]]:
    """Resolve jobs on a thread pool of `workers`; identical jobs (same builds, Python, platform
    and requirements) are resolved once. A failed job fails its targets only."""
    from concurrent.futures import ThreadPoolExecutor

    from pinner.errors import PinnerError
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.resolve.choose import choose
    from pinner.resolve.job import INTERRUPTED
    from pinner.resolve.shared import Shared
    from pinner.resolve.uv import job_key

    kb = load_knowledge()
    newest_torch = (kb.releases[0].version if kb.releases else "", kb.as_of)
    groups: dict[str, list[Work]] = {}
    for item in jobs:
        key = job_key(item.job) + resolver.name + repr(item.result.segments)
        groups.setdefault(key, []).append(item)
    out: dict[str, TargetLock] = {}
    failed: dict[str, str] = {}

    shared = Shared(resolver)

    def run(item: Work) -> TargetLock:
        return choose(
            shared,
            item.result,
            make_job=item.make_job,
            replan=item.replan,
            inputs=inputs[item.target.name],
            free_job=item.free_job,
            knowledge=newest_torch,
            keep=None if item.settings.upgrade else item.previous,
        )

    def work(group: list[Work]) -> None:
        first = group[0]
        names = [w.target.name for w in group]
        if progress:
            progress.start(names)
        if resolver.name == "uv":
            _start_probe(shared, first)
        try:
            locked = run(first)
            pulled = pulled_extensions(kb, locked)
            if pulled:  # planned again with them as extensions, and resolved again
                locked = run(_with_pulled(first, pulled))
        except PinnerError as e:
            for name in names:  # the error once, under the target that ran
                failed[name] = (
                    str(e)
                    if name == first.target.name
                    else f"target {name}: resolved with target {first.target.name} (same "
                    "inputs), which failed: see its error"
                )
            if progress:
                progress.done(names, 0, failed=True)
            return
        for item in group:
            if item is group[0]:
                plan = locked.plan
            else:  # another target of the same job: its own plan, from the same choice
                redo = _with_pulled(item, pulled) if pulled else item
                plan = redo.replan(locked.plan.torch.pin)
            out[item.target.name] = _rebind(locked, plan, inputs[item.target.name])
        if progress:
            progress.done(names, len(locked.pins))

    INTERRUPTED.clear()
    with shared, ThreadPoolExecutor(max_workers=max(1, min(workers, len(groups)))) as pool:
        futures = [pool.submit(work, g) for g in groups.values()]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:  # Ctrl-C: no new engine run; the running ones end with it
            INTERRUPTED.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return out, failed


def _start_probe(shared: Shared, work: Work) -> None:
    """Start the comparison run's probe (see pinner.resolve.shared) when a fresh resolution (no
    old entry to keep, or --upgrade) will ask for it. For a PyTorch index's build, with the
    resolution; its answer can start the comparison run early. For PyPI's build, as soon as the
    resolution has read the indexes, from uv's cache, beside the files pass: two uv clients
    started together made one of them wait out a 5 s DNS retry in 23 of 30 runs on a resolver
    that drops simultaneous queries (0 of 30 one after the other), as container DNS often does."""
    import functools
    from dataclasses import replace

    from pinner.resolve.shared import probe_job

    fresh = work.settings.upgrade or work.previous is None
    probe = probe_job(work.free_job) if work.free_job is not None and fresh else None
    if probe is None:
        return
    if work.job.torch_index:
        if work.settings.jobs > 1:  # --jobs 1: the probe runs after the resolution instead
            shared.prefetch(probe, then=functools.partial(_comparison_needed, work))
        return
    shared.prefetch(replace(probe, cache_first=True), after=work.job)
    builds = [b for s in work.result.segments for b in s]
    if work.settings.jobs > 1 and beyond_every_build(work.settings.kb, work.target.python, builds):
        # the probe will find a torch above every fitting build (the knowledge already has
        # one): the comparison run it will ask for starts now, with the resolution
        assert work.free_job is not None
        shared.prefetch(work.free_job)


def beyond_every_build(kb: Knowledge, python: str, builds: Sequence[str]) -> bool:
    """Whether the knowledge's newest torch with a wheel for `python` is above every one of
    `builds` (PyPI keeps its releases: the probe will find that one, or a newer)."""
    return _above_every(next((r.version for r in kb.releases if python in r.python), ""), builds)


def _comparison_needed(work: Work, newest: tuple[ResolvedPin, ...]) -> Job | None:
    """The comparison run, to start now, when the probe found a torch newer than every fitting
    build: the lock cannot be at it, so the comparison run will be asked for."""
    torch = next((p.version for p in newest if p.name == "torch"), "")
    builds = [b for s in work.result.segments for b in s]
    return work.free_job if _above_every(torch, builds) else None


def _above_every(torch: str, builds: Sequence[str]) -> bool:
    """Whether torch `torch` is above every one of `builds` (False when either is unknown)."""
    from packaging.version import InvalidVersion, Version

    try:
        return bool(torch and builds) and all(Version(torch) > Version(b) for b in builds)
    except InvalidVersion:
        return False


def _rebind(locked: TargetLock, plan: Plan, inputs: str) -> TargetLock:
    from dataclasses import replace

    from pinner.knowledge.lint import lint_lock

    if plan is not locked.plan:  # another target of the group: the resolution's own steps too
        plan = replace(plan, steps=plan.steps + locked.plan.steps[len(plan.steps) :])
    tl = replace(locked, plan=plan, inputs=inputs)
    return replace(tl, findings=tl.findings + lint_lock(tl))


# --- check ---------------------------------------------------------------------------------------


def check(matrix: Matrix, out: Path | None = None) -> list[tuple[str, str, str]]:
    """Every stale thing as (path, problem, refresh command); see `pinner.render.check`."""
    from pinner.render.check import stale

    return stale(_raw(matrix), out)


def check_lock(matrix: Matrix, names: list[str]) -> list[tuple[str, str, str]]:
    """What is stale in the lock itself for the named targets; see `pinner.render.check.lock_problems`."""
    from pinner.render.check import lock_problems

    return lock_problems(_raw(matrix), names)


def _raw(matrix: Matrix) -> dict[str, Any]:
    from pinner.model import plain

    return {
        "path": matrix.path,
        "root": matrix.root,
        "lock": matrix.lock,
        "out": matrix.out,
        "templates": matrix.templates,
        "targets": [plain(t) for t in matrix.targets],
    }


def source_name(matrix: Matrix) -> str:
    """How rendered headers name the matrix: relative to the project root, never absolute."""
    if matrix.path is None:
        return "built-in presets"
    try:
        return matrix.path.relative_to(matrix.root).as_posix()
    except ValueError:
        return matrix.path.name


def _shown(path: Path, root: Path) -> str:
    from pinner.render.check import shown

    return shown(path, root)


def _root_from(root: Path, folder: Path) -> str:
    """The project root as a relative path from a target's output folder (pylock.toml's paths)."""
    import os

    return Path(os.path.relpath(root.resolve(), folder.resolve())).as_posix()


def _folder(out_name: str, target: str) -> str:
    """A target's generated folder from the project root ("" when outside the project): where
    a Dockerfile that copies files of the project finds the target's own files."""
    outside = Path(out_name).is_absolute() or out_name.split("/", maxsplit=1)[0] == ".."
    return "" if outside else Path(out_name, target).as_posix()


def _relative(path: Path, root: Path) -> str:
    from pinner.lock.fingerprint import relative

    return relative(path, root)


# --- generate ------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class RunInfo:
    """What a generate or update run tells besides its files; the CLI prints it once, after."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # said once, not per target
    findings: list[Finding] = field(default_factory=list)  # of the rendered targets
    lock: LockResult | None = None  # the locking step, when one ran
    lock_changed: bool = False  # the lock file was (with dry_run: would be) rewritten
    written: list[Path] = field(default_factory=list)  # (with dry_run: would be written)
    removed: list[Path] = field(default_factory=list)  # index files left over (dry_run: would be)


@_locked
def generate(
    matrix: Matrix,
    names: Sequence[str],
    *,
    out: Path | None = None,
    installer: str = "pip",
    frozen: bool = False,
    locked: bool = False,
    engine: str = "uv",
    offline: bool = False,
    progress: Progress | None = None,
    timeout: float = 0.0,
    dry_run: bool = False,
    info: RunInfo | None = None,
    lock_text: str | None = None,
    jobs: int = JOBS,
) -> list[Path]:
    """Lock when needed, then render every selected target from the lock; return the files
    written (with `dry_run`, the files that would be: nothing is written). Targets that fail to
    resolve are not rendered; the others are, then TargetsFailed names them.

    `locked` (uv's --locked): no resolving; exit 1 when the lock does not match the selected
    targets' inputs or integrity. `frozen` (uv's --frozen): no resolving, no staleness check.
    `lock_text`: render from this lock text (update's new lock), not from the file."""
    from pinner.errors import ConfigError
    from pinner.lock.lockfile import read_lock, with_renders
    from pinner.render.check import leftovers
    from pinner.render.render import INSTALLERS

    if not (frozen or locked or dry_run or lock_text is not None):
        checked_settings()  # a bad mirror setting is refused even with nothing to do
        picked = list(select_targets(matrix, tuple(names)))
        if _up_to_date(matrix, [t.name for t in picked], out, installer):
            # what `check` passes, with these files for this installer: nothing to render
            if info is not None:
                info.findings += plan_warnings(matrix, picked)
            return []

    if installer not in INSTALLERS:
        msg = f"--installer: {installer!r} is not one of {', '.join(INSTALLERS)}"
        raise ConfigError(msg)
    info = info if info is not None else RunInfo()
    selected = list(select_targets(matrix, tuple(names)))
    if locked:
        require_locked(matrix, [t.name for t in selected])
    elif frozen and lock_text is None:
        info.warnings += _frozen_stale(matrix, [t.name for t in selected])
    result = None
    if not (frozen or locked or lock_text is not None):
        result = lock_targets(
            matrix,
            [t.name for t in selected],
            engine=engine,
            offline=offline,
            only_stale=True,
            progress=progress,
            timeout=timeout,
            write=False,  # written last, after the files it renders
            dry_run=dry_run,
            jobs=jobs,
        )
        info.lock = result
        info.notes += result.notes
        selected = [t for t in selected if t.name not in result.failed]
    text = lock_text or ((result.text or None) if result is not None else None)
    read_all = selected or frozen or locked
    lockfile = read_lock(matrix.lock, text=text) if read_all else None
    if text is None and lockfile is not None:
        text = matrix.lock.read_text(encoding="utf-8")
    artifacts = _render(matrix, selected, lockfile, text or "", out=out, installer=installer)
    by_name = {t.plan.target.name: t for t in lockfile.targets} if lockfile else {}
    info.findings += plan_warnings(matrix, selected)
    info.findings += [f for t in selected for f in by_name[t.name].findings]
    root = out or matrix.out
    if dry_run:
        from pinner.render.output import unchanged

        info.lock_changed = bool(text) and not unchanged(matrix.lock, text or "")
        written = [root / a.path for a in artifacts if not unchanged(root / a.path, a.text)]
        info.removed += leftovers([root / a.path for a in artifacts])
    else:
        from pinner.render.output import remove_leftovers, write_artifacts

        written = write_artifacts(artifacts, root)
        info.removed += leftovers([root / a.path for a in artifacts])
        remove_leftovers(info.removed)
        if text:  # the lock last: a crash before this leaves the old lock, and check says so
            known = lockfile or (result.lockfile if result is not None else None)
            before = known.generated if known is not None else ()
            out_name = _relative(root, matrix.root)
            names_done = [t.name for t in selected]
            if lockfile is not None:  # an earlier pinner's lock gets the digests `check` compares
                text = with_renders(text, lockfile)
            info.lock_changed = _write_lock_last(matrix, text, before, names_done, out_name)
    info.written += written
    if result is not None:
        raise_failures(result)
    return written


def _render(
    matrix: Matrix,
    selected: list[Target],
    lockfile: LockFile | None,
    text: str,
    *,
    out: Path | None,
    installer: str,
) -> list[Artifact]:
    """Every file of the selected targets, rendered from the lock (a target it lacks is named)."""
    from pinner.errors import ConfigError
    from pinner.lock.fingerprint import lock_sections, regenerate_command
    from pinner.render.render import render_target

    sections = lock_sections(text) if lockfile and text else {}
    by_name = {t.plan.target.name: t for t in lockfile.targets} if lockfile else {}
    missing = [t.name for t in selected if t.name not in by_name]
    if missing:
        msg = (
            f"{_shown(matrix.lock, matrix.root)}: no entry for target {missing[0]}; "
            f"run `pinner lock --target {missing[0]}`"
        )
        raise ConfigError(msg)
    source = source_name(matrix)
    artifacts: list[Artifact] = []
    out_name = _relative(out or matrix.out, matrix.root)
    for target in selected:
        artifacts += render_target(
            by_name[target.name],
            section=sections[target.name],
            installer=installer,
            templates=matrix.templates,
            source=source,
            command=regenerate_command(target.name, installer, out_name),
            lock_name=_shown(matrix.lock, matrix.root),
            root=_root_from(matrix.root, (out or matrix.out) / target.name),
            folder=_folder(out_name, target.name),
        )
    return artifacts


def require_locked(matrix: Matrix, names: Sequence[str]) -> None:
    """--locked: exit 1 when the lock would change for the named targets; nothing is resolved."""
    from pinner.errors import StaleError

    problems = check_lock(matrix, list(names))
    if problems:
        detail = "\n".join(f"{p}: {what}\n  refresh: {cmd}" for p, what, cmd in problems)
        msg = f"--locked: the lock does not match its inputs:\n{detail}"
        raise StaleError(msg)


def _frozen_stale(matrix: Matrix, names: Sequence[str]) -> list[str]:
    """--frozen renders the lock as it is. pinner 0.1's --frozen refused a stale lock (what uv
    and now pinner call --locked): for one release, say so when that would have happened."""
    import re

    if not matrix.lock.is_file():
        return []  # reading it fails next, naming the fix
    problems = check_lock(matrix, list(names))
    if not problems:
        return []
    stale = [m.group(1) for p in problems if (m := re.search(r"--target (\S+)", p[2]))]
    what = f"the inputs of {', '.join(dict.fromkeys(stale))}" if stale else "its inputs"
    said = (
        f"{_shown(matrix.lock, matrix.root)} does not match {what}; --frozen renders it as it "
        "is (uv's meaning). pinner 0.1's --frozen refused a stale lock: use --locked for that"
    )
    return [said]


def plan_warnings(matrix: Matrix, targets: Sequence[Target]) -> list[Finding]:
    """The plan's warnings for each target (bitsandbytes without the build's CUDA library, no
    base image, ...): what `explain` shows, for `generate` to say once."""
    from pinner.errors import PinnerError

    if not targets:
        return []
    try:
        results = plan_all(matrix, [t.name for t in targets])
    except PinnerError:  # --frozen renders from the lock even when an input cannot be read
        return []
    return [f for _, r in results for f in r.findings if f.severity == "warning"]


def _up_to_date(matrix: Matrix, names: list[str], out: Path | None, installer: str) -> bool:
    """Whether `generate` has nothing to do: `check` finds nothing stale, and every selected
    target has its files, rendered for `installer`, in a folder the lock records (as `check`
    does, without planning, resolving or rendering anything)."""
    from pinner.lock.fingerprint import read_seal
    from pinner.render.check import read_head
    from pinner.render.output import ARTIFACTS

    folder = out or matrix.out
    out_name = _relative(folder, matrix.root)
    head = read_head(matrix.lock)
    if head is None or check(matrix, out):
        return False
    inside = not (Path(out_name).is_absolute() or out_name.split("/", maxsplit=1)[0] == "..")
    for name in names:
        if inside and head[1].get(name) != out_name:
            return False  # the lock is to record this folder: generate writes it
        for file in ARTIFACTS:
            try:
                seal = read_seal((folder / name / file).read_bytes())
            except OSError:
                return False
            if seal is None or seal[0].get("installer", "pip") != installer:
                return False
    return True


def _write_lock_last(
    matrix: Matrix, text: str, before: tuple[tuple[str, str], ...], names: list[str], out_name: str
) -> bool:
    """Write the lock after the files rendered from it (atomically, only when it changed), with
    each target's out folder noted in its `[generated]` table, so `check` fails when that folder
    goes missing and `update` regenerates into it. Only out folders inside the project are
    noted."""
    from pinner.lock.lockfile import with_generated
    from pinner.render.check import generated_problem
    from pinner.render.output import write_text_atomic

    generated = dict(before)
    if not generated_problem(out_name):  # a folder inside the project, one line
        generated |= dict.fromkeys(names, out_name)
    if generated != dict(before):
        text = with_generated(text, generated)
    if not matrix.lock.is_file() or matrix.lock.read_text(encoding="utf-8") != text:
        write_text_atomic(matrix.lock, text)
        return True
    return False


def stale_diffs(
    matrix: Matrix, out: Path | None, problems: list[tuple[str, str, str]]
) -> list[str]:
    """Unified diffs of stale generated files, rendered from the current lock (`check --diff`),
    with paths from the project root; each target from the folder `check` read it in."""
    import dataclasses
    import re
    from pathlib import PurePosixPath

    from pinner.lock.fingerprint import lock_sections, regenerate_command
    from pinner.lock.lockfile import read_lock
    from pinner.render.check import out_folder, read_head
    from pinner.render.output import diff_artifacts
    from pinner.render.render import render_target

    wanted = {
        m.group(1)
        for _, _, cmd in problems
        if cmd.startswith("pinner generate") and (m := re.search(r"--target (\S+)", cmd))
    }
    if not wanted or not matrix.lock.is_file():
        return []
    lockfile = read_lock(matrix.lock)
    head = read_head(matrix.lock)
    recorded = head[1] if head else {}
    sections = lock_sections(matrix.lock.read_text(encoding="utf-8"))
    raw = {"root": matrix.root, "out": matrix.out}
    diffs = []
    for tl in lockfile.targets:
        name = tl.plan.target.name
        if name not in wanted:
            continue
        folder = out_folder(raw, recorded, name, out)
        installer = installer_of(folder, name)
        arts = render_target(
            tl,
            section=sections[name],
            installer=installer,
            templates=matrix.templates,
            source=source_name(matrix),
            command=regenerate_command(name, installer, _relative(folder, matrix.root)),
            root=_root_from(matrix.root, folder / name),
            folder=_folder(_relative(folder, matrix.root), name),
        )
        prefix = PurePosixPath(_relative(folder, matrix.root))
        shown = [dataclasses.replace(a, path=prefix / a.path) for a in arts]
        base = matrix.root if not prefix.is_absolute() else Path("/")
        diffs += [s.diff for s in diff_artifacts(shown, base) if s.diff]
        diffs += _removal_diffs(base, [a.path.as_posix() for a in shown])
    return diffs


def _removal_diffs(base: Path, paths: list[str]) -> list[str]:
    """A diff that deletes each index file left over next to `paths` (what `generate` removes)."""
    import difflib
    from pathlib import PurePosixPath

    from pinner.render.check import leftovers

    diffs = []
    for path in leftovers([base / p for p in paths]):
        shown = PurePosixPath(paths[0]).parent / path.name
        old = path.read_text(encoding="utf-8", errors="replace").splitlines(True)
        diffs.append("".join(difflib.unified_diff(old, [], f"a/{shown}", "/dev/null")))
    return diffs


# --- update --------------------------------------------------------------------------------------


def installer_of(out: Path, name: str) -> str:
    """The installer a target's generated files were rendered for (their header says), else pip."""
    from pinner.lock.fingerprint import unseal

    sample = out / name / "constraints.txt"
    if not sample.is_file():
        return "pip"
    parsed = unseal(sample.read_text(encoding="utf-8"))
    return parsed[0].get("installer", "pip") if parsed else "pip"


@_locked
def update(
    matrix: Matrix,
    names: Sequence[str],
    *,
    engine: str = "uv",
    progress: Progress | None = None,
    upgrade_packages: Sequence[str] = (),
    dry_run: bool = False,
    info: RunInfo | None = None,
    jobs: int = JOBS,
) -> tuple[Changes, list[Path]]:
    """Re-resolve the selected targets to the newest versions allowed (with `upgrade_packages`,
    only those packages move), rewrite the lock, re-render the targets that have a generated
    folder (with the installer they were rendered for), and return what moved and the files
    written (with `dry_run`, what would move and be written: nothing is)."""
    from pinner.lock.diff import diff_locks

    info = info if info is not None else RunInfo()
    selected = [t.name for t in select_targets(matrix, tuple(names))]
    old = _read_old_lock(matrix.lock, upgrade=True)
    recorded = dict(old.generated) if old else {}
    outs = {n: matrix.root / recorded[n] if n in recorded else matrix.out for n in selected}
    generated = {n: (installer_of(outs[n], n), outs[n]) for n in selected if (outs[n] / n).is_dir()}
    before = matrix.lock.read_bytes() if matrix.lock.is_file() else None
    result = lock_targets(
        matrix,
        selected,
        engine=engine,
        upgrade=not upgrade_packages,
        upgrade_packages=upgrade_packages,
        progress=progress,
        dry_run=dry_run,
        jobs=jobs,
    )
    info.lock, info.lock_changed = result, result.changed
    info.notes += result.notes
    lockfile = result.lockfile
    generated = {n: g for n, g in generated.items() if n not in result.failed}
    written: list[Path] = []
    try:
        for installer, out in sorted(set(generated.values())):
            group = [n for n, g in generated.items() if g == (installer, out)]
            written += generate(
                matrix,
                group,
                installer=installer,
                frozen=True,
                out=out,
                lock_text=result.text or None,
                dry_run=dry_run,
            )
    except BaseException:
        # rendering failed before every file was written: the old lock goes back, so the lock
        # never claims files that are not there (each rendered file is old or new)
        if before is not None and not written and not dry_run:
            from pinner.render.output import write_text_atomic

            write_text_atomic(matrix.lock, before.decode("utf-8"))
        raise
    in_matrix = {t.name for t in matrix.targets}
    dropped = [
        t.plan.target.name
        for t in (old.targets if old else ())
        if t.plan.target.name not in in_matrix
    ]
    return diff_locks(old, lockfile, selected + dropped), written


# --- doctor --------------------------------------------------------------------------------------


def doctor(matrix_path: Path | None, smi: Sequence[str] | None = None) -> Diagnosis:
    """This host's GPUs (nvidia-smi) judged against the presets and the project's matrix."""
    import dataclasses

    from pinner.commands.doctor import diagnose, older, read_smi, smi_command
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.load.matrix import find_matrix, preset_path
    from pinner.plan.plan import plan_target

    kb = load_knowledge()
    command = smi_command(smi)
    rows, absent = read_smi(command)
    preset_matrix = load_matrix(preset_path())
    presets = plan_all(preset_matrix, ()) if rows else []
    found, _ = find_matrix(matrix_path, Path.cwd())
    matrix = load_matrix(matrix_path) if found is not None else None
    targets = plan_all(matrix, ()) if matrix is not None and rows else []
    host_driver = rows[0].get("driver_version", "") if rows else ""
    again: dict[tuple[str, str], Plan | None] = {}
    for where, m, results in (("presets", preset_matrix, presets), ("", matrix, targets)):
        for target, result in results:  # what each target would get with this host's driver
            plan = result.plan
            if m is not None and plan and host_driver and older(host_driver, plan.min_driver):
                redone = plan_target(
                    dataclasses.replace(target, driver=host_driver), kb, requirements_of(m, target)
                )
                again[(where or target.origin, target.name)] = redone.plan
    return diagnose(
        rows,
        absent,
        kb,
        command=" ".join(command or []),
        presets=presets,
        matrix=source_name(matrix) if matrix is not None else "",
        targets=targets,
        host_driver_plans=again,
    )
