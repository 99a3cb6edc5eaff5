"""resolve: (Plan, Requirements, old lock) -> TargetLock, through an engine (uv or pip-tools).

Index rules: the torch family (torch, torchvision, torchaudio, triton and the CUDA libraries they
pull) comes only from the plan's PyTorch index; everything else only from the installer's
configured index. An index build's CUDA libraries are not known before resolving, so a first run
routes torch and its companions, and names the CUDA libraries they pulled; a second run routes
those too. The names are remembered in the lock, so a re-lock needs one run.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinner.errors import ConfigError, ResolveError
from pinner.model import File, Layer, Pin, Plan, Requirements, TargetLock
from pinner.resolve.job import Job, canonical, is_family_name, torch_layer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pinner.resolve.job import ResolvedPin, Resolver


def build_job(
    plan: Plan,
    reqs: Requirements,
    root: Path,
    *,
    previous: TargetLock | None,
    upgrade: bool,
    offline: bool,
    mirror: str = "",
    torch_mirror: str = "",
    timeout: float = 0.0,
    torch_spec: str = "",
) -> Job:
    """The first job for a plan: routes torch and the companions the project asks for, plus the
    torch-layer names an earlier lock of the same torch build found. With `torch_spec` (a
    segment of builds from one index), the resolver chooses torch within it, and each companion
    pairs with that torch through its own metadata."""
    torch = plan.torch
    names = {r.name for r in reqs.items if not r.constraint}
    spec = torch_spec if torch_spec and torch_spec != f"=={torch.version}" else ""
    direct = [f"torch{spec}" if spec else f"torch=={torch.pin}"]
    constraints = [direct[0]]
    for companion in plan.companions:
        name = companion.split("==")[0]
        if spec:
            if name in names:
                direct.append(name)
            continue
        constraints.append(companion)
        if name in names:
            direct.append(companion)
    routed = [canonical(re.split(r"[<>=!~ ;\[]", d)[0]) for d in direct]  # "torch>=2.12.0,..."
    optional = []
    if previous is not None and previous.plan.torch == torch and not torch.on_pypi and not spec:
        for old in previous.pins:
            if old.layer == "torch" and old.name not in routed:
                direct.append(f"{old.name}=={old.version}")
                routed.append(old.name)
                optional.append(old.name)
    constraints += [c.requirement for c in plan.constraints]
    metadata = []
    for ext in plan.extensions:
        constraints.append(f"{ext.name}=={ext.version}")
        if ext.version:
            metadata.append((ext.name, ext.version, ext.deps))
        direct += [
            d for d in ext.build_deps if canonical(re.split(r"[<>=!~ ;\[]", d)[0]) not in names
        ]
    preferences = (
        () if upgrade or previous is None else tuple((p.name, p.version) for p in previous.pins)
    )
    if not torch.on_pypi and not plan.index_url:
        msg = f"{plan.target.origin}: the plan names no PyTorch index for {torch.pin}"
        raise ConfigError(msg)
    lines, roots, urls, hashes = _user_lines(reqs, root, plan.target.python, plan.target.platform)
    constraints += [line for r, line in lines if r.constraint]
    indexes = named_indexes(plan)
    bound = [pkg for *_, pkgs in indexes for pkg in pkgs]
    # sources route direct dependencies only: each bound package is one (optional unless the
    # requirements name it, so a package nothing requires is dropped again)
    direct += [pkg for pkg in bound if pkg not in routed]
    optional += [pkg for pkg in bound if pkg not in names and pkg not in routed]
    # names pinner adds only to route them are no reason to install: the graph says who wants them
    roots += [
        (name, (), PLAN_VIA)
        for name in (canonical(re.split(r"[<>=!~ ;\[]", d)[0]) for d in direct)
        if name not in optional and name not in bound
    ]
    return Job(
        target=plan.target.name,
        python=plan.target.python,
        platform=plan.target.platform,
        root=root,
        requirements=tuple(dict.fromkeys(line for r, line in lines if not r.constraint)),
        direct=tuple(dict.fromkeys(direct)),
        constraints=tuple(dict.fromkeys(constraints)),
        torch_index="" if torch.on_pypi else (torch_mirror or plan.index_url),
        torch_committed="" if torch.on_pypi else plan.index_url,
        routed=tuple(dict.fromkeys(routed)) if not torch.on_pypi else (),
        metadata=tuple(metadata),
        preferences=preferences,
        upgrade=upgrade,
        offline=offline,
        optional=tuple(o for o in optional if not torch.on_pypi or o in bound),
        mirror=mirror,
        urls=tuple(urls),
        roots=tuple(dict.fromkeys(roots)),
        hashes=tuple(hashes),
        timeout=timeout,
        indexes=indexes,
    )


def named_indexes(plan: Plan) -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
    """The target's [indexes] tables for this plan: {variant} filled in with the torch build's
    variant; the run reads a mirror from PINNER_INDEX_<NAME>_URL (transport: the lock keeps the
    committed URL)."""
    import os

    from pinner.load.matrix import index_env

    out = []
    for name, url, packages in plan.target.indexes:
        committed = url.replace("{variant}", plan.torch.variant).rstrip("/")
        variable = index_env(name)
        mirror = os.environ.get(variable, "").strip()
        if mirror:
            from pinner.resolve.environment import checked_url

            checked_url(variable, mirror)
        run = mirror.replace("{variant}", plan.torch.variant).rstrip("/") if mirror else committed
        out.append((name, run, committed, packages))
    return tuple(out)


def _user_lines(
    reqs: Requirements, root: Path, python: str, platform: str
) -> tuple[
    list[tuple[Any, str]],
    list[tuple[str, tuple[str, ...], str]],
    list[str],
    list[tuple[str, tuple[str, ...]]],
]:
    """Each requirement as pinner hands it to the engine: one normalized PEP 508 line, never the
    user's raw text (so no option of the user's can reach the engine)."""
    lines: list[tuple[Any, str]] = []
    roots: list[tuple[str, tuple[str, ...], str]] = []
    urls: list[str] = []
    hashes: list[tuple[str, tuple[str, ...]]] = []
    for r in reqs.items:
        text = r.text
        if r.local_project:
            extras = f"[{','.join(r.extras)}]" if r.extras else ""
            text = f"{r.name}{extras} @ {(root / r.path).resolve().as_uri()}"
        if r.url:
            urls.append(r.url)
        if r.hashes:
            hashes.append((r.name, tuple(r.hashes)))
        lines.append((r, text))
        if not r.constraint and _applies(r.text, python, platform):
            # a requirement pinner added for an extension the graph pulls names its parent
            label = (
                r.origin[4:] if r.origin.startswith("via ") else "-r " + r.origin.rsplit(":", 1)[0]
            )
            roots.append((r.name, r.extras, label))
    return lines, roots, urls, hashes


def resolve_target(
    resolver: Resolver,
    plan: Plan,
    job: Job,
    inputs: str,
    replan: Callable[[str], Plan] | None = None,
) -> TargetLock:
    """Run the engine (twice when an index build pulled CUDA libraries not yet routed, or a
    requirement pulled a companion such as torchvision that was not routed). When the resolver
    chose torch within a segment, `replan` finishes the plan from the torch it chose."""
    try:
        pins = resolver.resolve(job)
    except ResolveError as e:
        # Sources route direct requirements only: a companion that a requirement pulls is
        # looked up on the default index, which lacks the index build (torchvision 0.28.0+cpu).
        exact = job.direct[0] == f"torch=={plan.torch.pin}"
        uv_said = str(e).split("\n  pinner-job is pinner's plan", 1)[0]  # not pinner's own hint
        pulled = [
            c if exact else c.split("==")[0]
            for c in plan.companions
            if c.split("==")[0] not in job.routed
            and re.search(rf"\b{re.escape(c.split('==')[0])}\b", uv_said)
        ]
        if not job.torch_index or not pulled:
            raise
        names = tuple(c.split("==")[0] for c in pulled)
        job = replace(
            job,
            direct=job.direct + tuple(pulled),
            routed=job.routed + names,
            optional=job.optional + names,
        )
        pins = resolver.resolve(job)
    if job.torch_index:
        layer = torch_layer(pins)
        fetched = {p.name for p in pins if p.source == "pytorch"}
        missing = sorted(layer - set(job.routed) - fetched)
        if missing:
            versions = {p.name: p.version for p in pins}
            job = replace(
                job,
                direct=job.direct + tuple(f"{n}=={versions[n]}" for n in missing),
                routed=job.routed + tuple(missing),
            )
            pins = resolver.resolve(job)
    pins = _drop_unrequired(pins, job)
    chosen = next((p.version for p in pins if p.name == "torch"), plan.torch.pin)
    if replan is not None and chosen != plan.torch.pin:
        plan = replan(chosen)
    exact = job.direct[0] == f"torch=={plan.torch.pin}"
    if not exact:  # within a segment each companion paired with torch through its own metadata
        have = {p.name: p.version for p in pins}
        plan = replace(
            plan,
            companions=tuple(
                f"{name}=={have[name]}" if name in have else c
                for c in plan.companions
                for name in [c.split("==")[0]]
            ),
        )
    _check_answer(plan, job, pins)
    from pinner.resolve.bound import answer_findings

    return replace(assemble(plan, job, pins, inputs), findings=answer_findings(plan, pins))


PLAN_VIA = "pinner plan"


def _applies(text: str, python: str, platform: str) -> bool:
    """Whether a requirement's marker holds for the target (the engine evaluates it the same way,
    from the same Python version and platform)."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    from pinner.load.requirements import marker_environment

    try:
        marker = Parsed(text).marker
    except InvalidRequirement:
        return True
    return marker is None or marker.evaluate(marker_environment(python, platform))


def _drop_unrequired(pins: Sequence[ResolvedPin], job: Job) -> tuple[ResolvedPin, ...]:
    """Keep what the requirements, the plan and their dependencies need; drop optional routed
    names (and what only they pulled) that nothing else requires, such as a torchvision the
    old lock had but the requirements no longer pull."""
    if not job.optional:
        return tuple(pins)
    optional = set(job.optional)
    roots: set[str] = set()
    children: dict[str, set[str]] = {}
    for pin in pins:
        if not pin.via and pin.name not in optional:
            roots.add(pin.name)  # an engine that does not say why: keep it
        for item in pin.via:
            if item.startswith("-r ") or (item == PLAN_VIA and pin.name not in optional):
                roots.add(pin.name)
            elif item != PLAN_VIA and not item.startswith("-c "):
                children.setdefault(item, set()).add(pin.name)
    needed = set(roots)
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in needed:
                needed.add(child)
                todo.append(child)
    return tuple(p for p in pins if p.name in needed)


def _check_answer(plan: Plan, job: Job, pins: Sequence[ResolvedPin]) -> None:
    """Refuse what the answer cannot account for: another torch build than planned (`torch==2.13.0`
    also matches `2.13.0+cpu`, which a default index that merges another index may offer), a
    routed package from anywhere but the PyTorch index, a package without hashes, a direct
    requirement missing, a file outside the user's --hash values."""
    planned = {canonical(c.split("==")[0]): c.split("==")[1] for c in plan.companions}
    planned["torch"] = plan.torch.pin
    by_name = {p.name: p for p in pins}
    named = {name for name, *_ in job.indexes}
    for pin in pins:
        want = planned.get(pin.name)
        if want is not None and pin.version != want:
            where = (
                f"the PyTorch index {job.torch_index}" if job.torch_index else "the default index"
            )
            msg = (
                f"target {job.target}: {where} gave {pin.name} {pin.version} for the planned "
                f"{pin.name}=={want}, another build.\n  fix: point the default index at PyPI or a "
                "plain mirror of it (one that does not merge the PyTorch index in); the PyTorch "
                "index belongs in torch-index-url"
            )
            raise ResolveError(msg)
        if pin.name in job.routed and pin.source not in ("pytorch", ""):
            msg = (
                f"target {job.target}: {pin.name} {pin.version} must come from the PyTorch index "
                f"{job.torch_index}, but the resolver took it from the {pin.source} source"
            )
            raise ResolveError(msg)
        home = job.bound.get(pin.name)
        if (home or pin.source) != pin.source or (pin.source in named and home is None):
            msg = (
                f"target {job.target}: {pin.name} {pin.version} came from the {pin.source} source, "
                f"but the matrix binds it to {f'[indexes.{home}]' if home else 'no index'}; "
                "refusing it"
            )
            raise ResolveError(msg)
        if pin.source not in ("local",) and not pin.hashes:
            msg = f"target {job.target}: {pin.name} {pin.version} was locked without a hash"
            raise ResolveError(msg)
    for name, allowed in job.hashes:
        found = by_name.get(name)
        if found is not None and not set(found.hashes) & set(allowed):
            msg = (
                f"target {job.target}: {name} {found.version}: none of its files has a hash the "
                f"requirements allow (--hash {allowed[0][:23]}...)\n  fix: update the --hash "
                "values, or pin the version they belong to"
            )
            raise ResolveError(msg)
    for name, _, label in job.roots:
        if label != PLAN_VIA and name not in by_name:
            msg = (
                f"target {job.target}: {name} ({label[3:]}) is missing from the resolver's "
                "answer; refusing an incomplete lock"
            )
            raise ResolveError(msg)


def assemble(plan: Plan, job: Job, pins: Sequence[ResolvedPin], inputs: str) -> TargetLock:
    """Give every resolved package its layer; keep its source role and files."""
    # the torch layer: what torch pulls, and every torch-family name from the torch layer's own
    # index, known from the names and sources even where the graph could not be read
    home = "pytorch" if job.torch_index else "default"
    layer_torch = (
        torch_layer(pins)
        | set(job.routed)
        | {p.name for p in pins if is_family_name(p.name) and p.source == home}
    )
    extensions = {e.name: e for e in plan.extensions}
    build = {
        canonical(re.split(r"[<>=!~ ;\[]", d)[0]) for e in plan.extensions for d in e.build_deps
    }
    out = []
    for p in pins:
        via = tuple(sorted(set(p.via)))
        ext = extensions.get(p.name)
        if ext is not None and ext.strategy == "wheel" and p.source != "url":
            files = (
                (File(name=ext.wheel, hashes=(f"sha256:{ext.sha256}",), url=ext.url),)
                if ext.sha256
                else (File(name=ext.wheel, hashes=(), url=ext.url),)
            )
            out.append(
                Pin(name=p.name, version=p.version, source="url", layer="extension", via=via,
                    files=files, url=ext.url)
            )  # fmt: skip
            continue
        layer: Layer = "main"
        if ext is not None:
            layer = "extension"
        elif p.name in layer_torch:
            layer = "torch"
        elif p.name in build:
            layer = "build"
        out.append(
            Pin(name=p.name, version=p.version, source=p.source, layer=layer, via=via,
                files=p.files, url=p.url)
        )  # fmt: skip
    indexes = [("pytorch", job.torch_committed)] if job.torch_index else []
    used = {p.source for p in out}
    indexes += [(name, committed) for name, _, committed, _ in job.indexes if name in used]
    for pin in out:
        if pin.source in used - {"default", "pytorch", "url", "local"} and pin.layer != "main":
            msg = (
                f"{plan.target.origin}: {pin.name} is bound to [indexes.{pin.source}], but "
                f"pinner installs it in the {pin.layer} layer; remove it from that table's packages"
            )
            raise ConfigError(msg)
    return TargetLock(
        plan=plan, pins=tuple(out), inputs=inputs, findings=(), indexes=tuple(sorted(indexes))
    )


def normalize_via(via: Sequence[str], root: Path) -> tuple[str, ...]:
    """pip-compile's annotations -> the lock's vocabulary: `-r <file>` (relative to the project
    root), `pinner plan`, or the name of the package that requires it."""
    out = []
    for item in via:
        text = item.strip()
        if text.startswith(("-r ", "-c ")):
            path = Path(text[3:].strip())
            if path.name in ("constraints.txt", "requirements.in") and "jobs" in path.parts:
                continue  # pinner's own generated input, not a reason
            try:
                text = text[:3] + path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                text = text[:3] + path.name
        elif text.startswith("pinner-resolve") or "pinner-job" in text:
            text = PLAN_VIA
        else:
            text = canonical(re.split(r"[\s\[]", text, maxsplit=1)[0])
        out.append(text)
    return tuple(sorted(dict.fromkeys(out)))
