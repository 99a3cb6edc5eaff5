"""The flash-attn prebuilt wheel catalog: every file name each GitHub release's wheel matrix
produces (publish.yml matrix minus excludes), plus individually attested wheels, and the lookup of
the newest wheel that matches a torch build exactly (flash-attn version, CUDA major, torch minor,
C++ ABI, CPython tag, platform) and has kernels for the GPU."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pinner.knowledge.knowledge import Gpu, Knowledge, variant_to_cuda
from pinner.plan.builds import Option, parse_arch, parse_cc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


@dataclass(frozen=True)
class Wheel:
    version: str
    file: str
    tag: str
    arches: tuple[str, ...]
    confidence: str
    source: str


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
