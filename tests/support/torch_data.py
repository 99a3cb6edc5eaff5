"""The real CPU torch wheel on this machine, and what it needs, for tests that serve torch."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

REAL_TORCH = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
TORCH_CPU = "2.13.0+cpu"


class Tags(TypedDict):
    python_tag: str
    abi_tag: str
    platform_tag: str


TORCH_TAGS = Tags(python_tag="cp311", abi_tag="cp311", platform_tag="manylinux_2_28_x86_64")
# The Requires-Dist of the real torch 2.13.0+cpu wheel.
TORCH_REQUIRES = (
    "filelock",
    "typing-extensions>=4.10.0",
    "setuptools>=77.0.3",
    "sympy>=1.13.3",
    "networkx>=2.5.1",
    "jinja2",
    "fsspec>=0.8.5",
    'optree>=0.13.0; extra == "optree"',
)
# torch's dependencies (and theirs), served as small fake wheels on a fake "pypi" index.
TORCH_DEPENDENCIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "filelock": ("3.16.1", ()),
    "typing-extensions": ("4.12.2", ()),
    "setuptools": ("80.9.0", ()),
    "sympy": ("1.14.0", ("mpmath>=1.1.0,<1.4",)),
    "networkx": ("3.4.2", ()),
    "jinja2": ("3.1.6", ("MarkupSafe>=2.0",)),
    "fsspec": ("2025.9.0", ()),
    "mpmath": ("1.3.0", ()),
    "markupsafe": ("3.0.2", ()),
}
