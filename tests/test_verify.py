"""pinner verify and the rendered verify_env.py: the same checks, against a real environment.

The slow tests build one venv per session with the real CPU torch 2.13.0 (this machine's pip finds
the local wheel) plus two tiny extension wheels: one that imports, one whose import fails the way
a flash-attn built for another torch does (`undefined symbol`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.cli import main
from pinner.lock.fingerprint import lock_sections
from pinner.lock.lockfile import dump_lock
from pinner.model import Extension, File, LockFile, Pin, Plan, Requirements, Target, TargetLock
from pinner.plan.plan import plan_target
from pinner.render.render import render_target
from pinner.verify import checks as verify_checks
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable

    from pinner.knowledge.knowledge import Knowledge

SYMBOL = "_ZN3c104cuda9SetDeviceEi"
BROKEN_WHEEL = "fake_attn-1.0.0+cu12torch2.12cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"


# --- the environment -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def torch_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the real CPU torch 2.13.0 and two extension wheels; returns its python."""
    root = tmp_path_factory.mktemp("torch-env")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    wheels = root / "wheels"
    broken = build_wheel(
        wheels,
        "fake-attn",
        "1.0.0",
        module_source=f'raise ImportError("/x/y.so: undefined symbol: {SYMBOL}")\n',
    )
    good = build_wheel(wheels, "good-ext", "2.0.0")
    for attempt in range(3):  # the torch wheel is local; its small dependencies come from PyPI
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            break
        if attempt == 2:
            pytest.fail(f"pip install torch==2.13.0 failed:\n{proc.stderr}")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            str(broken),
            str(good),
        ],
        check=True,
    )
    return python


def installed(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', "
        "d.metadata['Name']).lower(): d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def plan_for(make_target: Callable[..., Target], kb: Knowledge, gpu: str, torch: str) -> Plan:
    target = make_target(gpu, torch=torch, name="cpu" if gpu == "cpu" else "gpu")
    result = plan_target(target, kb, Requirements(items=(), files=()))
    assert result.plan is not None, result.findings
    return result.plan


def write_lock(path: Path, plan: Plan, versions: dict[str, str]) -> TargetLock:
    pins = tuple(
        Pin(
            name=n,
            version=v,
            files=(File(name="", hashes=()),),
            source="default",
            layer="torch" if n == "torch" else "main",
            via=(),
        )
        for n, v in sorted(versions.items())
    )
    tl = TargetLock(plan=plan, pins=pins, inputs="sha256:test", findings=())
    lockfile = LockFile(pinner="0.1.0", knowledge="2026-11-23", targets=(tl,))
    path.write_text(dump_lock(lockfile, {plan.target.name: "sha256:test"}), encoding="utf-8")
    return tl


def extension(name: str, version: str, wheel: str) -> Extension:
    return Extension(
        name=name,
        version=version,
        strategy="wheel",
        wheel=wheel,
        url="",
        sha256="",
        deps=(),
        build_deps=(),
        env=(),
        why="test",
        source="test",
    )


def verify(
    lock: Path, target: str, python: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    code = main(
        ["verify", "--lock", str(lock), "--target", target, "--python", str(python), *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_rendered(tl: TargetLock, lock: Path, python: Path, tmp_path: Path) -> tuple[int, str]:
    """Render verify_env.py from the lock (as recipes do) and run it with the venv's python."""
    section = lock_sections(lock.read_text(encoding="utf-8"))[tl.plan.target.name]
    script = next(a for a in render_target(tl, section=section) if a.path.name == "verify_env.py")
    path = tmp_path / "verify_env.py"
    path.write_text(script.text, encoding="utf-8")
    proc = subprocess.run([str(python), str(path)], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


# --- slow: the real CPU torch --------------------------------------------------------------------


@pytest.mark.slow
def test_verify_passes_for_the_matching_cpu_lock(torch_env, make_target, kb, tmp_path, capsys):
    plan = plan_for(make_target, kb, "cpu", "==2.13.0")
    versions = installed(torch_env)
    assert versions["torch"] == "2.13.0+cpu"
    lock = tmp_path / "pinner.lock"
    tl = write_lock(lock, plan, versions)
    code, out, err = verify(lock, "cpu", torch_env, capsys)
    assert (code, err) == (0, "")
    assert f"ok    packages: {len(versions)} locked packages at their locked versions\n" in out
    assert "ok    torch: torch 2.13.0+cpu\n" in out
    assert "ok    torch.version.cuda: None (a CPU build)\n" in out
    assert "skip  gpu: CPU build: no GPU checks\n" in out
    assert "FAIL" not in out
    code, text = run_rendered(tl, lock, torch_env, tmp_path)
    assert code == 0, text
    assert "ok    torch: torch 2.13.0+cpu\n" in text


@pytest.mark.slow
def test_verify_fails_when_the_lock_says_another_torch(
    torch_env, make_target, kb, tmp_path, capsys
):
    plan = plan_for(make_target, kb, "cpu", "==2.14.1")
    versions = installed(torch_env) | {"torch": "2.14.1+cpu"}
    lock = tmp_path / "pinner.lock"
    tl = write_lock(lock, plan, versions)
    code, out, err = verify(lock, "cpu", torch_env, capsys)
    assert code == 1
    assert "FAIL  torch: torch 2.13.0+cpu, but the lock says 2.14.1+cpu\n" in out
    assert "FAIL  packages: torch 2.13.0+cpu is installed, the lock says 2.14.1+cpu\n" in out
    assert err == "pinner: error: verify cpu: 2 checks failed\n"
    assert "Traceback" not in out + err
    code, text = run_rendered(tl, lock, torch_env, tmp_path)
    assert code == 1
    assert "FAIL  torch: torch 2.13.0+cpu, but the lock says 2.14.1+cpu\n" in text


@pytest.mark.slow
def test_verify_cuda_plan_on_the_cpu_build(torch_env, make_target, kb, tmp_path, capsys):
    """A CUDA plan (A100: torch 2.13.0, CUDA 13.0) against the CPU build: torch.version.cuda
    fails with a clear line; the GPU checks say they were not run."""
    plan = plan_for(make_target, kb, "A100", "==2.13.0")
    assert plan.torch.cuda == "13.0"
    lock = tmp_path / "pinner.lock"
    write_lock(lock, plan, installed(torch_env))  # the lock names the installed torch build
    code, out, err = verify(lock, "gpu", torch_env, capsys)
    assert code == 1
    assert (
        "FAIL  torch.version.cuda: None (a CPU build), but the plan's build has CUDA 13.0\n" in out
    )
    assert (
        "FAIL  torch: torch 2.13.0+cpu is a CPU build, but the plan's build has CUDA 13.0\n" in out
    )
    assert "skip  gpu arch: not checked: no GPU\n" in out
    assert "skip  driver: not checked: no GPU\n" in out
    assert err == "pinner: error: verify gpu: 2 checks failed\n"


@pytest.mark.slow
def test_verify_reports_an_extension_that_fails_to_import(
    torch_env, make_target, kb, tmp_path, capsys
):
    base = plan_for(make_target, kb, "cpu", "==2.13.0")
    plan = dataclasses.replace(
        base,
        extensions=(
            extension("fake-attn", "1.0.0", BROKEN_WHEEL),
            extension("good-ext", "2.0.0", "good_ext-2.0.0-py3-none-any.whl"),
        ),
    )
    lock = tmp_path / "pinner.lock"
    tl = write_lock(lock, plan, installed(torch_env))
    expected_line = (
        f"FAIL  fake-attn: fake-attn 1.0.0 ({BROKEN_WHEEL}) does not match the installed torch "
        f"2.13.0+cpu: undefined symbol {SYMBOL}\n"
    )
    code, out, err = verify(lock, "cpu", torch_env, capsys)
    assert code == 1
    assert expected_line in out
    assert "ok    good-ext: imports (good_ext-2.0.0-py3-none-any.whl)\n" in out
    assert "Traceback" not in out + err
    code, text = run_rendered(tl, lock, torch_env, tmp_path)
    assert code == 1
    assert expected_line in text
    assert "Traceback" not in text
    code, out, _ = verify(lock, "cpu", torch_env, capsys, "--json")
    data = json.loads(out)
    assert data["ok"] is False
    assert {
        "status": "FAIL",
        "check": "fake-attn",
        "message": expected_line.split(": ", 1)[1].rstrip(),
    } in (data["results"])


# --- fast: in this interpreter, and the messages -------------------------------------------------


def test_verify_in_this_environment_without_torch(make_target, kb, tmp_path, capsys):
    """No --python: the checks run in pinner's own environment (here: no torch locked)."""
    from importlib import metadata

    plan = plan_for(make_target, kb, "cpu", "==2.13.0")
    plan = dataclasses.replace(
        plan, target=dataclasses.replace(plan.target, python="{}.{}".format(*sys.version_info[:2]))
    )
    lock = tmp_path / "pinner.lock"
    write_lock(lock, plan, {"typer": metadata.version("typer")})
    assert main(["verify", "--lock", str(lock), "--target", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ok    packages: 1 locked packages at their locked versions\n" in out
    assert "torch" not in out


def test_verify_env_json_carries_the_schema_of_every_json_output(make_target, kb, tmp_path, capsys):
    """The rendered `verify_env.py --json` and `pinner verify --json`: the same `schema` as every
    other JSON document (docs/json.md), the same results."""
    from importlib import metadata

    from pinner.console import JSON_SCHEMA

    plan = plan_for(make_target, kb, "cpu", "==2.13.0")
    plan = dataclasses.replace(
        plan, target=dataclasses.replace(plan.target, python="{}.{}".format(*sys.version_info[:2]))
    )
    lock = tmp_path / "pinner.lock"
    tl = write_lock(lock, plan, {"typer": metadata.version("typer")})
    section = lock_sections(lock.read_text(encoding="utf-8"))["cpu"]
    script = next(a for a in render_target(tl, section=section) if a.path.name == "verify_env.py")
    path = tmp_path / "verify_env.py"
    path.write_text(script.text, encoding="utf-8")

    proc = subprocess.run(
        [sys.executable, str(path), "--json"], capture_output=True, text=True, check=False
    )
    code, out, _ = verify(lock, "cpu", Path(sys.executable), capsys, "--json")

    assert (proc.returncode, code) == (0, 0), proc.stderr
    rendered, ours = json.loads(proc.stdout), json.loads(out)
    assert list(rendered)[:2] == ["schema", "target"]
    assert rendered["schema"] == ours["schema"] == JSON_SCHEMA == 1
    assert rendered["results"] == ours["results"]
    assert verify_checks.JSON_SCHEMA == JSON_SCHEMA


def test_verify_unknown_target_and_missing_python(make_target, kb, tmp_path, capsys):
    lock = tmp_path / "pinner.lock"
    write_lock(lock, plan_for(make_target, kb, "cpu", "==2.13.0"), {"six": "1.17.0"})
    assert main(["verify", "--lock", str(lock), "--target", "cpx"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"pinner: error: {lock}: no target 'cpx' (did you mean 'cpu'?); lock it with "
        "`pinner lock --target cpx`\n"
    )
    missing = tmp_path / "nope" / "python"
    assert main(["verify", "--lock", str(lock), "--target", "cpu", "--python", str(missing)]) == 2
    assert f"--python: {missing}: no such interpreter" in capsys.readouterr().err
    assert main(["verify", "--lock", str(tmp_path / "none.lock"), "--target", "cpu"]) == 2
    assert "no lock file; run `pinner lock` first" in capsys.readouterr().err


def test_report_summarises_a_long_list_of_wrong_packages():
    expected = {
        "target": "t",
        "python": "{}.{}".format(*sys.version_info[:2]),
        "platform": "linux-x86_64",
        "packages": {f"pkg{i:02d}": "1.0" for i in range(20)},
        "extensions": [],
    }
    results = verify_checks.check_packages(expected, installed={})
    assert len(results) == 20  # every one is in the results (and the JSON)
    text = verify_checks.report(results, "t")
    lines = text.splitlines()
    assert lines[:8] == [
        f"FAIL  packages: pkg{i:02d} is not installed (locked: 1.0)" for i in range(8)
    ]
    assert lines[8] == (
        "FAIL  packages: ... and 12 more packages differ from the lock (--json lists them all; "
        "was this environment installed from the target's recipe?)"
    )
    assert lines[9] == "verify t: 0 ok, 20 failed, 0 not checked"


def test_verify_checks_stays_standard_library_only():
    import ast

    tree = ast.parse(Path(verify_checks.__file__).read_text(encoding="utf-8"))
    modules = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    top = {m.split(".")[0] for m in modules}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top
