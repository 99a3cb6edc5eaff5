"""bitsandbytes in a plan: a version whose bundled CUDA library matches the torch build's CUDA.

Up to 0.49.x the exact `libbitsandbytes_cuda<NNN>.so` must be bundled (else 0.45.x and older
load the CPU library with a warning, 0.46-0.49 raise "Configured CUDA binary not found"); from 0.50.0 the closest library of the same CUDA major is used;
`BNB_CUDA_VERSION=<NNN>` forces another bundled library (data: packages.toml [bitsandbytes_rules]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pinner.model import Constraint, Finding
from pinner.plan.builds import parse_cc

if TYPE_CHECKING:
    from pinner.knowledge.knowledge import Gpu, Knowledge
    from pinner.model import Severity, Target, TorchBuild


class ExtensionPlan(Protocol):
    """What this module reads of `extensions.ExtensionPlan` (which calls this module):
    a protocol, so that the two modules do not import each other."""

    @property
    def findings(self) -> list[Finding]: ...

    @property
    def gpu(self) -> Gpu | None: ...

    @property
    def kb(self) -> Knowledge: ...

    @property
    def specs(self) -> dict[str, str]: ...

    @property
    def target(self) -> Target: ...


def _finding(plan: ExtensionPlan, severity: Severity, code: str, **text: str) -> Finding:
    """A finding about this plan's target (message, fix and source as keywords)."""
    return Finding(target=plan.target.name, severity=severity, code=code, **text)


FUTURE = "99999"  # stands for "a release newer than pinner knows" when testing a specifier


def _bnb_table(kb: Knowledge) -> list[tuple[Version, set[str]]]:
    """The releases and their bundled CUDA libraries, parsed once per knowledge (each plan asks
    for every fitting build: a few dozen times)."""
    data = kb.docs["packages"]["bitsandbytes"]
    cached = _TABLES.get(id(data))
    if cached is None or cached[0] is not data:
        rows = sorted((Version(b["version"]), set(b["cuda"])) for b in data)
        cached = _TABLES[id(data)] = (data, rows)  # the data kept: its id is never reused
    return cached[1]


_TABLES: dict[int, tuple[object, list[tuple[Version, set[str]]]]] = {}


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


def constraints(plan: ExtensionPlan, torch: TorchBuild) -> list[Constraint]:
    """`bitsandbytes>=X` when some known versions lack the build's CUDA library."""
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
            why=f"{why} ({missing_library_effect(plan.kb, Version(minimum))})",
            source=f"{source} {plan.kb.docs['packages']['bitsandbytes_rules']['source']}",
        )
    ]


def missing_library_effect(kb: Knowledge, below: Version) -> str:
    """What the versions below `below` do on a build whose CUDA library they lack."""
    raises = Version(kb.docs["packages"]["bitsandbytes_rules"]["raises_when_missing_from"])
    cpu = "versions before it load the CPU library instead, with a warning"
    if below <= raises:
        return cpu.replace("versions before it", "they")
    return (
        f"{raises} and newer raise RuntimeError 'Configured CUDA binary not found' at import; "
        f"older {cpu.removeprefix('versions before it ')}"
    )


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
            f"{', '.join(sorted(libs))}): on this CUDA {torch.cuda} build "
            + (
                "it raises RuntimeError 'Configured CUDA binary not found' at import"
                if version
                >= Version(
                    plan.kb.docs["packages"]["bitsandbytes_rules"]["raises_when_missing_from"]
                )
                else "it would load its CPU library, without GPU quantization"
            )
            + f"; use bitsandbytes>={window[0]}"
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


def environment(plan: ExtensionPlan, torch: TorchBuild) -> dict[str, str]:
    """`BNB_CUDA_VERSION` when the pinned bitsandbytes needs it; findings say why."""
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
