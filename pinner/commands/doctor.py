"""doctor: this host's GPUs and driver (nvidia-smi) + the presets + the project's matrix ->
Diagnosis: which targets fit this host, and which plan a GPU or a CUDA build it cannot run.

Reading nvidia-smi is the only I/O here (`read_smi`); `diagnose` is pure. The nvidia-smi command
is injectable: a parameter, or the environment variable PINNER_NVIDIA_SMI (tests serve fixtures
through a fake executable). GPUs are matched on the compute capability nvidia-smi reports first
(that decides which kernels run), then on the name through the knowledge.
"""

from __future__ import annotations

import csv
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pinner.plan.builds import parse_arch, serving_arch

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pinner.knowledge.knowledge import Knowledge
    from pinner.model import Plan, PlanResult, Target

SMI_ENV = "PINNER_NVIDIA_SMI"
PRESETS = "presets"
QUERY = "name,compute_cap,driver_version,memory.total"
OLD_QUERY = "name,driver_version,memory.total"  # drivers that cannot report compute_cap
NOT_FOUND = "no NVIDIA GPU visible (nvidia-smi not found)"
MACHINES = {
    "x86_64": "linux-x86_64",
    "amd64": "linux-x86_64",
    "aarch64": "linux-aarch64",
    "arm64": "linux-aarch64",
}
Level = Literal["ok", "note", "warning", "error"]


@dataclass(frozen=True, kw_only=True)
class HostGpu:
    index: int
    name: str  # as nvidia-smi prints it
    compute_capability: str  # nvidia-smi's, else the knowledge's, else ""
    driver: str
    memory: str
    key: str  # the knowledge's key ("h100"), "" when pinner does not know the GPU
    known_name: str  # the knowledge's name, ""
    note: str  # e.g. nvidia-smi and the knowledge disagree


@dataclass(frozen=True, kw_only=True)
class Fit:
    target: str
    origin: str  # "presets" or "pinner.toml: targets.h100"
    match: str  # "same GPU", "same compute capability", "other GPU", "cpu", "not planned"
    level: Level
    message: str
    fix: str


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    command: str  # the nvidia-smi that was run, "" when none was found
    absent: str  # why no GPU is visible; "" when nvidia-smi listed GPUs
    gpus: tuple[HostGpu, ...]
    host_platform: str
    drivers: tuple[str, ...]  # what the host driver runs, per CUDA major
    presets: tuple[Fit, ...]  # preset targets that fit a host GPU
    matrix: str  # the project's matrix as shown, "" when the project has none
    targets: tuple[Fit, ...]  # every matrix target, judged against this host

    @property
    def errors(self) -> tuple[str, ...]:
        """Matrix targets meant for this host's GPU that cannot run on it (exit status 1)."""
        return tuple(f"{f.origin}: {f.message}" for f in self.targets if f.level == "error")


# --- nvidia-smi ----------------------------------------------------------------------------------


def smi_command(explicit: Sequence[str] | None = None) -> list[str] | None:
    if explicit:
        return list(explicit)
    env = os.environ.get(SMI_ENV)
    if env:
        return [env]
    found = shutil.which("nvidia-smi")
    return [found] if found else None


def read_smi(command: Sequence[str] | None) -> tuple[list[dict[str, str]], str]:
    """(rows, "") with the GPUs nvidia-smi lists, or ([], why none is visible)."""
    if command is None:
        return [], NOT_FOUND
    text, problem = _run(command, QUERY)
    if problem and problem != NOT_FOUND:  # an old driver cannot report compute_cap: ask again
        old_text, old_problem = _run(command, OLD_QUERY)
        if not old_problem:
            return parse_smi(old_text, OLD_QUERY), ""
    return parse_smi(text, QUERY), problem


def _run(command: Sequence[str], query: str) -> tuple[str, str]:
    argv = [*command, f"--query-gpu={query}", "--format=csv,noheader"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return "", NOT_FOUND
    except (OSError, subprocess.TimeoutExpired) as e:
        return "", f"no NVIDIA GPU visible (nvidia-smi failed: {e})"
    if proc.returncode != 0:
        said = (
            proc.stdout.strip() or proc.stderr.strip() or f"exit {proc.returncode}"
        ).splitlines()
        return "", f"no NVIDIA GPU visible (nvidia-smi failed: {said[0].strip()})"
    if not proc.stdout.strip():
        return "", "no NVIDIA GPU visible (nvidia-smi listed none)"
    return proc.stdout, ""


def parse_smi(text: str, query: str = QUERY) -> list[dict[str, str]]:
    """CSV rows (no header) -> one dict per GPU keyed by the query's fields; "[N/A]" -> ""."""
    fields = query.split(",")
    rows = []
    for values in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(values) != len(fields):
            continue
        row = {f: v.strip() for f, v in zip(fields, values, strict=True)}
        rows.append({f: _field(f, v) for f, v in row.items()})
    return rows


# What a field must look like to be used; anything else (a driver that is no version, "[N/A]")
# is read as unknown, and names lose their control characters.
_SHAPES = {"driver_version": r"[0-9]+(\.[0-9]+)*", "compute_cap": r"[0-9]+\.[0-9]+"}


def _field(name: str, value: str) -> str:
    import re

    from pinner.safe import comment

    if value.startswith("[") or value == "N/A":
        return ""
    shape = _SHAPES.get(name)
    if shape is not None and not re.fullmatch(shape, value):
        return ""
    return comment(value)


# --- judging -------------------------------------------------------------------------------------


def match_gpu(index: int, row: Mapping[str, str], kb: Knowledge) -> HostGpu:
    """Compute capability from nvidia-smi first; the name through the knowledge."""
    known = kb.find_gpu(row["name"]) if row.get("name") else None
    cc = row.get("compute_cap", "")
    if cc and not _is_cc(cc):
        cc = ""
    note = ""
    if known is not None and cc and known.compute_capability != cc:
        note = (
            f"pinner's knowledge has {known.compute_capability} for {known.name}; "
            f"nvidia-smi says {cc}, which is what counts"
        )
    elif known is None and row.get("name"):
        note = "not in pinner's knowledge (`pinner gpus` lists what it knows)"
    return HostGpu(
        index=index,
        name=row.get("name", ""),
        compute_capability=cc or (known.compute_capability if known else ""),
        driver=row.get("driver_version", ""),
        memory=row.get("memory.total", ""),
        key=known.key if known else "",
        known_name=known.name if known else "",
        note=note,
    )


def _is_cc(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def older(driver: str, needed: str) -> bool:
    """Is the host `driver` older than the `needed` minimum ("" needs nothing)?"""
    return bool(needed) and _vtuple(driver) < _vtuple(needed)


def driver_lines(driver: str, kb: Knowledge) -> tuple[str, ...]:
    if not driver:
        return ()
    out = []
    for major in sorted(kb.majors, key=lambda m: m.major):
        ok = _vtuple(driver) >= _vtuple(major.min_driver)
        out.append(
            f"CUDA {major.major} builds (need >= {major.min_driver}): "
            + ("runs them" if ok else "too old")
        )
    return tuple(out)


def judge(
    gpu: HostGpu,
    target: Target,
    result: PlanResult,
    kb: Knowledge,
    *,
    origin: str,
    host_platform: str,
    with_host_driver: Plan | None = None,
) -> Fit:
    """How one target relates to one host GPU. `with_host_driver`: the target planned again with
    this host's driver, offered as the fix when its build needs a newer one."""
    plan = result.plan
    if plan is None:
        why = next((f.message for f in result.findings if f.severity == "error"), "no plan")
        return Fit(
            target=target.name,
            origin=origin,
            match="not planned",
            level="note",
            message=f"cannot be planned: {why}",
            fix="run `pinner explain`",
        )
    build = f"torch {plan.torch.pin}" + (f", CUDA {plan.torch.cuda}" if plan.torch.cuda else "")
    if not plan.compute_capability:
        return Fit(
            target=target.name,
            origin=origin,
            match="cpu",
            level="ok",
            message=f"{build}: a CPU build, runs here without the GPU",
            fix="",
        )
    planned = kb.find_gpu(plan.target.gpu)
    same_key = bool(gpu.key) and planned is not None and planned.key == gpu.key
    same_cc = plan.compute_capability == gpu.compute_capability
    match = "same GPU" if same_key else "same compute capability" if same_cc else "other GPU"
    mine = match != "other GPU"
    problems: list[str] = []
    fixes: list[str] = []
    if host_platform and plan.target.platform != host_platform:
        problems.append(f"it is for {plan.target.platform}; this host is {host_platform}")
        fixes.append(f'platform = "{host_platform}"')
    runs = _kernel(gpu, plan, kb)
    if not runs.startswith("runs"):
        problems.append(runs)
        fixes.append(
            f"deploy it on a {plan.gpu_name} host; for this host add a target with "
            f'gpu = "{gpu.known_name or gpu.name}"'
        )
    if gpu.driver and older(gpu.driver, plan.min_driver):
        problems.append(
            f"its build ({build}) needs driver >= {plan.min_driver}; this host has {gpu.driver}"
        )
        alt = ""
        if with_host_driver is not None:
            alt = f" (pinner then plans torch {with_host_driver.torch.pin})"
        setting = f'driver = "{gpu.driver}"'
        where = (
            f"copy the preset into pinner.toml (pinner init --target {target.name}) and set {setting}"
            if origin == PRESETS
            else f"set {setting} on {target.origin}"
        )
        fixes.append(f"upgrade the driver to >= {plan.min_driver}, or {where}{alt}")
    elif gpu.driver:
        refused = _image_refused(gpu, plan, kb)
        if refused:
            problems.append(refused)
            setting = f'driver = "{gpu.driver}"'
            where = (
                f"pinner init --target {target.name} and set {setting}"
                if origin == PRESETS
                else f"set {setting} on {target.origin}"
            )
            fixes.append(f"{where} (pinner then picks a base image this driver starts)")
    label = f"{plan.gpu_name} ({plan.compute_capability}), {build}"
    if not problems:
        what = match if mine else f"for another GPU; its build also {runs} here"
        return Fit(
            target=target.name,
            origin=origin,
            match=match,
            level="ok",
            message=f"{label}: {what}",
            fix="",
        )
    level: Level = "error" if mine else "warning"
    return Fit(
        target=target.name,
        origin=origin,
        match=match,
        level=level,
        message=f"{label}: {match}, but {'; '.join(problems)}",
        fix="; or ".join(fixes),
    )


def _image_refused(gpu: HostGpu, plan: Plan, kb: Knowledge) -> str:
    """Why the container runtime would refuse the plan's base image on this host ("" if not)."""
    from pinner.knowledge import images

    image = next((i for i in kb.images if plan.base_image in (i.runtime, i.devel)), None)
    if image is None or not image.require_cuda:
        return ""
    known = kb.find_gpu(gpu.key) if gpu.key else None
    if images.starts(image, kb, gpu.driver, known.brand if known else ""):
        return ""
    return (
        f"its base image {plan.base_image} needs {images.needs(image, kb)}; the NVIDIA container "
        f"runtime refuses to start it on driver {gpu.driver}"
    )


def _kernel(gpu: HostGpu, plan: Plan, kb: Knowledge) -> str:
    """'runs sm_80 kernels' or why the plan's build has none for this GPU."""
    if not gpu.compute_capability:
        return "runs (compute capability unknown: not checked)"
    minor = ".".join(plan.torch.version.split(".")[:2])
    build = kb.build(minor, plan.torch.variant, plan.target.platform)
    if build is None:
        if plan.torch.arches:
            from pinner.knowledge.knowledge import Build

            build = Build(
                torch=(minor,),
                variant=plan.torch.variant,
                arches=plan.torch.arches,
                ptx=plan.torch.ptx,
                confidence="",
                source="",
            )
        else:
            return "runs (its architectures are not in pinner's knowledge: not checked)"
    serving = serving_arch(gpu.compute_capability, build)
    sm = "sm_" + gpu.compute_capability.replace(".", "")
    if serving:
        return f"runs {serving} kernels"
    carried = " ".join(sorted(build.arches, key=parse_arch))
    ptx = f", PTX {build.ptx}" if build.ptx else ""
    return (
        f"its build has no kernels for this GPU's {sm} ({carried}{ptx}):"
        " expect 'no kernel image is available for execution on the device'"
    )


def diagnose(
    rows: Sequence[Mapping[str, str]],
    absent: str,
    kb: Knowledge,
    *,
    command: str,
    presets: Sequence[tuple[Target, PlanResult]],
    matrix: str,
    targets: Sequence[tuple[Target, PlanResult]],
    host_driver_plans: Mapping[tuple[str, str], Plan | None] | None = None,
    host_platform: str | None = None,
) -> Diagnosis:
    """Pure: the GPUs nvidia-smi listed, judged against the presets and the matrix targets.
    With several GPUs of different kinds, each target is judged against the one it suits best."""
    gpus = tuple(match_gpu(i, row, kb) for i, row in enumerate(rows))
    host = MACHINES.get(platform.machine().lower(), "") if host_platform is None else host_platform
    alt = host_driver_plans or {}
    kinds = list({(g.key, g.compute_capability): g for g in gpus}.values())
    preset_fits: list[Fit] = []
    target_fits: list[Fit] = []
    if kinds:
        for target, result in presets:
            fit = _best(
                [
                    judge(
                        g,
                        target,
                        result,
                        kb,
                        origin=PRESETS,
                        host_platform=host,
                        with_host_driver=alt.get((PRESETS, target.name)),
                    )
                    for g in kinds
                ]
            )
            if fit.match in ("same GPU", "same compute capability"):
                preset_fits.append(fit)
        for target, result in targets:
            target_fits.append(
                _best(
                    [
                        judge(
                            g,
                            target,
                            result,
                            kb,
                            origin=target.origin,
                            host_platform=host,
                            with_host_driver=alt.get((target.origin, target.name)),
                        )
                        for g in kinds
                    ]
                )
            )
    preset_fits.sort(key=lambda f: f.match != "same GPU")
    return Diagnosis(
        command=command,
        absent=absent,
        gpus=gpus,
        host_platform=host,
        drivers=driver_lines(gpus[0].driver, kb) if gpus else (),
        presets=tuple(preset_fits),
        matrix=matrix,
        targets=tuple(target_fits),
    )


_MATCH_ORDER = ("same GPU", "same compute capability", "cpu", "other GPU", "not planned")


def _best(fits: list[Fit]) -> Fit:
    return min(fits, key=lambda f: _MATCH_ORDER.index(f.match))


# --- output --------------------------------------------------------------------------------------


def report(d: Diagnosis) -> str:
    if d.absent:
        lines = [f"{d.absent}."]
        if d.targets or d.presets:
            lines.append("  CPU targets run here; GPU targets need a host with an NVIDIA driver.")
        return "\n".join(lines) + "\n"
    lines = [f"nvidia-smi: {len(d.gpus)} GPU{'s' if len(d.gpus) != 1 else ''}"]
    for g in d.gpus:
        sm = f"sm_{g.compute_capability.replace('.', '')}" if g.compute_capability else "sm_?"
        known = f" = {g.known_name} ({g.key})" if g.key else ""
        cc = g.compute_capability or "unknown"
        mem = f", {g.memory}" if g.memory else ""
        lines.append(f"  GPU {g.index}: {g.name}, compute capability {cc} ({sm}){mem}{known}")
        if g.note:
            lines.append(f"    note: {g.note}")
    if d.gpus and d.gpus[0].driver:
        lines.append(f"driver {d.gpus[0].driver}:")
        lines += [f"  {line}" for line in d.drivers]
    lines.append("")
    if d.presets:
        lines.append("presets that fit:")
        for f in d.presets:
            lines.append(f"  {f.target}: {f.message}")
            if f.fix:
                lines.append(f"    fix: {f.fix}")
        lines.append(f"  try: pinner explain --target {d.presets[0].target}")
    else:
        g = d.gpus[0]
        name = g.known_name or g.name
        lines.append(
            "no preset fits this GPU; add a target to pinner.toml:\n"
            f'  [targets.{g.key or "mygpu"}]\n  gpu = "{name}"'
        )
    if d.matrix:
        lines += ["", f"matrix {d.matrix}:"]
        width = max((len(f.target) for f in d.targets), default=0)
        for f in d.targets:
            lines.append(f"  {f.level:<7} {f.target:<{width}}  {f.message}")
            if f.fix:
                lines.append(f"  {'':<7} {'':<{width}}  fix: {f.fix}")
    return "\n".join(lines) + "\n"


def to_json(d: Diagnosis) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(d), "errors": list(d.errors)}
