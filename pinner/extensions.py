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

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pinner.builds import Failure, Option, parse_arch, parse_cc
from pinner.knowledge import Gpu, Knowledge, variant_to_cuda
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

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

FLASH = "flash-attn"
FUTURE = "99999"  # stands for "a release newer than pinner knows" when testing a specifier


@dataclass(frozen=True)
class Wheel:
    version: str
    file: str
    tag: str
    arches: tuple[str, ...]
    confidence: str
    source: str


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

    @property
    def requested(self) -> frozenset[str]:
        return frozenset(self.specs)

    @property
    def wheel_seekers(self) -> list[str]:
        return [name for name, mode in self.modes.items() if mode in ("auto", "wheel")]

    def check(self, option: Option) -> Failure | None:
        """Fails an option for which a wheel-seeking extension has no prebuilt wheel."""
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
        return _bitsandbytes(self, torch)

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
        env.update(_bnb_env(self, torch))
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
            f"cp{self.target.python.replace('.', '')}, kernels {' '.join(wheel.arches)}{held}",
            source=f"{wheel.source} [{wheel.confidence}]",
        )

    def _source_extension(self, name: str, torch: TorchBuild) -> Extension | None:
        rules = _source_rules(self.kb, name)
        release = _newest_release(self.kb, name, self.specs.get(name, ""), torch.version)
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
                    source="pinner/knowledge/extensions.toml",
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
    _gpu_rules(plan)
    _torch_pins(plan, reqs)
    return plan


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


def find_wheel(
    kb: Knowledge, option: Option, python: str, gpu: Gpu | None, spec: str
) -> Wheel | None:
    """The newest prebuilt flash-attn wheel for exactly this torch build, Python and GPU."""
    cuda = variant_to_cuda(option.variant)
    if not cuda or gpu is None:
        return None
    major = cuda.split(".")[0]
    abi = "TRUE" if option.release.cxx11_abi else "FALSE"
    py = "cp" + python.replace(".", "")
    wanted = SpecifierSet(spec)
    best: Wheel | None = None
    for wheel, parts in _parsed_wheels(kb):
        if (
            parts["cuda_major"] == major
            and parts["torch"] == option.release.minor
            and parts["abi"] == abi
            and parts["python"] == py
            and parts["platform"] == "linux_x86_64"
            and wanted.contains(parts["version"], prereleases=True)
            and _runs(gpu, wheel.arches)
            and (best is None or Version(parts["version"]) > Version(best.version))
        ):
            best = wheel
    return best


# Planning asks for wheels once per candidate torch build (hundreds of times per target): expand
# and parse the ~1900 file names once per knowledge document.
_PARSED: dict[int, tuple[Mapping[str, Any], list[tuple[Wheel, dict[str, str]]]]] = {}


def _parsed_wheels(kb: Knowledge) -> list[tuple[Wheel, dict[str, str]]]:
    doc = kb.docs["extensions"]
    hit = _PARSED.get(id(doc))
    if hit is None or hit[0] is not doc:
        wheels = [(w, parts) for w in _all_wheels(kb) if (parts := parse_wheel_name(w.file))]
        hit = _PARSED[id(doc)] = (doc, wheels)
    return hit[1]


_WHEEL = re.compile(
    r"^flash_attn-(?P<version>[^+]+)\+cu(?P<cuda>\d+)torch(?P<torch>\d+\.\d+)cxx11abi(?P<abi>TRUE|FALSE)"
    r"-(?P<python>cp\d+)-cp\d+-(?P<platform>\w+)\.whl$"
)


def parse_wheel_name(file: str) -> dict[str, str] | None:
    m = _WHEEL.match(file)
    if not m:
        return None
    parts = m.groupdict()
    cuda = parts.pop("cuda")
    parts["cuda_major"] = cuda[:2] if len(cuda) >= 3 else cuda  # cu118 -> 11, cu12 -> 12
    return parts


def _runs(gpu: Gpu, arches: Iterable[str]) -> bool:
    cc = parse_cc(gpu.compute_capability)
    return any(parse_arch(a)[0] == cc[0] and parse_arch(a)[1] <= cc[1] for a in arches)


def _all_wheels(kb: Knowledge) -> list[Wheel]:
    doc = kb.docs["extensions"]
    return list(_expand_releases(doc)) + [
        Wheel(
            version=(parse_wheel_name(w["file"]) or {}).get("version", ""),
            file=w["file"],
            tag=w["tag"],
            arches=tuple(w.get("arches", ())),
            confidence=w.get("confidence", "secondary"),
            source=w["source"],
        )
        for w in doc.get("flash_attn_wheel", [])
    ]


def _expand_releases(doc: Mapping[str, Any]) -> Iterable[Wheel]:
    """Every file name a release's wheel matrix produces (publish.yml matrix minus excludes)."""
    for rel in doc.get("flash_attn_release", []):
        for cuda_major, cuda_tag in rel["cuda"].items():
            for torch in rel["torch"]:
                for python in rel["python"]:
                    if _excluded(rel.get("exclude", []), torch, python, cuda_major):
                        continue
                    py = "cp" + python.replace(".", "")
                    for abi in rel["abi"]:
                        file = (
                            f"flash_attn-{rel['version']}+{cuda_tag}torch{torch}cxx11abi{abi}"
                            f"-{py}-{py}-linux_x86_64.whl"
                        )
                        yield Wheel(
                            version=rel["version"],
                            file=file,
                            tag=rel["tag"],
                            arches=tuple(rel["arches"]),
                            confidence=rel.get("confidence", "verified"),
                            source=rel["source"],
                        )


def _excluded(excludes: list[Mapping[str, str]], torch: str, python: str, cuda: str) -> bool:
    here = {"torch": torch, "python": python, "cuda": cuda}
    return any(all(here.get(k) == v for k, v in ex.items()) for ex in excludes)


def expand_flash_attn_wheels(kb: Knowledge) -> list[str]:
    return [w.file for w in _expand_releases(kb.docs["extensions"])]


def _source_rules(kb: Knowledge, name: str) -> Mapping[str, Any]:
    return next(
        (s for s in kb.docs["extensions"].get("source_build", []) if s["package"] == name), {}
    )


def _known_package(kb: Knowledge, name: str) -> bool:
    return any(p["package"] == name for p in kb.docs["extensions"].get("package_release", []))


def _newest_release(kb: Knowledge, name: str, spec: str, torch: str) -> Mapping[str, Any] | None:
    wanted = SpecifierSet(spec)
    best = None
    for entry in kb.docs["extensions"].get("package_release", []):
        if entry["package"] != name or not wanted.contains(entry["version"], prereleases=True):
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


# --- bitsandbytes -------------------------------------------------------------------------------


def _bnb_table(kb: Knowledge) -> list[tuple[Version, set[str]]]:
    rows = [(Version(b["version"]), set(b["cuda"])) for b in kb.docs["packages"]["bitsandbytes"]]
    return sorted(rows)


def _bnb_ok(version: Version, libs: set[str], cuda: str, fallback_from: Version) -> bool:
    digits = cuda.replace(".", "")
    if digits in libs:
        return True
    return version >= fallback_from and any(lib[:-1] == digits[:-1] for lib in libs)


def _bnb_window(kb: Knowledge, torch: TorchBuild) -> tuple[str, str] | None:
    """(minimum native version, why) for the build's CUDA; None when every version works."""
    rules = kb.docs["packages"]["bitsandbytes_rules"]
    fallback = Version(rules["same_major_fallback_from"])
    table = _bnb_table(kb)
    first_ok = None
    for version, libs in reversed(table):
        if not _bnb_ok(version, libs, torch.cuda, fallback):
            break
        first_ok = version
    if first_ok is None or first_ok == table[0][0]:
        return None if first_ok is not None else ("", "")
    return str(first_ok), f"bitsandbytes < {first_ok} bundles no CUDA {torch.cuda} library"


def _bitsandbytes(plan: ExtensionPlan, torch: TorchBuild) -> list[Constraint]:
    if "bitsandbytes" not in plan.specs or not torch.cuda:
        return []
    window = _bnb_window(plan.kb, torch)
    if window is None:
        return []
    minimum, why = window
    if not minimum:
        return []
    user = SpecifierSet(plan.specs["bitsandbytes"])
    if _bnb_override(plan, torch) is not None:
        return []
    source = plan.kb.docs["packages"]["bitsandbytes"][0]["source"]
    if not any(user.contains(v, prereleases=True) for v in (minimum, FUTURE)):
        return []
    return [
        Constraint(
            requirement=f"bitsandbytes>={minimum}",
            why=f"{why} (it would load the CPU library instead)",
            source=f"{source}; {plan.kb.docs['packages']['bitsandbytes_rules']['source']}",
        )
    ]


def _bnb_override(plan: ExtensionPlan, torch: TorchBuild) -> tuple[str, str] | None:
    """(BNB_CUDA_VERSION, why) when the user's bitsandbytes pin has no library for this CUDA."""
    if "bitsandbytes" not in plan.specs or not torch.cuda:
        return None
    window = _bnb_window(plan.kb, torch)
    if not window or not window[0]:
        return None
    user = SpecifierSet(plan.specs["bitsandbytes"])
    if not plan.specs["bitsandbytes"] or any(
        user.contains(v, prereleases=True) for v in (window[0], FUTURE)
    ):
        return None
    digits = torch.cuda.replace(".", "")
    table = _bnb_table(plan.kb)
    # The table lists only the versions where the bundled libraries changed; a pin between two
    # entries (==0.49.2) has the libraries of the entry before it (0.48.0).
    candidates = {v for v, _ in table} | _named_versions(user)
    allowed = sorted(
        v for v in candidates if v >= table[0][0] and user.contains(str(v), prereleases=True)
    )
    if not allowed:
        return None
    version = allowed[-1]
    libs = next(libs for v, libs in reversed(table) if v <= version)
    fallback = Version(plan.kb.docs["packages"]["bitsandbytes_rules"]["same_major_fallback_from"])
    if _bnb_ok(version, libs, torch.cuda, fallback):
        return None
    same = sorted((lib for lib in libs if lib[:-1] == digits[:-1] and lib <= digits), reverse=True)
    if not same:
        return "", (
            f"bitsandbytes {version} bundles no CUDA {digits[:-1]} library (it has "
            f"{', '.join(sorted(libs))}): on this CUDA {torch.cuda} build it would load its CPU "
            f"library, without GPU quantization; use bitsandbytes>={window[0]}"
        )
    return same[0], (
        f"bitsandbytes {version} bundles no libbitsandbytes_cuda{digits}.so; "
        f"BNB_CUDA_VERSION={same[0]} loads its CUDA {same[0][:-1]}.{same[0][-1]} library instead"
    )


def _named_versions(spec: SpecifierSet) -> set[Version]:
    """The versions a specifier names: {0.49.2} for "==0.49.2", {0.49} for "==0.49.*"."""
    out = set()
    for item in spec:
        try:
            out.add(Version(item.version.removesuffix(".*")))
        except InvalidVersion:
            continue
    return out


def _bnb_env(plan: ExtensionPlan, torch: TorchBuild) -> dict[str, str]:
    override = _bnb_override(plan, torch)
    if override is None:
        return {}
    value, why = override
    source = plan.kb.docs["packages"]["bitsandbytes_rules"]["source"]
    if not value:  # no library of this CUDA major at all: it would silently run on the CPU
        plan.findings.append(
            _finding(
                plan,
                "error",
                "bnb-no-cuda-library",
                message=f"{plan.target.origin}: {why}",
                fix="relax or raise the bitsandbytes requirement",
                source=source,
            )
        )
        return {}
    plan.findings.append(
        _finding(
            plan,
            "note",
            "bnb-cuda-version",
            message=f"BNB_CUDA_VERSION={value}: {why}",
            fix="upgrade bitsandbytes to drop the override",
            source=source,
        )
    )
    gpu = plan.gpu
    if gpu is not None and int(value) < 128 and parse_cc(gpu.compute_capability)[0] >= 10:
        plan.findings.append(
            _finding(
                plan,
                "warning",
                "bnb-ptx-unverified",
                message=f"the CUDA {value[:-1]}.{value[-1]} library of bitsandbytes is built for "
                f"sm_50 to sm_90 (+PTX): on the {gpu.name} ({gpu.sm}) it relies on PTX JIT, "
                "which is unverified",
                fix="use a bitsandbytes that bundles a CUDA >= 12.8 library (>= 0.45.3)",
                source=plan.kb.docs["packages"]["bitsandbytes_rules"]["source"],
            )
        )
    return {"BNB_CUDA_VERSION": value}
