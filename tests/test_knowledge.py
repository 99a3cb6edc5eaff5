"""Knowledge data lint (every fact has a source, aliases unique) and the facts it must encode.

Expected values come from shared/reference/facts.md (cited per test), not from the data files.
"""

# Tests leave fixtures unannotated (STYLE.md 7.7); pyproject's `tests.*` mypy override
# does not match these rootdir modules (test_plan, not tests.test_plan).
from __future__ import annotations

import sys
from collections import defaultdict

import pytest
from packaging.version import Version

from pinner.knowledge.knowledge import (
    FILES,
    HERE,
    Knowledge,
    TorchRelease,
    check_sources,
    is_locator,
    iter_facts,
    locators,
    normalize_gpu,
    variant_to_cuda,
)
from pinner.load.matrix import DEFAULT_TORCH_INDEX
from pinner.model import Requirements
from pinner.plan.builds import options
from pinner.plan.plan import plan_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RAW = {name: tomllib.loads((HERE / name).read_text(encoding="utf-8")) for name in FILES}
NO_REQUIREMENTS = Requirements(items=(), files=())


def release(kb: Knowledge, version: str) -> TorchRelease:
    found = kb.release(version)
    assert found is not None, version
    return found


# --- data lint -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_knowledge_file_loads_without_problems(name):
    assert RAW[name]["as_of"]
    assert check_sources(name, RAW[name]) == []


def test_knowledge_loads_typed(kb):
    assert kb.as_of == min(str(doc["as_of"]) for doc in RAW.values())
    assert kb.digest.startswith("sha256:")
    assert len(kb.gpus) == len(RAW["gpus.toml"]["gpu"])
    assert len(kb.releases) == len(RAW["torch.toml"]["release"])


@pytest.mark.parametrize("name", FILES)
def test_knowledge_every_fact_has_a_source(name):
    facts = list(iter_facts(RAW[name]))
    assert facts, f"{name}: no fact tables found"
    unsourced = [where for where, fact in facts if not str(fact.get("source", "")).strip()]
    assert unsourced == []


BAD_DOC = """
as_of = "2026-11-23"

[[gpu]]
key = "sourced"
source = "https://developer.nvidia.com/cuda-gpus"

[[gpu]]
key = "unsourced"

[numpy]
constraint = "numpy<2"
source = "   "

[[build]]
variant = "cu128"
source = "pytorch/pytorch@v2.7.0:.ci/manywheel/build_cuda.sh"
confidence = "probably"
"""


def test_check_sources_flags_facts_without_source():
    assert check_sources("bad.toml", tomllib.loads(BAD_DOC)) == [
        "bad.toml: gpu[1]: fact without a source",
        "bad.toml: numpy: fact without a source",
        "bad.toml: build[0].confidence: 'probably' not in ('verified', 'secondary', 'unverified')",
    ]


def test_check_sources_flags_missing_as_of():
    doc = tomllib.loads('[numpy]\nsource = "https://pypi.org/project/numpy/"\n')
    assert check_sources("bad.toml", doc) == ["bad.toml: missing as_of"]


@pytest.mark.parametrize(
    "locator",
    [
        "https://developer.nvidia.com/cuda-gpus",
        "https://github.com/pytorch/pytorch/issues/190385",
        "https://download.pytorch.org/whl/cu130/torch/",
        "pytorch/pytorch@799d09f2:.ci/manywheel/build_cuda.sh",
        "pytorch/builder@release/2.1:manywheel/build_cuda.sh",
        "Dao-AILab/flash-attention@v2.8.3.post1:.github/workflows/publish.yml",
        "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.10.0-3-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torchaudio-2.11.1-py3-none-manylinux_2_28_x86_64.whl",
        "flash_attn-2.8.3.post2.tar.gz",
    ],
)
def test_public_locators_pass_the_lint(locator):
    assert is_locator(locator)


@pytest.mark.parametrize(
    "text",
    [
        "facts.md",
        "facts-addendum.md Q3",
        "docs/research-2026-11-23.md",
        "developer.nvidia.com/cuda-gpus",  # no scheme
        "http://developer.nvidia.com/cuda-gpus",  # not https
        "stored file id 62983442397",
        "pytorch/pytorch#107302",  # a GitHub short reference is no URL
        "pytorch/pytorch build_cuda.sh @799d09f2",
        "PyPI",
        "matrix",
    ],
)
def test_anything_else_fails_the_lint(text):
    doc = {"as_of": "2026-11-23", "fact": {"source": text}}
    assert check_sources("x.toml", doc), text


def test_notes_may_not_cite_private_notes():
    doc = {
        "as_of": "2026-11-23",
        "fact": {"source": "https://example.org/a", "note": "see facts-addendum.md Q3"},
    }
    assert check_sources("x.toml", doc) == ["x.toml: fact.note: cites private notes or a handle"]


@pytest.mark.parametrize("name", FILES)
def test_every_source_field_is_public_locators(name):
    problems = check_sources(name, RAW[name])
    assert problems == []
    keys = [
        (where, key)
        for where, fact in iter_facts(RAW[name])
        for key, value in fact.items()
        if key.endswith("source") and value
    ]
    assert keys, f"{name}: no source fields"
    for where, key in keys:
        fact = dict(iter_facts(RAW[name]))[where]
        assert all(is_locator(loc) for loc in locators(fact[key])), (where, key, fact[key])


# --- GPUs ------------------------------------------------------------------------------------


def test_gpu_keys_and_aliases_unique_after_normalisation(kb):
    owners: dict[str, set[str]] = defaultdict(set)
    for gpu in kb.gpus:
        for text in (gpu.key, gpu.name, *gpu.aliases, *gpu.nvidia_smi):
            owners[normalize_gpu(text)].add(gpu.key)
    assert {text: keys for text, keys in owners.items() if len(keys) > 1} == {}
    assert len({g.key for g in kb.gpus}) == len(kb.gpus)


def test_find_gpu_every_listed_name_resolves_to_its_gpu(kb):
    wrong = [
        (text, gpu.key)
        for gpu in kb.gpus
        for text in (gpu.key, gpu.name, *gpu.aliases, *gpu.nvidia_smi)
        if (found := kb.find_gpu(text)) is None or found.key != gpu.key
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("name", "key", "cc"),
    [
        # nvidia-smi --query-gpu=name strings from real logs (facts-addendum.md Q4)
        ("NVIDIA A100-SXM4-80GB", "a100", "8.0"),
        ("NVIDIA A100 80GB PCIe", "a100", "8.0"),
        ("NVIDIA H100 80GB HBM3", "h100", "9.0"),
        ("Tesla T4", "t4", "7.5"),
        ("NVIDIA GeForce RTX 5090", "rtx5090", "12.0"),
        ("Quadro RTX 6000", "quadrortx6000", "7.5"),
        ("Tesla P100-PCIE-16GB", "p100", "6.0"),
        ("NVIDIA TITAN X (Pascal)", "titanxpascal", "6.1"),
        # aliases as a matrix writes them (issue 2)
        ("RTX 5090", "rtx5090", "12.0"),
        ("rtx5090", "rtx5090", "12.0"),
        ("A100", "a100", "8.0"),
        ("l4", "l4", "8.9"),
        ("V100", "v100", "7.0"),
        ("GTX 1080", "gtx1080", "6.1"),
        ("Jetson Thor", "thor", "11.0"),
        ("rtx 6000 ada", "rtx6000ada", "8.9"),
    ],
)
def test_find_gpu_resolves_names(kb, name, key, cc):
    gpu = kb.find_gpu(name)
    assert gpu is not None
    assert (gpu.key, gpu.compute_capability) == (key, cc)


@pytest.mark.parametrize(
    "name",
    [
        "RTX 6000",  # Quadro RTX 6000 (7.5), RTX 6000 Ada (8.9) or RTX PRO 6000 Blackwell (12.0)
        "TITAN X",  # TITAN X (Pascal) is 6.1, the Maxwell GTX TITAN X 5.2
        "GeForce GTX TITAN X",  # Maxwell: deliberately unknown, must not match the Pascal one
        "rtx5009",
    ],
)
def test_find_gpu_ambiguous_or_unknown_is_none(kb, name):
    assert kb.find_gpu(name) is None


def test_suggest_gpus_close_matches(kb):
    assert kb.suggest_gpus("rtx5009")[0] == "rtx5090"
    assert kb.suggest_gpus("zzzzzz") == []


# --- torch releases --------------------------------------------------------------------------


def test_torch_index_url_matches_matrix_default(kb):
    assert kb.index_url == DEFAULT_TORCH_INDEX == RAW["torch.toml"]["index_url"]


def test_torch_releases_sorted_newest_first(kb):
    versions = [Version(r.version) for r in kb.releases]
    assert versions == sorted(versions, reverse=True)
    assert len(set(versions)) == len(versions)
    assert kb.releases[0].version == "2.15.0"  # facts.md section 1: PyPI newest 2.15.0


# facts.md section 1a companion rule: torchvision 0.(minor+15).patch, exactly pinned. Exceptions:
# 2.0.x pairs with 0.15.(patch+1) (0.15.0 requires torch==2.0.0+cu117), and PyPI has no
# torchvision 0.30: 0.29.2 (torch>=2.14.0) is the companion of 2.15.0.
TORCHVISION_EXCEPTIONS = {"2.0.0": "0.15.1", "2.0.1": "0.15.2", "2.15.0": "0.29.2"}


def test_torch_releases_torchvision_pairing(kb):
    for r in kb.releases:
        _, minor, patch = r.version.split(".")
        expected = TORCHVISION_EXCEPTIONS.get(r.version, f"0.{int(minor) + 15}.{patch}")
        assert r.torchvision == expected, r.version
    assert release(kb, "2.7.1").torchvision == "0.22.1"
    assert release(kb, "2.15.0").torchvision == "0.29.2"


def test_torch_releases_torchaudio_pairing(kb):
    # facts.md section 1a: torchaudio = torch version (2.0.x: patch + 1); it stops at 2.11.0 on PyPI
    for r in kb.releases:
        version = Version(r.version)
        if version >= Version("2.12"):
            assert r.torchaudio == "", r.version
        elif version.minor == 0:
            assert r.torchaudio == f"2.0.{version.micro + 1}", r.version
        else:
            assert r.torchaudio == r.version


# facts.md section 1b: PyPI's own CUDA per minor; C++11 ABI from 2.7 (x86_64); NumPy 2 from 2.3.0
PYPI_CUDA = {
    "2.0": "11.7",
    **dict.fromkeys(("2.1", "2.2", "2.3", "2.4"), "12.1"),
    **dict.fromkeys(("2.5", "2.6"), "12.4"),
    "2.7": "12.6",
    **dict.fromkeys(("2.8", "2.9", "2.10"), "12.8"),
    **dict.fromkeys(("2.11", "2.12", "2.13", "2.14"), "13.0"),
    "2.15": "13.2",
}


def test_torch_releases_encode_pypi_build_facts(kb):
    for r in kb.releases:
        version = Version(r.version)
        assert r.pypi_cuda == PYPI_CUDA[r.minor], r.version
        assert r.cxx11_abi == (version >= Version("2.7")), r.version
        assert r.numpy2 == (version >= Version("2.3")), r.version


def test_torch_releases_python_tags(kb):
    # facts.md section 1a: cp311 from 2.15 on (no cp310); cp314 from 2.9; cp312 from 2.2
    assert "3.10" not in release(kb, "2.15.0").python
    assert "3.14" in release(kb, "2.9.0").python
    assert "3.14" not in release(kb, "2.8.0").python
    assert "3.12" not in release(kb, "2.1.2").python


def test_torch_releases_unverified_variants_listed_only_as_pypi(kb):
    # facts-addendum.md Q1: torch 2.15's index variants are unverified; offer none of them
    newest = release(kb, "2.15.0")
    assert (newest.variants, newest.variants_confidence) == ((), "unverified")
    assert all(r.variants for r in kb.releases if r.variants_confidence != "unverified")


# --- builds and CUDA --------------------------------------------------------------------------


def x86_options(kb: Knowledge) -> dict[tuple[str, str], TorchRelease]:
    """(minor, variant) -> the newest release offering it, for every GPU build on x86_64."""
    out: dict[tuple[str, str], TorchRelease] = {}
    for option in options(kb, "linux-x86_64"):
        if option.variant != "cpu":
            out.setdefault((option.release.minor, option.variant), option.release)
    return out


def test_builds_every_offered_variant_has_arches_or_is_refused(kb, make_target):
    missing = []
    for (minor, variant), newest in x86_options(kb).items():
        build = kb.build(minor, variant)
        if build is not None:
            assert build.arches, (minor, variant)
            continue
        missing.append((minor, variant))
        # the planner never guesses: a build without an arch list is refused for any GPU
        target = make_target("A100", cuda=variant, torch=f"=={newest.version}")
        result = plan_target(target, kb, NO_REQUIREMENTS)
        assert result.plan is None
        (error,) = [f for f in result.findings if f.severity == "error"]
        assert error.code == "impossible-target"
        assert (
            f"the architectures of torch {minor} {variant} builds are not in pinner's knowledge"
            in error.message
        )
    assert missing == [("2.7", "cu118")]  # facts.md section 3 lists no arch list for it


def test_builds_cuda13_carry_no_dropped_arch(kb):
    # facts.md section 2: CUDA 13.0 removed sm_50-sm_72; every cu13x build excludes V100/Pascal
    major = kb.major(13)
    assert major is not None
    assert {"sm_50", "sm_60", "sm_61", "sm_70", "sm_72"} <= set(major.dropped_arches)
    for build in kb.builds:
        if variant_to_cuda(build.variant).startswith("13."):
            assert not set(build.arches) & set(major.dropped_arches), build


@pytest.mark.parametrize(
    ("minor", "variant", "arch", "present"),
    [
        # facts.md section 3 and section 10
        ("2.7", "cu126", "sm_120", False),  # PyPI 2.7 cannot run an RTX 5090
        ("2.7", "cu128", "sm_120", True),  # the first build with sm_120
        ("2.8", "cu128", "sm_120", True),
        ("2.6", "cu124", "sm_120", False),  # no cu124 build ever has sm_120
        ("2.0", "cu117", "sm_90", False),  # H100 on torch 2.0 needs cu118
        ("2.0", "cu118", "sm_90", True),
        ("2.10", "cu128", "sm_70", True),
        ("2.11", "cu128", "sm_70", False),  # cu128 of 2.11 dropped Volta
        ("2.14", "cu126", "sm_70", True),  # the last build for V100
        ("2.14", "cu126", "sm_60", True),
    ],
)
def test_builds_arch_lists(kb, minor, variant, arch, present):
    build = kb.build(minor, variant)
    assert build is not None
    assert (arch in build.arches) == present


@pytest.mark.parametrize(
    ("major", "driver"),
    [(11, "450.80.02"), (12, "525.60.13"), (13, "580.65.06")],  # facts.md section 4
)
def test_cuda_major_minimum_driver(kb, major, driver):
    found = kb.major(major)
    assert found is not None
    assert found.min_driver == driver


NOT_CITATIONS = {"", "matrix", 'matrix: build = "source"'}


@pytest.mark.parametrize(
    ("gpu", "requirements", "fields"),
    [
        ("RTX 5090", ("bitsandbytes", "flash-attn"), {}),
        ("A100", ("xformers", "vllm", "transformers"), {}),
        ("V100", ("mamba-ssm", "causal-conv1d", "torchaudio"), {"cuda": "12.6"}),
        ("T4", ("bitsandbytes",), {"torch": "<2.3"}),
        ("GH200", (), {"platform": "linux-aarch64"}),
        ("cpu", ("transformers",), {}),
    ],
)
def test_plan_outputs_cite_only_public_locators(plan_for, gpu, requirements, fields):
    result = plan_for(gpu, *requirements, **fields)
    sources = [f.source for f in result.findings]
    if result.plan is not None:
        plan = result.plan
        sources += [s.source for s in plan.steps]
        sources += [c.source for c in plan.constraints]
        sources += [e.source for e in plan.extensions]
    for source in sources:
        if source in NOT_CITATIONS:
            continue
        assert all(is_locator(loc) for loc in locators(source)), source
