"""Projects for the lock, resolve and check tests: a folder with pinner.toml and requirements
files, resolved through loopback indexes the way a user points pinner at mirrors.

The fixtures built from these helpers live in tests/conftest_lock.py; test modules load them
with ``pytest_plugins = ("tests.conftest_lock",)``.

One :class:`~tests.support.index.LocalIndex` (fixture ``loopback``, one per test module) serves:

* ``pypi/``: small fake wheels of torch's dependencies, the app packages ``demo-app`` (requires
  ``torch>=2.0``), ``other-app`` and ``needs-vision`` (requires ``torchvision``), PyPI's own
  builds ``torch 2.13.0`` / ``2.7.1`` (the latter pulling cu126 CUDA libraries) and
  ``torchvision 0.28.0``, and decoys: a ``torch 2.13.0+cpu``, and
  ``nvidia-cublas-cu12 12.8.3.14`` / ``triton 3.3.1`` with other bytes than the cu128 index's;
* ``whl/cpu/``: the real CPU build of torch 2.13.0 from /opt/wheels (cp311, x86_64), a fake
  one for cp312 on aarch64, a fake ``torchvision
  0.28.0+cpu`` and a decoy ``demo-app 1.0``;
* ``whl/cu128/``: a fake ``torch 2.7.1+cu128`` pinning ``nvidia-cublas-cu12==12.8.3.14`` and
  ``triton==3.3.1``, and those two libraries.

pinner is pointed at it with ``PINNER_TORCH_INDEX_URL=http://127.0.0.1:PORT/whl/{variant}`` and
``PINNER_INDEX_URL=http://127.0.0.1:PORT/pypi/`` (pinner's one mirror setting); every other
``UV_*`` / ``PIP_*`` variable of the host is removed and every cache lives under the test's tmp.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.index import LocalIndex, sha256_file
from tests.support.torch_data import REAL_TORCH, TORCH_CPU, TORCH_DEPENDENCIES, TORCH_REQUIRES
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

needs_real_torch = pytest.mark.skipif(
    not REAL_TORCH.is_file(), reason=f"{REAL_TORCH} is not on this machine"
)
TORCH_CU128 = "2.7.1+cu128"
CUBLAS = ("nvidia-cublas-cu12", "12.8.3.14")
TRITON = ("triton", "3.3.1")

CPU_TAGS = {"python_tag": "cp311", "abi_tag": "cp311", "platform_tag": "manylinux_2_28_x86_64"}
ARM312_TAGS = {"python_tag": "cp312", "abi_tag": "cp312", "platform_tag": "manylinux_2_28_aarch64"}
LINUX_X86 = '; platform_system == "Linux" and platform_machine == "x86_64"'

CPU_MATRIX = """\
[targets.cpu]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements.in"]
"""
CU128_MATRIX = """\
[targets.gpu]
gpu = "A100"
cuda = "cu128"
torch = "==2.7.1"
requirements = ["requirements.in"]
"""


@dataclass
class Wheelhouse:
    """The fake wheels, built once per session (deterministic bytes, so stable hashes)."""

    root: Path
    pypi: list[Path]
    cpu: list[Path]
    cu128: list[Path]

    def path(self, where: str, name: str, version: str) -> Path:
        """The file of ``name==version`` in ``where`` ("pypi", "cpu" or "cu128")."""
        wheels: list[Path] = getattr(self, where)
        prefix = f"{name.replace('-', '_')}-{version}-"
        (found,) = [w for w in wheels if w.name.startswith(prefix)]
        return found

    def build(self, sub: str, name: str, version: str, **kw: Any) -> Path:
        return build_wheel(self.root / sub, name, version, **kw)


def build_wheelhouse(root: Path) -> Wheelhouse:
    pypi = [
        build_wheel(root / "pypi", n, v, requires=r) for n, (v, r) in TORCH_DEPENDENCIES.items()
    ]
    pypi += [
        build_wheel(root / "pypi", "demo-app", "1.0", requires=["torch>=2.0"]),
        build_wheel(root / "pypi", "other-app", "1.0"),
        build_wheel(root / "pypi", "needs-vision", "1.0", requires=["torchvision"]),
        build_wheel(root / "pypi", "torchvision", "0.28.0", requires=["torch==2.13.0"]),
        build_wheel(root / "pypi", "torch", "2.13.0", requires=TORCH_REQUIRES),
        build_wheel(
            root / "pypi",
            "torch",
            "2.7.1",
            requires=[
                "filelock",
                f"nvidia-cublas-cu12==12.6.4.1{LINUX_X86}",
                f"triton==3.3.1{LINUX_X86}",
            ],
        ),
        build_wheel(root / "pypi", "nvidia-cublas-cu12", "12.6.4.1"),
        # Decoys: same names and versions as on the PyTorch indexes, other bytes.
        build_wheel(
            root / "pypi-decoy",
            "torch",
            TORCH_CPU,
            requires=TORCH_REQUIRES,
            module_source="DECOY = True\n",
            **CPU_TAGS,
        ),
        build_wheel(root / "pypi-decoy", *CUBLAS, module_source="DECOY = True\n"),
        build_wheel(root / "pypi-decoy", *TRITON, module_source="DECOY = True\n"),
    ]
    cpu = [
        REAL_TORCH,
        build_wheel(root / "cpu", "torch", TORCH_CPU, requires=TORCH_REQUIRES, **ARM312_TAGS),
        build_wheel(root / "cpu", "torchvision", "0.28.0+cpu", requires=["torch==2.13.0"]),
        build_wheel(
            root / "cpu", "demo-app", "1.0", requires=["torch>=2.0"], module_source="DECOY = True\n"
        ),
    ]
    cu128 = [
        build_wheel(
            root / "cu128",
            "torch",
            TORCH_CU128,
            requires=[
                "filelock",
                f"{CUBLAS[0]}=={CUBLAS[1]}{LINUX_X86}",
                f"{TRITON[0]}=={TRITON[1]}{LINUX_X86}",
            ],
            **CPU_TAGS,
        ),
        build_wheel(root / "cu128", *CUBLAS),
        build_wheel(root / "cu128", *TRITON),
    ]
    return Wheelhouse(root=root, pypi=pypi, cpu=cpu, cu128=cu128)


def serve(index: LocalIndex, house: Wheelhouse, *, decoys: bool = True) -> LocalIndex:
    """Register the standard layout (see the module docstring) in ``index``; ``decoys=False``
    leaves out the decoys on "pypi"."""
    for wheel in house.pypi:
        if decoys or wheel.parent.name != "pypi-decoy":
            index.add("pypi", wheel)
    for wheel in house.cpu:
        index.add("whl/cpu", wheel)
    for wheel in house.cu128:
        index.add("whl/cu128", wheel)
    return index


def torch_index_template(index: LocalIndex) -> str:
    return f"{index.base_url}/whl/{{variant}}"


def point_at(monkeypatch: pytest.MonkeyPatch, index: LocalIndex, caches: Path) -> None:
    """Point pinner, uv and pip-compile at ``index`` as a user points them at mirrors, with no
    setting of the host leaking in and every cache under ``caches``."""
    for key in list(os.environ):
        if key.startswith(("UV_", "PIP_")):
            monkeypatch.delenv(key)
    no_proxy = ",".join(filter(None, (os.environ.get("NO_PROXY"), "127.0.0.1,localhost")))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    monkeypatch.setenv("PINNER_TORCH_INDEX_URL", torch_index_template(index))
    monkeypatch.setenv("PINNER_INDEX_URL", index.url("pypi"))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(caches / "uv"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index.url("pypi"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("PIP_TOOLS_CACHE_DIR", str(caches / "pip-tools"))
    monkeypatch.setenv("PIP_CACHE_DIR", str(caches / "pip"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(caches / "xdg"))


@dataclass
class Project:
    """A project folder; the working directory of the test while it runs."""

    root: Path
    index: LocalIndex

    @property
    def lock(self) -> Path:
        return self.root / "pinner.lock"

    @property
    def torch_index(self) -> str:
        """The cpu build's PyTorch index URL as pinner records it (no trailing slash)."""
        return f"{self.index.base_url}/whl/cpu"

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def lock_doc(self) -> dict[str, Any]:
        return tomllib.loads(self.lock.read_text(encoding="utf-8"))

    def packages(self, target: str = "cpu") -> dict[str, dict[str, Any]]:
        """The lock's packages of ``target``, by name."""
        return {p["name"]: p for p in self.lock_doc()["targets"][target].get("packages", [])}


def make_project(
    root: Path,
    index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    *,
    matrix: str = CPU_MATRIX,
    requirements: str = "demo-app\n",
) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    point_at(monkeypatch, index, root.parent / "caches")
    project = Project(root=root, index=index)
    project.write("pinner.toml", matrix)
    project.write("requirements.in", requirements)
    monkeypatch.chdir(root)
    return project


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


NETWORK_ERRORS = (
    "could not be reached",
    "cannot reach",
    "error sending request",
    "dns error",
    "timed out",
    "connection reset",
    "connection refused",
    "502 bad gateway",
    "503 service",
    "504 gateway",
    "tcp connect",
    "failed to fetch",
    "failed to download",
)


def run_retrying(cli: Callable[..., Run], *args: str, attempts: int = 3) -> Run:
    """Run the CLI, again (up to ``attempts`` times) while it fails with a network error."""
    result = cli(*args)
    for _ in range(attempts - 1):
        if result.code == 0 or not any(e in result.err.lower() for e in NETWORK_ERRORS):
            break
        result = cli(*args)
    return result


def file_hash(path: Path) -> str:
    return f"sha256:{sha256_file(path)}"


def index_hashes(index: LocalIndex, prefix: str, name: str, version: str) -> list[str]:
    """The sorted "sha256:..." of every file of ``name==version`` in index ``prefix`` (uv records
    the hashes of all of a version's files, whatever the target's platform)."""
    stem = f"{name.replace('-', '_')}-{version}-"
    return sorted(
        f"sha256:{f.sha256}" for f in index.files(prefix, name) if f.filename.startswith(stem)
    )


def hashes_of(package: dict[str, Any]) -> list[str]:
    """Every hash of a locked package (a `[[targets.X.packages]]` table), sorted."""
    return sorted({h for f in package.get("files", []) for h in f["hashes"]})
