"""Why a target got no build, and why each variant lost: the rejected-variants table of `explain`
and the message and fix of an impossible target (relaxing one of the user's constraints at a time)."""

from __future__ import annotations

from packaging.version import Version

from pinner.knowledge.knowledge import variant_to_cuda
from pinner.model import Finding, Rejection
from pinner.plan.builds import Failure, Option, describe_arches, min_driver, variant_order
from pinner.plan.fit import Context, error, failures, hardware_failures


def rejections(ctx: Context, chosen: Option, options: list[Option]) -> tuple[Rejection, ...]:
    """One row per known variant that was not chosen: its best build, and why it lost."""
    rows: dict[str, str] = {}
    for option in options:
        if option.variant == chosen.variant or option.variant in rows:
            continue
        fails = failures(option, ctx)
        if fails:
            if any(o.variant == option.variant and not failures(o, ctx) for o in options):
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
            closest = min(same, key=lambda o: len(failures(o, ctx)))
            rows[option.variant] = failures(closest, ctx)[0].reason
    return tuple(
        Rejection(variant=v, reason=r)
        for v, r in sorted(rows.items(), key=lambda kv: variant_order(kv[0]))
    )


def impossible(ctx: Context, options: list[Option]) -> Finding:
    """No build fits: say why (in GPU terms where that is the cause) and what would work."""
    target, gpu = ctx.target, ctx.gpu
    considered = [o for o in options if target.cuda in ("auto", "cpu") or o.variant == target.cuda]
    if not considered:
        known = sorted({o.variant for o in options}, key=variant_order)
        return error(
            target,
            "unknown-variant",
            f"{target.origin}.cuda: no torch release in pinner's knowledge has a "
            f"{target.cuda} build for {target.platform}",
            f'use one of {", ".join(known)} or cuda = "auto"',
        )
    codes = [(failures(o, ctx) or [Failure("", "")])[0] for o in considered]
    hardware = [failures(o, ctx) for o in considered]
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
    return error(target, "impossible-target", message, _fixes(ctx, options))


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
                f.code in ("no-kernels", "arch-unknown", "cpu") for f in hardware_failures(o, ctx)
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
            if (fails := failures(o, ctx))
            and all(f.code == code for f in fails)
            # `_failures` checks extensions only when nothing else fails: check them here
            and (ctx.extension_check is None or ctx.extension_check(o) is None)
        ]
        if code == "cuda" and ctx.local is not None:  # only the build the local label names
            fits = [o for o in fits if not o.on_pypi and o.variant == ctx.local[0]]
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
            # a release the target's range admits is ruled out by a requirement's bound: that
            # requirement is what to change; one only `torch =` rules out, that range
            bound = next((o for o in fits if o.release.version in ctx.spec), None)
            ranged = next(
                (
                    o
                    for o in fits
                    if o.release.version not in ctx.spec
                    and all(o.release.version in spec for _, spec in ctx.bounds)
                ),
                None if bound is not None else best,
            )
            if bound is not None:
                version = bound.release.version
                why = _bound_against(ctx, version)
                fixes.append(f"change the requirement ({why}): torch {version} would fit")
            if ranged is not None:
                fixes.append(
                    f"widen torch = {ctx.target.torch!r}: torch {ranged.release.version} would fit"
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


def _bound_against(ctx: Context, version: str) -> str:
    """Why a requirement of the project rules out torch `version` ("" when none does), and, for
    one that no torch release pinner knows meets (a torchaudio pin no release pairs with), so."""
    for why, spec in ctx.bounds:
        if version not in spec:
            if not any(r.version in spec for r in ctx.kb.releases):
                return f"{why}, which no torch release in pinner's knowledge meets"
            return why
    return ""
