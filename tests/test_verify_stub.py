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

from pinner import verify
from tests.support.stubs import add_dist, add_torch, make_env, site_packages

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
    """Every locked package installed at its locked version; torch shaped like PyPI's."""
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
