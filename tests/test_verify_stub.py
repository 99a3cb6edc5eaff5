"""verify against stub installed distributions shaped like the real ones (fast, no real torch).

PyPI's torch wheels are distribution `2.15.0` while `torch.__version__` is `2.15.0+cu132`: verify
compares the distribution with the lock and the local tag only with the plan's CUDA.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pinner.verify import verify
from tests.support.stubs import add_dist, add_loads, add_torch, make_env, site_packages

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "llm-service" / "pinned"
HERE = "{}.{}".format(*sys.version_info[:2])


def expected(cuda: str | None, packages: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "target": "t",
        "python": HERE,
        "platform": "linux-x86_64",
        "packages": packages,
        "torch": {"version": packages["torch"], "cuda": cuda, "numpy2": True},
        "gpu": None,
        "min_driver": "580.65.06" if cuda else "",
        "extensions": [],
        **more,
    }


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path]:
    python = make_env(tmp_path / "venv")
    return python, site_packages(python)


def lines(results: list[dict[str, str]]) -> list[str]:
    return [f"{r['status']} {r['check']}: {r['message']}" for r in results]


def test_pypi_shaped_torch_passes_the_version_checks(env):
    python, site = env
    add_torch(site, "2.15.0", "2.15.0+cu132", "13.2")
    add_dist(
        site, "torchvision", "0.30.0", {"torchvision/__init__.py": "__version__ = '0.30.0+cu132'\n"}
    )
    results = verify.run(
        expected("13.2", {"torch": "2.15.0", "torchvision": "0.30.0"}), str(python)
    )
    got = lines(results)
    assert "ok torch: torch 2.15.0 (torch.__version__ 2.15.0+cu132)" in got
    assert "ok torchvision: torchvision 0.30.0 (torchvision.__version__ 0.30.0+cu132)" in got
    assert "ok torch.version.cuda: 13.2" in got
    assert "ok packages: 2 locked packages at their locked versions" in got
    assert not [r for r in results if r["status"] == "FAIL"], got


def test_a_cu128_torch_against_a_cu132_plan_fails(env):
    python, site = env
    add_torch(site, "2.15.0", "2.15.0+cu128", "12.8")
    results = verify.run(expected("13.2", {"torch": "2.15.0"}), str(python))
    got = lines(results)
    assert (
        "FAIL torch: torch 2.15.0+cu128 is a CUDA 12.8 build, but the plan's build has CUDA 13.2"
        in got
    )
    assert "FAIL torch.version.cuda: 12.8, but the plan's build has CUDA 13.2" in got


def test_index_build_distribution_carries_the_tag(env):
    python, site = env
    add_torch(site, "2.13.0+cpu", "2.13.0+cpu", None)
    ok = lines(verify.run(expected(None, {"torch": "2.13.0+cpu"}), str(python)))
    assert "ok torch: torch 2.13.0+cpu" in ok
    bad = lines(verify.run(expected(None, {"torch": "2.14.1+cpu"}), str(python)))
    assert "FAIL torch: torch 2.13.0+cpu, but the lock says 2.14.1+cpu" in bad
    # a CPU build where the plan has CUDA: the tag says so, whatever the version
    cuda = lines(verify.run(expected("13.0", {"torch": "2.13.0+cpu"}), str(python)))
    assert "FAIL torch: torch 2.13.0+cpu is a CPU build, but the plan's build has CUDA 13.0" in cuda


def test_a_shadowing_torch_module_is_named(env):
    python, site = env
    add_torch(site, "2.15.0", "2.14.0+cu130", "13.0")
    got = lines(verify.run(expected("13.0", {"torch": "2.15.0"}), str(python)))
    assert (
        "FAIL torch: torch.__version__ is 2.14.0+cu130, but the installed distribution is "
        "2.15.0: another torch shadows it on sys.path"
    ) in got


def example_expected(target: str) -> dict[str, Any]:
    text = (EXAMPLE / target / "verify_env.py").read_text(encoding="utf-8")
    body = re.search(r'EXPECTED = json.loads\(r"""\n(.*?)\n"""\)', text, re.DOTALL)
    assert body is not None
    data: dict[str, Any] = json.loads(body.group(1))
    return data


def pypi_shaped_env(site: Path, exp: dict[str, Any]) -> None:
    """Every locked package installed at its locked version; torch shaped like PyPI's; the
    compiled parts verify loads (triton's libtriton, bitsandbytes' CUDA library) present."""
    add_loads(site, exp.get("loads", []))
    cuda = exp["torch"]["cuda"]
    tag = "cu" + cuda.replace(".", "")
    for name, version in exp["packages"].items():
        if name == "torch":
            add_torch(site, version, f"{version}+{tag}", cuda)
        else:
            add_dist(site, name, version)


@pytest.mark.parametrize("target", ["a100", "rtx5090"])
def test_the_shipped_examples_verify_env_passes_against_pypi_shaped_torch(env, target):
    python, site = env
    exp = example_expected(target)
    if exp["python"] != HERE:
        pytest.skip(f"the example is for Python {exp['python']}")
    assert exp["torch"]["version"] == "2.15.0"  # PyPI's build: no local tag in the lock
    pypi_shaped_env(site, exp)
    proc = subprocess.run(
        [str(python), str(EXAMPLE / target / "verify_env.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok    torch: torch 2.15.0 (torch.__version__ 2.15.0+cu132)\n" in proc.stdout
    assert "skip  gpu arch: not checked: no GPU\n" in proc.stdout


# --- the GPU smoke test (issue 9.2), with a stub torch raising the real CUDA error strings -----

H200 = ("NVIDIA H200", (9, 0))
T4 = ("Tesla T4", (7, 5))
NO_KERNEL = (
    "CUDA error: no kernel image is available for execution on the device\n"
    "CUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect."
)
INSUFFICIENT = "CUDA error: CUDA driver version is insufficient for CUDA runtime version"
OOM = (
    "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 139.80 GiB "
    "of which 3.69 MiB is free."
)
TOO_OLD = (
    "The NVIDIA driver on your system is too old (found version 12020). Please update your GPU "
    "driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx"
)


@pytest.fixture
def smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nvidia-smi reporting driver 550.54.15."""
    path = tmp_path / "nvidia-smi"
    path.write_text("#!/bin/sh\necho 550.54.15\n", encoding="utf-8")
    path.chmod(0o755)
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(path))
    return path


def gpu_run(
    env: tuple[Path, Path],
    gpus: list[Any],
    errors: dict[str, str] | None = None,
    packages: dict[str, str] | None = None,
    **more: Any,
) -> list[str]:
    python, site = env
    add_torch(site, "2.15.0", "2.15.0+cu132", "13.2", gpus=gpus, errors=errors)
    return lines(
        verify.run(expected("13.2", {"torch": "2.15.0", **(packages or {})}, **more), str(python))
    )


@pytest.mark.usefixtures("smi")
def test_smoke_runs_on_every_visible_gpu(env):
    got = gpu_run(env, [H200, T4])
    assert (
        "ok cuda smoke: GPU 0 NVIDIA H200 (9.0): float16 and bfloat16 matmul, synchronized" in got
    )
    assert "ok cuda smoke: GPU 1 Tesla T4 (7.5): float16 matmul, synchronized" in got
    assert "ok driver: driver 550.54.15 (needs >= 580.65.06)" not in got  # 550 < 580: a FAIL
    assert (
        "FAIL driver: driver 550.54.15 is older than 580.65.06, which this CUDA build needs" in got
    )


@pytest.mark.usefixtures("smi")
def test_smoke_no_kernel_image_is_one_clear_line(env):
    got = gpu_run(env, [H200], {"matmul": NO_KERNEL})
    assert (
        "FAIL cuda smoke: GPU 0 NVIDIA H200 (9.0): float16 matmul: no kernel image is available "
        "for execution on the device: this build has no code for this GPU's architecture; lock a "
        "build for it (`pinner explain` shows the arch rule)"
    ) in got


@pytest.mark.usefixtures("smi")
def test_smoke_driver_too_old_for_the_runtime(env):
    got = gpu_run(env, [H200], {"alloc": INSUFFICIENT})
    assert (
        "FAIL cuda smoke: GPU 0 NVIDIA H200 (9.0): allocate: CUDA driver version is insufficient "
        "for CUDA runtime version: driver 550.54.15 is too old for this build's CUDA 13.2; "
        "install driver >= 580.65.06 or lock an older CUDA"
    ) in got


@pytest.mark.usefixtures("smi")
def test_smoke_out_of_memory(env):
    got = gpu_run(env, [H200], {"alloc": OOM})
    assert (
        "FAIL cuda smoke: GPU 0 NVIDIA H200 (9.0): allocate: out of memory: the GPU has no room "
        "for a 64x64 matrix; another process holds its memory (nvidia-smi lists them)"
    ) in got


@pytest.mark.usefixtures("smi")
def test_a_driver_torch_cannot_use_is_not_no_gpu(env):
    """torch.cuda.is_available() is False with a 'driver too old' warning: a failure, not a skip."""
    got = gpu_run(env, [H200], {"init": TOO_OLD})
    assert (
        "FAIL gpu: CUDA driver version is insufficient for CUDA runtime version: driver 550.54.15 "
        "is too old for this build's CUDA 13.2; install driver >= 580.65.06 or lock an older CUDA"
    ) in got
    assert not any("cuda smoke" in line for line in got)


@pytest.mark.usefixtures("smi")
def test_no_gpu_skips_unless_required(env):
    got = gpu_run(env, [])
    assert "skip cuda smoke: not checked: no GPU" in got
    required = gpu_run(env, [], require_gpu=True)
    assert (
        "FAIL gpu: no GPU visible, and --gpu requires one: run the container with --gpus all "
        "(or NVIDIA_VISIBLE_DEVICES), and check nvidia-smi"
    ) in required


@pytest.mark.usefixtures("smi")
def test_extension_calls_run_for_real(env):
    _, site = env
    add_dist(
        site,
        "flash-attn",
        "2.8.3",
        {
            "flash_attn/__init__.py": f"def flash_attn_func(q, k, v):\n    raise RuntimeError({NO_KERNEL!r})\n",
        },
    )
    add_dist(
        site,
        "bitsandbytes",
        "0.49.0",
        {
            "bitsandbytes/__init__.py": "from bitsandbytes import nn\n",
            "bitsandbytes/nn.py": (
                "class Linear8bitLt:\n"
                "    def __init__(self, *a, **k): pass\n"
                "    def to(self, device): return self\n"
                "    def __call__(self, x): return x\n"
            ),
        },
    )
    got = gpu_run(env, [H200], packages={"flash-attn": "2.8.3", "bitsandbytes": "0.49.0"})
    assert "ok bitsandbytes call: one real call on GPU 0" in got
    assert any(
        line.startswith("FAIL flash-attn call: no kernel image is available") for line in got
    ), got


@pytest.mark.usefixtures("smi")
def test_a_hung_gpu_fails_after_the_timeout(env, monkeypatch):
    from pinner.verify import checks as verify_checks

    python, site = env
    add_torch(site, "2.15.0", "2.15.0+cu132", "13.2", gpus=[H200], errors={"sync": "HANG"})
    monkeypatch.setattr(verify_checks, "SMOKE_TIMEOUT", 2)
    got = lines(verify_checks.check_smoke(expected("13.2", {"torch": "2.15.0"}), str(python)))
    assert got == [
        (
            "FAIL cuda smoke: no answer within 2 s: the GPU or its driver hangs "
            "(nvidia-smi shows its state)"
        )
    ]


def test_verify_env_gpu_flag_requires_a_gpu(env):
    python, site = env
    exp = example_expected("a100")
    if exp["python"] != HERE:
        pytest.skip(f"the example is for Python {exp['python']}")
    pypi_shaped_env(site, exp)
    script = str(EXAMPLE / "a100" / "verify_env.py")
    proc = subprocess.run(
        [str(python), script, "--gpu"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "FAIL  gpu: no GPU visible, and --gpu requires one" in proc.stdout
    proc = subprocess.run(
        [str(python), script, "--gpus"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.endswith("verify_env.py: error: unknown argument '--gpus'\n")


# --- the base image vs this host's driver (issue 9.4) ----------------------------------------

IMAGE_12_6 = {
    "name": "nvidia/cuda:12.6.3-runtime-ubuntu24.04",
    "cuda": "12.6",
    "min_driver": "560.28.03",
    "branches": ["470", "535", "550"],
    "brands": ["tesla", "nvidia", "quadro", "nvidiartx"],
}


@pytest.mark.usefixtures("smi")
def test_verify_applies_the_image_rule_to_the_hosts_driver(env):
    gpu = {"name": "GeForce RTX 4090", "compute_capability": "8.9", "brand": "geforce"}
    got = gpu_run(
        env,
        [("NVIDIA GeForce RTX 4090", (8, 9))],
        gpu=gpu,
        image=IMAGE_12_6,
        min_driver="525.60.13",
    )
    assert (
        "FAIL image: the NVIDIA container runtime refuses nvidia/cuda:12.6.3-runtime-ubuntu24.04 "
        "on driver 550.54.15: it needs driver >= 560.28.03 (CUDA 12.6), or a listed brand on "
        'driver branch 470, 535, 550; set driver = "550.54.15" on the target and re-lock (pinner '
        "then picks an image this driver starts)"
    ) in got
    # a data-center GPU on the 550 branch starts it through its brand clause
    tesla = {"name": "NVIDIA L40S", "compute_capability": "8.9", "brand": "tesla"}
    got = gpu_run(
        env, [("NVIDIA L40S", (8, 9))], gpu=tesla, image=IMAGE_12_6, min_driver="525.60.13"
    )
    assert (
        "ok image: driver 550.54.15 starts nvidia/cuda:12.6.3-runtime-ubuntu24.04 (brand=tesla, "
        "driver branch 550)"
    ) in got


def test_verify_reads_the_hosts_brand_from_nvidia_smi(env, tmp_path, monkeypatch):
    """A host GPU other than the lock's: its brand comes from `nvidia-smi -q` (Product Brand)."""
    smi = tmp_path / "nvidia-smi-q"
    smi.write_text(
        '#!/bin/sh\ncase "$1" in -q) echo "    Product Brand                         : NVIDIA";;'
        " *) echo 550.54.15;; esac\n",
        encoding="utf-8",
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PINNER_NVIDIA_SMI", str(smi))
    gpu = {"name": "GeForce RTX 4090", "compute_capability": "8.9", "brand": "geforce"}
    got = gpu_run(env, [H200], gpu=gpu, image=IMAGE_12_6, min_driver="525.60.13")
    assert (
        "ok image: driver 550.54.15 starts nvidia/cuda:12.6.3-runtime-ubuntu24.04 (brand=nvidia, "
        "driver branch 550)"
    ) in got
