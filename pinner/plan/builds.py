"""Facts about torch builds shared by planning stages: the options, the arch rule, driver minimums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pinner.knowledge.knowledge import (
    Build,
    Gpu,
    Knowledge,
    TorchRelease,
    cuda_to_variant,
    variant_to_cuda,
)

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
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def hardware_problem(
    kb: Knowledge, gpu: Gpu, platform: str, driver: str
) -> tuple[str, str, str, str] | None:
    """Why this GPU cannot run any torch build pinner offers on this host, as (code, reason,
    fix, source), or None. Jetson modules need driver >= 580 (JetPack 7) for the SBSA aarch64
    wheels; a GPU with its own driver floor (Blackwell: 570.26) refuses an older driver."""
    jetson = kb.docs["gpus"].get("jetson", {})
    if gpu.key in jetson.get("gpus", ()) and platform == jetson["platform"]:
        floor = jetson["min_driver"]
        if not driver or vtuple(driver) < vtuple(floor):
            given = f"the target's driver is {driver}" if driver else "no driver was given"
            reason = (
                f"{gpu.name} runs L4T: the aarch64 CUDA wheels on PyPI and the PyTorch index are "
                f"SBSA builds that need driver >= {floor} (JetPack 7) and carry no sm_87 or sm_72 "
                f"cubins, so JetPack 6 and older cannot run them; {given}"
            )
            fix = (
                f'on JetPack 7 set driver = "<version>" (>= {floor}) on the target; on JetPack 6 '
                "or older use NVIDIA's Jetson wheels (jetson-containers) instead of a pinner target"
            )
            return "jetson-platform", reason, fix, str(jetson["source"])
        return None
    if gpu.min_driver and driver and vtuple(driver) < vtuple(gpu.min_driver):
        reason = (
            f"the {gpu.name} ({gpu.architecture}) needs NVIDIA driver >= {gpu.min_driver}; "
            f"the target's driver is {driver}"
        )
        fix = f"upgrade the host driver to {gpu.min_driver} or newer and set driver accordingly"
        return "gpu-driver", reason, fix, gpu.min_driver_source
    return None


def min_driver(kb: Knowledge, variant: str, gpu: Gpu | None = None) -> str:
    """Driver a build of `variant` needs (minor-version compatibility of its CUDA major), raised
    to the GPU's own floor where it has one (Blackwell: 570.26 even for a CUDA 12.8 build)."""
    cuda = variant_to_cuda(variant)
    if not cuda:
        return ""
    major = kb.major(int(cuda.split(".")[0]))
    floor = major.min_driver if major else ""
    if gpu is not None and gpu.min_driver and (not floor or vtuple(gpu.min_driver) > vtuple(floor)):
        return gpu.min_driver
    return floor
