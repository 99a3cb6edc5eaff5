"""The rendered recipes, installed for real with pip (and uv) from loopback package indexes.

A project with one `cpu` target (torch ==2.13.0, requirement demo-app) is locked by
`pinner generate` against a fake PyPI and a PyTorch index `whl/cpu`, both served on 127.0.0.1
(tests.support.recipes.CpuProject); the generated install.sh then runs in a virtual environment.
The fast tests serve a 1 kB stand-in for torch 2.13.0+cpu; the slow one the real 190 MB wheel
from /opt/wheels, imports it, and runs the whole recipe twice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.index import LocalIndex, Venv, pip_env, sha256_file, uv_env
from tests.support.recipes import (
    LOCKS,
    CpuProject,
    build_wheelhouse,
    cpu_project,
    install_sh_commands,
    pinner,
    quick_venv,
    render_lock,
    target_lock,
)
from tests.support.torch_data import REAL_TORCH, TORCH_CPU, TORCH_TAGS
from tests.support.wheels import build_wheel


@pytest.fixture(scope="module")
def venv_template(tmp_path_factory):
    """A fresh venv (pip and setuptools only), cloned by each test."""
    return quick_venv(tmp_path_factory.mktemp("venv-template") / "venv")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The cpu project, locked and generated (pip and uv recipes) by pinner itself."""
    root = tmp_path_factory.mktemp("e2e")
    wheels = build_wheelhouse(root / "wheels")
    with LocalIndex() as index:
        project = cpu_project(root / "project", index, wheels)
        env = project.pinner_env(root / "cache")
        for args in (
            ("generate",),
            ("generate", "--frozen", "--installer", "uv", "--out", "pinned-uv"),
        ):
            proc = pinner(*args, cwd=project.root, env=env)
            assert proc.returncode == 0, proc.stderr
        yield project


def run_install_sh(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def file_downloads(index: LocalIndex) -> list[str]:
    return [r.path for r in index.log if r.path.endswith(".whl")]


def locked(project: CpuProject) -> dict[str, str]:
    tl = target_lock(project.root / "pinner.lock", "cpu")
    return {p.name: p.version for p in tl.pins}


def shell(
    command: str, cwd: Path, venv: Venv, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One command of a recipe, as install.sh runs it: in the venv, from the recipe's folder."""
    env = dict(env, VIRTUAL_ENV=str(venv.path), PATH=f"{venv.path}/bin:{env['PATH']}")
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


# -- the lock pinner made -----------------------------------------------------------------------


def test_the_lock_routes_torch_to_its_index_and_the_rest_to_pypi(project):
    tl = target_lock(project.root / "pinner.lock", "cpu")
    pins = {p.name: p for p in tl.pins}
    torch_index = project.index.base_url + "/whl/cpu"

    assert pins["torch"].version == TORCH_CPU
    assert pins["torch"].layer == "torch"
    assert pins["torch"].source == "pytorch"
    assert pins["torch"].hashes == (f"sha256:{sha256_file(project.torch_wheel)}",)
    # the lock names the committed index; the loopback mirror was transport only
    assert tl.plan.index_url == "https://download.pytorch.org/whl/cpu"
    assert tl.indexes == (("pytorch", "https://download.pytorch.org/whl/cpu"),)
    assert torch_index not in (project.root / "pinner.lock").read_text()
    for name, pin in pins.items():
        if name != "torch":
            assert (pin.layer, pin.source) == ("main", "default"), name
            assert pin.hashes == (f"sha256:{sha256_file(project.wheels[name])}",), name
    assert project.index.hits("pypi", "torch") == 0  # uv never asked PyPI for torch


# -- pip: the layers, hash-checking mode, verify, idempotency -----------------------------------


def test_install_sh_installs_the_layers_in_hash_checking_mode_and_is_idempotent(
    project, venv_template, tmp_path
):
    venv = venv_template.clone(tmp_path / "venv")
    env = project.install_env(venv.path)
    script = project.pinned / "install.sh"
    before = len(project.index.log)

    first = run_install_sh(script, env)

    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    # torch layer from its index, then the main layer with hashes under the constraints:
    # pip accepts the installed torch for demo-app's torch>=2.0 and never asks PyPI for torch
    torch_layer = out.index("Looking in indexes: " + project.index.base_url + "/whl/cpu")
    assert "Successfully installed torch-2.13.0+cpu" in out[torch_layer:]
    main_layer = out.index("Looking in indexes: " + project.pypi)
    assert torch_layer < main_layer
    assert re.search(
        r"^Requirement already satisfied: torch>=2\.0 in .* \(from demo-app==1\.0->-r "
        r"requirements\.txt \(line \d+\)\) \(2\.13\.0\+cpu\)$",
        out,
        re.MULTILINE,
    ), out
    assert "Successfully installed demo-app-1.0 " in out
    assert project.index.hits("pypi", "torch") == 0
    # verify_env.py ran last, and passed
    assert out.rstrip().splitlines()[-1] == "verify cpu: 5 ok, 0 failed, 2 not checked"
    assert "ok    torch: torch 2.13.0+cpu\n" in out
    assert venv.installed() == locked(project)
    check = venv.pip("check")
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found.")

    downloads = file_downloads(project.index)
    second = run_install_sh(script, env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Successfully installed" not in second.stdout
    assert "Uninstalling" not in second.stdout
    assert "Requirement already satisfied: torch==2.13.0+cpu" in second.stdout
    assert second.stdout.rstrip().splitlines()[-1] == "verify cpu: 5 ok, 0 failed, 2 not checked"
    assert file_downloads(project.index) == downloads  # nothing fetched again
    assert venv.installed() == locked(project)
    assert len(project.index.log) > before


def test_uv_recipe_installs_with_uv(project, venv_template, tmp_path):
    """The --installer uv recipe: torch from its index even with UV_DEFAULT_INDEX pointing at
    PyPI (which has no 2.13.0+cpu), and uv's hash-checking mode accepts the main layer."""
    from uv import find_uv_bin

    venv = venv_template.clone(tmp_path / "venv")  # exists: install.sh does not seed a new one
    env = uv_env(project.pypi, cache_dir=tmp_path / "uv-cache")
    env.update(
        VENV=str(venv.path),
        PYTHON=str(venv.python),
        PATH=f"{Path(find_uv_bin()).parent}:{env['PATH']}",
        PINNER_TORCH_INDEX_URL=project.index.base_url + "/whl/{variant}",
    )
    script = project.root / "pinned-uv" / "cpu" / "install.sh"
    assert "uv pip install --no-deps --require-hashes --default-index " in script.read_text()

    first = run_install_sh(script, env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert " + torch==2.13.0+cpu" in first.stderr
    assert first.stdout.rstrip().splitlines()[-1] == "verify cpu: 5 ok, 0 failed, 2 not checked"
    assert venv.installed() == locked(project)
    # uv looks at PyPI's torch page (pip does not), but takes nothing from it
    assert not [r.path for r in project.index.log if r.path.startswith("/pypi/torch/torch-")]

    second = run_install_sh(script, env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert " + " not in second.stderr
    assert venv.installed() == locked(project)


# -- the drift story ------------------------------------------------------------------------------


def test_drift_happens_without_the_recipe_and_not_with_it(project, venv_template, tmp_path):
    """A later install of something that wants torch>=2.14 silently replaces the torch layer; the
    recipe's constrained main-layer command refuses it and leaves torch alone."""
    recipe = tmp_path / "recipe"
    shutil.copytree(project.pinned, recipe)
    torch_step, main_step, _verify = install_sh_commands((recipe / "install.sh").read_text())
    env = pip_env(project.pypi)
    env["TORCH_INDEX_URL"] = project.index.base_url + "/whl/cpu"  # as install.sh sets it
    base = venv_template.clone(tmp_path / "base")
    layer = shell(torch_step, recipe, base, env)
    assert layer.returncode == 0, layer.stderr
    assert base.installed()["torch"] == TORCH_CPU
    plain, guarded, constrained = (
        base.clone(tmp_path / n) for n in ("plain", "guarded", "constrained")
    )
    empty = venv_template.clone(tmp_path / "empty")  # no torch layer at all
    (recipe / "app.txt").write_text("needs-newer-torch\n")
    # someone adds a (hashed) requirement to requirements.txt by hand, and runs the recipe's command
    wheel = project.wheels["needs-newer-torch"]
    with (recipe / "requirements.txt").open("a") as f:
        f.write(f"needs-newer-torch==1.0 --hash=sha256:{sha256_file(wheel)}\n")
    constraints_only = main_step.replace(" --require-hashes", "").replace(
        "requirements.txt", "app.txt"
    )
    assert constraints_only == "python -m pip install -c constraints.txt -r app.txt"

    with ThreadPoolExecutor(max_workers=4) as pool:
        drift, refused, refused_by_constraints, no_torch_layer = pool.map(
            lambda job: shell(job[0], recipe, job[1], env),
            [
                ("python -m pip install -r app.txt", plain),
                (main_step, guarded),
                (constraints_only, constrained),
                (install_sh_commands((project.pinned / "install.sh").read_text())[1], empty),
            ],
        )

    # 1. without the recipe: torch is replaced by PyPI's 2.14.0
    assert drift.returncode == 0, drift.stderr
    assert "Successfully uninstalled torch-2.13.0+cpu" in drift.stdout
    assert plain.installed()["torch"] == "2.14.0"
    # 2. the recipe's main-layer command refuses it
    assert refused.returncode == 1
    assert "torch>=2.14" in refused.stdout + refused.stderr
    assert guarded.installed()["torch"] == TORCH_CPU
    assert "needs-newer-torch" not in guarded.installed()
    # 3. the constraints alone are enough
    assert refused_by_constraints.returncode == 1
    assert "ResolutionImpossible" in refused_by_constraints.stderr
    assert "needs-newer-torch 1.0 depends on torch>=2.14" in refused_by_constraints.stdout
    assert "The user requested (constraint) torch==2.13.0+cpu" in refused_by_constraints.stdout
    assert constrained.installed()["torch"] == TORCH_CPU
    assert "needs-newer-torch" not in constrained.installed()
    # 4. and the main layer cannot bring in another torch when the torch layer was skipped:
    #    PyPI has 2.13.0 and 2.14.0, the constraint wants 2.13.0+cpu
    assert no_torch_layer.returncode == 1
    assert "The user requested (constraint) torch==2.13.0+cpu" in no_torch_layer.stdout
    assert "torch" not in empty.installed()


# -- the extension layer --------------------------------------------------------------------------


def test_flash_attn_wheel_layer_installs_the_url_under_the_constraints(venv_template, tmp_path):
    """The rendered extension layer of the flash-attn target (pip and uv), with the release URL
    pointed at a loopback copy of the (fake) wheel: the installer takes the direct URL although
    constraints.txt pins flash-attn==2.8.3.post1 (the wheel is 2.8.3.post1+cu12torch2.5...),
    installs it after torch with --no-deps (einops, its dependency, came with the main layer),
    and leaves torch alone."""
    from uv import find_uv_bin

    from pinner.render.render import install_steps

    lock = LOCKS / "extensions" / "pinner.lock"
    tl = target_lock(lock, "flash-attn-a100")
    (ext,) = tl.plan.extensions
    files = {a.path.name: a.text for a in render_lock(lock)["flash-attn-a100"]}
    commands = {
        installer: next(s for s in install_steps(tl, installer) if s.layer == "extensions").command
        for installer in ("pip", "uv")
    }
    wheels = tmp_path / "wheels"
    fake = build_wheel(
        wheels,
        "flash-attn",
        "2.8.3.post1+cu12torch2.5cxx11abifalse",
        requires=["torch", "einops"],
        python_tag="cp311",
        abi_tag="cp311",
        platform_tag="linux_x86_64",
    )
    # the release's file name keeps FALSE in capitals (PEP 440 compares local labels lowercased)
    fake = fake.rename(fake.with_name(ext.wheel))
    torch = build_wheel(wheels, "torch", "2.5.1+cu121", **TORCH_TAGS)
    einops = build_wheel(wheels, "einops", "0.8.1")
    venvs = {i: venv_template.clone(tmp_path / f"venv-{i}") for i in ("pip", "uv")}
    venvs["pip"].pip("install", "--no-index", "--no-deps", str(torch), str(einops), check=True)
    shutil.rmtree(venvs["uv"].path)
    venvs["uv"] = venvs["pip"].clone(venvs["uv"].path)
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "constraints.txt").write_text(files["constraints.txt"])
    with LocalIndex() as index:
        # as on GitHub, the URL carries the file name with a literal "+"
        url = index.add("releases", fake).replace("%2B", "+")
        hashed = f"flash-attn @ {ext.url} \\\n    --hash=sha256:{ext.sha256}\n"
        assert hashed in files["extensions.txt"]
        assert all("--require-hashes" in c for c in commands.values())
        # the lock's (made-up) digest replaced by the fake's, as `pinner lock` records it
        (recipe / "extensions.txt").write_text(
            files["extensions.txt"].replace(ext.url, url).replace(ext.sha256, sha256_file(fake))
        )
        env = uv_env(index.url("empty"), cache_dir=tmp_path / "uv-cache")
        env.update(pip_env(index.url("empty"), base=env))
        env["PATH"] = f"{Path(find_uv_bin()).parent}:{env['PATH']}"
        results = {i: shell(commands[i], recipe, venvs[i], env) for i in ("pip", "uv")}

        for result in results.values():
            assert result.returncode == 0, result.stdout + result.stderr
        assert index.requests[url.split(str(index.port), 1)[1]] >= 2  # pip and uv fetched it
        assert index.hits("empty") == 0  # nothing else looked up: --no-deps
    # (the fake wheel's metadata spells its local label in lower case)
    version = "2.8.3.post1+cu12torch2.5cxx11abifalse"
    assert f"Successfully installed flash-attn-{version}" in results["pip"].stdout
    assert f" + flash-attn=={version} (from {url})" in results["uv"].stderr
    for venv in venvs.values():
        assert venv.installed() == {
            "torch": "2.5.1+cu121",
            "einops": "0.8.1",
            "flash-attn": version,
            "setuptools": venv_template.installed()["setuptools"],
        }
    check = venvs["pip"].pip("check")
    assert check.returncode == 0, check.stdout


# -- end to end with the real torch ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TORCH.is_file(), reason=f"{REAL_TORCH} is not on this machine")
def test_end_to_end_with_the_real_cpu_torch(tmp_path):
    """generate -> install.sh in a fresh venv -> exactly torch 2.13.0+cpu, verified; twice."""
    wheels = build_wheelhouse(tmp_path / "wheels", real_torch=True)
    with LocalIndex() as index:
        project = cpu_project(tmp_path / "project", index, wheels)
        gen = pinner(
            "generate",
            "--target",
            "cpu",
            cwd=project.root,
            env=project.pinner_env(tmp_path / "cache"),
        )
        assert gen.returncode == 0, gen.stderr
        torch_requirements = (project.pinned / "torch-requirements.txt").read_text()
        assert (
            f"torch==2.13.0+cpu \\\n    --hash=sha256:{sha256_file(REAL_TORCH)}\n"
            in torch_requirements
        )
        venv = tmp_path / "venv"  # does not exist: install.sh creates it
        env = project.install_env(venv)

        first = run_install_sh(project.pinned / "install.sh", env)

        assert first.returncode == 0, first.stdout + first.stderr
        assert index.requests[f"/whl/cpu/torch/{REAL_TORCH.name}"] == 1
        assert index.hits("pypi", "torch") == 0
        lines = first.stdout.rstrip().splitlines()
        assert lines[-1] == "verify cpu: 5 ok, 0 failed, 2 not checked"
        assert "ok    torch: torch 2.13.0+cpu" in lines
        assert "ok    torch.version.cuda: None (a CPU build)" in lines
        installed = Venv(venv).installed()
        assert installed["torch"] == TORCH_CPU
        assert installed == locked(project)
        imported = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert imported.stdout.strip() == TORCH_CPU

        downloads = file_downloads(index)
        second = run_install_sh(project.pinned / "install.sh", env)

        assert second.returncode == 0, second.stdout + second.stderr
        assert "Successfully installed" not in second.stdout
        assert (
            second.stdout.rstrip().splitlines()[-1] == "verify cpu: 5 ok, 0 failed, 2 not checked"
        )
        assert file_downloads(index) == downloads
        assert Venv(venv).installed() == installed
    shutil.rmtree(venv)  # ~800 MB
