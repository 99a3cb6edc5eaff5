"""The update workflow `pinner init` writes, and the exact pinner it installs.

The workflow installs the pinner that wrote it, nothing else: a released pinner from a hashed
requirements file (pinner and every dependency, for the runner's Python, resolved now with
`uv pip compile --generate-hashes`); an unreleased one (a development install, or a version the
package index does not have) from `git+<repository>@<commit>`, its dependencies and build backend
hashed. Actions are pinned by commit SHA from pinner/data/actions.toml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import Distribution

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIST = "torch-pinner"  # the distribution; the import package and the command are `pinner`
ACTIONS = Path(__file__).parent.parent / "data" / "actions.toml"
REQUIREMENTS = Path(".github/pinner-requirements.txt")
PLATFORM = "x86_64-manylinux_2_28"  # GitHub's ubuntu-latest runners (glibc 2.39) install these
SHA = re.compile(r"^[0-9a-f]{40}$")
NOT_ON_INDEX = ("not found in the package registry", "there is no version of", "no versions of")
REPO_LABELS = ("repository", "source", "source code", "code", "homepage")


@dataclass(frozen=True, kw_only=True)
class PinnedAction:
    name: str  # owner/repo
    tag: str
    sha: str
    source: str
    verified: str

    @property
    def uses(self) -> str:
        return f"{self.name}@{self.sha}"


@cache
def pinned_actions() -> dict[str, PinnedAction]:
    """pinner/data/actions.toml, checked: every entry a name, a tag and a 40-hex commit."""
    data = tomllib.loads(ACTIONS.read_text(encoding="utf-8"))
    out: dict[str, PinnedAction] = {}
    for i, entry in enumerate(data.get("action", [])):
        action = PinnedAction(
            **{k: str(entry.get(k, "")) for k in PinnedAction.__dataclass_fields__}
        )
        if not (re.fullmatch(r"[\w.-]+/[\w./-]+", action.name) and SHA.match(action.sha)):
            msg = (
                f"{ACTIONS}: action[{i}]: needs name = 'owner/repo' and a 40-hex sha; please report"
            )
            raise ConfigError(msg)
        out[action.name] = action
    return out


# --- which pinner is this? -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PinnerSource:
    """How a workflow installs exactly this pinner."""

    version: str
    git: str = ""  # "git+<repository>@<40-hex commit>" for an unreleased pinner, else ""
    note: str = ""  # said to the user ("" for a released pinner)
    project_dir: Path | None = None  # a local checkout (its pyproject names the build backend)


def _distribution() -> Distribution:
    from importlib import metadata

    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        msg = (
            f"pinner runs from a source tree without its distribution ({DIST}) installed, so "
            "init cannot tell which pinner the workflow should install: `pip install -e .` first"
        )
        raise ConfigError(msg) from None


def repository_url() -> str:
    """The repository in the installed distribution's Project-URL metadata ("" if none)."""
    urls: dict[str, str] = {}
    for entry in _distribution().metadata.get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        urls[label.strip().lower()] = url.strip()
    for label in REPO_LABELS:
        url = urls.get(label, "")
        if url.startswith("https://"):
            return url.rstrip("/")
    return ""


def pinner_source() -> PinnerSource:
    """Released (from the index) or the commit of a git install / checkout, from direct_url.json."""
    dist = _distribution()
    raw = dist.read_text("direct_url.json")
    direct = json.loads(raw) if raw else {}
    vcs = direct.get("vcs_info", {})
    if vcs.get("vcs") == "git" and SHA.match(vcs.get("commit_id", "")):
        url = str(direct["url"]).removeprefix("git+")
        if not url.startswith("https://"):  # a local clone or ssh: not reachable from a runner
            url = repository_url()
        if not url:
            msg = (
                f"pinner {dist.version} was installed from {direct['url']}, which a workflow "
                "cannot reach, and its metadata names no repository: install pinner from an "
                "https:// repository or a release, or run `pinner init --no-workflow`"
            )
            raise ConfigError(msg)
        return PinnerSource(
            version=dist.version,
            git=f"git+{url}@{vcs['commit_id']}",
            note=f"pinner {dist.version} was installed from git: the workflow installs that commit",
        )
    if "dir_info" in direct:
        return _from_checkout(dist.version, Path(unquote(urlparse(direct["url"]).path)))
    return PinnerSource(version=dist.version)  # from an index or a file: looked up on the index


def _from_checkout(version: str, path: Path) -> PinnerSource:
    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    repo = repository_url()
    if not SHA.match(commit) or not repo:
        msg = (
            f"pinner {version} is a development install from {path}, which is not a git checkout "
            "with a commit (or pinner's metadata names no repository), so the workflow cannot "
            "install this exact pinner: install a released pinner, or run `pinner init --no-workflow`"
        )
        raise ConfigError(msg)
    dirty = " (its uncommitted changes are not included)" if git("status", "--porcelain") else ""
    note = (
        f"pinner {version} is a development install, not a release: the workflow installs commit "
        f"{commit[:12]} of {repo}{dirty}; push that commit before the workflow runs"
    )
    return PinnerSource(version=version, git=f"git+{repo}@{commit}", note=note, project_dir=path)


# --- the hashed requirements ---------------------------------------------------------------------


def hashed_requirements(root: Path, source: PinnerSource, python: str) -> str:
    """The compiled, hashed requirements for the workflow's Python: pinner itself from the index
    (ConfigError when the index lacks this version), or the dependencies of a git commit."""
    if not source.git:
        try:
            return compile_hashed(root, [f"{DIST}=={source.version}"], python)
        except _NotOnIndex:
            msg = (
                f"pinner {source.version} ({DIST}) is not on the package index and was not "
                "installed from git, so the workflow cannot install this exact pinner: install "
                f"a released pinner, or pinner from git (pip install 'git+<repository>@<commit>'), "
                "or run `pinner init --no-workflow`"
            )
            raise ConfigError(msg) from None
    return compile_hashed(root, _dependencies(source), python)


def _dependencies(source: PinnerSource) -> list[str]:
    """pinner's own requirements (no extras) and its build backend: what a --no-deps,
    --no-build-isolation install of the commit needs."""
    from packaging.requirements import Requirement

    reqs = []
    for line in _distribution().requires or []:
        req = Requirement(line)
        if req.marker is None or "extra" not in str(req.marker):
            reqs.append(line)
    build = ["hatchling"]
    if source.project_dir is not None and (source.project_dir / "pyproject.toml").is_file():
        text = (source.project_dir / "pyproject.toml").read_text(encoding="utf-8")
        build = tomllib.loads(text).get("build-system", {}).get("requires", build)
    return reqs + [str(b) for b in build]


class _NotOnIndex(Exception):
    pass


def compile_hashed(root: Path, requirements: list[str], python: str) -> str:
    """`uv pip compile --generate-hashes` of `requirements` for `python` on the runner's platform,
    run in the project root so the project's and the user's uv configuration (a mirror) apply."""
    from pinner.resolve.uv import uv_binary

    with tempfile.TemporaryDirectory(prefix="pinner-init-") as tmp:
        given = Path(tmp) / "requirements.in"
        given.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
        out = Path(tmp) / "requirements.txt"
        cmd = [
            uv_binary(),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-annotate",
            "--python-version",
            python,
            "--python-platform",
            PLATFORM,
            "--custom-compile-command",
            "pinner init",
            "--output-file",
            str(out),
            str(given),
        ]
        env = dict(os.environ)
        env.setdefault("UV_PYTHON_DOWNLOADS", "never")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            if any(s in proc.stderr.lower() for s in NOT_ON_INDEX) and DIST in proc.stderr:
                raise _NotOnIndex
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()][-8:]
            msg = (
                "cannot resolve pinner's requirements for the workflow (uv pip compile; the "
                "package index must be reachable, or use --no-workflow):\n    "
                + "\n    ".join(lines)
            )
            raise ConfigError(msg)
        return out.read_text(encoding="utf-8")


def requirements_text(source: PinnerSource, compiled: str, python: str) -> str:
    what = "the dependencies and build backend of " if source.git else ""
    lines = [
        f"# Written by `pinner init` (pinner {source.version}) for the workflow",
        f"# .github/workflows/pinner-update.yml: {what}the pinner that wrote it, hashed,",
        f"# for Python {python} on x86_64 Linux; installed with `pip install --require-hashes",
        "# --no-deps -r`. After upgrading pinner, rewrite it with `pinner init --force`.",
    ]
    if source.git:
        lines += [
            f"# pinner itself: {source.git}",
            "# (pip cannot hash-check a commit; its 40-hex id names its content).",
        ]
    body = "\n".join(ln for ln in compiled.splitlines() if not ln.startswith("#")).strip("\n")
    return "\n".join(lines) + "\n" + body + "\n"


# --- the workflow --------------------------------------------------------------------------------

CRON = "17 5 * * 1"  # Mondays 05:17 UTC: off the full hour, when GitHub's scheduler is busiest
BRANCH = "pinner/update"


def workflow_text(*, python: str, source: PinnerSource, paths: list[str]) -> str:
    import jinja2

    from pinner.render.output import packaged_templates

    for value in (python, *paths, source.git):
        if not re.fullmatch(r"[\w.+:/@#~=-]*", value):
            msg = f"pinner init: {value!r} cannot be written into a workflow safely; please report"
            raise ConfigError(msg)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(packaged_templates() / "init")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return env.get_template("pinner-update.yml.j2").render(
        version=source.version,
        git=source.git,
        python=python,
        cron=CRON,
        branch=BRANCH,
        requirements=REQUIREMENTS.as_posix(),
        paths=paths,
        actions=pinned_actions(),
    )
