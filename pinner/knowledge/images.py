"""images: does a host driver (and GPU brand) start a base image? Pure functions over knowledge.

An `nvidia/cuda:X.Y.Z-*` image sets NVIDIA_REQUIRE_CUDA, which the NVIDIA container runtime
checks before it starts the container: `cuda>=X.Y` (the driver supports CUDA X.Y natively), or one
of the `brand=B,driver>=N,driver<N+1` clauses (a GPU of brand B on driver branch N, through the
image's cuda-compat libraries). That is stricter than what the torch wheels need (minor-version
compatibility within a CUDA major, e.g. 12.x >= 525.60.13), because the wheels bring their own CUDA
libraries. A plain OS image sets no requirement; with NVIDIA_VISIBLE_DEVICES=all and
NVIDIA_DRIVER_CAPABILITIES=compute,utility (as the CUDA images set them) the runtime mounts the
driver into it and the wheels run on the driver's own minimum.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinner.knowledge.knowledge import BaseImage, Knowledge

# What the nvidia/cuda images set for the container runtime; a plain OS image needs them too.
GPU_ENV = (("NVIDIA_VISIBLE_DEVICES", "all"), ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"))


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def toolkit_driver(kb: Knowledge, cuda: str) -> str:
    """The driver that supports CUDA `cuda` natively (knowledge: cuda.toml [[toolkit]])."""
    for row in kb.docs["cuda"].get("toolkit", ()):
        if row["version"] == cuda:
            return str(row["min_driver"])
    return ""


def driver_cuda(kb: Knowledge, driver: str) -> str:
    """The newest CUDA version `driver` supports natively ("" when older than every toolkit)."""
    best = ""
    for row in kb.docs["cuda"].get("toolkit", ()):
        if _vtuple(driver) >= _vtuple(row["min_driver"]) and (
            not best or _vtuple(row["version"]) > _vtuple(best)
        ):
            best = str(row["version"])
    return best


def starts(image: BaseImage, kb: Knowledge, driver: str, brand: str) -> str:
    """Why `driver` on a GPU of `brand` starts `image` ("" when it does not)."""
    if not image.require_cuda:
        return "it sets no NVIDIA_REQUIRE_CUDA"
    native = driver_cuda(kb, driver)
    if native and _vtuple(native) >= _vtuple(image.require_cuda):
        return f"driver {driver} supports CUDA {native} >= {image.require_cuda}"
    branch = str(_vtuple(driver)[0]) if driver else ""
    if brand and brand in image.require_brands and branch in image.require_branches:
        return f"its clause brand={brand},driver>={branch},driver<{int(branch) + 1} admits {driver}"
    return ""


def needs(image: BaseImage, kb: Knowledge) -> str:
    """The driver an image needs, in words."""
    if not image.require_cuda:
        return "any driver (no NVIDIA_REQUIRE_CUDA)"
    floor = toolkit_driver(kb, image.require_cuda)
    text = f"driver >= {floor or '?'} (CUDA {image.require_cuda})"
    if image.require_branches:
        who = (
            "any GPU"
            if "geforce" in image.require_brands
            else "a data-center or workstation GPU (not GeForce)"
        )
        text += f", or {who} on driver branch {', '.join(image.require_branches)}"
    elif image.require_confidence == "unverified":
        text += " (its brand clauses are not in pinner's knowledge)"
    return text


def fits_arch(image: BaseImage, compute_capability: str) -> bool:
    """Can the image's nvcc compile for this GPU (no newer than the toolkit knows)?"""
    if not image.nvcc_max_cc or not compute_capability:
        return True
    return _vtuple(compute_capability) <= _vtuple(image.nvcc_max_cc)
