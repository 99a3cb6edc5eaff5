"""Compiled extensions in a plan: which prebuilt wheel, or how to build from source, per target.

- flash-attn: a prebuilt GitHub wheel whose tags match the torch build exactly (flash-attn version,
  CUDA major, torch minor, C++ ABI, CPython tag, platform) and whose kernels run on the GPU; with
  `build = "auto"` (default) the torch choice is held back to a release that has one, else a source
  build; `build = "wheel"` forbids the source build; `build = "source"` forces it.
- mamba-ssm, causal-conv1d and anything marked `build = "source"`: built after torch on a -devel
  image with `--no-build-isolation`.
- xformers and vllm pin torch exactly: their pins bound the torch choice.
- bitsandbytes: a version whose bundled CUDA library matches the torch build's CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pinner.knowledge.knowledge import ExtensionBuild, Gpu, Knowledge, variant_to_cuda
from pinner.model import (
    Constraint,
    Extension,
    Finding,
    Requirements,
    Severity,
    Step,
    Target,
    TorchBuild,
)
from pinner.plan import bitsandbytes
from pinner.plan.builds import Failure, Option, hardware_problem, parse_arch, parse_cc
from pinner.plan.wheels import Wheel, find_wheel, parse_wheel_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

FLASH = "flash-attn"
FUTURE = "99999"  # stands for "a release newer than pinner knows" when testing a specifier


@dataclass
class ExtensionPlan:
    target: Target
    kb: Knowledge
    gpu: Gpu | None
    specs: dict[str, str]  # canonical name -> specifier of the direct requirement
    modes: dict[str, str]  # extension -> "auto" | "wheel" | "source"
    findings: list[Finding] = field(default_factory=list)
    torch_bounds: list[tuple[str, SpecifierSet]] = field(default_factory=list)
    fell_back: tuple[str, ...] = ()
    # extension -> (the URL the user wrote, its file's tags): mode "url", the user's own wheel
    urls: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def requested(self) -> frozenset[str]:
        return frozenset(self.specs)

    @property
    def wheel_seekers(self) -> list[str]:
        return [name for name, mode in self.modes.items() if mode in ("auto", "wheel")]

    @property
    def compiled(self) -> list[str]:
        """Requested packages whose PyPI wheels are built for one CUDA major and torch build."""
        return [name for name in self.specs if self.kb.extension_builds(name)]

    @property
    def checks(self) -> bool:
        """Whether `check` can fail an option (a wheel to find or a compiled wheel to match)."""
        return bool(self.wheel_seekers or self.compiled or self.urls)

    def builds_for(self, name: str, torch_version: str, cuda: str) -> list[ExtensionBuild]:
        """The PyPI wheels of `name` the user's requirement admits that run next to this torch
        build (same CUDA major, torch admitted by their requirement)."""
        spec = SpecifierSet(self.specs.get(name, ""))
        major = cuda.split(".", maxsplit=1)[0]
        return [
            b
            for b in self.kb.extension_builds(name)
            if spec.contains(b.version, prereleases=True) and b.runs_with(torch_version, major)
        ]

    def check(self, option: Option) -> Failure | None:
        """Fails an option for which a wheel-seeking extension has no prebuilt wheel, or a
        compiled package (xformers, vllm) has no PyPI wheel built for its CUDA major and torch."""
        cuda = variant_to_cuda(option.variant)
        for name in self.compiled if cuda else ():
            if not self.builds_for(name, option.release.version, cuda):
                newest = self.kb.extension_builds(name)[0]
                return Failure(
                    "extension",
                    f"no {name} wheel on PyPI is built for torch {option.release.version} with "
                    f"CUDA {cuda.split('.')[0]} ({name} {newest.version} is built for torch "
                    f"{newest.built_for})",
                )
        for name, (_, tags) in self.urls.items():
            mismatch = _torch_mismatch(tags, option)
            if mismatch:
                return Failure("extension", f"the {name} wheel {tags['file']} {mismatch}")
        for name in self.wheel_seekers:
            if find_wheel(self.kb, option, self.target.python, self.gpu, self.specs[name]) is None:
                torch_minor = option.release.minor
                cuda = variant_to_cuda(option.variant).split(".")[0] or "cpu"
                return Failure(
                    "extension",
                    f"no prebuilt {name} wheel for torch {torch_minor} + CUDA {cuda} + "
                    f"cp{self.target.python.replace('.', '')}",
                )
        return None

    def without_wheels(self) -> ExtensionPlan:
        """Fallback: every `auto` extension becomes a source build."""
        auto = tuple(n for n, m in self.modes.items() if m == "auto")
        modes = {n: ("source" if m == "auto" else m) for n, m in self.modes.items()}
        return replace(self, modes=modes, fell_back=auto, findings=list(self.findings))

    def constraints(self, torch: TorchBuild) -> list[Constraint]:
        out = bitsandbytes.constraints(self, torch)
        for name in self.compiled if torch.cuda else ():
            constraint = self._compiled_constraint(name, torch)
            if constraint is not None:
                out.append(constraint)
        return out

    def _compiled_constraint(self, name: str, torch: TorchBuild) -> Constraint | None:
        """`xformers>=a,<=b,!=c`: only the PyPI wheels built for this torch build's CUDA major
        and torch; none newer than pinner's knowledge."""
        fits = self.builds_for(name, torch.version, torch.cuda)
        if not fits:
            return None
        known = self.kb.extension_builds(name)
        low, high = fits[-1].version, fits[0].version
        fit_versions = {b.version for b in fits}
        between = [
            b.version
            for b in known
            if b.version not in fit_versions and Version(low) < Version(b.version) < Version(high)
        ]
        spec = ",".join(
            [f">={low}", f"<={high}", *(f"!={v}" for v in sorted(between, key=Version))]
        )
        why = (
            f"the {name} wheels on PyPI link one CUDA major and are built for one torch: "
            f"{low} ... {high} run with torch {torch.version} (CUDA {torch.cuda.split('.')[0]})"
        )
        if high == known[0].version:
            why += (
                f"; a {name} newer than {high} is newer than pinner's knowledge "
                f"({self.kb.as_of}): upgrade pinner"
            )
        return Constraint(
            requirement=f"{name}{spec}",
            why=why,
            source=" ".join(dict.fromkeys(b.source for b in (fits[0], fits[-1]))),
        )

    def finish(
        self, option: Option, torch: TorchBuild
    ) -> tuple[
        tuple[Extension, ...], list[Finding], tuple[tuple[str, str], ...], tuple[str, ...], bool
    ]:
        """The extension decisions for the chosen build: (extensions, findings, env, apt, devel)."""
        start = len(self.findings)
        extensions: list[Extension] = []
        findings: list[Finding] = []
        env: dict[str, str] = {}
        apt: list[str] = []
        for name, mode in self.modes.items():
            if mode == "url":
                extensions.append(self._url_extension(name, option))
                continue
            if mode in ("auto", "wheel"):
                wheel = find_wheel(self.kb, option, self.target.python, self.gpu, self.specs[name])
                assert wheel is not None  # `check` kept only options that have one
                extensions.append(self._wheel_extension(name, wheel, option))
                continue
            extension = self._source_extension(name, torch)
            if extension is None:
                continue
            extensions.append(extension)
            for pkg in _source_rules(self.kb, name).get("apt", ["build-essential", "ninja-build"]):
                if pkg not in apt:
                    apt.append(pkg)
            if name in self.fell_back:
                findings.append(
                    _finding(
                        self,
                        "warning",
                        "source-build",
                        message=f"no prebuilt {name} wheel fits any torch build for this target; "
                        f"{name} {extension.version} is built from source (slow: allow an hour)",
                        fix=f'pin torch to a release with a wheel, or set build = {{ {name} = "source" }} '
                        "to silence this",
                        source=self.kb.docs["extensions"]["flash_attn"]["source"],
                    )
                )
        env.update(bitsandbytes.environment(self, torch))
        devel = any(e.strategy == "source" for e in extensions)
        findings = self.findings[start:] + findings
        return tuple(extensions), findings, tuple(sorted(env.items())), tuple(apt), devel

    def _wheel_extension(self, name: str, wheel: Wheel, option: Option) -> Extension:
        doc = self.kb.docs["extensions"]["flash_attn"]
        url = doc["wheel_url"].format(tag=wheel.tag, wheel=wheel.file)
        held = ""
        in_range = [r for r in self.kb.releases if r.version in SpecifierSet(self.target.torch)]
        if (
            in_range
            and option.release.version != in_range[0].version
            and self.modes[name] == "auto"
        ):
            held = (
                f"; torch stays at {option.release.version}: newer torch releases have no "
                f"{name} wheel for this target"
            )
        return Extension(
            name=name,
            version=wheel.version,
            strategy="wheel",
            wheel=wheel.file,
            url=url,
            sha256="",
            deps=_requires(self.kb, name, wheel.version),
            build_deps=(),
            env=(),
            why=f"prebuilt wheel matching torch {option.release.minor}, CUDA "
            f"{variant_to_cuda(option.variant).split('.')[0]}, C++ ABI "
            f"{'TRUE' if option.release.cxx11_abi else 'FALSE'}, "
            f"cp{self.target.python.replace('.', '')}, kernels {' '.join(wheel.arches)}{held}"
            + ("" if wheel.confidence == "verified" else f" ({wheel.confidence} knowledge)"),
            source=wheel.source,
        )

    def _url_extension(self, name: str, option: Option) -> Extension:
        """The wheel the user named by URL: their choice, planned as written once its tags
        match the torch build (`check` refused every build they do not match)."""
        url, tags = self.urls[name]
        return Extension(
            name=name,
            version=tags["version"],
            strategy="wheel",
            wheel=tags["file"],
            url=url,
            sha256="",
            deps=_requires(self.kb, name, tags["version"]),
            build_deps=(),
            env=(),
            why=f"the wheel the requirements name; its tags match torch {option.release.minor}, "
            f"CUDA {tags['cuda_major']}, C++ ABI {tags['abi']}, {tags['python']}, "
            f"{tags['platform']}",
            source=url,
        )

    def _has_kernels(self, name: str, version: str, torch: TorchBuild) -> bool:
        if self.gpu is None or not torch.cuda:
            return True
        kernels = source_kernels(self.kb, name, version, torch.cuda)
        return kernels is None or _kernels_serve(kernels[0], self.gpu)

    def _no_kernels(self, name: str, version: str, torch: TorchBuild) -> Finding:
        """No release the requirement admits compiles kernels for this GPU with this CUDA."""
        assert self.gpu is not None
        kernels = source_kernels(self.kb, name, version, torch.cuda)
        arches, row = kernels if kernels else ("", {})
        return _finding(
            self,
            "error",
            "extension-arch",
            message=f"{self.target.origin}: no {name} release that {name}"
            f"{self.specs.get(name, '') or ' (any version)'} admits compiles kernels for the "
            f"{self.gpu.name} ({self.gpu.sm}) with CUDA {torch.cuda}: {name} {version} builds "
            f"{arches or 'other arches'}",
            fix=f"allow an older {name} release that still builds {self.gpu.sm} (relax the "
            f"requirement), or drop {name} for this target",
            source=str(row.get("source", "")) or _release_sources(self.kb, name),
        )

    def _source_extension(self, name: str, torch: TorchBuild) -> Extension | None:
        rules = _source_rules(self.kb, name)
        spec = self.specs.get(name, "")
        release = _newest_release(
            self.kb, name, spec, torch.version, lambda v: self._has_kernels(name, v, torch)
        )
        if release is None and self.gpu is not None:
            without = _newest_release(self.kb, name, spec, torch.version)
            if without is not None:
                self.findings.append(self._no_kernels(name, without["version"], torch))
                return None
        version, deps = (release["version"], tuple(release["requires"])) if release else ("", ())
        if release is None and _known_package(self.kb, name):
            self.findings.append(
                _finding(
                    self,
                    "error",
                    "extension-version",
                    message=f"no {name} release in pinner's knowledge satisfies "
                    f"{name}{self.specs.get(name, '')} with torch {torch.version}",
                    fix=f"relax the {name} requirement",
                    source=_release_sources(self.kb, name),
                )
            )
            return None
        env = dict(rules.get("env", {}))
        arch_env = rules.get("arch_env", "")
        if arch_env and self.gpu is not None and _arch_value(self.gpu, arch_env):
            env[arch_env] = _arch_value(self.gpu, arch_env)
        why = "source build after torch, on the CUDA -devel image, with --no-build-isolation"
        if name in self.fell_back:
            why += " (no prebuilt wheel fits any torch build for this target)"
        return Extension(
            name=name,
            version=version,
            strategy="source",
            wheel="",
            url="",
            sha256="",
            deps=deps,
            build_deps=tuple(
                rules.get("build_deps", ("packaging", "ninja", "wheel", "setuptools"))
            ),
            env=tuple(sorted(env.items())),
            why=why,
            source=rules.get("source", 'matrix: build = "source"'),
        )


def _finding(plan: ExtensionPlan, severity: Severity, code: str, **text: str) -> Finding:
    """A finding about this plan's target (message, fix and source as keywords)."""
    return Finding(target=plan.target.name, severity=severity, code=code, **text)


def prepare(target: Target, kb: Knowledge, reqs: Requirements, gpu: Gpu | None) -> ExtensionPlan:
    """Read the requirements for extensions and torch pins, before a torch build is chosen."""
    specs = {r.name: r.specifier for r in reqs.items if not r.constraint}
    for r in reqs.items:  # a -c constraint narrows a requirement of the same name
        if r.constraint and r.name in specs and r.specifier:
            specs[r.name] = ",".join(filter(None, (specs[r.name], r.specifier)))
    modes: dict[str, str] = {}
    builds = dict(target.builds)
    for name in specs:
        default = _source_rules(kb, name).get("default", "")
        mode = builds.get(name, "auto" if default == "wheel" else default)
        if mode == "auto" and name != FLASH:
            mode = "source" if default == "source" else ""
        if mode:
            modes[name] = mode
    plan = ExtensionPlan(target=target, kb=kb, gpu=gpu, specs=specs, modes=modes)
    _url_wheels(plan, reqs)
    _hardware_rules(plan)
    _gpu_rules(plan)
    _torch_pins(plan, reqs)
    return plan


def _url_wheels(plan: ExtensionPlan, reqs: Requirements) -> None:
    """`flash-attn @ <release wheel URL>`: the user's choice of wheel. Its Python and platform
    tags must be the target's (else an error naming the mismatch); its torch minor, CUDA major
    and C++ ABI then bound the torch builds (`check`)."""
    from urllib.parse import unquote, urlsplit

    for req in reqs.items:
        if req.constraint or not req.url or req.name != FLASH:
            continue
        file = unquote(urlsplit(req.url).path.rsplit("/", 1)[-1])
        tags = parse_wheel_name(file)
        python = "cp" + plan.target.python.replace(".", "")
        platform = plan.target.platform.replace("-", "_")
        problem = ""
        if tags is None:
            problem = (
                f"{file} is not a flash-attn release wheel, whose name says the torch, CUDA and "
                "C++ ABI it is built for (flash_attn-<version>+cu<major>torch<minor>cxx11abi"
                "<TRUE|FALSE>-cpXY-cpXY-linux_x86_64.whl)"
            )
        elif tags["python"] != python:
            problem = (
                f"{file} is built for {tags['python']}, but the target runs Python "
                f"{plan.target.python} ({python})"
            )
        elif tags["platform"] != platform:
            problem = f"{file} is built for {tags['platform']}, but the target is {platform}"
        if problem:
            plan.findings.append(
                _finding(
                    plan,
                    "error",
                    "extension-url",
                    message=f"{req.origin}: {problem}",
                    fix=f"name the wheel of the same release built for {python} and {platform}, "
                    f"or write {FLASH} without a URL and let pinner pick the wheel",
                    source=req.url,
                )
            )
            continue
        assert tags is not None
        plan.urls[req.name] = (req.url, {**tags, "file": file})
        plan.modes[req.name] = "url"


def _torch_mismatch(tags: Mapping[str, str], option: Option) -> str:
    """How a wheel's torch tags differ from a torch build ("" when they match)."""
    cuda = variant_to_cuda(option.variant).split(".")[0]
    abi = "TRUE" if option.release.cxx11_abi else "FALSE"
    if tags["torch"] != option.release.minor:
        return f"is built for torch {tags['torch']}, not {option.release.minor}"
    if tags["cuda_major"] != cuda:
        return f"is built for CUDA {tags['cuda_major']}, not {cuda or 'a CPU build'}"
    if tags["abi"] != abi:
        return f"is built with C++ ABI {tags['abi']}, torch {option.release.version} with {abi}"
    return ""


def _hardware_rules(plan: ExtensionPlan) -> None:
    """GPUs no offered torch build runs on, whatever the build (Jetson platform, driver floor)."""
    if plan.gpu is None:
        return
    problem = hardware_problem(plan.kb, plan.gpu, plan.target.platform, plan.target.driver)
    if problem is not None:
        code, reason, fix, source = problem
        plan.findings.append(
            _finding(
                plan,
                "error",
                code,
                message=f"{plan.target.origin}: {reason}",
                fix=fix,
                source=source,
            )
        )


def _gpu_rules(plan: ExtensionPlan) -> None:
    if FLASH not in plan.modes:
        return
    doc = plan.kb.docs["extensions"]["flash_attn"]
    minimum = doc["min_compute_capability"]
    if plan.gpu is None or parse_cc(plan.gpu.compute_capability) < parse_cc(minimum):
        what = "no GPU" if plan.gpu is None else f"the {plan.gpu.name} is {plan.gpu.sm}"
        plan.findings.append(
            _finding(
                plan,
                "error",
                "extension-gpu",
                message=f"{plan.target.origin}: flash-attn (FlashAttention-2) needs an NVIDIA GPU "
                f"of compute capability >= {minimum} (Ampere or newer); {what}",
                fix="drop flash-attn for this target (use torch's scaled_dot_product_attention), "
                "or target an Ampere-or-newer GPU",
                source=doc["source"],
            )
        )


def _torch_pins(plan: ExtensionPlan, reqs: Requirements) -> None:
    """xformers and vllm pin torch exactly per release: their pins bound the torch choice."""
    pins: dict[str, list[Mapping[str, Any]]] = {}
    for entry in plan.kb.docs["extensions"].get("torch_pin", []):
        pins.setdefault(entry["package"], []).append(entry)
    for req in reqs.items:
        if req.name not in pins or req.constraint:
            continue
        spec = SpecifierSet(req.specifier)
        if spec.contains(FUTURE, prereleases=False) and req.specifier != "":
            continue  # admits releases newer than pinner knows: no bound can be derived
        if not req.specifier:
            continue
        matching = [e for e in pins[req.name] if spec.contains(e["version"], prereleases=True)]
        if not matching:
            continue
        allowed = [
            r.version
            for r in plan.kb.releases
            if any(SpecifierSet(e["torch"]).contains(r.version) for e in matching)
        ]
        excluded = [r.version for r in plan.kb.releases if r.version not in allowed]
        torch_text = " or ".join(sorted({e["torch"] for e in matching}))
        versions = ", ".join(e["version"] for e in matching[:3]) + (
            " ..." if len(matching) > 3 else ""
        )
        why = f"{req.origin} {req.text} ({req.name} {versions}) pins torch{torch_text}"
        plan.torch_bounds.append((why, SpecifierSet(",".join(f"!={v}" for v in excluded))))
        target_spec = SpecifierSet(plan.target.torch)
        if not any(v in target_spec for v in allowed):
            plan.findings.append(
                _finding(
                    plan,
                    "error",
                    "torch-pin-conflict",
                    message=f"{why}, but {plan.target.origin}.torch = {plan.target.torch!r} "
                    f"excludes torch {', '.join(allowed) or torch_text}",
                    fix=f"change {req.name} to a release built for torch {plan.target.torch}, "
                    f"or widen the target's torch range to include {', '.join(allowed)}",
                    source=matching[0]["source"],
                )
            )


def is_extension(kb: Knowledge, name: str) -> bool:
    """A compiled extension pinner builds or installs in the extension layer (flash-attn,
    mamba-ssm, causal-conv1d, ...)."""
    return bool(_source_rules(kb, name).get("default"))


def _source_rules(kb: Knowledge, name: str) -> Mapping[str, Any]:
    return next(
        (s for s in kb.docs["extensions"].get("source_build", []) if s["package"] == name), {}
    )


def source_kernels(
    kb: Knowledge, name: str, version: str, cuda: str
) -> tuple[str, Mapping[str, Any]] | None:
    """(the arches a source build of `name` `version` compiles with nvcc `cuda`, its data row);
    None when pinner has no arch list for that release."""
    for row in kb.docs["extensions"].get("source_arches", []):
        if row["package"] != name:
            continue
        if not Version(row["first"]) <= Version(version) <= Version(row["last"]):
            continue
        nvcc = Version(cuda or "0")
        arches = [
            g["sm"]
            for g in row["gencode"]
            if Version(g.get("nvcc_min", "0")) <= nvcc <= Version(g.get("nvcc_max", "999"))
        ]
        return " ".join(arches), row
    return None


def _kernels_serve(arches: str, gpu: Gpu) -> bool:
    """A cubin (no PTX) runs on a GPU of the same major with a minor >= its own."""
    major, minor = parse_cc(gpu.compute_capability)
    return any(
        a_major == major and a_minor <= minor
        for a_major, a_minor in map(parse_arch, arches.split())
    )


def _release_sources(kb: Knowledge, name: str) -> str:
    """The sources of every known release of `name` (what pinner's knowledge rests on)."""
    entries = kb.docs["extensions"].get("package_release", [])
    return " ".join(e["source"] for e in entries if e["package"] == name)


def _known_package(kb: Knowledge, name: str) -> bool:
    return any(p["package"] == name for p in kb.docs["extensions"].get("package_release", []))


def _newest_release(
    kb: Knowledge, name: str, spec: str, torch: str, keep: Callable[[str], bool] = lambda _: True
) -> Mapping[str, Any] | None:
    wanted = SpecifierSet(spec)
    best = None
    for entry in kb.docs["extensions"].get("package_release", []):
        if entry["package"] != name or not wanted.contains(entry["version"], prereleases=True):
            continue
        if not keep(entry["version"]):
            continue
        if entry.get("min_torch") and Version(torch) < Version(entry["min_torch"]):
            continue
        if best is None or Version(entry["version"]) > Version(best["version"]):
            best = entry
    return best


def _requires(kb: Knowledge, name: str, version: str) -> tuple[str, ...]:
    for entry in kb.docs["extensions"].get("package_release", []):
        if entry["package"] == name and _same_version(entry["version"], version):
            return tuple(entry["requires"])
    base = next(
        (e for e in kb.docs["extensions"].get("package_release", []) if e["package"] == name), None
    )
    return tuple(base["requires"]) if base else ()


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _arch_value(gpu: Gpu, arch_env: str) -> str:
    """FLASH_ATTN_CUDA_ARCHS for `gpu`: flash-attn's setup.py knows 80, 90, 100 and 120 only; an
    sm_86 or sm_89 GPU runs the sm_80 kernels (same major). "" when none applies."""
    del arch_env
    major, _ = parse_cc(gpu.compute_capability)
    return {8: "80", 9: "90", 10: "100", 12: "120"}.get(major, "")


def steps_for(extension: Extension) -> list[Step]:
    how = (
        f"prebuilt wheel {extension.wheel}"
        if extension.strategy == "wheel"
        else f"source build of {extension.name} {extension.version}".rstrip()
    )
    return [
        Step(
            topic=f"extension {extension.name}",
            choice=how,
            why=extension.why,
            source=extension.source,
        )
    ]
