"""Regenerate pinner/knowledge/torch.toml from the verified reference tables.

    python tools/gen_torch_toml.py [path/to/facts.toml] > pinner/knowledge/torch.toml

The reference (shared/reference/facts.toml beside the checkout) holds the facts read from PyPI
wheels and upstream files; the additions below (CPU and aarch64 variants) cite
docs/research-2026-11-23.md and facts-addendum.md. Review the diff before committing.
"""

import json
import sys
from pathlib import Path

import tomllib

FACTS = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else Path(__file__).resolve().parents[2] / "shared" / "reference" / "facts.toml"
)
d = tomllib.load(FACTS.open("rb"))


def q(s):
    return json.dumps(s, ensure_ascii=False)


def arr(xs):
    return "[" + ", ".join(q(x) for x in xs) + "]"


AARCH = {
    "2.6": ["cpu"],
    "2.7": ["cu128", "cpu"],
    "2.8": ["cu128", "cu129"],
    "2.9": ["cu130", "cpu"],
    "2.10": ["cu130", "cpu"],
    "2.11": ["cu130", "cpu"],
    "2.12": ["cu130", "cpu"],
    "2.13": ["cu130", "cpu"],
    "2.14": ["cu132", "cpu"],
}
out = []
out.append(
    "# torch releases and builds, transcribed from shared/reference/facts.toml, facts.md and"
)
out.append("# facts-addendum.md (2026-11-23). Every release and every build carries a source.")
out.append('as_of = "2026-11-23"')
out.append('index_url = "https://download.pytorch.org/whl/{variant}"')
out.append(
    'index_url_source = "pytorch/test-infra s3_management/manage.py @027dd134 (facts.md section 9)"'
)
out.append("")
VSRC = {
    "verified": "pytorch/pytorch.github.io _get_started/previous-versions.md @e3f009bb install lines (facts.md section 1a)",
    "secondary": "verbatim copy of pytorch/pytorch RELEASE.md 'Release Compatibility Matrix' (facts.md section 1a); corroborated by flash-attn publish.yml index use",
}
ADD = "RFC pytorch/pytorch#178665, PR pytorch/pytorch#182849, #187075, #194367 RELEASE.md rows (facts-addendum.md Q1)"
for r in d["torch_release"]:
    v = r["version"]
    mn = tuple(int(x) for x in v.split(".")[:2])
    py = [f"3.{t[3:]}" for t in r["python_tags_linux_x86_64"] if not t.endswith("t")]
    tv = r["torchvision"]
    ta = r["torchaudio"]
    if not ta[0].isdigit():
        ta = ""
    triton = r["triton_pin"].split(";")[0].replace("triton", "").strip()
    variants = r["index_cuda_variants"]
    conf = r["index_cuda_variants_confidence"]
    vsrc = VSRC.get(conf, "")
    if mn >= (2, 12) and mn <= (2, 14):
        vsrc = ADD
    if mn == (2, 15):
        vsrc = "unverified: RFC pytorch/pytorch#190385 plans cu130 + cu132 only; no index listing was read (facts-addendum.md Q1)"
    out.append("[[release]]")
    out.append(f"version = {q(v)}")
    out.append(f"date = {q(r['pypi_first_upload'])}")
    out.append(f"python = {arr(py)}")
    out.append(f"pypi_cuda = {q(r['pypi_default_cuda'])}")
    out.append(f"cxx11_abi = {str(r['cxx11_abi']).lower()}")
    out.append(f"numpy2 = {str(mn >= (2, 3)).lower()}")
    out.append(f"triton = {q(triton)}")
    out.append(f"torchvision = {q(tv)}")
    out.append(f"torchaudio = {q(ta)}")
    cpu_ok = mn <= (2, 14)
    if cpu_ok:
        variants = [*variants, "cpu"]
        vsrc += "; cpu: " + (
            "pytorch.github.io previous-versions.md @e3f009bb CPU-only pip lines (verified)"
            if mn <= (2, 3)
            else f"public lockfiles with download.pytorch.org/whl/cpu/torch-{v}%2Bcpu wheel URLs (secondary; docs/research-2026-11-23.md section 5)"
        )
    out.append(f"variants = {arr(variants)}")
    aa = AARCH.get(f"{mn[0]}.{mn[1]}", [])
    out.append(f"variants_aarch64 = {arr(aa)}")
    out.append(f"pypi_cuda_aarch64 = {q(r['pypi_default_cuda'] if mn >= (2, 11) else '')}")
    out.append(f"variants_confidence = {q(conf)}")
    out.append(f"variants_source = {q(vsrc)}")
    if aa:
        extra = (
            "; 2.14 cu132: facts-addendum.md Q1 (third-party aarch64 install of torch==2.14.0+cu132, id 69437916088)"
            if mn == (2, 14)
            else ""
        )
        out.append(
            f'variants_aarch64_source = "download.pytorch.org/whl/<variant>/torch-X%2B<variant>-...manylinux_2_28_aarch64.whl URLs in public lockfiles and scripts (secondary; docs/research-2026-11-23.md section 6){extra}"'
        )
    out.append(
        'pypi_cuda_aarch64_source = "PyPI torch manylinux_2_28_aarch64 wheel METADATA (CPU-only through 2.10: every CUDA dependency carries platform_machine == x86_64; cuda-toolkit 13.0 from 2.11, 13.2 in 2.15; verified)"'
    )
    out.append(f"source = {q(r['source'])}")
    out.append(f"confidence = {q(r['confidence'])}")
    out.append("")


def minors(spec):
    if "-" in spec:
        a, b = spec.split("-")
        a1, a2 = a.split(".")
        b2 = b.split(".")[1]
        return [f"{a1}.{i}" for i in range(int(a2), int(b2) + 1)]
    return [spec]


for b in d["torch_arch_list"]:
    al = b["torch_cuda_arch_list"]
    ptx = ""
    parts = list(al.split(";"))
    arches = []
    for part in parts:
        cc = part.strip()
        if "+PTX" in cc:
            cc = cc.split("+")[0]
            ptx = "sm_" + cc.replace(".", "")
        arches.append("sm_" + cc.replace(".", ""))
    variant = b["variant"]
    if variant.startswith("pypi-"):
        variant = "cu" + variant[5:].replace(".", "")
    out.append("[[build]]")
    out.append(f"torch = {arr(minors(b['torch_minor']))}")
    out.append(f"variant = {q(variant)}")
    out.append(f"arches = {arr(sorted(set(arches), key=lambda s: int(s[3:])))}")
    out.append(f"ptx = {q(ptx)}")
    out.append(f"confidence = {q(b['confidence'])}")
    out.append(f"source = {q(b['source'])}")
    out.append("")
out.append("[[build]]")
out.append('torch = ["2.9", "2.10"]')
out.append('variant = "cu130"')
out.append('platform = "linux-aarch64"')
out.append('arches = ["sm_80", "sm_90", "sm_100", "sm_110", "sm_120"]')
out.append('ptx = "sm_120"')
out.append('confidence = "verified"')
out.append(
    'source = "pytorch/pytorch .ci/manywheel/build_cuda.sh @799d09f2: aarch64 cu130 adds 11.0 and drops archs below 8.0 and 8.6 (facts.md section 3)"'
)
out.append("")
print("\n".join(out))
