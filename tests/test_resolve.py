"""resolve: the uv engine's generated project and command line (pure), parsing compiled output,
jobs built from plans, the routing passes of `resolve_target` (with a scripted engine), and a
cross-target lock (Python 3.12 on aarch64, from this 3.11 x86_64 host) through loopback indexes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pinner.errors import NetworkError, ResolveError
from pinner.model import File, Pin, TargetLock
from pinner.resolve.job import Job, ResolvedPin
from pinner.resolve.output import parse_compiled
from pinner.resolve.resolve import build_job, resolve_target
from pinner.resolve.uv import _error, argv, build_interpreter, pyproject
from tests.support.projects import CPU_MATRIX, Project, hashes_of, index_hashes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pinner.model import Plan, PlanResult
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)

TORCH_INDEX = "https://mirror.example/whl/cu128"


def make_job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "target": "gpu",
        "python": "3.11",
        "platform": "linux-x86_64",
        "root": Path("/project"),
        "requirements": ("demo-app", "other-app>=1"),
        "direct": ("torch==2.7.1+cu128", "torchvision==0.22.1+cu128", "ninja"),
        "constraints": ("torch==2.7.1+cu128", "torchvision==0.22.1+cu128", "numpy<2"),
        "torch_index": TORCH_INDEX,
        "torch_committed": TORCH_INDEX,
        "routed": ("torch", "torchvision"),
        "metadata": (("flash-attn", "2.8.3", ("torch", "einops")),),
        "preferences": (("numpy", "1.26.4"),),
        "upgrade": False,
        "offline": False,
    }
    return Job(**(values | fields))


# --- the generated pyproject.toml and command line -----------------------------------------------


def test_pyproject_pins_each_routed_name_to_the_explicit_index() -> None:
    job = make_job()

    doc = tomllib.loads(pyproject(job))

    assert doc["project"]["dependencies"] == list(job.direct)
    assert doc["project"]["requires-python"] == ">=3.11"
    assert doc["tool"]["uv"]["index"] == [
        {"name": "pytorch", "url": TORCH_INDEX + "/", "explicit": True}
    ]
    assert doc["tool"]["uv"]["sources"] == {
        "torch": {"index": "pytorch"},
        "torchvision": {"index": "pytorch"},
    }
    assert doc["tool"]["uv"]["dependency-metadata"] == [
        {"name": "flash-attn", "version": "2.8.3", "requires-dist": ["torch", "einops"]}
    ]


def test_pyproject_of_a_pypi_build_names_no_index() -> None:
    job = make_job(torch_index="", routed=(), metadata=(), direct=("torch==2.8.0",))

    doc = tomllib.loads(pyproject(job))

    assert doc == {
        "project": {
            "name": "pinner-job",
            "version": "0",
            "requires-python": ">=3.11",
            "dependencies": ["torch==2.8.0"],
        }
    }


@pytest.mark.parametrize(
    ("python", "platform", "uv_platform"),
    [
        ("3.11", "linux-x86_64", "x86_64-manylinux_2_28"),
        ("3.12", "linux-aarch64", "aarch64-manylinux_2_28"),
        ("3.10", "linux-x86_64", "x86_64-manylinux_2_28"),
    ],
)
@pytest.mark.parametrize(("upgrade", "offline"), [(False, False), (True, False), (False, True)])
def test_argv_resolves_for_the_target_not_the_host(
    python: str, platform: str, uv_platform: str, upgrade: bool, offline: bool
) -> None:
    job = make_job(python=python, platform=platform, upgrade=upgrade, offline=offline)
    work = Path("/cache/jobs/abc")

    cmd = argv(job, "/bin/uv", work)

    assert cmd[:4] == ["/bin/uv", "pip", "compile", "/cache/jobs/abc/pyproject.toml"]
    # pinner's own normalized requirements file, never the user's raw files
    assert cmd[4] == "/cache/jobs/abc/requirements.in"
    assert not [a for a in cmd if a.startswith("/project")]
    assert cmd[cmd.index("-c") + 1] == "/cache/jobs/abc/constraints.txt"
    assert cmd[cmd.index("-o") + 1] == "/cache/jobs/abc/pylock.toml"
    assert cmd[cmd.index("--format") + 1] == "pylock.toml"
    assert cmd[cmd.index("--python-version") + 1] == python
    assert cmd[cmd.index("--python-platform") + 1] == uv_platform
    assert "--no-config" in cmd
    assert ("--upgrade" in cmd) is upgrade
    assert ("--offline" in cmd) is offline
    assert not [
        a for a in cmd if a.startswith(("--index", "--extra-index", "--default-index", "-i"))
    ]
    assert "--python" not in cmd  # never an interpreter: uv resolves for the numbers given


def test_uv_is_named_pinners_interpreter_only_for_the_targets_python() -> None:
    """uv resolves for --python-version; an interpreter only spares it the search for one (slow
    behind pyenv's shims). pinner's own is named when it is the target's version, never another."""
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    other = "3.9" if own != "3.9" else "3.10"

    assert build_interpreter(own) == sys.executable
    assert build_interpreter(other) == ""

    job = make_job(python=own, platform="linux-x86_64", upgrade=False, offline=False)
    cmd = argv(job, "/bin/uv", Path("/cache/jobs/abc"), build_interpreter(own))
    assert cmd[cmd.index("--python") + 1] == sys.executable
    assert cmd[cmd.index("--python-version") + 1] == own  # still resolved for the target
    other_job = make_job(python=other, platform="linux-x86_64", upgrade=False, offline=False)
    assert "--python" not in argv(other_job, "/bin/uv", Path("/w"), build_interpreter(other))


def test_uv_is_not_named_an_interpreter_of_another_implementation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setattr(sys, "implementation", types.SimpleNamespace(name="pypy"))
    assert build_interpreter(own) == ""


# --- parsing compiled output ---------------------------------------------------------------------

# `uv pip compile --generate-hashes --emit-index-annotation` (0.13.9), first pass of a cu128 lock:
# the CUDA libraries came from the default index.
UV_OUTPUT = """\
demo-app==1.0 \\
    --hash=sha256:e9f7f9a2c4a235f3e364a29771b6007964c91bdcce7e3f175ee3d113fd9d91e9
    # via -r requirements.in
    # from http://127.0.0.1:8000/pypi/
nvidia-cublas-cu12==12.8.3.14 \\
    --hash=sha256:dfaa1693ab86c84fecb61d013d0f8ce3186369db088a13b52d1ad329a9c7c5a7
    # via torch
    # from http://127.0.0.1:8000/pypi/
torch==2.7.1+cu128 \\
    --hash=sha256:f72321db30173e029a0749275f4f1ffac33be0523a1bdc778389c154b9785a5d \\
    --hash=sha256:3b5a1e2116d0bfc55ffadddea00965abea0f6c28ac5ed5091852c9af55d40996
    # via
    #   -c /cache/jobs/e5eca34cb5137eeb13ae/constraints.txt
    #   pinner-job (/cache/jobs/e5eca34cb5137eeb13ae/pyproject.toml)
    #   demo-app
    # from http://127.0.0.1:8000/whl/cu128/
Triton==3.3.1 \\
    --hash=sha256:f361ece039d60428fc9a92a24a0e97937513907ca7aaff06155e23c8da91070a
    # via torch
    # from http://127.0.0.1:8000/pypi/
"""

# pip-compile 7.6 (--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url).
PIP_COMPILE_OUTPUT = """\
demo-app==1.0 \\
    --hash=sha256:e9f7f9a2c4a235f3e364a29771b6007964c91bdcce7e3f175ee3d113fd9d91e9
    # via -r /cache/jobs/pt-9758f469d946108ca729/requirements.in
sympy==1.14.0 \\
    --hash=sha256:80ebe86651b44995448e3a9e88dc06fa7285a083f29bfe4204b43e6f52e968bc
    # via torch
torch==2.13.0+cpu \\
    --hash=sha256:6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b
    # via
    #   -c /cache/jobs/pt-9758f469d946108ca729/constraints.txt
    #   -r /cache/jobs/pt-9758f469d946108ca729/requirements.in
    #   demo-app

# The following packages are considered to be unsafe in a requirements file:
setuptools==80.9.0 \\
    --hash=sha256:a0d179e1a564be835874eee0afcb106f6e1a4a9f31344044bd8b56d79a0ad552
    # via torch
"""


def test_parse_compiled_reads_uv_output() -> None:
    pins = {p.name: p for p in parse_compiled(UV_OUTPUT)}

    assert list(pins) == ["demo-app", "nvidia-cublas-cu12", "torch", "triton"]
    torch = pins["torch"]
    assert torch.version == "2.7.1+cu128"
    assert torch.hashes == (  # sorted
        "sha256:3b5a1e2116d0bfc55ffadddea00965abea0f6c28ac5ed5091852c9af55d40996",
        "sha256:f72321db30173e029a0749275f4f1ffac33be0523a1bdc778389c154b9785a5d",
    )
    assert torch.via == (
        "-c /cache/jobs/e5eca34cb5137eeb13ae/constraints.txt",
        "pinner-job (/cache/jobs/e5eca34cb5137eeb13ae/pyproject.toml)",
        "demo-app",
    )
    assert pins["demo-app"].via == ("-r requirements.in",)
    assert pins["triton"].version == "3.3.1"  # names are canonical
    assert pins["nvidia-cublas-cu12"].via == ("torch",)


def test_parse_compiled_reads_pip_compile_output() -> None:
    pins = {p.name: p for p in parse_compiled(PIP_COMPILE_OUTPUT)}

    assert list(pins) == ["demo-app", "sympy", "torch", "setuptools"]
    assert pins["torch"].via == (
        "-c /cache/jobs/pt-9758f469d946108ca729/constraints.txt",
        "-r /cache/jobs/pt-9758f469d946108ca729/requirements.in",
        "demo-app",
    )
    assert pins["setuptools"].hashes == (
        "sha256:a0d179e1a564be835874eee0afcb106f6e1a4a9f31344044bd8b56d79a0ad552",
    )
    assert all(len(p.hashes) == 1 for p in pins.values())


def test_parse_compiled_without_hashes_or_annotations() -> None:
    text = "accelerate==1.10.1\ntransformers[torch]==4.56.1\n--index-url https://x/\n"

    pins = parse_compiled(text)

    assert [(p.name, p.version, p.hashes, p.via) for p in pins] == [
        ("accelerate", "1.10.1", (), ()),
        ("transformers", "4.56.1", (), ()),
    ]


# --- the uv engine's error messages --------------------------------------------------------------


def test_uv_error_offline_points_to_an_online_run() -> None:
    error = _error(make_job(offline=True), "error: torch was not found in the cache")

    assert isinstance(error, ResolveError)
    assert str(error).startswith("target gpu: offline resolution failed")
    assert "torch was not found in the cache" in str(error)
    assert str(error).endswith("fix: run once without --offline")


def test_uv_error_network_is_a_network_error() -> None:
    error = _error(
        make_job(), "error: Failed to fetch: `http://x/`\n  Caused by: tcp connect error"
    )

    assert isinstance(error, NetworkError)
    assert error.exit_code == 1
    assert "target gpu: an index could not be reached" in str(error)


def test_uv_error_names_the_index_that_lacks_a_routed_package() -> None:
    stderr = (
        "warning: ignored\n  \u00d7 No solution found when resolving dependencies:\n"
        "  ╰─▶ Because torchvision was not found in the package registry and pinner-job depends"
        " on torchvision==0.22.1+cu128, we can conclude that your requirements are unsatisfiable."
    )

    error = _error(make_job(), stderr)

    assert type(error) is ResolveError
    assert "warning: ignored" not in str(error)
    assert f"the PyTorch index {TORCH_INDEX} does not carry torchvision" in str(error)


# --- jobs from plans -----------------------------------------------------------------------------


def cpu_plan(plan_for: Callable[..., PlanResult], *requirements: str) -> Plan:
    result = plan_for("cpu", *requirements, torch="==2.13.0", requirements=("requirements.in",))
    assert result.plan is not None
    return result.plan


def test_build_job_routes_torch_and_required_companions_only(
    plan_for: Callable[..., PlanResult],
    make_requirements: Callable[..., Any],
    tmp_path: Path,
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    reqs = make_requirements("demo-app")

    job = build_job(plan, reqs, tmp_path, previous=None, upgrade=False, offline=False)

    assert job.direct == ("torch==2.13.0+cpu",)
    assert job.routed == ("torch",)
    assert job.optional == ()
    assert "torchvision==0.28.0+cpu" in job.constraints  # allowed, not required
    assert job.torch_index == "https://download.pytorch.org/whl/cpu"
    assert (job.python, job.platform) == ("3.11", "linux-x86_64")
    assert job.requirements == ("demo-app",)
    assert job.roots == (("demo-app", (), "-r requirements.in"), ("torch", (), "pinner plan"))

    with_vision = build_job(
        plan,
        make_requirements("torchvision"),
        tmp_path,
        previous=None,
        upgrade=False,
        offline=False,
    )
    assert with_vision.direct == ("torch==2.13.0+cpu", "torchvision==0.28.0+cpu")
    assert with_vision.routed == ("torch", "torchvision")


def test_build_job_remembers_the_old_locks_torch_layer(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    reqs = make_requirements("demo-app")
    old = TargetLock(
        plan=plan,
        pins=(
            Pin(
                name="nvidia-x",
                version="1.2",
                files=(File(name="", hashes=()),),
                source="pytorch",
                layer="torch",
                via=("torch",),
            ),
            Pin(
                name="demo-app",
                version="1.0",
                files=(File(name="", hashes=()),),
                source="default",
                layer="main",
                via=(),
            ),
        ),
        inputs="",
        findings=(),
    )

    job = build_job(plan, reqs, tmp_path, previous=old, upgrade=False, offline=False)

    assert job.direct == ("torch==2.13.0+cpu", "nvidia-x==1.2")
    assert job.routed == ("torch", "nvidia-x")
    assert job.optional == ("nvidia-x",)  # kept only if something still requires it
    assert job.preferences == (("nvidia-x", "1.2"), ("demo-app", "1.0"))

    upgraded = build_job(plan, reqs, tmp_path, previous=old, upgrade=True, offline=False)
    assert upgraded.preferences == ()
    other_build = dataclasses.replace(plan, torch=dataclasses.replace(plan.torch, version="2.12.0"))
    other = build_job(
        plan,
        reqs,
        tmp_path,
        previous=dataclasses.replace(old, plan=other_build),
        upgrade=False,
        offline=False,
    )
    assert other.routed == ("torch",)  # another torch build pulls other libraries


def test_build_job_of_a_pypi_build_routes_nothing(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    result = plan_for("A100", "demo-app", torch="==2.13.0")
    assert result.plan is not None
    assert result.plan.torch.on_pypi

    job = build_job(
        result.plan,
        make_requirements("torchvision"),
        tmp_path,
        previous=None,
        upgrade=False,
        offline=False,
    )

    assert job.torch_index == ""
    assert job.routed == ()
    assert job.direct == ("torch==2.13.0", "torchvision==0.28.0")


# --- the routing passes of resolve_target (scripted engine) --------------------------------------


class Scripted:
    """An engine that answers each resolve() with the next scripted result, recording jobs."""

    name = "scripted"

    def __init__(self, *answers: Sequence[ResolvedPin] | Exception) -> None:
        self.answers = list(answers)
        self.jobs: list[Job] = []

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        self.jobs.append(job)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return tuple(answer)


def rp(name: str, version: str, *via: str, source: str = "") -> ResolvedPin:
    """A resolved package; index builds (a local version tag) come from the PyTorch index."""
    return ResolvedPin(
        name=name,
        version=version,
        files=(File(name="", hashes=(f"sha256:{name}",)),),
        source=source or ("pytorch" if "+" in version else "default"),
        via=via,
    )


PINNER = "pinner plan"


def test_resolve_target_routes_pulled_cuda_libraries_in_a_second_run(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    job = build_job(
        plan, make_requirements("demo-app"), tmp_path, previous=None, upgrade=False, offline=False
    )
    answer = [
        rp("torch", "2.13.0+cpu", PINNER, "demo-app"),
        rp("nvidia-x", "1.2", "torch"),
        rp("triton", "3.3.1", "torch"),
        rp("filelock", "3.16.1", "torch"),
        rp("demo-app", "1.0", "-r requirements.in"),
    ]
    routed = [
        dataclasses.replace(p, source="pytorch") if p.name in ("nvidia-x", "triton") else p
        for p in answer
    ]
    engine = Scripted(answer, routed)

    locked = resolve_target(engine, plan, job, "sha256:in")

    assert len(engine.jobs) == 2
    second = engine.jobs[1]
    assert second.routed == ("torch", "nvidia-x", "triton")
    assert second.direct == ("torch==2.13.0+cpu", "nvidia-x==1.2", "triton==3.3.1")
    layers = {p.name: (p.layer, p.source) for p in locked.pins}
    assert layers == {
        "torch": ("torch", "pytorch"),
        "nvidia-x": ("torch", "pytorch"),
        "triton": ("torch", "pytorch"),
        "filelock": ("main", "default"),
        "demo-app": ("main", "default"),
    }
    assert locked.indexes == (("pytorch", job.torch_committed),)
    assert {p.name: p.via for p in locked.pins}["torch"] == ("demo-app", "pinner plan")


def test_resolve_target_needs_no_second_run_when_the_engine_took_them_from_the_index(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    job = build_job(
        plan, make_requirements("demo-app"), tmp_path, previous=None, upgrade=False, offline=False
    )
    from_index = rp("nvidia-x", "1.2", "torch", source="pytorch")
    app = rp("demo-app", "1.0", "-r requirements.in")
    engine = Scripted(
        [rp("torch", "2.13.0+cpu", PINNER), from_index, rp("triton", "3.3.1", "torch"), app],
        [
            rp("torch", "2.13.0+cpu", PINNER),
            from_index,
            rp("triton", "3.3.1", PINNER, "torch", source="pytorch"),
            app,
        ],
    )

    locked = resolve_target(engine, plan, job, "")

    assert len(engine.jobs) == 2
    assert engine.jobs[1].routed == ("torch", "triton")  # nvidia-x came from the index already
    assert {p.name: p.layer for p in locked.pins} == {
        "torch": "torch",
        "nvidia-x": "torch",
        "triton": "torch",
        "demo-app": "main",
    }


def test_resolve_target_routes_a_companion_a_requirement_pulls(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "needs-vision")
    job = build_job(
        plan,
        make_requirements("needs-vision"),
        tmp_path,
        previous=None,
        upgrade=False,
        offline=False,
    )
    failure = ResolveError("target t: no solution: there is no version of torchvision==0.28.0+cpu")
    engine = Scripted(
        failure,
        [
            rp("torch", "2.13.0+cpu", PINNER, "torchvision"),
            rp("torchvision", "0.28.0+cpu", PINNER, "needs-vision"),
            rp("needs-vision", "1.0", "-r requirements.in"),
        ],
    )

    locked = resolve_target(engine, plan, job, "")

    assert engine.jobs[1].routed == ("torch", "torchvision")
    assert engine.jobs[1].optional == ("torchvision",)
    assert {p.name: p.layer for p in locked.pins}["torchvision"] == "torch"


def test_resolve_target_reraises_other_failures(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    job = build_job(
        plan, make_requirements("demo-app"), tmp_path, previous=None, upgrade=False, offline=False
    )
    engine = Scripted(ResolveError("target t: no solution: demo-app>=9 is unavailable"))

    with pytest.raises(ResolveError, match="demo-app>=9"):
        resolve_target(engine, plan, job, "")
    assert len(engine.jobs) == 1


def test_resolve_target_drops_optional_names_nothing_requires(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    plan = cpu_plan(plan_for, "demo-app")
    job = dataclasses.replace(
        build_job(
            plan,
            make_requirements("demo-app"),
            tmp_path,
            previous=None,
            upgrade=False,
            offline=False,
        ),
        direct=("torch==2.13.0+cpu", "torchvision==0.28.0+cpu", "nvidia-x==1.2"),
        routed=("torch", "torchvision", "nvidia-x"),
        optional=("torchvision", "nvidia-x"),
    )
    engine = Scripted(
        [
            rp("torch", "2.13.0+cpu", "-c /c.txt", PINNER, "demo-app", "torchvision"),
            rp("torchvision", "0.28.0+cpu", "-c /c.txt", PINNER),  # only pinner wants it
            rp("pillow", "11.0", "torchvision"),  # pulled only by it
            rp("nvidia-x", "1.2", PINNER, "torch", source="pytorch"),  # torch still pulls it
            rp("demo-app", "1.0", "-r requirements.in"),
        ]
    )

    locked = resolve_target(engine, plan, job, "")

    assert sorted(p.name for p in locked.pins) == ["demo-app", "nvidia-x", "torch"]


def test_resolve_target_refuses_another_build_than_planned(
    plan_for: Callable[..., PlanResult], make_requirements: Callable[..., Any], tmp_path: Path
) -> None:
    result = plan_for("A100", "demo-app", torch="==2.13.0")
    assert result.plan is not None
    job = build_job(
        result.plan,
        make_requirements("demo-app"),
        tmp_path,
        previous=None,
        upgrade=False,
        offline=False,
    )
    engine = Scripted([rp("torch", "2.13.0+cpu", PINNER, source="default")])

    with pytest.raises(
        ResolveError,
        match=r"the default index gave torch 2\.13\.0\+cpu for the planned torch==2\.13\.0",
    ):
        resolve_target(engine, result.plan, job, "")


# --- cross-target resolution through loopback indexes --------------------------------------------

CROSS_MATRIX = (
    CPU_MATRIX
    + """
[targets.arm312]
gpu = "cpu"
torch = "==2.13.0"
python = "3.12"
platform = "linux-aarch64"
requirements = ["requirements.in"]
"""
)


def test_lock_resolves_each_target_for_its_own_python_and_platform(
    project: Project, cli: Callable[..., Run], uv_runs: list[list[str]]
) -> None:
    """whl/cpu has torch 2.13.0+cpu for cp311 x86_64 (the real wheel) and cp312 aarch64 (fake):
    each target can only resolve for its own Python and platform, and markers follow them."""
    assert sys.version_info[:2] == (3, 11)
    project.write("pinner.toml", CROSS_MATRIX)
    project.write("requirements.in", 'demo-app\nother-app; platform_machine == "aarch64"\n')
    result = cli("lock")

    assert result.code == 0, result.err
    cpu, arm = project.packages("cpu"), project.packages("arm312")
    assert "other-app" in arm
    assert "other-app" not in cpu
    both = index_hashes(project.index, "whl/cpu", "torch", "2.13.0+cpu")
    for packages in (cpu, arm):
        assert packages["torch"]["version"] == "2.13.0+cpu"
        # each target keeps the files an installer on it may pick: its own wheel only
        (only,) = hashes_of(packages["torch"])
        assert only in both
    assert hashes_of(cpu["torch"]) != hashes_of(arm["torch"])
    targets = sorted(
        (c[c.index("--python-version") + 1], c[c.index("--python-platform") + 1]) for c in uv_runs
    )
    assert targets == [("3.11", "x86_64-manylinux_2_28"), ("3.12", "aarch64-manylinux_2_28")]
    doc = project.lock_doc()["targets"]["arm312"]["plan"]["target"]
    assert (doc["python"], doc["platform"]) == ("3.12", "linux-aarch64")


def test_lock_never_falls_back_to_the_hosts_python(
    project: Project, cli: Callable[..., Run]
) -> None:
    """Python 3.12 on x86_64: the index has no such torch wheel, and the host's cp311 one is
    not taken instead."""
    project.write("pinner.toml", CPU_MATRIX + 'python = "3.12"\n')

    result = cli("lock")

    assert result.code == 1  # the target failed to resolve
    assert "Traceback" not in result.err
    assert "pinner: error: target cpu: no solution (uv pip compile)" in result.err
    assert "Wheels are available for `torch` (v2.13.0+cpu)" in result.err
    assert not project.lock.exists()
