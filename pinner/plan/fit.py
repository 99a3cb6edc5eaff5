"""Does a torch build fit a target? The checks of planning, shared by the choice and by the
diagnosis of what was rejected: torch range and the requirements' bounds, Python wheels, the
requested CUDA variant, kernels for the GPU (the cubin rule), the driver, extension wheels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from pinner.knowledge.knowledge import Gpu, Knowledge, TorchRelease, variant_to_cuda
from pinner.model import Finding, Requirements, Target
from pinner.plan.builds import Failure, Option, describe_arches, min_driver, serving_arch, vtuple

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class Context:
    target: Target
    kb: Knowledge
    gpu: Gpu | None
    spec: SpecifierSet
    spec_text: str
    bounds: list[tuple[str, SpecifierSet]] = field(default_factory=list)  # (why, spec)
    extension_check: Callable[[Option], Failure | None] | None = None
    # the project's own torchaudio requirement: the companion pin is chosen within it
    torchaudio: SpecifierSet | None = None
    # (label, why) of a torch-family pin with a local label (torch==2.10.0+cu128): only the
    # PyTorch index's build of that variant carries it
    local: tuple[str, str] | None = None


def context(
    target: Target, kb: Knowledge, gpu: Gpu | None, reqs: Requirements, findings: list[Finding]
) -> Context | None:
    try:
        spec = SpecifierSet(target.torch)
    except InvalidSpecifier:
        findings.append(
            error(
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
        written = SpecifierSet(req.specifier)
        req_spec = _public(written)
        label = next(
            (
                x.version.split("+", 1)[1]
                for x in written
                if x.operator == "==" and "+" in x.version
            ),
            "",
        )
        if label and ctx.local is None:
            ctx.local = (label.lower(), f"{req.origin} asks for {req.text}")
        if req.name == "torchaudio":
            ctx.torchaudio = req_spec if ctx.torchaudio is None else ctx.torchaudio & req_spec
        if req.name == "torch":
            ctx.bounds.append((f"{req.origin} asks for {req.text}", req_spec))
        else:  # a companion pin implies the torch release it was built for
            known = {v for r in kb.releases for v in companions(r, req.name)}
            if all(req_spec.contains(v, prereleases=True) for v in known):
                continue  # admits every known release (torchaudio>=2.0): spelled out, no bound
            allowed = [
                r.version
                for r in kb.releases
                if any(req_spec.contains(v, prereleases=True) for v in companions(r, req.name))
            ]
            pinned = SpecifierSet(
                ",".join(f"!={r.version}" for r in kb.releases if r.version not in allowed)
            )
            ctx.bounds.append((f"{req.origin} asks for {req.text}", pinned))
    return ctx


def _public(spec: SpecifierSet) -> SpecifierSet:
    """`spec` with the local label of each `==` pin dropped: `torch==2.10.0+cu128` names the
    release 2.10.0 (and the build the plan chooses: the engine holds the pin to its label), which
    the knowledge lists without labels; SpecifierSet("==2.10.0+cu128") admits no "2.10.0"."""
    if "+" not in str(spec):
        return spec
    return SpecifierSet(
        ",".join(f"=={s.version.split('+', 1)[0]}" if s.operator == "==" else str(s) for s in spec)
    )


def companions(release: TorchRelease, name: str) -> set[str]:
    """The companion releases that pair with `release`: its exact torchvision, or its exact
    torchaudio and every ranged torchaudio admitting it (torchaudio 2.11.1 admits torch>=2.11)."""
    if name == "torchvision":
        return {release.torchvision} - {""}
    return ({release.torchaudio} | {c.version for c in release.torchaudio_ranged}) - {""}


def failures(option: Option, ctx: Context) -> list[Failure]:
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
    elif ctx.local is not None and (option.on_pypi or option.variant != ctx.local[0]):
        label, asked = ctx.local
        where = "PyPI's own build" if option.on_pypi else f"the {option.variant} build"
        out.append(Failure("cuda", f"{where} is not the +{label} build: {asked}"))
    out += hardware_failures(option, ctx)
    if ctx.extension_check is not None and not out:
        failure = ctx.extension_check(option)
        if failure is not None:
            out.append(failure)
    return out


def hardware_failures(option: Option, ctx: Context) -> list[Failure]:
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


def error(target: Target, code: str, message: str, fix: str, source: str = "") -> Finding:
    return Finding(
        target=target.name, severity="error", code=code, message=message, fix=fix, source=source
    )
