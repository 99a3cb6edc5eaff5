"""verify loads the compiled part of every torch-linked package of the lock (issue 9.3).

Stub packages with real shared libraries (built with cc): one whose library needs a CUDA 12
runtime that is not there (xformers next to a CUDA 13 torch), one with an undefined symbol (built
against another torch), one that imports but logs xformers' fallback warning. No GPU needed.
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pinner.verify import verify
from pinner.verify.verify import compiled_loads
from tests.support.stubs import add_dist, add_torch, compile_so, make_env, site_packages

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
HERE = "{}.{}".format(*sys.version_info[:2])
SYMBOL = "_ZN3c104cuda9SetDeviceEi"
# what xformers/_cpp_lib.py logs when its _C does not load (as seen on a real H200 host)
XFORMERS_INIT = """
import ctypes, logging, os
try:
    ctypes.CDLL(os.path.join(os.path.dirname(__file__), "_C.so"))
    if os.environ.get("STUB_XFORMERS_MISMATCH"):
        raise OSError("built for another torch")
except OSError:
    logging.getLogger("xformers").warning(
        "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\\n"
        "    PyTorch 2.10.0+cu128 with CUDA 1208 (you have 2.11.0+cu130)"
    )
"""


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    python = make_env(tmp_path / "venv")
    site = site_packages(python)
    add_torch(site, "2.11.0", "2.11.0+cu130", "13.0")
    return python, site


def run(python: Path, packages: dict[str, str], cuda: str = "13.0") -> list[str]:
    packages = {"torch": "2.11.0", **packages}
    expected: dict[str, Any] = {
        "target": "t",
        "python": HERE,
        "platform": "linux-x86_64",
        "packages": packages,
        "torch": {"version": "2.11.0", "cuda": cuda, "numpy2": True},
        "gpu": None,
        "min_driver": "580.65.06",
        "extensions": [],
        "loads": compiled_loads(cuda, packages, {}),
    }
    results = verify.run(expected, str(python))
    return [f"{r['status']} {r['check']}: {r['message']}" for r in results]


def test_loads_follow_the_knowledge_table_and_the_builds_cuda():
    loads = compiled_loads("13.2", {"bitsandbytes": "0.50.2", "six": "1.17.0"}, {})
    assert [spec["name"] for spec in loads] == ["bitsandbytes"]
    assert loads[0]["library"] == ["libbitsandbytes_cuda132.so"]
    assert compiled_loads("", {"bitsandbytes": "0.50.2"}, {})[0]["library"] == [
        "libbitsandbytes_cpu.so"
    ]
    names = {
        s["name"]
        for s in compiled_loads(
            "13.0",
            dict.fromkeys(
                ["torchvision", "torchaudio", "torchcodec", "triton", "xformers", "flash-attn"], "1"
            ),
            {},
        )
    }
    assert names == {"torchvision", "torchaudio", "torchcodec", "triton", "xformers", "flash-attn"}


def test_xformers_built_for_cuda_12_next_to_a_cuda_13_torch(site):
    python, sp = site
    add_dist(sp, "xformers", "0.0.35", {"xformers/__init__.py": XFORMERS_INIT})
    compile_so(sp / "xformers" / "_C.so", needs="libcudart.so.12")
    got = run(python, {"xformers": "0.0.35"})
    assert (
        "FAIL xformers: xformers 0.0.35 needs libcudart.so.12, which is not installed: it was "
        "built for CUDA 12; the locked torch brings CUDA 13.0"
    ) in got


def test_a_package_that_falls_back_with_a_warning_fails(site, monkeypatch):
    python, sp = site
    add_dist(sp, "xformers", "0.0.35", {"xformers/__init__.py": XFORMERS_INIT})
    compile_so(sp / "xformers" / "_C.so")
    assert "ok xformers: xformers 0.0.35: loads xformers, _C.so" in run(
        python, {"xformers": "0.0.35"}
    )
    monkeypatch.setenv("STUB_XFORMERS_MISMATCH", "1")
    assert (
        "FAIL xformers: xformers 0.0.35 imports but falls back: WARNING[XFORMERS]: xFormers "
        "can't load C++/CUDA extensions. xFormers was built for:"
    ) in run(python, {"xformers": "0.0.35"})


def test_an_undefined_symbol_is_one_line(site):
    python, sp = site
    add_dist(
        sp, "torchvision", "0.29.2", {"torchvision/__init__.py": "__version__ = '0.29.2+cu130'\n"}
    )
    compile_so(sp / "torchvision" / "_C_stable.so", calls=SYMBOL)
    got = run(python, {"torchvision": "0.29.2"})
    assert (
        "FAIL torchvision: torchvision 0.29.2 does not match the installed torch 2.11.0: "
        f"undefined symbol {SYMBOL}"
    ) in got


def test_the_library_for_the_builds_cuda_must_be_there(site):
    python, sp = site
    add_dist(sp, "bitsandbytes", "0.50.2", {"bitsandbytes/__init__.py": ""})
    compile_so(sp / "bitsandbytes" / "libbitsandbytes_cuda128.so")
    got = run(python, {"bitsandbytes": "0.50.2"})
    line = next(g for g in got if g.startswith("FAIL bitsandbytes"))
    assert line.startswith(
        "FAIL bitsandbytes: bitsandbytes 0.50.2 fails to load: FileNotFoundError: no "
        "libbitsandbytes_cuda130.so in "
    )
    compile_so(sp / "bitsandbytes" / "libbitsandbytes_cuda130.so")
    assert (
        "ok bitsandbytes: bitsandbytes 0.50.2: loads bitsandbytes, libbitsandbytes_cuda130.so"
        in run(python, {"bitsandbytes": "0.50.2"})
    )


def test_a_missing_extension_module(site):
    python, sp = site
    add_dist(sp, "flash-attn", "2.8.3", {"flash_attn/__init__.py": ""})
    got = run(python, {"flash-attn": "2.8.3"})
    assert (
        "FAIL flash-attn: flash-attn 2.8.3 fails to load: ModuleNotFoundError: No module named "
        "'flash_attn_2_cuda'"
    ) in got


@pytest.mark.parametrize(
    ("version", "library"),
    [
        # torchaudio-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl names it .abi3.so; a real H200
        # host (PyPI's torch 2.11.0, 2026-11-30) failed "no lib/libtorchaudio.so" before
        ("2.11.0", "libtorchaudio.abi3.so"),
        ("2.11.1", "libtorchaudio.so"),  # torchaudio-2.11.1-py3-none-manylinux_2_28_x86_64.whl
    ],
)
def test_torchaudio_library_under_either_wheel_name(site, version, library):
    python, sp = site
    add_dist(
        sp, "torchaudio", version, {"torchaudio/__init__.py": f"__version__ = '{version}+cu130'\n"}
    )
    compile_so(sp / "torchaudio" / "lib" / library)
    assert f"ok torchaudio: torchaudio {version}: loads torchaudio, {library}" in run(
        python, {"torchaudio": version}
    )
