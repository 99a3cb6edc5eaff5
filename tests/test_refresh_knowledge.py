"""tools/refresh_knowledge.py against loopback indexes that serve synthetic wheels and answer
HTTP Range requests: what it derives, that it reads zip members by range, its diff and --write."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.knowledge.knowledge import FILES, HERE, _build, check_sources

from .support.index import LocalIndex
from .support.wheels import build_wheel, with_files

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
LINUX = "manylinux_2_28_x86_64"
TORCH_REQUIRES = ["cuda-toolkit[cudart]==13.2.1", 'triton==3.7.0; platform_system == "Linux"']
ARCH_STRING = b"\x00sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120\x00"
IMPORT_UTILS = (
    b"def is_torch_available():\n"
    b'    logger.warning_once(f"Disabling PyTorch because PyTorch >= 2.7 is required but found {v}")\n'
)


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_knowledge", ROOT / "tools" / "refresh_knowledge.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["refresh_knowledge"] = module
    spec.loader.exec_module(module)
    return module


def _wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    platform: str = LINUX,
    python: str = "cp311",
    requires: tuple[str, ...] | list[str] = (),
    files: dict[str, bytes] | None = None,
) -> Path:
    abi = "none" if python == "py3" else python
    wheel = build_wheel(
        dest,
        name,
        version,
        python_tag=python,
        abi_tag=abi,
        platform_tag=platform,
        requires=requires,
    )
    return with_files(wheel, files) if files else wheel


def _local(wheel: Path, variant: str) -> Path:
    """The same wheel under an index name with a local version: torch-2.16.0+cu130-..."""
    name, version, rest = wheel.name.split("-", 2)
    target = wheel.parent / variant / f"{name}-{version}+{variant}-{rest}"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(wheel, target)
    return target


@pytest.fixture
def indexes(tmp_path: Path) -> Iterator[tuple[LocalIndex, str, str]]:
    d = tmp_path / "wheels"
    with LocalIndex() as idx:
        # torch: 2.15.0 is known; 2.16.0 is new (CUDA 13.2 on x86_64, CUDA 13.2 on aarch64)
        idx.add("pypi", _wheel(d, "torch", "2.15.0", requires=["cuda-toolkit[cudart]==13.2.1"]))
        for python in ("cp311", "cp312"):
            idx.add(
                "pypi",
                _wheel(d, "torch", "2.16.0", python=python, requires=TORCH_REQUIRES),
            )
        idx.add(
            "pypi",
            _wheel(
                d,
                "torch",
                "2.16.0",
                platform="manylinux_2_28_aarch64",
                requires=["cuda-toolkit==13.2.1"],
            ),
        )
        index_build = _wheel(
            d / "idx",
            "torch",
            "2.16.0",
            files={"torch/lib/libtorch_python.so": b"\x7fELF" * 4000 + ARCH_STRING},
        )
        idx.add("whl/cu130", _local(index_build, "cu130"))
        idx.add("pypi", _wheel(d, "torchvision", "0.30.0", requires=["torch==2.16.0"]))
        idx.add("pypi", _wheel(d, "torchaudio", "2.12.0", python="py3", requires=["torch>=2.12"]))
        idx.add(
            "pypi",
            with_files(
                build_wheel(d, "transformers", "5.24.0"),
                {"transformers/utils/import_utils.py": IMPORT_UTILS},
            ),
        )
        idx.add("pypi", build_wheel(d, "accelerate", "1.16.0", requires=["torch>=2.4.0"]))
        bnb_libs = {
            f"bitsandbytes/libbitsandbytes_cuda{n}.so": b"\0" for n in ("130", "132", "134")
        }
        idx.add(
            "pypi",
            _wheel(
                d,
                "bitsandbytes",
                "0.51.0",
                python="py3",
                files=bnb_libs,
                requires=["torch<3,>=2.4"],
            ),
        )
        cpp = {"version": {"cuda": 1302, "torch": "2.16.0+cu132", "python": "3.12.0"}}
        idx.add(
            "pypi",
            _wheel(
                d,
                "xformers",
                "0.0.36",
                python="cp39",
                requires=["torch>=2.16"],
                files={"xformers/cpp_lib.json": json.dumps(cpp).encode()},
            ),
        )
        idx.add(
            "pypi",
            _wheel(
                d,
                "vllm",
                "0.34.0",
                python="cp38",
                requires=["torch==2.16.0", "nvidia-cutlass-dsl[cu13]==4.9.0"],
            ),
        )
        yield idx, idx.url("pypi"), idx.base_url + "/whl/"


@pytest.fixture
def knowledge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path]:
    """The tool, pointed at a copy of the shipped knowledge."""
    tool = _tool()
    copy = tmp_path / "knowledge"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(tool, "KNOWLEDGE", copy)
    return tool, copy


def _run(tool: ModuleType, index: str, torch_index: str, *extra: str) -> int:
    args = ["--index-url", index, "--torch-index-url", torch_index, "--variant", "cu130", *extra]
    return int(tool.main(args))


def test_refresh_derives_each_fact_from_the_indexes(indexes, knowledge, capsys):
    idx, index, torch_index = indexes
    tool, _ = knowledge
    assert _run(tool, index, torch_index, "--arches") == 1
    out = capsys.readouterr().out
    assert (
        "note: torch 2.16.0 is newer than pinner's knowledge (2026-11-23): review and release"
        in out
    )
    for line in (
        "+ torch 2.16.0 python: 3.11 3.12 (torch-2.16.0-cp311-cp311-manylinux_2_28_x86_64.whl)",
        "+ torch 2.16.0 pypi_cuda x86_64: 13.2 (",
        "+ torch 2.16.0 pypi_cuda aarch64: 13.2 (torch-2.16.0-cp311-cp311-manylinux_2_28_aarch64.whl)",
        "+ torch 2.16.0 variant x86_64 cu130: on the index (",
        "+ torch 2.16.0 arches cu130: sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120 (",
        "+ torchvision 0.30.0 torch: ==2.16.0 (",
        "+ torchaudio 2.12.0 torch: >=2.12 (",
        "+ torch 2.16.0 triton: ==3.7.0 (",
        "+ transformers 5.24.0 min_torch: 2.7 (transformers-5.24.0-py3-none-any.whl)",
        "+ accelerate 1.16.0 torch: >=2.4.0 (",
        "+ bitsandbytes 0.51.0 cuda: 130 132 134 (",
        "+ xformers 0.0.36 build: torch>=2.16 cuda 13 built_for 2.16.0+cu132 (",
        "+ vllm 0.34.0 build: torch==2.16.0 cuda 13 built_for ? (",
    ):
        assert line in out, line
    # zip members (METADATA without a PEP 658 file, cpp_lib.json, libtorch_python.so, the
    # bitsandbytes file list) were read by range requests, never by whole downloads
    assert idx.range_requests > 0
    whole = [r.path for r in idx.log if r.path.endswith(".whl") and r.method == "GET"]
    assert len(whole) == idx.range_requests


def test_refresh_output_is_deterministic(indexes, knowledge, capsys):
    _, index, torch_index = indexes
    tool, _ = knowledge
    _run(tool, index, torch_index)
    first = capsys.readouterr().out
    _run(tool, index, torch_index)
    assert capsys.readouterr().out == first


def test_refresh_write_adds_reviewed_data_that_loads(indexes, knowledge, capsys):
    import tomllib

    _, index, torch_index = indexes
    tool, copy = knowledge
    assert _run(tool, index, torch_index, "--write") == 1
    out = capsys.readouterr().out
    assert "+++ b/pinner/knowledge/torch.toml" in out
    assert '+version = "2.16.0"' in out
    torch = tomllib.loads((copy / "torch.toml").read_text())
    (new,) = [r for r in torch["release"] if r["version"] == "2.16.0"]
    assert new["pypi_cuda"] == "13.2"
    assert new["variants_confidence"] == "unverified"  # never offered until a maintainer reviews
    ext = tomllib.loads((copy / "extensions.toml").read_text())
    (xf,) = [e for e in ext["extension_build"] if e["version"] == "0.0.36"]
    assert (xf["cuda"], xf["built_for"]) == ("13", "2.16.0+cu132")
    docs = {}
    for name in FILES:
        docs[name.removesuffix(".toml")] = tomllib.loads((copy / name).read_text())
        assert check_sources(name, docs[name.removesuffix(".toml")]) == []
    kb = _build(docs, "sha256:0")  # the loader takes the new rows
    release = kb.release("2.16.0")
    assert release is not None
    assert (release.torchvision, release.triton, release.pypi_cuda) == ("0.30.0", "==3.7.0", "13.2")
    assert release.variants_source == "https://download.pytorch.org/whl/cu130/torch/"
    # a second run finds nothing new in what it wrote
    _run(tool, index, torch_index)
    again = capsys.readouterr().out
    assert "torch 2.16.0 python" not in again
    assert "xformers 0.0.36" not in again


def test_refresh_fails_loudly_when_the_import_time_pattern_is_gone(tmp_path, knowledge, capsys):
    tool, _ = knowledge
    with LocalIndex() as idx:
        idx.add("pypi", _wheel(tmp_path, "torch", "2.15.0"))
        for name in ("torchvision", "torchaudio"):
            idx.add("pypi", _wheel(tmp_path, name, "1.0", requires=["torch"]))
        idx.add(
            "pypi",
            with_files(
                build_wheel(tmp_path, "transformers", "6.0.0"),
                {"transformers/utils/import_utils.py": b"pass\n"},
            ),
        )
        code = _run(tool, idx.url("pypi"), idx.base_url + "/whl/")
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "transformers-6.0.0-py3-none-any.whl: transformers/utils/import_utils.py no longer matches"
        in err
    )


def test_loopback_index_answers_range_requests(tmp_path):
    import urllib.request

    wheel = build_wheel(tmp_path, "demo", "1.0")
    with LocalIndex() as idx:
        url = idx.add("pypi", wheel)
        data = wheel.read_bytes()
        request = urllib.request.Request(url, headers={"Range": "bytes=-10"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 206
            assert response.read() == data[-10:]
        with urllib.request.urlopen(url) as response:  # without Range: the whole file, as before
            assert response.status == 200
            assert response.read() == data
        assert idx.range_requests == 1


@pytest.mark.network
def test_refresh_reads_the_real_pypi_by_range(knowledge):
    """The file and pattern the tool relies on still exist on PyPI (a few range requests)."""
    tool, _ = knowledge
    facts = tool.Facts()
    tool.derive_transformers(tool.PYPI, facts)
    (minimum,) = [v for k, (v, _) in facts.items.items() if k.endswith(" min_torch")]
    assert minimum.startswith("2.")
    files = tool.project_files(tool.PYPI, "bitsandbytes")
    versions = {f.version for f in files} - {"0.50.2"}
    tool.derive_bitsandbytes(tool.PYPI, versions, facts)
    assert facts.items["bitsandbytes 0.50.2 cuda"][0] == "118 121 124 126 128 130 132"
