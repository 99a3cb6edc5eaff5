"""Distribution and release: the workflows this repository ships are hardened and valid, the
version lives in one place, and the built wheel works on its own (installed in a fresh venv, it
renders, inits and passes tests run from outside the source tree)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinner import __version__
from pinner.commands.workflow import pinned_actions
from tests.support.index import LocalIndex, uv_env

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$")


def shipped_yaml() -> list[Path]:
    return [*WORKFLOWS, REPO / "action.yml"]


def test_the_repository_ships_a_release_workflow():
    assert [p.name for p in WORKFLOWS] == ["knowledge.yml", "release.yml"]


@pytest.mark.parametrize("path", shipped_yaml(), ids=lambda p: p.name)
def test_every_uses_is_the_commit_of_the_data_file(path):
    """`uses: NAME@SHA  # TAG` with exactly the SHA and tag of pinner/data/actions.toml."""
    actions = pinned_actions()
    found = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not re.match(r"^\s*(-\s+)?uses:", line):
            continue
        m = USES.match(line)
        assert m, f"{path.name}:{n}: not of the form `uses: NAME@SHA  # TAG`: {line.strip()}"
        name, ref, tag = m.groups()
        assert name in actions, f"{path.name}:{n}: {name} is not in pinner/data/actions.toml"
        assert (ref, tag) == (actions[name].sha, actions[name].tag), (
            f"{path.name}:{n}: {name}@{ref} # {tag}; pinner/data/actions.toml has "
            f"{actions[name].sha} # {actions[name].tag}: update both together"
        )
        found += 1
    assert found


def test_the_data_file_says_how_each_sha_was_checked():
    actions = pinned_actions()
    assert len(actions) >= 6
    for action in actions.values():
        assert re.fullmatch(r"v\d+(\.\d+)*", action.tag)
        assert action.source == f"https://github.com/{action.name}/releases/tag/{action.tag}"
        assert action.verified.startswith(("git:", "unverified:"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_valid_and_least_privilege(path):
    from tests.test_init import check_jsonschema

    check_jsonschema("vendor.github-workflows", path)
    flow: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert flow["permissions"] == {}
    for name, job in flow["jobs"].items():
        assert "permissions" in job, f"job {name} names its permissions"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
    granted = {n: j["permissions"] for n, j in flow["jobs"].items()}
    minting = [n for n, p in granted.items() if "id-token" in p]
    assert minting == (["publish"] if path.name == "release.yml" else [])


def test_release_workflow_builds_tests_the_wheel_publishes_and_attaches():
    flow: dict[Any, Any] = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    assert flow[True] == {"push": {"tags": ["v*"]}}
    jobs = flow["jobs"]
    assert jobs["build"]["permissions"] == {"contents": "read"}
    build = " ".join(s.get("run", "") for s in jobs["build"]["steps"])
    assert "python -m build --no-isolation --outdir dist/" in build
    assert "--require-hashes" in build
    test = " ".join(s.get("run", "") for s in jobs["test"]["steps"])
    assert "python -m pip install --no-deps dist/*.whl" in test
    assert "grep -zv '^pinner/'" in test  # the tests run without the package's source
    assert "pinner.__file__" in test
    publish = jobs["publish"]
    assert publish["needs"] == ["build", "test"]
    assert publish["permissions"] == {"id-token": "write"}
    (step,) = [s for s in publish["steps"] if "pypi-publish" in s.get("uses", "")]
    assert "with" not in step  # trusted publishing: no password, no token
    assert jobs["github-release"]["permissions"] == {"contents": "write"}
    assert "gh release upload" in jobs["github-release"]["steps"][-1]["run"]
    assert "secrets." not in (REPO / ".github/workflows/release.yml").read_text()


def test_dependabot_keeps_the_actions_current():
    from tests.test_init import check_jsonschema

    path = REPO / ".github/dependabot.yml"
    check_jsonschema("vendor.dependabot", path)
    updates = yaml.safe_load(path.read_text(encoding="utf-8"))["updates"]
    assert {"package-ecosystem": "github-actions", "directory": "/"}.items() <= updates[0].items()


def _requirement_names(path: Path) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", m.group(1)).lower()
        for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==", path.read_text(), re.MULTILINE)
    }


@pytest.mark.parametrize("name", ["build", "action", "test"])
def test_workflow_requirements_are_hashed_and_cover_pyproject(name):
    """.github/requirements/*.txt: every pin hashed; pinner's dependencies (and test extras for
    the release's test job) all present, so `--require-hashes --no-deps` installs suffice."""
    path = REPO / ".github" / "requirements" / f"{name}.txt"
    text = path.read_text(encoding="utf-8")
    pins = [ln for ln in text.splitlines() if re.match(r"^[A-Za-z0-9]", ln)]
    assert pins
    assert all(ln.endswith("\\") for ln in pins)  # each followed by --hash lines
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    wanted = {"build": ["build", "hatchling"], "action": [*project["dependencies"], "hatchling"]}
    wanted["test"] = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = _requirement_names(path)
    for req in map(Requirement, wanted[name]):
        if req.marker is None or req.marker.evaluate({"python_version": "3.10"}):
            assert re.sub(r"[-_.]+", "-", req.name).lower() in names, (name, req.name)


def _pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_lives_in_one_place_and_the_changelog_names_it():
    data = _pyproject()
    assert data["project"]["name"] == "torch-pinner"
    assert data["project"]["dynamic"] == ["version"]
    assert "version" not in data["project"]
    assert data["tool"]["hatch"]["version"]["path"] == "pinner/__init__.py"
    assert data["project"]["scripts"] == {"pinner": "pinner.cli:main"}
    assert data["project"]["urls"]["Repository"].startswith("https://")
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[?{re.escape(__version__)}\]?", changelog, re.MULTILINE)


# --- the built distributions, installed on their own ------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob(f"torch_pinner-{__version__}-py3-none-any.whl")
    (sdist,) = out.glob(f"torch_pinner-{__version__}.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, **kw)


@pytest.mark.slow
def test_the_built_wheel_works_on_its_own(dists, tmp_path):
    """A fresh venv holding the wheel (dependencies: the development venv's, through a .pth file;
    a path added that way is not scanned for .pth files, so the editable pinner stays out)."""
    import tarfile

    from uv import find_uv_bin

    with tarfile.open(dists["sdist"]) as sdist:
        names = sdist.getnames()
    root = f"torch_pinner-{__version__}"
    for member in (
        "pinner/__init__.py",
        "pinner/data/actions.toml",
        "templates/init/pinner-update.yml.j2",
        "matrices/default.toml",
        "CHANGELOG.md",
    ):
        assert f"{root}/{member}" in names

    venv = tmp_path / "venv"
    env = uv_env(cache_dir=tmp_path / "uv-cache")
    uv = find_uv_bin()
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)],
        env=env,
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--offline",
            "--no-deps",
            "--python",
            str(python),
            str(dists["wheel"]),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pinner = str(venv / "bin" / "pinner")

    explain = _run([pinner, "explain", "--target", "rtx5090"], cwd=tmp_path)
    assert explain.returncode == 0, explain.stderr
    assert "rtx5090  (built-in presets: targets.rtx5090)" in explain.stdout

    project = tmp_path / "project"
    project.mkdir()
    init = _run(
        [pinner, "init", "--target", "cpu", "--no-workflow", "--hooks", "local"], cwd=project
    )
    assert init.returncode == 0, init.stderr
    assert "[targets.cpu]" in (project / "pinner.toml").read_text()
    # a wheel that is no release (not on the index, not from git) cannot pin the workflow's pinner
    with LocalIndex() as index:
        (tmp_path / "empty").mkdir()
        index_env = uv_env(index.url("empty"), cache_dir=tmp_path / "uv-cache")
        refused = _run([pinner, "init"], cwd=project, env=index_env)
    assert refused.returncode == 2
    assert f"pinner {__version__} (torch-pinner) is not on the package index" in refused.stderr
    assert not (project / ".github").exists()

    # release.yml's test step, as the runner runs it, with a subset of the tests: it copies the
    # checkout without pinner/, asserts the wheel is what is imported, and runs pytest there
    run = release_step("test", "Run the tests from outside the source tree")
    full = 'python -m pytest -m "not slow" --ignore tests/test_wheel_templates.py'
    assert full in run
    subset = "python -m pytest -q -p no:cacheprovider -m 'not network and not slow' "
    subset += "tests/test_init.py tests/test_knowledge.py tests/test_render.py #"
    env = {
        **os.environ,
        "RUNNER_TEMP": str(tmp_path),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
    }
    tests = _run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run.replace(full, subset)],
        cwd=REPO,
        env=env,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert Path(tests.stdout.splitlines()[0]).is_relative_to(site.resolve())
    assert " passed" in tests.stdout
    assert not (tmp_path / "tree" / "pinner").exists()
    probe = "import pinner.commands.workflow as w; print(len(w.pinned_actions()))"
    actions = _run([str(python), "-c", probe], cwd=tmp_path / "tree").stdout
    assert int(actions) == len(pinned_actions())  # the wheel carries pinner/data/actions.toml


def release_step(job: str, name: str) -> str:
    flow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text(encoding="utf-8"))
    steps = flow["jobs"][job]["steps"]
    return str(next(s["run"] for s in steps if s.get("name", "").startswith(name)))


@pytest.mark.parametrize(("tag", "code"), [(f"v{__version__}", 0), ("v99.0", 1)])
def test_release_refuses_a_tag_that_is_not_the_version(tag, code):
    run = release_step("build", "The tag names the version")
    env = {**os.environ, "TAG": tag}
    done = _run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run], cwd=REPO, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    if code:
        assert f'::error::tag v99.0 does not match __version__ = "{__version__}"' in done.stdout
