"""Static dependencies of a pyproject.toml named in a target's `requirements`
(`"pyproject.toml"`, `"pyproject.toml[train,eval]"`): `[project] dependencies` and the named
`[project.optional-dependencies]`, with the project's references to its own extras
(`mypkg[cuda]`) expanded. Dynamic dependencies are refused: pinner does not run build backends.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Line = tuple[str, str, tuple[str, ...]]  # (origin, PEP 508 text, guard markers)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        msg = f"{path}: invalid TOML: {e}; fix the syntax at that line"
        raise ConfigError(msg) from None
    except OSError as e:
        msg = f"{path}: cannot read: {e.strerror}"
        raise ConfigError(msg) from None


def pyproject_lines(path: Path, extras: tuple[str, ...], shown: str) -> list[Line]:
    """The dependencies and the named extras' dependencies, in file order, each with its
    origin (`pyproject.toml:project.optional-dependencies.train[0]`)."""
    project = load_toml(path).get("project")
    if not isinstance(project, dict):
        msg = (
            f"{shown}: no [project] table: pinner reads static [project] dependencies (PEP 621); "
            "name a requirements file in `requirements` instead"
        )
        raise ConfigError(msg)
    dynamic = project.get("dynamic", [])
    keys = ["dependencies"] + (["optional-dependencies"] if extras else [])
    for key in keys:
        if isinstance(dynamic, list) and key in dynamic:
            msg = (
                f"{shown}: project.{key} is dynamic (listed in project.dynamic): pinner reads "
                f"static dependencies only; list them under [project] {key}, or name a "
                "requirements file in `requirements`"
            )
            raise ConfigError(msg)
    own = canonicalize_name(str(project.get("name", "")))
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        msg = f"{shown}: project.optional-dependencies must be a table of lists"
        raise ConfigError(msg)
    by_name = {canonicalize_name(k): k for k in optional}
    out: list[Line] = []
    done: set[tuple[str, tuple[str, ...]]] = set()  # (extra, guards): read once per path

    def add(key: str, values: object, guards: tuple[str, ...]) -> None:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            msg = f"{shown}: {key} must be a list of requirement strings"
            raise ConfigError(msg)
        for i, text in enumerate(values):
            origin = f"{shown}:{key}[{i}]"
            try:
                req = Requirement(text)
            except InvalidRequirement as e:
                msg = f"{origin}: not a valid requirement: {text!r} ({str(e).splitlines()[0]})"
                raise ConfigError(msg) from None
            if own and canonicalize_name(req.name) == own:  # the project's own extras
                marker = (str(req.marker),) if req.marker else ()
                for extra in sorted(req.extras):
                    expand(extra, origin, guards + marker)
                continue
            out.append((origin, text, guards))

    def expand(extra: str, via: str, guards: tuple[str, ...]) -> None:
        key = by_name.get(canonicalize_name(extra))
        if key is None:
            known = ", ".join(sorted(optional)) or "none"
            msg = f"{via}: {shown} has no extra {extra!r} (its extras: {known})"
            raise ConfigError(msg)
        if (key, guards) in done:
            return
        done.add((key, guards))
        add(f"project.optional-dependencies.{key}", optional[key], guards)

    add("project.dependencies", project.get("dependencies", []), ())
    for extra in extras:
        expand(extra, f"{shown}[{','.join(extras)}]", ())
    return out
