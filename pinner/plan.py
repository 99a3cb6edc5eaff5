"""plan: (Target, Knowledge, Requirements) -> PlanResult. Pure: no I/O, never raises for user input.

Chooses the torch build (release + CUDA variant), its companions, the PyTorch index, the base image
and the companion constraints, and records the reason for each choice and for each variant it
rejected. Rules (shared/reference/facts.md sections 2-4):
- a cubin for sm_X.y runs on a GPU of the same major X and minor >= y, never across majors; PTX
  compiles forward to any newer GPU;
- CUDA 12.x builds need driver >= 525.60.13, CUDA 13.x builds >= 580.65.06 (minor-version
  compatibility);
- with cuda = "auto": the newest release that has a fitting build; within it PyPI's own build when
  it fits, else the newest fitting index variant. Variants the knowledge does not list are never
  offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from pinner import extensions as ext
from pinner.builds import (
    CUBIN_RULE,
    CUBIN_SOURCE,
    Failure,
    Option,
    describe_arches,
    min_driver,
    serving_arch,
    variant_order,
    vtuple,
)
from pinner.builds import (
    options as build_options,
)
from pinner.knowledge import Build, Gpu, Knowledge, TorchRelease, variant_to_cuda
from pinner.model import (
    Constraint,
    Finding,
    Plan,
    PlanResult,
    Rejection,
    Requirements,
    Step,
    Target,
    TorchBuild,
)

if TYPE_CHECKING:
    from collections.abc import Callable

PYPI = "PyPI (the installer's configured index)"


@dataclass
class Context:
    target: Target
    kb: Knowledge
    gpu: Gpu | None
    spec: SpecifierSet
    spec_text: str
    bounds: list[tuple[str, SpecifierSet]] = field(default_factory=list)  # (why, spec)
    extension_check: Callable[[Option], Failure | None] | None = None


def plan_target(target: Target, kb: Knowledge, reqs: Requirements) -> PlanResult:
    """Decide how `target` gets torch, or say why it cannot and what would work."""
    findings: list[Finding] = []
    gpu: Gpu | None = None
    if target.gpu.casefold() != "cpu":
        gpu = kb.find_gpu(target.gpu)
        if gpu is None:
            close = kb.suggest_gpus(target.gpu)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            findings.append(
                _error(
                    target,
                    "unknown-gpu",
                    f"{target.origin}.gpu: unknown GPU {target.gpu!r}{hint}",
                    'run "pinner gpus" for the names pinner knows, or gpu = "cpu"',
                )
            )
            return PlanResult(plan=None, findings=tuple(findings))
    ctx = _context(target, kb, gpu, reqs, findings)
    if ctx is None:
        return PlanResult(plan=None, findings=tuple(findings))
    ext_plan = ext.prepare(target, kb, reqs, ctx.gpu)
    findings += ext_plan.findings
    if any(f.severity == "error" for f in findings):
        return PlanResult(plan=None, findings=tuple(findings))
    ctx.bounds += ext_plan.torch_bounds
    options = list(build_options(kb, target.platform))
    ctx.extension_check = ext_plan.check if ext_plan.wheel_seekers else None
    chosen = next((o for o in options if not _failures(o, ctx)), None)
    if chosen is None and "auto" in ext_plan.modes.values():
        ext_plan = ext_plan.without_wheels()  # no wheel anywhere: build from source instead
        ctx.extension_check = ext_plan.check if ext_plan.wheel_seekers else None
        chosen = next((o for o in options if not _failures(o, ctx)), None)
    if chosen is None:
        findings.append(_impossible(ctx, options))
        return PlanResult(plan=None, findings=tuple(findings))
    return _finish(ctx, chosen, options, ext_plan, findings)


def _context(
    target: Target, kb: Knowledge, gpu: Gpu | None, reqs: Requirements, findings: list[Finding]
) -> Context | None:
    try:
        spec = SpecifierSet(target.torch)
    except InvalidSpecifier:
        findings.append(
            _error(
                target,
                "bad-range",
                f"{target.origin}.torch: invalid range {target.torch!r}",
                'write a PEP 440 range such as ">=2.7,<2.9"',
            )
        )
        return None
    ctx = Context(target=target, kb=kb, gpu=gpu, spec=spec, spec_text=target.torch or "any")
    for req in reqs.items:
        if req.name not in ("torch", "torchvision", "torchaudio") or not req.specifier:
            continue
        req_spec = SpecifierSet(req.specifier)
        if req.name == "torch":
            ctx.bounds.append((f"{req.origin} asks for {req.text}", req_spec))
        else:  # a companion pin implies the torch release it was built for
            allowed = [r.version for r in kb.releases if _companion(r, req.name) in req_spec]
            pinned = SpecifierSet(
                ",".join(f"!={r.version}" for r in kb.releases if r.version not in allowed)
            )
            ctx.bounds.append((f"{req.origin} asks for {req.text}", pinned))
    return ctx


def _companion(release: TorchRelease, name: str) -> str:
    version = release.torchvision if name == "torchvision" else release.torchaudio
    return version or "0"


def _failures(option: Option, ctx: Context) -> list[Failure]:
    """Why `option` does not fit the target, most basic reason first; [] when it fits."""
    out: list[Failure] = []
    release, target = option.release, ctx.target
    if release.version not in ctx.spec:
        out.append(
            Failure("torch-range", f"torch {release.version} is outside torch {ctx.spec_text}")
        )
    for why, spec in ctx.bounds:
        if release.version not in spec:
            out.append(Failure("torch-range", f"torch {release.version} conflicts: {why}"))
            break
    if target.python not in release.python:
        out.append(
            Failure("python", f"torch {release.version} has no wheel for Python {target.python}")
        )
    if target.cuda not in ("auto", "cpu") and option.variant != target.cuda:
        out.append(Failure("cuda", f"{option.variant} is not the requested {target.cuda}"))
    out += _hardware_failures(option, ctx)
    if ctx.extension_check is not None and not out:
        failure = ctx.extension_check(option)
        if failure is not None:
            out.append(failure)
    return out


def _hardware_failures(option: Option, ctx: Context) -> list[Failure]:
    gpu, kb = ctx.gpu, ctx.kb
    if gpu is None:
        if option.variant != "cpu":
            return [Failure("cpu", f"{option.variant} is a CUDA build; the target has no GPU")]
        return []
    if option.variant == "cpu":
        return [Failure("cpu", f"cpu builds have no CUDA kernels for the {gpu.name}")]
    out = []
    build = kb.build(option.release.minor, option.variant, ctx.target.platform)
    if build is None:
        out.append(
            Failure(
                "arch-unknown",
                f"the architectures of torch {option.release.minor} {option.variant} builds "
                "are not in pinner's knowledge",
            )
        )
    elif not serving_arch(gpu.compute_capability, build):
        out.append(
            Failure(
                "no-kernels",
                f"torch {option.release.minor} {option.variant} builds carry "
                f"{describe_arches(build)}: no kernels for {gpu.sm}",
            )
        )
    needed = min_driver(kb, option.variant)
    if ctx.target.driver and needed and vtuple(ctx.target.driver) < vtuple(needed):
        major = variant_to_cuda(option.variant).split(".")[0]
        out.append(
            Failure(
                "driver",
                f"CUDA {major} builds need driver >= {needed}; the target's driver is "
                f"{ctx.target.driver}",
            )
        )
    return out


def _finish(
    ctx: Context,
    chosen: Option,
    options: list[Option],
    ext_plan: ext.ExtensionPlan,
    findings: list[Finding],
) -> PlanResult:
    target, kb, gpu, release = ctx.target, ctx.kb, ctx.gpu, chosen.release
    build = kb.build(release.minor, chosen.variant, target.platform) if gpu else None
    torch = TorchBuild(
        version=release.version,
        variant=chosen.variant,
        cuda=variant_to_cuda(chosen.variant),
        on_pypi=chosen.on_pypi,
        arches=build.arches if build else (),
        ptx=build.ptx if build else "",
        cxx11_abi=release.cxx11_abi,
    )
    index_url = (
        "" if chosen.on_pypi else target.torch_index_url.replace("{variant}", chosen.variant)
    )
    steps = _steps(ctx, chosen, build, index_url)
    companions = _companions(
        release, torch, reqs_names=ext_plan.requested, target=target, findings=findings, steps=steps
    )
    constraints = _constraints(kb, release, torch, ext_plan)
    extensions, ext_findings, ext_env, ext_apt, devel = ext_plan.finish(chosen, torch)
    findings += ext_findings
    if any(f.severity == "error" for f in ext_findings):
        return PlanResult(plan=None, findings=tuple(findings))
    base_image = _base_image(ctx, torch, devel, steps)
    if not base_image:
        findings.append(
            Finding(
                target=target.name,
                severity="warning",
                code="no-base-image",
                message=f"pinner knows no base image for CUDA {torch.cuda or 'cpu'}: the "
                "Dockerfile takes it as --build-arg BASE_IMAGE, the Modal image from "
                "$PINNER_BASE_IMAGE",
                fix=f'set base-image = "<image>" on {target.origin}',
                source="",
            )
        )
    driver = min_driver(kb, chosen.variant)
    _notes(ctx, chosen, driver, findings)
    plan = Plan(
        target=target,
        gpu_name=gpu.name if gpu else "cpu",
        compute_capability=gpu.compute_capability if gpu else "",
        torch=torch,
        index_url=index_url,
        companions=companions,
        base_image=base_image,
        min_driver=driver,
        apt=ext_apt,
        env=ext_env,
        constraints=constraints,
        extensions=extensions,
        steps=tuple(steps + [s for e in extensions for s in ext.steps_for(e)]),
        rejected=_rejections(ctx, chosen, options),
    )
    return PlanResult(plan=plan, findings=tuple(findings))


def _steps(ctx: Context, chosen: Option, build: Build | None, index_url: str) -> list[Step]:
    target, gpu, release, kb = ctx.target, ctx.gpu, chosen.release, ctx.kb
    steps: list[Step] = []
    if gpu is None:
        steps.append(
            Step(
                topic="gpu",
                choice="none (cpu)",
                why='gpu = "cpu": a CPU-only build',
                source="matrix",
            )
        )
    else:
        steps.append(
            Step(
                topic="gpu",
                choice=f"{gpu.name} ({gpu.key})",
                why=f"{target.gpu!r} -> compute capability {gpu.compute_capability} ({gpu.architecture})",
                source=gpu.source,
            )
        )
        assert build is not None
        serving = serving_arch(gpu.compute_capability, build)
        why = f"the build carries {describe_arches(build)}"
        if serving != gpu.sm:
            why += f"; {serving} runs on {gpu.sm}: {CUBIN_RULE}"
        steps.append(
            Step(
                topic="arch",
                choice=f"{gpu.sm} served by {serving}",
                why=why,
                source=f"{build.source} [{build.confidence}]; {CUBIN_SOURCE}",
            )
        )
    if target.cuda == "auto" or (gpu is None and target.cuda == "cpu"):
        how = "cuda = auto: the newest release with a build that runs here"
        if chosen.on_pypi:
            how += f"; PyPI's own build of torch {release.version} is {chosen.variant} and fits"
    else:
        how = f"cuda = {target.cuda} was requested"
    where = PYPI if chosen.on_pypi else index_url
    steps.append(
        Step(
            topic="variant",
            choice=f"{chosen.variant} from {where}",
            why=how,
            source=release.source
            if chosen.on_pypi
            else f"{release.variants_source} [{release.variants_confidence}]",
        )
    )
    bounds = "; ".join(why for why, _ in ctx.bounds)
    steps.append(
        Step(
            topic="torch",
            choice=release.version if chosen.on_pypi else f"{release.version}+{chosen.variant}",
            why=(f"newest release in torch {ctx.spec_text}" if target.torch else "newest release")
            + (f" ({bounds})" if bounds else "")
            + f" with a Python {target.python} {target.platform} wheel of this build",
            source=release.source,
        )
    )
    driver = min_driver(kb, chosen.variant)
    if driver:
        major = kb.major(int(variant_to_cuda(chosen.variant).split(".")[0]))
        given = (
            f"target driver {target.driver}: ok"
            if target.driver
            else "driver not given: not checked"
        )
        steps.append(
            Step(
                topic="driver",
                choice=f">= {driver}",
                why=f"CUDA {major.major if major else '?'} builds need it; {given}",
                source=major.source if major else "",
            )
        )
    return steps


def _companions(
    release: TorchRelease,
    torch: TorchBuild,
    *,
    reqs_names: frozenset[str],
    target: Target,
    findings: list[Finding],
    steps: list[Step],
) -> tuple[str, ...]:
    local = "" if torch.on_pypi else f"+{torch.variant}"
    pins = [f"torchvision=={release.torchvision}{local}"]
    why = f"torchvision {release.torchvision} is built for torch {release.version}"
    if release.torchaudio:
        pins.append(f"torchaudio=={release.torchaudio}{local}")
        why += f"; torchaudio {release.torchaudio} likewise"
    else:
        why += "; no torchaudio exists for it (torchaudio ends at 2.11.0 on PyPI)"
        if "torchaudio" in reqs_names:
            findings.append(
                Finding(
                    target=target.name,
                    severity="warning",
                    code="no-torchaudio",
                    message=f"torchaudio is required, but no torchaudio release matches torch "
                    f"{release.version}: torchaudio ends at 2.11.0 on PyPI, and its C++ extension "
                    "is built for torch 2.11",
                    fix='keep torch below 2.12 (torch = "<2.12") if you need torchaudio',
                    source="PyPI torchaudio (newest 2.11.0); facts-addendum.md Q3",
                )
            )
    steps.append(Step(topic="companions", choice=", ".join(pins), why=why, source=release.source))
    return tuple(pins)


def _constraints(
    kb: Knowledge, release: TorchRelease, torch: TorchBuild, ext_plan: ext.ExtensionPlan
) -> tuple[Constraint, ...]:
    out: list[Constraint] = []
    numpy = kb.docs["packages"]["numpy"]
    if not release.numpy2:
        out.append(
            Constraint(
                requirement=numpy["constraint"],
                why=f"torch {release.version} was built against NumPy 1.x and fails to import "
                f"with NumPy 2 (NumPy 2 support starts at torch {numpy['numpy2_from_torch']})",
                source=numpy["source"],
            )
        )
    minor = Version(release.minor)
    for line in sorted(kb.docs["packages"]["transformers"], key=lambda t: Version(t["first"])):
        if Version(line["min_torch"]) > minor:
            out.append(
                Constraint(
                    requirement=f"transformers<{line['first']}",
                    why=f"transformers {line['first']} and newer need torch >= {line['min_torch']} "
                    "and silently disable an older torch instead of failing",
                    source=line["source"],
                )
            )
            break
    out += ext_plan.constraints(torch)
    return tuple(out)


def _base_image(ctx: Context, torch: TorchBuild, devel: bool, steps: list[Step]) -> str:
    target, kb = ctx.target, ctx.kb
    if target.base_image:
        steps.append(
            Step(
                topic="base image",
                choice=target.base_image,
                why="base-image set in the matrix",
                source="matrix",
            )
        )
        return target.base_image
    image = kb.image(torch.cuda)
    if image is None:
        steps.append(
            Step(
                topic="base image",
                choice="(none known)",
                why=f"no base image for CUDA {torch.cuda or 'cpu'} in pinner's knowledge; "
                "set base-image",
                source="",
            )
        )
        return ""
    name = image.devel if devel else image.runtime
    kind = "devel image: a source build needs nvcc" if devel else "runtime image"
    what = f"CUDA {torch.cuda} {kind}" if torch.cuda else "CPU image"
    steps.append(Step(topic="base image", choice=name, why=what, source=image.source))
    return name


def _notes(ctx: Context, chosen: Option, driver: str, findings: list[Finding]) -> None:
    target, kb = ctx.target, ctx.kb
    if driver and not target.driver:
        major = kb.major(int(variant_to_cuda(chosen.variant).split(".")[0]))
        findings.append(
            Finding(
                target=target.name,
                severity="note",
                code="driver-unchecked",
                message=f"this build needs NVIDIA driver >= {driver}; no driver was given",
                fix=f'set driver = "<version>" on {target.origin} to have it checked',
                source=major.source if major else "",
            )
        )
    newest = next((r for r in kb.releases if r.version in ctx.spec), None)
    if newest is not None and newest.variants_confidence == "unverified":
        findings.append(
            Finding(
                target=target.name,
                severity="note",
                code="variants-unverified",
                message=f"torch {newest.version}: its PyTorch-index variants are not verified in "
                f"pinner's knowledge, so only PyPI's own build (CUDA {newest.pypi_cuda}) is offered",
                fix="",
                source=newest.variants_source,
            )
        )


def _rejections(ctx: Context, chosen: Option, options: list[Option]) -> tuple[Rejection, ...]:
    """One row per known variant that was not chosen: its best build, and why it lost."""
    rows: dict[str, str] = {}
    for option in options:
        if option.variant == chosen.variant or option.variant in rows:
            continue
        fails = _failures(option, ctx)
        if fails:
            if any(o.variant == option.variant and not _failures(o, ctx) for o in options):
                continue  # a later release of this variant fits; report that one
            rows[option.variant] = fails[0].reason
        else:
            rows[option.variant] = (
                f"fits with torch {option.release.version}, but torch "
                f"{chosen.release.version} ({chosen.variant}) is preferred"
            )
    for option in options:  # variants whose every build fails: the build closest to fitting
        if option.variant != chosen.variant and option.variant not in rows:
            same = [o for o in options if o.variant == option.variant]
            closest = min(same, key=lambda o: len(_failures(o, ctx)))
            rows[option.variant] = _failures(closest, ctx)[0].reason
    return tuple(
        Rejection(variant=v, reason=r)
        for v, r in sorted(rows.items(), key=lambda kv: variant_order(kv[0]))
    )


def _impossible(ctx: Context, options: list[Option]) -> Finding:
    """No build fits: say why (in GPU terms where that is the cause) and what would work."""
    target, gpu = ctx.target, ctx.gpu
    considered = [o for o in options if target.cuda in ("auto", "cpu") or o.variant == target.cuda]
    if not considered:
        known = sorted({o.variant for o in options}, key=variant_order)
        return _error(
            target,
            "unknown-variant",
            f"{target.origin}.cuda: no torch release in pinner's knowledge has a "
            f"{target.cuda} build for {target.platform}",
            f'use one of {", ".join(known)} or cuda = "auto"',
        )
    codes = [(_failures(o, ctx) or [Failure("", "")])[0] for o in considered]
    hardware = [_failures(o, ctx) for o in considered]
    # builds that fail only for want of a prebuilt extension wheel (build = "wheel")
    wheel_only = [fs[0] for fs in hardware if fs and all(f.code == "extension" for f in fs)]
    if gpu is not None and all(any(f.code == "no-kernels" for f in fs) for fs in hardware):
        what = target.cuda if target.cuda not in ("auto", "cpu") else "torch"
        builds = _summarize_builds(ctx, considered)
        message = (
            f"{target.origin}: the {gpu.name} is {gpu.sm} (compute capability "
            f"{gpu.compute_capability}); no {what} build carries kernels for it ({builds})"
        )
    elif wheel_only:
        message = f"{target.origin}: no torch build fits: {wheel_only[0].reason}"
    else:
        message = f"{target.origin}: no torch build fits: {codes[0].reason}"
        newest = ctx.kb.releases[0].version
        if not any(r.version in ctx.spec for r in ctx.kb.releases) and ctx.spec.contains(
            "99.0", prereleases=True
        ):
            message += (
                f"; pinner's knowledge (as of {ctx.kb.as_of}) ends at torch {newest}: a newer "
                "release may exist, but pinner does not plan what it cannot check"
            )
    return _error(target, "impossible-target", message, _fixes(ctx, options))


def _summarize_builds(ctx: Context, considered: list[Option]) -> str:
    by_build: dict[tuple[str, str], list[str]] = {}
    for option in considered:
        build = ctx.kb.build(option.release.minor, option.variant, ctx.target.platform)
        if build is None:
            continue
        key = (option.variant, describe_arches(build))
        if option.release.minor not in by_build.setdefault(key, []):
            by_build[key].append(option.release.minor)
    parts = []
    for (variant, arches), minors in by_build.items():
        span = minors[-1] if len(minors) == 1 else f"{minors[-1]}-{minors[0]}"
        parts.append(f"torch {span} {variant}: {arches}")
    return "; ".join(parts[:4])


def _fixes(ctx: Context, options: list[Option]) -> str:
    """What would work: the GPU's own needs, then each of the user's constraints relaxed alone."""
    fixes: list[str] = []
    gpu = ctx.gpu
    if gpu is not None:
        runs = [
            o
            for o in options
            if not any(
                f.code in ("no-kernels", "arch-unknown", "cpu") for f in _hardware_failures(o, ctx)
            )
        ]
        if runs:
            low = min(runs, key=lambda o: (variant_order(o.variant), Version(o.release.version)))
            low_torch = min((o.release for o in runs), key=lambda r: Version(r.version))
            fixes.append(
                f"the {gpu.name} needs a CUDA >= {variant_to_cuda(low.variant)} build with "
                f"torch >= {low_torch.minor}"
            )
        else:
            fixes.append(f"no torch build in pinner's knowledge runs on the {gpu.name}")
    for code in ("cuda", "torch-range", "driver", "python"):
        fits = [
            o
            for o in options
            if (fails := _failures(o, ctx))
            and all(f.code == code for f in fails)
            # `_failures` checks extensions only when nothing else fails: check them here
            and (ctx.extension_check is None or ctx.extension_check(o) is None)
        ]
        if not fits:
            continue
        best = fits[0]
        if code == "cuda":
            low = min(
                fits,
                key=lambda o: (variant_order(o.variant), -Version(o.release.version).release[1]),
            )
            low = next(
                o for o in fits if o.variant == low.variant
            )  # newest release of that variant
            fixes.append(
                f'set cuda = "{variant_to_cuda(low.variant)}" (torch {low.release.version}) or '
                f'cuda = "auto" (torch {best.release.version}, {best.variant})'
            )
        elif code == "torch-range":
            fixes.append(
                f"widen torch = {ctx.target.torch!r}: torch {best.release.version} would fit"
            )
            if ctx.extension_check is not None:  # the nearest releases that have the wheels
                nearest = list(dict.fromkeys(f"{o.release.version} ({o.variant})" for o in fits))
                fixes.append(
                    "torch releases with the prebuilt extension wheels for this target: "
                    + ", ".join(nearest[:4])
                )
        elif code == "driver":
            fixes.append(
                f"a driver >= {min_driver(ctx.kb, best.variant)} would allow torch "
                f"{best.release.version} ({best.variant})"
            )
        else:
            fixes.append(
                f'python = "{best.release.python[-1]}" (torch {best.release.version} '
                "has wheels for it)"
            )
    return "; ".join(fixes) if fixes else "no torch build in pinner's knowledge fits this target"


def _error(target: Target, code: str, message: str, fix: str, source: str = "") -> Finding:
    return Finding(
        target=target.name, severity="error", code=code, message=message, fix=fix, source=source
    )
