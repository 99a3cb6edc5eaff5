"""The loopback package index used by pinner's tests, and facts about uv and pip we rely on.

Every index here is served by :class:`tests.support.index.LocalIndex` on 127.0.0.1; pip and
uv run in environments isolated from the host's pip.conf / uv.toml (``pip_env``, ``uv_env``).

Recorded behaviour.  pip is the venv's own pip: 23.2.1, bundled with this Python's
``ensurepip``; every test also passes with pip 25.3, 26.1 and 26.2.1 (run them with another pip
via ``PINNER_TEST_PIP_WHEEL=/path/to/pip-X-py3-none-any.whl``).

* uv takes a package pinned via ``[tool.uv.sources]`` to an ``explicit = true`` index only
  from that index, never asks that index for anything else, and never asks the default
  index for the pinned package.  Without the sources entry an explicit index is unused.
  A non-explicit ``[[tool.uv.index]]`` read as configuration from the pyproject.toml in the
  working directory is searched *before* the default index for every package, so it
  shadows PyPI (first-index strategy); ``UV_NO_CONFIG=1`` turns that off, but the
  ``[tool.uv.sources]`` pin of the compiled pyproject.toml still works with it.
* uv resolves from PEP 658 ``.metadata`` files; it never downloads a wheel to compile.
* pip, layer 1 ``--no-deps --require-hashes -r torch.txt``, then layer 2 ``--require-hashes
  -c constraints.txt -r requirements.txt`` with torch in the constraints only: accepted.
  The installed torch satisfies ``torch>=2.0`` ("Requirement already satisfied"), pip does
  not even fetch torch's page from the index, unhashed constraints draw no complaint, and
  ``pip check`` passes.  Layer 2 alone fails (ResolutionImpossible): the index's
  torch 2.13.0 / 2.14.0 do not match the constraint ``torch==2.13.0+cpu``.
* Drift: a later plain ``pip install`` of something needing ``torch>=2.14`` replaces torch
  from the default index; with ``-c constraints.txt`` it fails (ResolutionImpossible) and
  in hash-checking mode it fails ("all requirements must have their versions pinned").
* Hash-checking never re-hashes installed distributions (a wrong ``--hash`` for the
  installed torch passes), but still walks their dependencies, which must be pinned.
* A dependency pinned only in ``-c`` does not satisfy hash-checking mode before pip 26.1,
  even with a ``--hash`` there; from 26.1 a hashed constraint does, and is verified.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import shutil
import subprocess
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from tests.support.index import LocalIndex, Venv, sha256_file, uv_env
from tests.support.torch_data import REAL_TORCH, TORCH_DEPENDENCIES, TORCH_REQUIRES, TORCH_TAGS
from tests.support.wheels import build_wheel, metadata_of, wheel_filename

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

TORCH_VERSION = "2.13.0+cpu"
DEMO_APP = ("demo-app", "1.0")


@dataclass
class Wheelhouse:
    """Every fake wheel the tests serve, built once per session."""

    dependencies: dict[str, Path] = field(default_factory=dict)
    demo_app: Path = Path()
    demo_app_decoy: Path = Path()  # same name and version, different bytes
    fake_torch: Path = Path()  # torch 2.13.0+cpu, ~1 kB, same tags and Requires-Dist
    pypi_torch: list[Path] = field(default_factory=list)  # torch 2.13.0 and 2.14.0
    needs_newer_torch: Path = Path()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    root = tmp_path_factory.mktemp("wheelhouse")
    house = Wheelhouse()
    for name, (version, requires) in TORCH_DEPENDENCIES.items():
        house.dependencies[name] = build_wheel(root / "pypi", name, version, requires=requires)
    house.demo_app = build_wheel(root / "pypi", *DEMO_APP, requires=["torch>=2.0"])
    house.demo_app_decoy = build_wheel(
        root / "decoy", *DEMO_APP, requires=["torch>=2.0"], module_source="DECOY = True\n"
    )
    house.fake_torch = build_wheel(
        root / "cpu", "torch", TORCH_VERSION, requires=TORCH_REQUIRES, **TORCH_TAGS
    )
    house.pypi_torch = [
        build_wheel(root / "pypi", "torch", version, requires=TORCH_REQUIRES)
        for version in ("2.13.0", "2.14.0")
    ]
    house.needs_newer_torch = build_wheel(
        root / "pypi", "needs-newer-torch", "1.0", requires=["torch>=2.14"]
    )
    return house


def add_pypi(index: LocalIndex, house: Wheelhouse, *, with_torch: bool = True) -> None:
    """The "pypi" index: torch's dependencies, demo-app, needs-newer-torch, torch 2.13/2.14."""
    for wheel in house.dependencies.values():
        index.add("pypi", wheel)
    index.add("pypi", house.demo_app)
    index.add("pypi", house.needs_newer_torch)
    if with_torch:
        for wheel in house.pypi_torch:
            index.add("pypi", wheel)


def pinned(name: str, version: str, wheel: Path) -> str:
    return f"{name}=={version} --hash=sha256:{sha256_file(wheel)}\n"


# -- wheels ----------------------------------------------------------------------------


def test_build_wheel_is_valid_and_deterministic(tmp_path: Path) -> None:
    first, second = (
        build_wheel(
            tmp_path / sub,
            "torch",
            "2.13.0+cu128",
            requires=["filelock", 'optree; extra == "optree"'],
            requires_python=">=3.10",
            **TORCH_TAGS,
        )
        for sub in ("a", "b")
    )

    assert first.name == "torch-2.13.0+cu128-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert first.read_bytes() == second.read_bytes()
    assert wheel_filename("Demo.App", "1.0") == "demo_app-1.0-py3-none-any.whl"

    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names == [
            "torch.py",
            "torch-2.13.0+cu128.dist-info/METADATA",
            "torch-2.13.0+cu128.dist-info/WHEEL",
            "torch-2.13.0+cu128.dist-info/RECORD",
        ]
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
        assert archive.read("torch.py") == b'__version__ = "2.13.0+cu128"\n'
        wheel_meta = archive.read("torch-2.13.0+cu128.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_meta
        assert "Tag: cp311-cp311-manylinux_2_28_x86_64" in wheel_meta
        record = archive.read("torch-2.13.0+cu128.dist-info/RECORD").decode().splitlines()
        for line in record[:-1]:
            path, digest, size = line.split(",")
            data = archive.read(path)
            encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={encoded}"
            assert int(size) == len(data)
        assert record[-1] == "torch-2.13.0+cu128.dist-info/RECORD,,"

    metadata = metadata_of(first).decode()
    assert metadata.startswith("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cu128\n")
    assert "Requires-Python: >=3.10\n" in metadata
    assert "Provides-Extra: optree\n" in metadata
    assert 'Requires-Dist: optree; extra == "optree"\n' in metadata

    with pytest.raises(ValueError, match="normalized PEP 440"):
        build_wheel(tmp_path, "torch", "2.13.0-cpu")


# -- the index server ------------------------------------------------------------------


def fetch(index: LocalIndex, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", index.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_local_index_serves_pep503_and_pep658(tmp_path: Path) -> None:
    torch = build_wheel(tmp_path, "torch", TORCH_VERSION, requires_python=">=3.10", **TORCH_TAGS)
    demo = build_wheel(tmp_path, "Demo_App", "1.0")
    with LocalIndex() as index:
        file_url = index.add("whl/cu128", torch)
        index.add("pypi", demo)
        empty = index.url("empty")
        assert index.url("whl/cu128") == f"http://127.0.0.1:{index.port}/whl/cu128/"
        assert file_url.endswith(
            "/whl/cu128/torch/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"
        )
        assert empty.endswith("/empty/")

        status, headers, body = fetch(index, "/whl/cu128/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert b'<a href="torch/">torch</a>' in body

        status, _, body = fetch(index, "/whl/cu128/torch/")
        page = body.decode()
        assert status == 200
        digest = sha256_file(torch)
        metadata = metadata_of(torch)
        metadata_digest = hashlib.sha256(metadata).hexdigest()
        assert (
            f'href="torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl#sha256={digest}"'
            in page
        )
        assert f'data-dist-info-metadata="sha256={metadata_digest}"' in page
        assert f'data-core-metadata="sha256={metadata_digest}"' in page
        assert 'data-requires-python="&gt;=3.10"' in page

        quoted = "/whl/cu128/torch/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"
        assert fetch(index, quoted)[2] == torch.read_bytes()
        assert fetch(index, quoted.replace("%2B", "+"))[2] == torch.read_bytes()
        assert fetch(index, quoted + ".metadata")[2] == metadata
        status, headers, body = fetch(index, quoted, method="HEAD")
        assert (status, headers["Content-Length"], body) == (200, str(torch.stat().st_size), b"")

        status, headers, _ = fetch(index, "/pypi/Demo_App/")
        assert (status, headers["Location"]) == (301, "/pypi/demo-app/")
        assert fetch(index, "/pypi/demo-app/")[0] == 200
        assert fetch(index, "/pypi/torch/")[0] == 404  # another index's project
        assert fetch(index, "/empty/")[0] == 200
        assert fetch(index, "/nowhere/")[0] == 404

        assert index.requests["/whl/cu128/torch/"] == 1
        assert index.requests[quoted.replace("%2B", "+")] == 3  # decoded path; GET+GET+HEAD
        assert index.hits("whl/cu128", "torch") == 5  # page, 3 x file, metadata
        assert index.hits("pypi", "demo-app") == 2  # the redirect and the page
        assert index.hits("pypi", "torch") == 1
        assert index.errors == 0
        port = index.port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises(ConnectionRefusedError):
        connection.request("GET", "/")


# -- uv --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]
    index: str | None


def parse_compiled(text: str) -> dict[str, Pin]:
    """Parse ``uv pip compile --generate-hashes --emit-index-annotation`` output."""
    pins: dict[str, Pin] = {}
    for block in re.split(r"\n(?=[^\s#])", text.strip()):
        head = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        assert head is not None, block
        origin = re.search(r"^\s+# from (\S+)$", block, re.MULTILINE)
        pins[head.group(1)] = Pin(
            version=head.group(2),
            hashes=tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)),
            index=origin.group(1) if origin else None,
        )
    return pins


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def cpu_torch(wheelhouse: Wheelhouse) -> Path:
    """The real 190 MB CPU wheel when this machine has it (uv only reads its metadata)."""
    return REAL_TORCH if REAL_TORCH.exists() else wheelhouse.fake_torch


def uv_compile(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from uv import find_uv_bin

    command = [
        find_uv_bin(),
        "pip",
        "compile",
        "pyproject.toml",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--generate-hashes",
        "--emit-index-annotation",
        "--no-header",
    ]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def write_project(project: Path, torch_index: str, *, explicit: bool, sources: bool) -> None:
    project.mkdir()
    text = f"""\
[project]
name = "proj"
version = "0"
requires-python = ">=3.11"
dependencies = ["torch=={TORCH_VERSION}", "demo-app"]

[[tool.uv.index]]
name = "pytorch"
url = "{torch_index}"
explicit = {str(explicit).lower()}
"""
    if sources:
        text += '\n[tool.uv.sources]\ntorch = { index = "pytorch" }\n'
    (project / "pyproject.toml").write_text(text)


@pytest.fixture
def decoyed_index(wheelhouse: Wheelhouse, cpu_torch: Path) -> Iterator[LocalIndex]:
    """ "pypi" also offers a (fake) torch 2.13.0+cpu; "whl/cpu" also offers a demo-app."""
    with LocalIndex() as index:
        add_pypi(index, wheelhouse, with_torch=False)
        index.add("pypi", wheelhouse.fake_torch)
        index.add("whl/cpu", cpu_torch)
        index.add("whl/cpu", wheelhouse.demo_app_decoy)
        yield index


def test_uv_takes_torch_only_from_its_explicit_index(
    tmp_path: Path, decoyed_index: LocalIndex, cpu_torch: Path, uv_cache: Path
) -> None:
    index = decoyed_index
    pypi, pytorch = index.url("pypi"), index.url("whl/cpu")
    write_project(tmp_path / "proj", pytorch, explicit=True, sources=True)

    result = uv_compile(tmp_path / "proj", uv_env(pypi, cache_dir=uv_cache))

    assert result.returncode == 0, result.stderr
    pins = parse_compiled(result.stdout)
    assert set(pins) == {"torch", "demo-app", *TORCH_DEPENDENCIES}
    assert pins["torch"] == Pin(TORCH_VERSION, (sha256_file(cpu_torch),), pytorch)
    for name, pin in pins.items():
        if name != "torch":
            (wheel,) = [f.path for f in index.files("pypi", name)]
            assert pin == Pin(wheel.name.split("-")[1], (sha256_file(wheel),), pypi), name
    # Neither decoy was even looked at.
    assert index.hits("pypi", "torch") == 0
    assert index.hits("whl/cpu", "demo-app") == 0
    assert {record.prefix for record in index.log} == {"pypi", "whl/cpu"}
    # uv reads PEP 658 metadata and never downloads a wheel (so Range support is moot).
    torch_file = f"/whl/cpu/torch/{cpu_torch.name}"
    assert index.requests[torch_file] == 0
    assert index.requests[torch_file + ".metadata"] == 1
    assert all(record.path.endswith(("/", ".metadata")) for record in index.log)
    assert index.errors == 0


@pytest.mark.parametrize(
    ("explicit", "sources", "no_config", "torch_from", "demo_from"),
    [
        (True, True, True, "whl/cpu", "pypi"),
        (True, True, False, "whl/cpu", "pypi"),
        # Without a source pin an explicit index is never used: torch comes from "pypi".
        (True, False, True, "pypi", "pypi"),
        (True, False, False, "pypi", "pypi"),
        # A non-explicit index from the cwd's pyproject.toml shadows the default index...
        (False, True, False, "whl/cpu", "whl/cpu"),
        (False, False, False, "whl/cpu", "whl/cpu"),
        # ...unless UV_NO_CONFIG=1 hides it; the [tool.uv.sources] pin still works then.
        (False, True, True, "whl/cpu", "pypi"),
        (False, False, True, "pypi", "pypi"),
    ],
)
def test_uv_index_rules(
    tmp_path: Path,
    decoyed_index: LocalIndex,
    uv_cache: Path,
    explicit: bool,
    sources: bool,
    no_config: bool,
    torch_from: str,
    demo_from: str,
) -> None:
    index = decoyed_index
    write_project(tmp_path / "proj", index.url("whl/cpu"), explicit=explicit, sources=sources)
    env = uv_env(index.url("pypi"), cache_dir=uv_cache, no_config=no_config)

    result = uv_compile(tmp_path / "proj", env)

    assert result.returncode == 0, result.stderr
    pins = parse_compiled(result.stdout)
    assert pins["torch"].index == index.url(torch_from)
    assert pins["demo-app"].index == index.url(demo_from)
    (torch_file,) = index.files(torch_from, "torch")
    assert pins["torch"].hashes == (torch_file.sha256,)


# -- pip -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _venv_template_future(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[Venv] | None]:
    """Start ``python -m venv`` (~5 s) in the background while the uv tests run."""
    wanted = any(
        item.path == request.path and "venv" in getattr(item, "fixturenames", ())
        for item in request.session.items
    )
    if not wanted:
        yield None
        return
    pip_wheel = os.environ.get("PINNER_TEST_PIP_WHEEL")
    root = tmp_path_factory.mktemp("venv-template")
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            Venv.create, root / "venv", pip_wheel=Path(pip_wheel) if pip_wheel else None
        )
        yield future
        future.cancel()


@pytest.fixture(scope="module")
def venv_template(_venv_template_future: Future[Venv] | None) -> Venv:
    """A fresh ``python -m venv`` (bundled pip unless PINNER_TEST_PIP_WHEEL names a wheel)."""
    assert _venv_template_future is not None
    return _venv_template_future.result()


@pytest.fixture
def venv(venv_template: Venv, tmp_path: Path) -> Venv:
    return venv_template.clone(tmp_path / "venv")


@pytest.fixture
def pip_index(wheelhouse: Wheelhouse) -> Iterator[LocalIndex]:
    """ "pypi" (see add_pypi) and "whl/cpu" with the tiny fake torch 2.13.0+cpu."""
    with LocalIndex() as index:
        add_pypi(index, wheelhouse)
        index.add("whl/cpu", wheelhouse.fake_torch)
        yield index


@dataclass(frozen=True)
class Recipe:
    """The files of a two-layer recipe: torch first, then everything else."""

    torch_txt: Path
    requirements_txt: Path
    constraints_txt: Path


def write_recipe(directory: Path, house: Wheelhouse, torch_wheel: Path) -> Recipe:
    directory.mkdir(exist_ok=True)
    recipe = Recipe(
        directory / "torch.txt", directory / "requirements.txt", directory / "constraints.txt"
    )
    recipe.torch_txt.write_text(pinned("torch", TORCH_VERSION, torch_wheel))
    rest = [
        pinned(name, version, house.dependencies[name])
        for name, (version, _) in TORCH_DEPENDENCIES.items()
    ]
    rest.append(pinned(*DEMO_APP, house.demo_app))
    recipe.requirements_txt.write_text("".join(rest))
    pins = [f"{name}=={version}\n" for name, (version, _) in TORCH_DEPENDENCIES.items()]
    pins += [f"{DEMO_APP[0]}=={DEMO_APP[1]}\n", f"torch=={TORCH_VERSION}\n"]
    recipe.constraints_txt.write_text("".join(pins))
    return recipe


def install_torch_layer(
    venv: Venv, recipe: Recipe, index_url: str
) -> subprocess.CompletedProcess[str]:
    return venv.pip(
        "install", "--no-deps", "--require-hashes", "-r", str(recipe.torch_txt), index_url=index_url
    )


def install_rest_layer(
    venv: Venv, recipe: Recipe, index_url: str
) -> subprocess.CompletedProcess[str]:
    return venv.pip(
        "install",
        "--require-hashes",
        "-c",
        str(recipe.constraints_txt),
        "-r",
        str(recipe.requirements_txt),
        index_url=index_url,
    )


def in_parallel(*calls: Callable[[], T]) -> list[T]:
    """Run independent subprocess-bound calls concurrently; results in call order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


EXPECTED_ENVIRONMENT = {
    "torch": TORCH_VERSION,
    DEMO_APP[0]: DEMO_APP[1],
    **{name: version for name, (version, _) in TORCH_DEPENDENCIES.items()},
}


def test_pip_layers_torch_then_hashed_rest_under_constraints(
    venv: Venv, pip_index: LocalIndex, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, wheelhouse.fake_torch)

    layer1 = install_torch_layer(venv, recipe, pip_index.url("whl/cpu"))
    assert layer1.returncode == 0, layer1.stderr
    assert "Successfully installed torch-2.13.0+cpu" in layer1.stdout

    layer2 = install_rest_layer(venv, recipe, pip_index.url("pypi"))

    # Accepted: torch is not in requirements.txt, yet the installed torch satisfies
    # demo-app's torch>=2.0, and constraints without hashes draw no complaint.
    assert layer2.returncode == 0, layer2.stderr
    assert layer2.stderr == ""
    assert re.search(
        r"^Requirement already satisfied: torch>=2\.0 in .* \(from demo-app==1\.0->-r .*"
        r"requirements\.txt \(line 10\)\) \(2\.13\.0\+cpu\)$",
        layer2.stdout,
        re.MULTILINE,
    ), layer2.stdout
    assert "Successfully installed demo-app-1.0 " in layer2.stdout
    # pip never even looked for torch on the "pypi" index.
    assert pip_index.hits("pypi", "torch") == 0
    check = venv.pip("check")
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found.")
    assert venv.installed() == EXPECTED_ENVIRONMENT
    assert pip_index.errors == 0


def test_pip_constraint_keeps_torch_off_the_default_index(
    venv: Venv, pip_index: LocalIndex, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    """Layer 2 alone: "pypi" has torch 2.13.0 and 2.14.0 but not 2.13.0+cpu -> no install."""
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, wheelhouse.fake_torch)

    result = install_rest_layer(venv, recipe, pip_index.url("pypi"))

    assert result.returncode == 1
    assert "ResolutionImpossible" in result.stderr
    assert "demo-app 1.0 depends on torch>=2.0" in result.stdout
    assert "The user requested (constraint) torch==2.13.0+cpu" in result.stdout
    assert venv.installed().keys() <= {"setuptools"}  # nothing was installed


def test_pip_drift_and_what_stops_it(
    venv: Venv, pip_index: LocalIndex, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, wheelhouse.fake_torch)
    plain = tmp_path / "plain.txt"
    plain.write_text("needs-newer-torch\n")
    hashed = tmp_path / "hashed.txt"
    hashed.write_text(pinned("needs-newer-torch", "1.0", wheelhouse.needs_newer_torch))
    pypi = pip_index.url("pypi")
    assert install_torch_layer(venv, recipe, pip_index.url("whl/cpu")).returncode == 0
    guarded = venv.clone(tmp_path / "guarded")
    hash_guarded = venv.clone(tmp_path / "hash-guarded")

    drift, refused_by_constraint, refused_by_hashes = in_parallel(
        lambda: venv.pip("install", "-r", str(plain), index_url=pypi),
        lambda: guarded.pip(
            "install", "-c", str(recipe.constraints_txt), "-r", str(plain), index_url=pypi
        ),
        lambda: hash_guarded.pip("install", "-r", str(hashed), index_url=pypi),
    )

    # 1. A plain install silently replaces the CPU torch with the default index's torch.
    assert drift.returncode == 0, drift.stderr
    assert "Successfully uninstalled torch-2.13.0+cpu" in drift.stdout
    assert venv.installed()["torch"] == "2.14.0"

    # 2. The same install under the recipe's constraints fails and leaves torch alone.
    refused = refused_by_constraint
    assert refused.returncode == 1
    assert "ResolutionImpossible" in refused.stderr
    assert "needs-newer-torch 1.0 depends on torch>=2.14" in refused.stdout
    assert "The user requested (constraint) torch==2.13.0+cpu" in refused.stdout
    assert guarded.installed()["torch"] == TORCH_VERSION
    assert "needs-newer-torch" not in guarded.installed()

    # 3. Hash-checking mode (implied by --hash in the file) also refuses: torch>=2.14 is
    #    a new, unpinned requirement.
    refused = refused_by_hashes
    assert refused.returncode == 1
    assert (
        "ERROR: In --require-hashes mode, all requirements must have their versions pinned "
        "with ==. These do not:\n    torch>=2.14 from " in refused.stderr
    )
    assert hash_guarded.installed()["torch"] == TORCH_VERSION
    assert "needs-newer-torch" not in hash_guarded.installed()


def test_pip_hash_checking_skips_installed_distributions(
    venv: Venv, pip_index: LocalIndex, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    """An installed distribution is never re-hashed, but its dependencies are still walked."""
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, wheelhouse.fake_torch)
    assert install_torch_layer(venv, recipe, pip_index.url("whl/cpu")).returncode == 0
    wrong_torch = f"torch=={TORCH_VERSION} --hash=sha256:{'0' * 64}\n"
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(wrong_torch)
    pypi = pip_index.url("pypi")

    # torch's own dependencies (absent after the --no-deps layer) need pins in hash mode.
    result = venv.pip("install", "--require-hashes", "-r", str(wrong), index_url=pypi)
    assert result.returncode == 1
    assert "all requirements must have their versions pinned with ==" in result.stderr
    assert "    filelock from " in result.stderr

    # With everything installed, a wrong hash for the installed torch goes unnoticed.
    assert install_rest_layer(venv, recipe, pypi).returncode == 0
    wrong.write_text(recipe.requirements_txt.read_text() + wrong_torch)
    result = venv.pip("install", "--require-hashes", "-r", str(wrong), index_url=pypi)
    assert result.returncode == 0, result.stderr
    assert "Requirement already satisfied: torch==2.13.0+cpu in " in result.stdout


def test_pip_hashes_in_constraints_file(
    venv: Venv, pip_index: LocalIndex, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    """A transitive dependency pinned only in -c: pip >= 26.1 honours a --hash there."""
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, wheelhouse.fake_torch)
    pypi_torch = wheelhouse.pypi_torch[1]
    hashed = tmp_path / "constraints-hashed.txt"
    hashed.write_text(pinned("torch", "2.14.0", pypi_torch))
    unhashed = tmp_path / "constraints-unhashed.txt"
    unhashed.write_text("torch==2.14.0\n")
    wrong = tmp_path / "constraints-wrong-hash.txt"
    wrong.write_text(f"torch==2.14.0 --hash=sha256:{'0' * 64}\n")
    with_wrong, with_unhashed = venv.clone(tmp_path / "wrong"), venv.clone(tmp_path / "unhashed")

    def install(target: Venv, constraints: Path) -> subprocess.CompletedProcess[str]:
        return target.pip(
            "install",
            "--require-hashes",
            "-c",
            str(constraints),
            "-r",
            str(recipe.requirements_txt),
            index_url=pip_index.url("pypi"),
        )

    result, wrong_result, unhashed_result = in_parallel(
        lambda: install(venv, hashed),
        lambda: install(with_wrong, wrong),
        lambda: install(with_unhashed, unhashed),
    )

    # Unhashed: every pip refuses; the message names demo-app's specifier, not the pin.
    assert unhashed_result.returncode == 1
    assert "all requirements must have their versions pinned with ==" in unhashed_result.stderr
    assert "    torch>=2.0 from " in unhashed_result.stderr
    if venv.pip_version() >= (26, 1):
        assert result.returncode == 0, result.stderr
        assert venv.installed()["torch"] == "2.14.0"
        assert wrong_result.returncode == 1
        assert (
            "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE"
            in wrong_result.stderr
        )
    else:  # observed with 23.2.1 ... 26.0: hashes in constraints files do not count
        for refused in (result, wrong_result):
            assert refused.returncode == 1
            assert "all requirements must have their versions pinned with ==" in refused.stderr
            assert "    torch>=2.0 from " in refused.stderr


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TORCH.exists(), reason=f"{REAL_TORCH} is not on this machine")
def test_pip_layers_with_the_real_torch_wheel(
    venv: Venv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path / "recipe", wheelhouse, REAL_TORCH)
    with LocalIndex() as index:
        add_pypi(index, wheelhouse)
        index.add("whl/cpu", REAL_TORCH)

        # --no-compile: byte-compiling torch's ~3000 modules would double the ~10 s install.
        layer1 = venv.pip(
            "install",
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "-r",
            str(recipe.torch_txt),
            index_url=index.url("whl/cpu"),
        )
        assert layer1.returncode == 0, layer1.stderr
        assert (
            "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (191.8 MB)" in layer1.stdout
        )

        layer2 = install_rest_layer(venv, recipe, index.url("pypi"))
        assert layer2.returncode == 0, layer2.stderr
        assert "Requirement already satisfied: torch>=2.0 in " in layer2.stdout
        assert index.hits("pypi", "torch") == 0
        assert index.requests[f"/whl/cpu/torch/{REAL_TORCH.name}"] == 1
        assert index.errors == 0

    check = venv.pip("check")
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found.")
    assert venv.installed() == EXPECTED_ENVIRONMENT
    shutil.rmtree(venv.path)  # ~800 MB; keep pytest's tmp-dir rotation cheap
