"""render: TargetLock + templates -> Artifacts. Pure: text out, no files written.

The install steps are computed once here (`install_steps`), and every recipe (Dockerfile,
install.sh, Modal image) renders the same list, so they cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pinner import safe
from pinner.errors import ConfigError
from pinner.lock import fingerprint
from pinner.model import Artifact, Pin, TargetLock, plain
from pinner.render.output import template_folders
from pinner.verify import verify

if TYPE_CHECKING:
    import jinja2
    import jinja2.sandbox

INSTALLERS = ("pip", "uv")
PREAMBLES = {
    "Dockerfile": "# syntax=docker/dockerfile:1\n",
    "install.sh": "#!/usr/bin/env bash\n",
    "verify_env.py": "#!/usr/bin/env python3\n",
}
EXECUTABLE = ("install.sh", "verify_env.py")
SBOM = "sbom.cdx.json"  # written with cyclonedx-python-lib, not a template
PYLOCK = "pylock.toml"  # PEP 751, written by pinner.render.pylock, not a template
VIA_DEFAULT = "pinner plan"


@dataclass(frozen=True)
class InstallStep:
    layer: str  # torch | main | extensions | verify
    title: str
    why: str
    files: tuple[str, ...]  # files the step reads
    command: str  # the shell command, identical in every recipe
    cache: str  # cache folder for a BuildKit cache mount, "" for none
    env: tuple[tuple[str, str], ...] = ()  # build environment, for recipes that set it apart
    project: tuple[str, ...] = ()  # files or folders of the project the step reads (root-relative)


# A path of the project that reaches a COPY line, a shell word and a requirements file: plain
# segments only (no `..`, no glob or `$`, no leading `-` or `/`), or the project root itself.
_PROJECT_PATH = re.compile(r"\.|[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*")


def project_files(tl: TargetLock) -> list[tuple[Pin, str]]:
    """The locked packages that are files or folders of the project (a wheel by path, a local
    project), each with its path relative to the project root, checked."""
    out = []
    for i, pin in enumerate(tl.pins):
        if pin.source == "local":
            path = pin.url or "."
        elif pin.source == "url" and pin.url.startswith("file:"):
            path = pin.url.removeprefix("file:")
        else:
            continue
        if not _PROJECT_PATH.fullmatch(path):
            msg = (
                f"target {tl.plan.target.name}: packages[{i}] ({pin.name}): {path!r} is not a "
                "plain path inside the project (letters, digits, `._+-` and `/`, no `..`); "
                "rename it so the recipes can copy it, and lock again"
            )
            raise ConfigError(msg)
        out.append((pin, path))
    return out


def from_target(path: str, root: str) -> str:
    """A project path as seen from the target's folder (`root` is the project root from there),
    in a form pip reads as a path, never as a package name."""
    found = posixpath.normpath(posixpath.join(root, path))
    return found if found.startswith(("../", "./", "/")) or found == ".." else "./" + found


def install_steps(tl: TargetLock, installer: str, root: str = "../..") -> list[InstallStep]:
    plan = tl.plan
    pip = "python -m pip install" if installer == "pip" else "uv pip install"
    cache = "/root/.cache/pip" if installer == "pip" else "/root/.cache/uv"
    # uv: --default-index, not its deprecated --index-url, which UV_DEFAULT_INDEX (a mirror set in
    # the environment) silently overrides; an explicit --default-index wins over the environment.
    option = "--index-url" if installer == "pip" else "--default-index"
    # the committed index, overridable at install time (a mirror): every recipe sets
    # TORCH_INDEX_URL (install.sh from PINNER_TORCH_INDEX_URL, the Dockerfile as an ARG)
    index = f' {option} "$TORCH_INDEX_URL"' if plan.index_url else ""
    where = plan.index_url or "the installer's configured index (PyPI ships this build)"
    build = sorted(p.name for p in tl.pins if p.layer == "build")
    # uv's hash-checking mode wants a hash for every package of the resolution, the installed
    # torch layer included (pip skips installed ones): uv reads the hashed torch layer again.
    again = "" if installer == "pip" else " -r torch-requirements.txt"
    files = project_files(tl)
    groups = index_groups(tl)
    again += "".join(f" -r {g.file}" for g in groups) if installer == "uv" else ""
    steps = [
        InstallStep(
            layer="torch",
            title=f"torch layer: torch {plan.torch.pin}"
            + (" and its CUDA libraries" if plan.torch.cuda else ""),
            why=f"installed first, from {where} only, so that nothing later can pick another "
            "build; --no-deps because every package of the layer is listed and hashed",
            files=("torch-requirements.txt",),
            command=f"{pip} --no-deps --require-hashes{index} -r torch-requirements.txt",
            cache=cache,
        ),
        *(
            InstallStep(
                layer="index",
                title=f"[indexes.{g.name}] layer: {', '.join(p.name for p in g.pins)}",
                why=f"from {g.url} only, the index the matrix binds them to (never an extra "
                "index); --no-deps because their dependencies are locked in the main layer",
                files=(g.file,),
                command=f'{pip} --no-deps --require-hashes {option} "${g.var}" -r {g.file}',
                cache=cache,
            )
            for g in groups
        ),
        InstallStep(
            layer="main",
            title="main layer: the application's requirements"
            + (f" and the source builds' tools ({', '.join(build)})" if build else ""),
            why="from the configured index; constraints.txt pins every package, torch included, "
            "so no requirement can replace the torch layer",
            files=("constraints.txt", "requirements.txt"),
            command=f"{pip}{_no_deps(tl)} --require-hashes -c constraints.txt{again} -r requirements.txt",
            cache=cache,
            project=tuple(
                path for pin, path in files if pin.source == "url" and pin.layer != "extension"
            ),
        ),
    ]
    if plan.extensions:
        steps.append(_extension_step(tl, pip, cache))
    local = [(pin, path) for pin, path in files if pin.source == "local"]
    if local:
        steps.append(
            InstallStep(
                layer="project",
                title="the project: " + ", ".join(pin.name for pin, _ in local),
                why="last, --no-deps: its dependencies are locked and installed above; a folder "
                "has no hash to check (its build backend comes from the configured index)",
                files=(),
                command=f"{pip} --no-deps "
                + " ".join(safe.shell(from_target(path, root)) for _, path in local),
                cache=cache,
                project=tuple(path for _, path in local),
            )
        )
    steps.append(
        InstallStep(
            layer="verify",
            title="verify: the environment is exactly what pinner.lock says",
            why="fails the build, not the first request, when a version, a CUDA build or an "
            "extension import is wrong; no GPU here: run `python verify_env.py --gpu` in the container",
            files=("verify_env.py",),
            command="python verify_env.py",
            cache="",
        )
    )
    return steps


@dataclass(frozen=True)
class IndexGroup:
    """The packages of one [indexes] table, installed in a step of their own."""

    name: str
    url: str  # the committed URL
    variant: str  # what {variant} stands for in a mirror's URL
    var: str  # the recipes' variable: INDEX_<NAME>_URL
    env: str  # the install-time mirror: PINNER_INDEX_<NAME>_URL
    file: str  # index-<name>.txt
    pins: tuple[Pin, ...]


def index_groups(tl: TargetLock) -> list[IndexGroup]:
    from pinner.load.matrix import index_env

    named = dict(tl.indexes)
    named.pop("pytorch", None)
    groups = []
    for name, url in sorted(named.items()):
        pins = tuple(sorted((p for p in tl.pins if p.source == name), key=lambda p: p.name))
        if pins:
            env = index_env(name)
            groups.append(
                IndexGroup(
                    name=name,
                    url=url,
                    variant=tl.plan.torch.variant,
                    var=env.removeprefix("PINNER_"),
                    env=env,
                    file=f"index-{name}.txt",
                    pins=pins,
                )
            )
    return groups


def _no_deps(tl: TargetLock) -> str:
    """ " --no-deps" when a main-layer package depends on an extension: the lock is complete, and
    the installer must not build the extension there (with build isolation, before its turn)."""
    main = {p.name for p in tl.pins if p.layer in ("main", "build")}
    pulled = any(set(p.via) & main for p in tl.pins if p.layer == "extension")
    return " --no-deps" if pulled else ""


def _extension_step(tl: TargetLock, pip: str, cache: str) -> InstallStep:
    plan = tl.plan
    env: dict[str, str] = {}
    for ext in plan.extensions:
        env.update(dict(ext.env))
    if any(e.strategy == "source" for e in plan.extensions):
        env.update({"CC": "gcc", "CXX": "g++", "MAX_JOBS": "4"})
        if plan.compute_capability:
            env["TORCH_CUDA_ARCH_LIST"] = plan.compute_capability
    # MAX_JOBS stays overridable from the environment (install.sh) or a build argument (Dockerfile)
    prefix = " ".join(
        f"{k}=${{{k}:-{v}}}" if k == "MAX_JOBS" and v.isdigit() else f"{k}={safe.shell(v)}"
        for k, v in sorted(env.items())
    )
    hashes = (
        " --require-hashes"
        if all(_extension_pin(tl, e.name).hashes for e in plan.extensions)
        else ""
    )
    names = ", ".join(f"{e.name} ({e.strategy})" for e in plan.extensions)
    return InstallStep(
        layer="extensions",
        title=f"extension layer: {names}",
        why="after torch, each extension exactly once (the main layer leaves them out); "
        "--no-build-isolation so a source build compiles against the installed torch",
        files=("extensions.txt",),
        command=(f"{prefix} " if prefix else "")
        + f"{pip} --no-deps --no-build-isolation{hashes} -c constraints.txt -r extensions.txt",
        cache=cache,
        env=tuple(sorted(env.items())),
    )


def _extension_pin(tl: TargetLock, name: str) -> Pin:
    return next(
        (p for p in tl.pins if p.name == name),
        Pin(name=name, version="", source="url", layer="extension", via=()),
    )


def requirement_line(pin: Pin, root: str = "../..") -> str:
    """How a requirements file names a locked package: by version, by the URL the user wrote,
    or, for a file of the project, by its path from the target's folder (where the recipes run:
    `root` is the project root seen from there)."""
    if pin.source == "url" and pin.url.startswith("file:"):
        return from_target(pin.url.removeprefix("file:"), root)
    if pin.source == "url" and pin.url and pin.layer != "extension":
        return f"{pin.name} @ {pin.url}"
    return f"{pin.name}=={pin.version}"


def context(
    tl: TargetLock, installer: str, root: str = "../..", folder: str | None = None
) -> dict[str, Any]:
    """Everything the templates see. `root` is the project root from the target's folder;
    `folder` the target's folder from the project root ("" when outside the project)."""
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.lock.registry import pinned

    plan = tl.plan
    kb = load_knowledge()
    layers: dict[str, list[Pin]] = {"torch": [], "main": [], "build": [], "extension": []}
    installable = [p for p in sorted(tl.pins, key=lambda p: p.name) if p.source != "local"]
    groups = index_groups(tl)
    bound = {p.name for g in groups for p in g.pins}
    for pin in installable:  # a local project is the user's own to install: not hashable here
        if pin.name not in bound:  # those have a step of their own
            layers[pin.layer].append(pin)
    source_apt = list(plan.apt)
    steps = install_steps(tl, installer, root)
    folder = f"pinned/{plan.target.name}" if folder is None else folder
    return {
        **_build_context(tl, steps, root, folder),
        "plan": plan,
        "target": plan.target,
        "installer": installer,
        "pins": installable,
        "torch_layer": layers["torch"],
        "main_layer": layers["main"] + layers["build"],
        "extension_pins": {p.name: p for p in layers["extension"]},
        "steps": steps,
        "apt": source_apt,
        "env": list(plan.env),
        "indexes": groups,
        "base_image": pinned(plan.base_image, plan.images) if plan.base_image else "",
        "uv_image": safe.image(pinned(kb.docs["packages"]["uv"]["image"], plan.images)),
        "expected_json": Block(json.dumps(verify.expected_from_lock(tl), indent=1, sort_keys=True)),
        "checks_source": Block(verify.source_text()),
        "has_source_builds": any(e.strategy == "source" for e in plan.extensions),
    }


def _build_context(
    tl: TargetLock, steps: list[InstallStep], root: str, folder: str
) -> dict[str, Any]:
    """Where the recipes build: the target's folder, or, when a step reads files of the project
    (a wheel by path, a local project), the project root, with the target's files copied from
    `folder` and the project's kept at their paths under /opt/project."""
    paths = [p for s in steps for p in s.project]
    if paths and not (_PROJECT_PATH.fullmatch(folder) and folder != "."):
        msg = (
            f"target {tl.plan.target.name}: the recipes copy files of the project "
            f"({', '.join(paths)}), so they build from the project root, and the generated "
            f"folder must be a plain path inside it (it is {folder or 'outside the project'!r}); "
            "generate into the project (--out inside it)"
        )
        raise ConfigError(msg)
    prefix = f"{folder}/" if paths else ""
    return {
        "project_paths": paths,
        "folder": folder,
        "root": root,
        "workdir": f"/opt/project/{folder}" if paths else "/opt/pinner",
        "copies": [
            {
                "files": " ".join(prefix + f for f in s.files),
                "project": [
                    (p, "/opt/project/" if p == "." else f"/opt/project/{p}") for p in s.project
                ],
            }
            for s in steps
        ],
    }


class Block(str):
    """Text a template may place as several lines (embedded source, JSON). Every other value a
    template prints is one line: `_finalize` escapes control characters in it."""

    __slots__ = ()


def _finalize(value: object) -> object:
    """Applied to every `{{ ... }}`: a value never brings a raw newline or control character
    into a rendered file, whatever the template does with it."""
    if isinstance(value, Block) or value is None:
        return value
    return safe.comment(value)


def environment(folders: list[Path]) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    """Jinja in its sandbox (templates cannot reach Python internals), strict about undefined
    names, with the quoting filters: shq (shell word), envq (Dockerfile ENV value), pyrepr
    (Python literal), pydoc (inside a docstring), comment (after `#`)."""
    import jinja2
    import jinja2.sandbox

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=_finalize,
    )
    env.filters["via"] = lambda via: ", ".join(via) if via else VIA_DEFAULT
    env.filters["requirement"] = requirement_line
    env.filters["shq"] = safe.shell
    env.filters["envq"] = safe.docker_value
    env.filters["pyrepr"] = safe.python_literal
    env.filters["pydoc"] = safe.pydoc
    env.filters["comment"] = safe.comment
    env.filters["modal_path"] = lambda path: safe.shell(
        "/opt/project" if path == "." else f"/opt/project/{path}"
    )
    return env


def _render_file(env: jinja2.Environment, file: str, ctx: dict[str, Any]) -> str:
    """One template rendered; a broken or hostile template is one ConfigError naming it."""
    import jinja2

    name = f"{file}.j2"
    try:
        template = env.get_template(name)
        return template.render(ctx)
    except jinja2.TemplateSyntaxError as e:
        where = f"{e.filename or name}:{e.lineno}"
        msg = f"{where}: template syntax error: {safe.comment(e.message or '')}; fix the template"
    except jinja2.exceptions.SecurityError as e:
        msg = (
            f"{_template_path(env, name)}: refused by the template sandbox: "
            f"{safe.comment(str(e))}; templates may only use the values pinner passes them"
        )
    except jinja2.TemplateError as e:
        msg = f"{_template_path(env, name)}: {safe.comment(str(e))}; fix the template"
    except UnicodeDecodeError as e:
        msg = f"{_template_path(env, name)}: not UTF-8 text (byte {e.start}); save it as UTF-8"
    except RecursionError:
        msg = f"{_template_path(env, name)}: recursion too deep; fix the template"
    except (ArithmeticError, LookupError, TypeError, ValueError, OverflowError) as e:
        msg = f"{_template_path(env, name)}: {type(e).__name__}: {safe.comment(str(e))}; fix the template"
    raise ConfigError(msg)


def _template_path(env: jinja2.Environment, name: str) -> str:
    loader = env.loader
    for folder in getattr(loader, "searchpath", ()):
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return name


def render_target(
    tl: TargetLock,
    *,
    section: str,
    installer: str = "pip",
    templates: Path | None = None,
    source: str = "pinner.toml",
    command: str = "",
    lock_name: str = "pinner.lock",
    root: str = "../..",
    folder: str | None = None,
) -> tuple[Artifact, ...]:
    """Every artifact of one target; `section` is the target's raw text in pinner.lock;
    `command` is how the header says to regenerate (default: `pinner generate --target X`);
    `root` is the project root as a path from the target's output folder (pylock.toml's paths),
    `folder` that folder from the project root ("" outside it; default pinned/<target>)."""
    from pinner.render.output import ARTIFACTS
    from pinner.render.safety import check_target_lock

    check_target_lock(tl, lock_name)
    folders = template_folders(templates)
    env = environment(folders)
    env.filters["requirement"] = functools.partial(requirement_line, root=root)
    ctx = context(tl, installer, root, folder)
    inputs = file_inputs(tl, section, folders, installer)
    name = tl.plan.target.name
    command = command or fingerprint.regenerate_command(name, installer)
    out = []
    for file in ARTIFACTS:
        if file == SBOM:
            continue
        if file == PYLOCK:
            from pinner.render import pylock

            body = pylock.document(tl, root=root)
        else:
            body = _render_file(env, file, ctx)
        out.append(_sealed(name, file, body, installer, inputs[file], source, command))
    for group in ctx["indexes"]:
        body = _render_file(env, "index-requirements.txt", {**ctx, "index": group})
        index_inputs = inputs["index-requirements.txt"]
        out.append(_sealed(name, group.file, body, installer, index_inputs, source, command))
    out.append(
        _sbom(
            tl,
            ctx,
            section=section,
            installer=installer,
            inputs=inputs[SBOM],
            source=source,
            command=command,
        )
    )
    return tuple(out)


def file_inputs(
    tl: TargetLock, section: str, folders: list[Path], installer: str
) -> dict[str, str]:
    """Each file's header fingerprint: what that file renders from (the lock head keeps the same
    digests, so `check` compares strings), so a change rewrites only the files it reaches."""

    from pinner.render.output import ARTIFACTS

    fields = fingerprint.render_digests(plain(tl), section)
    out = {}
    every = (*ARTIFACTS, "index-requirements.txt")  # the template of each index-<name>.txt
    for file, (template, own) in fingerprint.template_digests(folders, every).items():
        used = fields["section"] if own else fields[file]
        out[file] = fingerprint.file_inputs(used, template, installer)
    return out


def _sealed(
    name: str, file: str, body: str, installer: str, inputs: str, source: str, command: str
) -> Artifact:
    text = fingerprint.seal(
        body,
        target=name,
        installer=installer,
        inputs=inputs,
        preamble=PREAMBLES.get(file, ""),
        source=source,
        command=command,
    )
    return Artifact(path=PurePosixPath(name) / file, text=text, executable=file in EXECUTABLE)


def _sbom(
    tl: TargetLock,
    ctx: dict[str, Any],
    *,
    section: str,
    installer: str,
    inputs: str,
    source: str,
    command: str,
) -> Artifact:
    """sbom.cdx.json: CycloneDX, sealed by a property (JSON has no comments)."""
    from pinner.render import sbom

    name = tl.plan.target.name
    images = {"base": ctx["base_image"], "uv": ctx["uv_image"]}
    doc = sbom.document(tl, section=section, images=images)
    text = fingerprint.seal_json(
        doc, target=name, installer=installer, inputs=inputs, source=source, command=command
    )
    return Artifact(path=PurePosixPath(name) / SBOM, text=text)
