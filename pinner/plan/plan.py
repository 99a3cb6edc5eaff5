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

from dataclasses import replace
from typing import TYPE_CHECKING

from packaging.version import Version

from pinner.knowledge import images
from pinner.knowledge.knowledge import (
    BaseImage,
    Build,
    Gpu,
    Knowledge,
    TorchRelease,
    variant_to_cuda,
)
from pinner.model import (
    Constraint,
    Finding,
    Plan,
    PlanResult,
    Requirements,
    Step,
    Target,
    TorchBuild,
)
from pinner.plan import diagnose, fit
from pinner.plan import extensions as ext
from pinner.plan.builds import (
    CUBIN_RULE,
    Option,
    cubin_source,
    describe_arches,
    min_driver,
    serving_arch,
)
from pinner.plan.builds import options as build_options
from pinner.plan.wheels import find_wheel

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from pinner.plan.fit import Context

PYPI = "PyPI (the installer's configured index)"


def plan_target(
    target: Target, kb: Knowledge, reqs: Requirements, *, torch: str = ""
) -> PlanResult:
    """Decide how `target` gets torch, or say why it cannot and what would work: the builds that
    fit, in segments, and the plan for the preferred one (or for `torch`, a pin such as "2.14.0"
    or "2.7.1+cu128" that the resolver chose within the segments)."""
    findings: list[Finding] = []
    gpu: Gpu | None = None
    if target.gpu.casefold() != "cpu":
        gpu = kb.find_gpu(target.gpu)
        if gpu is None:
            close = kb.suggest_gpus(target.gpu)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            findings.append(
                fit.error(
                    target,
                    "unknown-gpu",
                    f"{target.origin}.gpu: unknown GPU {target.gpu!r}{hint}",
                    'run "pinner gpus" for the names pinner knows, or gpu = "cpu"',
                )
            )
            return PlanResult(plan=None, findings=tuple(findings))
    ctx = fit.context(target, kb, gpu, reqs, findings)
    if ctx is None:
        return PlanResult(plan=None, findings=tuple(findings))
    ext_plan = ext.prepare(target, kb, reqs, ctx.gpu)
    findings += ext_plan.findings
    if any(f.severity == "error" for f in findings):
        return PlanResult(plan=None, findings=tuple(findings))
    ctx.bounds += ext_plan.torch_bounds
    options = list(build_options(kb, target.platform))
    ctx.extension_check = ext_plan.check if ext_plan.checks else None
    fitting = [o for o in options if not fit.failures(o, ctx)]
    if not fitting and "auto" in ext_plan.modes.values():
        ext_plan = ext_plan.without_wheels()  # no wheel anywhere: build from source instead
        ctx.extension_check = ext_plan.check if ext_plan.checks else None
        fitting = [o for o in options if not fit.failures(o, ctx)]
    if not fitting:
        findings.append(diagnose.impossible(ctx, options))
        return PlanResult(plan=None, findings=tuple(findings))
    segments = split_segments(ctx, fitting, ext_plan)
    chosen = fitting[0]
    if torch:
        chosen = next((o for o in fitting if _pin(o) == torch), chosen)
    result = _finish(ctx, chosen, options, ext_plan, findings)
    return replace(result, segments=segments)


def _pin(option: Option) -> str:
    return (
        option.release.version if option.on_pypi else f"{option.release.version}+{option.variant}"
    )


def split_segments(
    ctx: Context, fitting: list[Option], ext_plan: ext.ExtensionPlan
) -> tuple[tuple[str, ...], ...]:
    """The fitting builds that one resolver run can serve together: the same index (PyPI, or one
    variant of the PyTorch index) and the same plan constraints (numpy<2 for old torch, the
    transformers bound, the bitsandbytes minimum, extension pins and wheels). Segments come in
    the order of their most preferred build; within one, newest first."""
    out: dict[tuple[object, ...], list[str]] = {}
    for option in fitting:
        out.setdefault(_segment_key(ctx, option, ext_plan), []).append(_pin(option))
    return tuple(tuple(s) for s in out.values())


def segment_spec(kb: Knowledge, pins: tuple[str, ...]) -> str:
    """The torch specifier of a segment: its versions and no other release pinner knows, and
    nothing newer than pinner's knowledge ("==2.15.0", ">=2.13.0,<=2.14.1,!=2.13.1")."""
    versions = sorted({Version(p.split("+")[0]) for p in pins})
    if len(versions) == 1:
        return f"=={versions[0]}"
    low, high = versions[0], versions[-1]
    holes = sorted(
        {Version(r.version) for r in kb.releases if low < Version(r.version) < high} - set(versions)
    )
    return ",".join([f">={low}", f"<={high}", *(f"!={v}" for v in holes)])


def _segment_key(ctx: Context, option: Option, ext_plan: ext.ExtensionPlan) -> tuple[object, ...]:
    torch = TorchBuild(
        version=option.release.version,
        variant=option.variant,
        cuda=variant_to_cuda(option.variant),
        on_pypi=option.on_pypi,
        arches=(),
        ptx="",
        cxx11_abi=option.release.cxx11_abi,
    )
    constraints = tuple(
        c.requirement for c in _constraints(ctx.kb, option.release, torch, ext_plan)
    )
    wheels = tuple(
        (name, str(find_wheel(ctx.kb, option, ctx.target.python, ctx.gpu, ext_plan.specs[name])))
        for name in ext_plan.wheel_seekers
    )
    where = "pypi" if option.on_pypi else option.variant
    return (where, constraints, wheels)


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
        release,
        torch,
        reqs_names=ext_plan.requested,
        torchaudio=ctx.torchaudio,
        target=target,
        findings=findings,
        steps=steps,
    )
    constraints = _constraints(kb, release, torch, ext_plan)
    extensions, ext_findings, ext_env, ext_apt, devel = ext_plan.finish(chosen, torch)
    findings += ext_findings
    if any(f.severity == "error" for f in ext_findings):
        return PlanResult(plan=None, findings=tuple(findings))
    base_image = _base_image(ctx, torch, devel, steps, findings)
    if any(f.severity == "error" for f in findings):
        return PlanResult(plan=None, findings=tuple(findings))
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
    driver = min_driver(kb, chosen.variant, gpu)
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
        rejected=diagnose.rejections(ctx, chosen, options),
    )
    return PlanResult(plan=plan, findings=tuple(findings))


def _steps(ctx: Context, chosen: Option, build: Build | None, index_url: str) -> list[Step]:
    """The reasoning chain `explain` prints: GPU -> arch -> variant -> torch -> driver."""
    return [
        *_hardware_steps(ctx, build),
        _variant_step(ctx, chosen, index_url),
        _torch_step(ctx, chosen),
        *_driver_step(ctx, chosen),
    ]


def _hardware_steps(ctx: Context, build: Build | None) -> list[Step]:
    gpu = ctx.gpu
    if gpu is None:
        return [
            Step(
                topic="gpu",
                choice="none (cpu)",
                why='gpu = "cpu": a CPU-only build',
                source="matrix",
            )
        ]
    assert build is not None
    serving = serving_arch(gpu.compute_capability, build)
    why = f"the build carries {describe_arches(build)}"
    if build.confidence != "verified":
        why += f" ({build.confidence}: not read from the wheel)"
    if serving != gpu.sm:
        why += f"; {serving} runs on {gpu.sm}: {CUBIN_RULE}"
    return [
        Step(
            topic="gpu",
            choice=f"{gpu.name} ({gpu.key})",
            why=f"{ctx.target.gpu!r} -> compute capability {gpu.compute_capability} "
            f"({gpu.architecture})",
            source=gpu.source,
        ),
        Step(
            topic="arch",
            choice=f"{gpu.sm} served by {serving}",
            why=why,
            source=f"{build.source} {cubin_source(ctx.kb)}",
        ),
    ]


def _variant_step(ctx: Context, chosen: Option, index_url: str) -> Step:
    target, release = ctx.target, chosen.release
    if target.cuda == "auto" or (ctx.gpu is None and target.cuda == "cpu"):
        how = "cuda = auto: the newest release with a build that runs here"
        if chosen.on_pypi:
            how += f"; PyPI's own build of torch {release.version} is {chosen.variant} and fits"
    else:
        how = f"cuda = {target.cuda} was requested"
    where = PYPI if chosen.on_pypi else index_url
    source = release.source if chosen.on_pypi else release.variants_source
    if not chosen.on_pypi and release.variants_confidence != "verified":
        how += f" (the index's variants are {release.variants_confidence} knowledge)"
    return Step(topic="variant", choice=f"{chosen.variant} from {where}", why=how, source=source)


def _torch_step(ctx: Context, chosen: Option) -> Step:
    target, release = ctx.target, chosen.release
    bounds = "; ".join(why for why, _ in ctx.bounds)
    return Step(
        topic="torch",
        choice=release.version if chosen.on_pypi else f"{release.version}+{chosen.variant}",
        why=(f"newest release in torch {ctx.spec_text}" if target.torch else "newest release")
        + (f" ({bounds})" if bounds else "")
        + f" with a Python {target.python} {target.platform} wheel of this build",
        source=release.source,
    )


def _driver_step(ctx: Context, chosen: Option) -> list[Step]:
    driver = min_driver(ctx.kb, chosen.variant, ctx.gpu)
    if not driver:
        return []
    major = ctx.kb.major(int(variant_to_cuda(chosen.variant).split(".")[0]))
    given = (
        f"target driver {ctx.target.driver}: ok"
        if ctx.target.driver
        else "driver not given: not checked"
    )
    gpu = ctx.gpu
    if (
        gpu is not None
        and driver == gpu.min_driver
        and driver != min_driver(ctx.kb, chosen.variant)
    ):
        why, source = f"the {gpu.name} ({gpu.architecture}) needs it", gpu.min_driver_source
    else:
        why = f"CUDA {major.major if major else '?'} builds need it"
        source = major.source if major else ""
    return [Step(topic="driver", choice=f">= {driver}", why=f"{why}; {given}", source=source)]


def _companions(
    release: TorchRelease,
    torch: TorchBuild,
    *,
    reqs_names: frozenset[str],
    torchaudio: SpecifierSet | None,
    target: Target,
    findings: list[Finding],
    steps: list[Step],
) -> tuple[str, ...]:
    local = "" if torch.on_pypi else f"+{torch.variant}"
    pins = [f"torchvision=={release.torchvision}{local}"]
    why = f"torchvision {release.torchvision} is built for torch {release.version}"
    audio, ranged = release.torchaudio_for(
        torch.variant,
        torch.on_pypi,
        (lambda v: torchaudio.contains(v, prereleases=True)) if torchaudio else lambda _: True,
    )
    source = release.source
    if audio and ranged is None:
        pins.append(f"torchaudio=={audio}{local}")
        why += f"; torchaudio {audio} likewise"
    elif ranged is not None:
        # a ranged release (torch>=2.11) is pinned when the project asks for torchaudio; otherwise
        # it stays free, so a package pinning another admitting torchaudio (vllm) still resolves
        source = f"{source} {ranged.source}"
        why += (
            f"; torchaudio {audio} is the newest release whose requirement (torch{ranged.torch}) "
            f"admits torch {release.version}"
        )
        if ranged.confidence != "verified":
            why += f" ({ranged.confidence} knowledge)"
        if "torchaudio" in reqs_names:
            pins.append(f"torchaudio=={audio}{local}")
    else:
        where = "PyPI" if torch.on_pypi else f"the {torch.variant} index"
        # one the project's own requirement rules out is known all the same: say so
        known = release.torchaudio_for(torch.variant, torch.on_pypi)[0] if torchaudio else ""
        if known:
            why += (
                f"; no torchaudio within the project's torchaudio{torchaudio} admits torch "
                f"{release.version} on {where} (pinner knows torchaudio {known} for it)"
            )
        else:
            why += f"; no torchaudio known to pinner admits torch {release.version} on {where}"
        if "torchaudio" in reqs_names:
            message = (
                f"torchaudio{torchaudio} is required, but the torchaudio pinner knows for torch "
                f"{release.version} on {where} is {known}"
                if known
                else f"torchaudio is required, but pinner knows no torchaudio release for "
                f"torch {release.version} on {where}"
            )
            fix = (
                f"allow torchaudio {known} in the project's requirements, or pin torch to a "
                "release whose torchaudio they allow"
                if known
                else 'use PyPI\'s own torch build (cuda = "auto"), or pin torch to a release '
                "whose torchaudio is on that index"
            )
            findings.append(
                Finding(
                    target=target.name,
                    severity="warning",
                    code="no-torchaudio",
                    message=message,
                    fix=fix,
                    source=" ".join(c.source for c in release.torchaudio_ranged) or release.source,
                )
            )
    steps.append(Step(topic="companions", choice=", ".join(pins), why=why, source=source))
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


def _base_image(
    ctx: Context, torch: TorchBuild, devel: bool, steps: list[Step], findings: list[Finding]
) -> str:
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
    if devel and torch.cuda and ctx.gpu is not None:
        return _devel_image(ctx, torch, image, steps, findings)
    name = image.devel if devel else image.runtime
    kind = "devel image: a source build needs nvcc" if devel else "runtime image"
    what = f"CUDA {torch.cuda} {kind}" if torch.cuda else "CPU image"
    if not torch.cuda or ctx.gpu is None:
        steps.append(Step(topic="base image", choice=name, why=what, source=image.source))
        return name
    source = f"{image.source}; {image.require_source}"
    if not target.driver:
        why = (
            f"{what}; its NVIDIA_REQUIRE_CUDA lets the container runtime start it on "
            f"{images.needs(image, kb)}, stricter than the wheels' own minimum "
            f"(>= {min_driver(kb, torch.variant)})"
        )
        steps.append(Step(topic="base image", choice=name, why=why, source=source))
        return name
    ok = images.starts(image, kb, target.driver, ctx.gpu.brand)
    if ok:
        why = f"{what}; driver {target.driver} starts it: {ok}"
        steps.append(Step(topic="base image", choice=name, why=why, source=source))
        return name
    plain = kb.image("")
    assert plain is not None
    why = (
        f"{name} needs {images.needs(image, kb)} (its NVIDIA_REQUIRE_CUDA); driver "
        f"{target.driver} on a {ctx.gpu.brand or 'unknown-brand'} GPU meets neither, so the "
        f"container runtime would refuse to start it. torch's wheels bring their own CUDA "
        f"{torch.cuda} libraries and need only driver >= {min_driver(kb, torch.variant)}, so a "
        "plain OS image with NVIDIA_VISIBLE_DEVICES=all and "
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility (as the CUDA images set) runs them; an older "
        "nvidia/cuda image would put a second, older CUDA runtime on the library path"
    )
    steps.append(
        Step(topic="base image", choice=plain.runtime, why=why, source=f"{source}; {plain.source}")
    )
    return plain.runtime


def _devel_image(
    ctx: Context, torch: TorchBuild, image: BaseImage, steps: list[Step], findings: list[Finding]
) -> str:
    """A source build compiles against torch's CUDA major with an nvcc that knows the GPU's arch,
    in an image the target's driver starts; the exact CUDA first, then older, then newer."""
    target, kb, gpu = ctx.target, ctx.kb, ctx.gpu
    assert gpu is not None
    major = torch.cuda.split(".")[0]
    here = _vkey(torch.cuda)
    same = [i for i in kb.images if i.cuda.split(".")[0] == major and i.devel]
    same.sort(
        key=lambda i: (_vkey(i.cuda) != here, _vkey(i.cuda) > here, abs(_vdist(i.cuda, here)))
    )
    fitting = [i for i in same if images.fits_arch(i, gpu.compute_capability)]
    why = f"CUDA {torch.cuda} devel image: a source build needs nvcc"
    if not target.driver:
        chosen = (fitting or [image])[0]
        why += (
            f" for {gpu.sm}; its NVIDIA_REQUIRE_CUDA lets the container runtime start it on "
            f"{images.needs(chosen, kb)}"
        )
        source = f"{chosen.source}; {chosen.require_source}"
        steps.append(Step(topic="base image", choice=chosen.devel, why=why, source=source))
        return chosen.devel
    for cand in fitting:
        ok = images.starts(cand, kb, target.driver, gpu.brand)
        if ok:
            if cand is not image:
                why = (
                    f"CUDA {cand.cuda} devel image (torch's CUDA major {major}; nvcc knows "
                    f"{gpu.sm}): {image.devel} needs {images.needs(image, kb)}"
                )
            why += f"; driver {target.driver} starts it: {ok}"
            source = f"{cand.source}; {cand.require_source}"
            steps.append(Step(topic="base image", choice=cand.devel, why=why, source=source))
            return cand.devel
    floors = [images.toolkit_driver(kb, i.require_cuda) for i in fitting]
    floor = min((f for f in floors if f), key=_vkey, default="")
    findings.append(
        Finding(
            target=target.name,
            severity="error",
            code="devel-image-driver",
            message=f"{target.origin}: the source build needs a CUDA {major} devel image whose "
            f"nvcc compiles for {gpu.sm}, and driver {target.driver} on "
            f"{gpu.name} ({gpu.brand or 'unknown brand'}) starts none of them: "
            f"{image.devel} needs {images.needs(image, kb)}",
            fix=(f"upgrade the driver to >= {floor}, or " if floor else "")
            + f"set base-image on {target.origin} to a devel image this driver starts, or use "
            "prebuilt extension wheels",
            source=image.require_source,
        )
    )
    return ""


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _vdist(version: str, other: tuple[int, ...]) -> int:
    mine = _vkey(version)
    return (mine[0] - other[0]) * 100 + (mine[1] - other[1])


def _notes(ctx: Context, chosen: Option, driver: str, findings: list[Finding]) -> None:
    target, kb = ctx.target, ctx.kb
    if driver and not target.driver:
        major = kb.major(int(variant_to_cuda(chosen.variant).split(".")[0]))
        image = None if target.base_image else kb.image(variant_to_cuda(chosen.variant))
        also = (
            f", and its base image (nvidia/cuda, CUDA {image.require_cuda}) starts on "
            f"{images.needs(image, kb)}"
            if image is not None and image.require_cuda
            else ""
        )
        findings.append(
            Finding(
                target=target.name,
                severity="note",
                code="driver-unchecked",
                message=f"this build needs NVIDIA driver >= {driver}{also}; no driver was given",
                fix=f'set driver = "<version>" on {target.origin} to have it checked',
                source=major.source if major else "",
            )
        )
    newest = next(  # the newest release the target's range and the requirements allow
        (
            r
            for r in kb.releases
            if r.version in ctx.spec and all(r.version in bound for _, bound in ctx.bounds)
        ),
        None,
    )
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
