"""Facts about torch builds shared by planning stages: the options, the arch rule, driver minimums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pinner.knowledge import Build, Knowledge, TorchRelease, cuda_to_variant, variant_to_cuda

if TYPE_CHECKING:
    from collections.abc import Iterator

CUBIN_RULE = (
    "a cubin for sm_X.y runs on GPUs of major X with minor >= y, never across majors; "
    "PTX compiles forward to newer GPUs"
)


def cubin_source(kb: Knowledge) -> str:
    """Where the cubin/PTX rule is documented (data: cuda.toml [cubin_rule])."""
    return str(kb.docs["cuda"]["cubin_rule"]["source"])


@dataclass(frozen=True)
class Option:
    """One way to get a torch release: PyPI's own build, or a variant of the PyTorch index."""

    release: TorchRelease
    variant: str
    on_pypi: bool


@dataclass(frozen=True)
class Failure:
    code: str  # torch-range, python, cuda, cpu, arch-unknown, no-kernels, driver, extension
    reason: str


def options(kb: Knowledge, platform: str) -> Iterator[Option]:
    """Every known build, in preference order: newest release first, PyPI's own build first,
    then the index variants from the newest CUDA down."""
    for release in kb.releases:
        if platform == "linux-x86_64":
            yield Option(release, release.pypi_variant, on_pypi=True)
            variants = release.variants
        else:
            yield Option(release, cuda_to_variant(release.pypi_cuda_aarch64), on_pypi=True)
            variants = release.variants_aarch64
        for variant in sorted(variants, key=variant_order, reverse=True):
            yield Option(release, variant, on_pypi=False)


def variant_order(variant: str) -> tuple[int, int]:
    cuda = variant_to_cuda(variant)
    if not cuda:
        return (0, 0)
    major, minor = cuda.split(".")
    return (int(major), int(minor))


def serving_arch(cc: str, build: Build) -> str:
    """The arch of `build` that runs on a GPU of compute capability `cc`, "" if none does."""
    gpu = parse_cc(cc)
    for arch in sorted(build.arches, key=parse_arch, reverse=True):
        major, minor = parse_arch(arch)
        if major == gpu[0] and minor <= gpu[1]:
            return arch
    if build.ptx and parse_arch(build.ptx) <= gpu:
        return f"compute_{build.ptx[3:]} (PTX)"
    return ""


def describe_arches(build: Build) -> str:
    text = " ".join(build.arches)
    return text + (f" + PTX {build.ptx}" if build.ptx else ", no PTX")


def parse_arch(arch: str) -> tuple[int, int]:
    """'sm_120' -> (12, 0); 'sm_86' -> (8, 6)."""
    digits = arch.rsplit("_", maxsplit=1)[-1]
    return int(digits[:-1]), int(digits[-1])


def parse_cc(cc: str) -> tuple[int, int]:
    major, minor = cc.split(".")
    return int(major), int(minor)


def vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def min_driver(kb: Knowledge, variant: str) -> str:
    """Driver a build of `variant` needs (minor-version compatibility of its CUDA major)."""
    cuda = variant_to_cuda(variant)
    if not cuda:
        return ""
    major = kb.major(int(cuda.split(".")[0]))
    return major.min_driver if major else ""
