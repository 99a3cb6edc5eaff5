"""Fake wheels for the graph-choice tests (tests/test_graph_choice.py), served beside the standard
loopback layout of tests/support/projects.py:

* ``whl/cpu/``: a second CPU torch build, ``2.12.0+cpu`` (cp311, x86_64), so that a target with
  ``torch = ">=2.12"`` has a segment of several versions on the PyTorch index;
* ``pypi/``: ``torch 2.99.0`` (a release pinner's knowledge does not know), a vllm-like
  ``fakevllm`` whose releases pin torch exactly (1.0: ==2.12.0, 2.0: ==2.13.0, 3.0: ==2.99.0), an
  unsloth-like ``fakeunsloth`` (1.0: any torch, 2.0: torch<2.13), ``needs-extra`` whose extra
  ``x`` pulls ``other-app``, ``other-app 2.0`` and ``six 1.17.0``; PyPI builds ``torch 2.6.0`` and
  ``2.5.1`` and ``fakeold`` (1.0: any torch, 2.0: torch==2.5.1); ``causal-conv1d 1.5.2`` pulled
  by ``needs-ext[fast]`` and ``pulls-ext``; ``glibcish 1.0`` with wheels for several platforms;
* ``files/``: wheels required by URL (a ``demo-app 1.0`` with other bytes than the index's, and
  ``bare-wheel 1.5``);
* an attacker's index (served by a server of its own): ``six 99.0``, ``demo-app 99.0`` and a decoy
  ``torch 2.13.0+cpu``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.support.projects import serve
from tests.support.torch_data import TORCH_REQUIRES, TORCH_TAGS
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import LocalIndex
    from tests.support.projects import Wheelhouse

GRAPH_MATRIX = """\
[targets.cpu]
gpu = "cpu"
torch = ">=2.12"
requirements = ["requirements.in"]
"""
H100_MATRIX = """\
[targets.h100]
gpu = "H100"
torch = ">=2.5,<2.7"
requirements = ["requirements.in"]
"""


# The files of glibcish 1.0; the first three install on a manylinux_2_28 .. 2_40 x86_64 target.
GLIBCISH_TAGS = (
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_41_x86_64",
    "manylinux_2_28_aarch64",
    "win_amd64",
)


@dataclass(frozen=True)
class GraphWheels:
    pypi: list[Path]
    cpu: list[Path]
    url_app: Path
    url_bare: Path
    attacker: list[Path]


def build_graph_wheels(root: Path) -> GraphWheels:
    pypi = [
        build_wheel(root / "pypi", "torch", "2.99.0", requires=TORCH_REQUIRES),
        build_wheel(root / "pypi", "fakevllm", "1.0", requires=["torch==2.12.0"]),
        build_wheel(root / "pypi", "fakevllm", "2.0", requires=["torch==2.13.0"]),
        build_wheel(root / "pypi", "fakevllm", "3.0", requires=["torch==2.99.0"]),
        build_wheel(root / "pypi", "fakeunsloth", "1.0", requires=["torch"]),
        build_wheel(root / "pypi", "fakeunsloth", "2.0", requires=["torch<2.13"]),
        build_wheel(root / "pypi", "needs-extra", "1.0", requires=['other-app>=2; extra == "x"']),
        build_wheel(root / "pypi", "other-app", "2.0"),
        build_wheel(root / "pypi", "six", "1.17.0"),
        # PyPI builds of older torch releases (an H100 target with torch = ">=2.5,<2.7" has them
        # in two segments: [2.6.0] and [2.5.1, 2.5.0], which adds a transformers bound), and a
        # package whose newest release pins the older one.
        build_wheel(root / "pypi", "torch", "2.6.0", requires=["filelock"], **TORCH_TAGS),
        build_wheel(root / "pypi", "torch", "2.5.1", requires=["filelock"], **TORCH_TAGS),
        build_wheel(root / "pypi", "fakeold", "1.0", requires=["torch"]),
        build_wheel(root / "pypi", "fakeold", "2.0", requires=["torch==2.5.1"]),
        # A compiled extension pinner knows (a wheel here; an sdist on PyPI) entering the graph
        # through another package's extra, or as its dependency.
        build_wheel(root / "pypi", "causal-conv1d", "1.5.2", requires=["torch"]),
        build_wheel(
            root / "pypi", "needs-ext", "1.0", requires=['causal-conv1d>=1.2; extra == "fast"']
        ),
        build_wheel(root / "pypi", "pulls-ext", "1.0", requires=["causal-conv1d>=1.2"]),
        # the tools a source build installs before building (pinner's build layer)
        *(
            build_wheel(root / "pypi", name, version)
            for name, version in (("wheel", "0.45.1"), ("ninja", "1.13.0"), ("packaging", "25.0"))
        ),
        # One version, wheels for several glibc versions and platforms (as cryptography ships).
        *(build_wheel(root / "pypi", "glibcish", "1.0", platform_tag=tag) for tag in GLIBCISH_TAGS),
    ]
    cpu = [
        build_wheel(root / "cpu", "torch", "2.12.0+cpu", requires=TORCH_REQUIRES, **TORCH_TAGS),
    ]
    url_app = build_wheel(
        root / "files", "demo-app", "1.0", requires=["torch>=2.0"], module_source="URL = 1\n"
    )
    url_bare = build_wheel(root / "files", "bare-wheel", "1.5")
    attacker = [
        build_wheel(root / "evil", "six", "99.0", module_source="EVIL = True\n"),
        build_wheel(root / "evil", "demo-app", "99.0", module_source="EVIL = True\n"),
        build_wheel(
            root / "evil",
            "torch",
            "2.13.0+cpu",
            requires=TORCH_REQUIRES,
            module_source="EVIL = True\n",
            **TORCH_TAGS,
        ),
    ]
    return GraphWheels(pypi=pypi, cpu=cpu, url_app=url_app, url_bare=url_bare, attacker=attacker)


def serve_graph(
    index: LocalIndex, house: Wheelhouse, wheels: GraphWheels, *, decoys: bool = True
) -> LocalIndex:
    """The standard layout (tests/support/projects.py) plus the graph wheels."""
    serve(index, house, decoys=decoys)
    for wheel in wheels.pypi:
        index.add("pypi", wheel)
    for wheel in wheels.cpu:
        index.add("whl/cpu", wheel)
    for wheel in (wheels.url_app, wheels.url_bare):
        index.add("files", wheel)
    return index
