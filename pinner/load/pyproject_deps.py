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
    from collections.abc import Callable
    from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        msg = f"{path}: invalid TOML: {e}; fix the syntax at that line"
        raise ConfigError(msg) from None
    except OSError as e:
        msg = f"{path}: cannot read: {e.strerror}"
        raise ConfigError(msg) from None


def pyproject_lines(
    path: Path, extras: tuple[str, ...], shown: str, holds: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    """(origin, PEP 508 text) of the dependencies and of the named extras, in file order; a
    reference to the project's own extras (`app[eval]`) is replaced by that extra's entries
    when its marker `holds(marker, origin)` for the target. Iterative: any depth of extras."""
    project = load_toml(path).get("project")
    if not isinstance(project, dict):
        msg = (
            f"{shown}: no [project] table: pinner reads static [project] dependencies (PEP 621); "
            "name a requirements file in `requirements` instead"
        )
        raise ConfigError(msg)
    dynamic = project.get("dynamic", [])
    for key in ["dependencies"] + (["optional-dependencies"] if extras else []):
        if isinstance(dynamic, list) and key in dynamic:
            msg = (
                f"{shown}: project.{key} is dynamic (listed in project.dynamic): pinner reads "
                f"static dependencies only; list them under [project] {key}, or name a "
                "requirements file in `requirements`"
            )
            raise ConfigError(msg)
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        msg = f"{shown}: project.optional-dependencies must be a table of lists"
        raise ConfigError(msg)
    own = canonicalize_name(str(project.get("name", "")))
    by_name = {canonicalize_name(k): k for k in optional}
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    via = f"{shown}[{','.join(extras)}]"
    # work items: ("extra", name, via) or ("list", key, values, index); a stack keeps file order
    work: list[tuple[Any, ...]] = [("extra", e, via) for e in reversed(extras)]
    work.append(("list", "project.dependencies", _strings(project, "dependencies", shown), 0))
    while work:
        item = work.pop()
        if item[0] == "extra":
            extra = by_name.get(canonicalize_name(item[1]))
            if extra is None:
                known = ", ".join(sorted(optional)) or "none"
                msg = f"{item[2]}: {shown} has no extra {item[1]!r} (its extras: {known})"
                raise ConfigError(msg)
            if extra not in done:
                done.add(extra)
                values = _strings(optional, extra, shown, "project.optional-dependencies.")
                work.append(("list", f"project.optional-dependencies.{extra}", values, 0))
            continue
        _, key, values, i = item
        if i == len(values):
            continue
        work.append(("list", key, values, i + 1))
        origin, text = f"{shown}:{key}[{i}]", values[i]
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            msg = f"{origin}: not a valid requirement: {text!r} ({str(e).splitlines()[0]})"
            raise ConfigError(msg) from None
        if not own or canonicalize_name(req.name) != own:
            out.append((origin, text))
        elif req.marker is None or holds(str(req.marker), origin):  # the project's own extras
            work += [("extra", extra, origin) for extra in sorted(req.extras, reverse=True)]
    return out


def _strings(table: dict[str, Any], key: str, shown: str, prefix: str = "project.") -> list[str]:
    values = table.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        msg = f"{shown}: {prefix}{key} must be a list of requirement strings"
        raise ConfigError(msg)
    return values
