"""Network: real requirements (transformers + accelerate + bitsandbytes) locked against the real
PyPI for Python 3.12, from this Python 3.11 host, with the torch layer served by a loopback
PyTorch index (a tiny torch 2.13.0+cpu whose dependencies come from PyPI). Transient network
failures are retried."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.index import LocalIndex
from tests.support.projects import file_hash, hashes_of, make_project, run_retrying
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)
pytestmark = pytest.mark.network

MATRIX = """\
[targets.py312]
gpu = "cpu"
torch = "==2.13.0"
python = "3.12"
requirements = ["requirements.in"]
"""
REQUIREMENTS = """\
transformers
accelerate
bitsandbytes
exceptiongroup; python_version < "3.12"
"""


@pytest.fixture(scope="module")
def fake_torch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(
        tmp_path_factory.mktemp("net-wheels"),
        "torch",
        "2.13.0+cpu",
        requires=["filelock", "jinja2"],
    )


@pytest.fixture
def torch_only_index(fake_torch: Path) -> Iterator[LocalIndex]:
    """A PyTorch index on loopback; the default index is the real PyPI."""
    with LocalIndex() as index:
        index.add("whl/cpu", fake_torch)
        yield index


def simple_json(project: str) -> dict[str, Any]:
    """PyPI's PEP 691 project page (what uv reads)."""
    request = urllib.request.Request(
        f"https://pypi.org/simple/{project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                data: dict[str, Any] = json.load(r)
                return data
        except OSError:
            if attempt == 2:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError  # pragma: no cover


def test_lock_real_requirements_for_another_python(
    tmp_path: Path,
    torch_only_index: LocalIndex,
    fake_torch: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
    uv_runs: list[list[str]],
) -> None:
    project = make_project(
        tmp_path / "proj", torch_only_index, monkeypatch, matrix=MATRIX, requirements=REQUIREMENTS
    )
    monkeypatch.delenv("PINNER_INDEX_URL")  # the real PyPI
    result = run_retrying(cli, "lock")

    assert result.code == 0, result.err
    # pinner ran on 3.11; uv resolved for 3.12.
    assert sys.version_info[:2] == (3, 11)
    assert uv_runs
    assert {c[c.index("--python-version") + 1] for c in uv_runs} == {"3.12"}
    packages = project.packages("py312")
    assert {"transformers", "accelerate", "bitsandbytes", "numpy", "filelock", "jinja2"} <= set(
        packages
    )
    assert "exceptiongroup" not in packages  # the marker was evaluated for 3.12, not the host
    torch = packages["torch"]
    assert (torch["version"], torch["layer"]) == ("2.13.0+cpu", "torch")
    assert torch["source"] == "pytorch"
    assert hashes_of(torch) == [file_hash(fake_torch)]
    for name in ("transformers", "accelerate", "bitsandbytes", "numpy", "filelock"):
        assert (packages[name]["layer"], packages[name]["source"]) == ("main", "default"), name
    assert {r.project for r in torch_only_index.log} == {"torch"}
    # The lock can install on 3.12: numpy's cp312 manylinux x86_64 wheel is among its hashes.
    numpy = packages["numpy"]
    files = simple_json("numpy")["files"]
    cp312 = [
        f"sha256:{f['hashes']['sha256']}"
        for f in files
        if f["filename"].startswith(f"numpy-{numpy['version']}-cp312-cp312-manylinux")
        and f["filename"].endswith("x86_64.whl")
    ]
    assert cp312
    assert set(cp312) <= set(hashes_of(numpy))
