"""load: matrix TOML -> `Matrix` of `Target`s. Unknown keys are refused with a suggestion.

Found in this order: `--matrix PATH`, then the nearest `pinner.toml` or `[tool.pinner]` in a
`pyproject.toml`, in the working folder or above it up to the repository root or the home folder,
then the built-in presets (`matrices/default.toml`, shipped inside the wheel).
Kept free of heavy imports: `pinner check` loads the matrix on every commit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pinner import safe
from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pinner.model import Matrix, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"
TORCH_INDEX_ENV = "PINNER_TORCH_INDEX_URL"
DEFAULT_PYTHON = "3.11"
DEFAULT_PLATFORM = "linux-x86_64"

TOP_KEYS = ("defaults", "targets", "indexes", "lock", "out", "templates")
TARGET_KEYS = (
    "gpu",
    "cuda",
    "torch",
    "python",
    "platform",
    "driver",
    "base-image",
    "requirements",
    "build",
    "torch-index-url",
    "pin-images",
    "apt",
    "env",
)
INDEX_KEYS = ("url", "packages", "targets")
# source roles pinner itself uses (pinner.model.Source): an [indexes] table may not take them
RESERVED_INDEXES = ("default", "pytorch", "url", "local", "torch")
# what pinner itself sets in the recipes, or what steers the installer to another index
RESERVED_ENV = ("PATH", "VIRTUAL_ENV", "PYTHONHOME", "TORCH_INDEX_URL", "DEBIAN_FRONTEND")
RESERVED_ENV_PREFIXES = ("PIP_", "UV_", "PINNER_", "INDEX_")
# read-only in bash (its manual, "Shell Variables"): `export UID=...` stops install.sh (set -e)
BASH_READONLY = ("UID", "EUID", "PPID", "SHELLOPTS", "BASHOPTS", "BASH_VERSINFO")
BUILD_VALUES = ("auto", "wheel", "source")
PLATFORMS = {
    "linux-x86_64": "linux-x86_64",
    "linux_x86_64": "linux-x86_64",
    "x86_64": "linux-x86_64",
    "amd64": "linux-x86_64",
    "linux-aarch64": "linux-aarch64",
    "linux_aarch64": "linux-aarch64",
    "aarch64": "linux-aarch64",
    "arm64": "linux-aarch64",
}
_SPEC = re.compile(r"\s*(~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_EXTRA = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def index_env(name: str) -> str:
    """The variable that names a mirror of an [indexes] table, when locking and installing:
    PINNER_INDEX_<NAME>_URL (flash-infer -> PINNER_INDEX_FLASH_INFER_URL)."""
    return f"PINNER_INDEX_{name.upper().replace('-', '_')}_URL"


def preset_path() -> Path:
    """The built-in presets: inside the wheel, or matrices/ of a source checkout."""
    packaged = Path(__file__).parent.parent / "presets" / "default.toml"
    if packaged.exists():
        return packaged
    return Path(__file__).parent.parent.parent / "matrices" / "default.toml"


class Found(NamedTuple):
    """Which file holds the matrix (None: the built-in presets), which table of it ("" or
    "tool.pinner"), and why that one, in words (`-v` prints it)."""

    path: Path | None
    table: str
    why: str


def find_matrix(explicit: Path | None, cwd: Path) -> tuple[Path | None, str]:
    """Which file holds the matrix, and which table of it ("" or "tool.pinner")."""
    found = discover(explicit, cwd)
    return found.path, found.table


def discover(explicit: Path | None, cwd: Path) -> Found:
    """`--matrix`, else the nearest pinner.toml or pyproject.toml with [tool.pinner] in the
    working folder or above it (as uv and pixi find their project), never above the repository
    root (a folder with .git) or the home folder, else the built-in presets."""
    if explicit is not None:
        if not explicit.is_file():
            msg = f"{safe.comment(explicit)}: no such matrix file (given with --matrix)"
            raise ConfigError(msg)
        table = "tool.pinner" if explicit.name == "pyproject.toml" else ""
        return Found(explicit, table, f"{explicit} (given with --matrix)")
    home = _home()
    folder = cwd
    for folder in (cwd, *cwd.parents):
        where = "in the working folder" if folder == cwd else "the nearest above the working folder"
        if (folder / "pinner.toml").is_file():
            return Found(folder / "pinner.toml", "", f"{folder / 'pinner.toml'} ({where})")
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _has_tool_pinner(pyproject):
            return Found(pyproject, "tool.pinner", f"[tool.pinner] in {pyproject} ({where})")
        if folder == home or (folder / ".git").exists():
            break
    why = f"the built-in presets (no pinner.toml or [tool.pinner] from {cwd} up to {folder})"
    return Found(None, "", why)


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        return None


def _has_tool_pinner(pyproject: Path) -> bool:
    """Whether a pyproject.toml has a [tool.pinner] table; one that cannot be read is an error
    naming it (a project's own file, inside its repository)."""
    tool = _read_toml(pyproject).get("tool", {})
    return isinstance(tool, dict) and "pinner" in tool


def load_matrix(explicit: Path | None = None, cwd: Path | None = None) -> Matrix:
    """Find and read the matrix; every problem in it is reported at once."""
    from pinner.model import Matrix, Target

    raw = read_matrix(explicit, cwd)
    return Matrix(
        notes=raw["notes"],
        path=raw["path"],
        root=raw["root"],
        targets=tuple(Target(**fields) for fields in raw["targets"]),
        lock=raw["lock"],
        out=raw["out"],
        templates=raw["templates"],
    )


def read_matrix(explicit: Path | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """The matrix as plain, checked data (no dataclasses: `pinner check` reads it this way)."""
    cwd = (cwd or Path.cwd()).resolve()
    path, table, why = discover(explicit, cwd)
    if path is None:
        raw = _load(preset_path(), "", root=cwd, preset=True)
    else:
        raw = _load(path.resolve(), table, root=path.resolve().parent, preset=False)
    raw["found"] = why
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as e:
        msg = f"{path}: cannot read: {e.strerror}; check that it is a readable file"
        raise ConfigError(msg) from e
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        msg = f"{path}:{line}: not UTF-8 text (byte {e.start}); save the file as UTF-8"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as e:
        msg = f"{path}: invalid TOML: {safe.comment(str(e))}; fix the syntax at that line"
        raise ConfigError(msg) from e
    except RecursionError:
        msg = f"{path}: nested too deeply to read; flatten its arrays and tables"
        raise ConfigError(msg) from None


def _load(path: Path, table: str, *, root: Path, preset: bool) -> dict[str, Any]:
    doc: Mapping[str, Any] = _read_toml(path)
    fallback = _default_requirements(doc, table, root)
    if table:
        tool = doc.get("tool", {})
        if not isinstance(tool, dict) or "pinner" not in tool:  # --matrix pyproject.toml
            msg = (
                f"{path}: no [tool.pinner] table; add one with [tool.pinner.targets.<name>] "
                "tables, or give --matrix a pinner.toml"
            )
            raise ConfigError(msg)
        doc = tool["pinner"]
        if not isinstance(doc, dict):
            msg = f"{path}: tool.pinner: must be a table ([tool.pinner])"
            raise ConfigError(msg)
    shown = "built-in presets" if preset else _shown(path, root)
    prefix = f"{table}." if table else ""
    problems: list[str] = []
    _unknown_keys(doc, TOP_KEYS, f"{shown}: {prefix}", problems)
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(f"{shown}: {prefix}defaults: must be a table")
        defaults = {}
    _unknown_keys(defaults, TARGET_KEYS, f"{shown}: {prefix}defaults.", problems)
    targets_doc = doc.get("targets", {})
    if not isinstance(targets_doc, dict) or not targets_doc:
        problems.append(f"{shown}: {prefix}targets: define at least one [targets.<name>] table")
        targets_doc = {}
    defaulted: list[str] = []  # targets that name no requirements
    indexes = _indexes(
        doc.get("indexes", {}), f"{shown}: {prefix}indexes", set(targets_doc), problems
    )
    targets = []
    for name, raw in targets_doc.items():
        where = f"{shown}: {prefix}targets.{_key(name)}"
        # what the lock records: relative to the project root, whatever folder pinner ran in
        origin = ("built-in presets" if preset else path.name) + f": {prefix}targets.{name}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a table")
            continue
        merged = {**defaults, **raw}
        if "requirements" not in merged:
            merged["requirements"] = list(fallback)
            defaulted.append(name)
        target = _target(
            name, merged, raw, defaults, where, root, problems, f"{shown}: {prefix}defaults"
        )
        if target is not None:
            bound = tuple(
                (i, url, pkgs) for i, url, pkgs, only in indexes if name in only or not only
            )
            targets.append({**target, "origin": origin, "indexes": bound})
    settings = {k: doc.get(k) for k in ("lock", "out", "templates")}
    for key, value in settings.items():
        if value is not None and not isinstance(value, str):
            problems.append(f"{shown}: {prefix}{key}: must be a path string")
        elif value is not None and safe.CONTROL.search(value):
            problems.append(
                f"{shown}: {prefix}{key}: {safe.comment(repr(value))} contains a control "
                "character; write a plain relative path"
            )
        elif value is not None and (outside := _outside_repository(Path(value), root)):
            # pinner writes the lock and the out folder: a matrix (from a pull request, say)
            # must not make `pinner lock` overwrite a file elsewhere
            problems.append(
                f"{shown}: {prefix}{key}: {safe.comment(repr(value))} is {outside}; name a path "
                "inside the project's repository"
                + (" (generate --out DIR writes elsewhere)" if key == "out" else "")
            )
    if problems:  # a bad [defaults] entry is found once per target: said once
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    templates = settings["templates"]
    return {
        "notes": _default_note(
            defaulted, len(targets_doc), fallback, "presets" if preset else path, root
        ),
        "path": None if preset else path,
        "root": root,
        "targets": targets,
        "lock": root / (settings["lock"] or "pinner.lock"),
        "out": root / (settings["out"] or "pinned"),
        "templates": (root / templates) if templates else None,
    }


def _default_requirements(doc: Mapping[str, Any], table: str, root: Path) -> tuple[str, ...]:
    """What a target without `requirements` reads: requirements.in beside the matrix file (in
    the working folder for the presets), else, for [tool.pinner], that pyproject's static
    dependencies; nothing when neither exists."""
    if (root / "requirements.in").is_file():
        return ("requirements.in",)
    project = doc.get("project")
    if table and isinstance(project, dict) and project.get("dependencies"):
        return ("pyproject.toml",)  # static ones: dynamic dependencies are not in the table
    dynamic = project.get("dynamic") if table and isinstance(project, dict) else None
    if isinstance(dynamic, list) and "dependencies" in dynamic:
        return ("pyproject.toml",)  # read, and refused: never locked as torch alone
    return ()


def _default_note(
    defaulted: list[str],
    count: int,
    fallback: tuple[str, ...],
    source: Path | str,
    root: Path | None = None,
) -> tuple[str, ...]:
    """One note, said once, when a default chose the requirements."""
    if not defaulted:
        return ()
    where = "in the working folder" if source == "presets" else f"beside {Path(source).name}"
    who = "" if len(defaulted) == count else f"targets {', '.join(defaulted)}: "
    if not fallback:
        # a requirements.txt is not read by default (often a compiled lock): say so, not "none"
        seen = root is not None and (root / "requirements.txt").is_file()
        name = "requirements.txt" if seen else "requirements.in"
        matrix = "pinner.toml (pinner init writes one)" if source == "presets" else "[defaults]"
        note = (
            f"{who}no requirements: locking the torch layer alone"
            + (f" (requirements.txt {where} is not read unless named)" if seen else "")
            + f'; name them with requirements = ["{name}"] in {matrix}, or create '
            f"requirements.in {where}"
        )
        return (note,)
    what = "its [project] dependencies" if fallback == ("pyproject.toml",) else fallback[0]
    names = "the built-in presets name" if source == "presets" else "the matrix names"
    return (f"{who}requirements: {what} {where} ({names} none)",)


def _key(name: str) -> str:
    """A table name as messages show it: bare when plain, else quoted and escaped (one line)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else safe.comment(repr(name))


def _shown(path: Path, root: Path) -> str:
    """The matrix file as messages name it: relative to the working folder when inside it."""
    del root
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _unknown_keys(
    table: Mapping[str, Any], known: tuple[str, ...], where: str, out: list[str]
) -> None:
    for key in table:
        if key not in known:
            import difflib  # only on an error: keeps `pinner check` lean

            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
            )
            out.append(f"{where}{_key(key)}: unknown key{hint}")


def _target(
    name: str,
    merged: Mapping[str, Any],
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any],
    where: str,
    root: Path,
    problems: list[str],
    defaults_where: str = "defaults",
) -> dict[str, Any] | None:
    before = len(problems)
    try:
        safe.target_name(name)
    except safe.Unsafe as e:
        problems.append(f"{where}: {e}; rename the table, e.g. [targets.a100]")
    _unknown_keys(raw, TARGET_KEYS, f"{where}.", problems)

    def text(key: str, default: str) -> str:
        value = merged.get(key, default)
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: must be a string, got {type(value).__name__}")
            return default
        return value.strip()

    def checked(key: str, value: str, check: Callable[[str], str], fix: str) -> str:
        try:
            return check(value)
        except safe.Unsafe as e:
            problems.append(f"{where}.{key}: {e}; {fix}")
            return ""

    written_gpu = text("gpu", "")
    gpu = checked("gpu", written_gpu, safe.text, 'write the GPU\'s name, e.g. gpu = "A100"')
    if not written_gpu:
        problems.append(f'{where}.gpu: missing; name a GPU (e.g. gpu = "A100") or gpu = "cpu"')
    cuda = _cuda(text("cuda", "auto"), f"{where}.cuda", problems)
    torch = text("torch", "")
    for part in filter(None, torch.split(",")):
        if not _SPEC.fullmatch(part):
            problems.append(f'{where}.torch: {torch!r} is not a version range (e.g. ">=2.7,<2.9")')
            break
    python = text("python", DEFAULT_PYTHON)
    if not re.fullmatch(r"3\.(9|1[0-9])", python):
        problems.append(f'{where}.python: {python!r} is not a CPython version such as "3.11"')
    platform = PLATFORMS.get(text("platform", DEFAULT_PLATFORM).lower(), "")
    if not platform:
        problems.append(
            f"{where}.platform: {merged.get('platform')!r} is not supported; "
            'use "linux-x86_64" or "linux-aarch64"'
        )
    driver = text("driver", "")
    if driver and not re.fullmatch(r"\d+(\.\d+){0,2}", driver):
        problems.append(f'{where}.driver: {driver!r} is not a driver version such as "570.86"')
    if gpu.casefold() == "cpu" and cuda not in ("auto", "cpu"):
        problems.append(f'{where}.cuda: gpu = "cpu" needs no CUDA build; drop cuda or set "cpu"')
    requirements = _requirements(
        merged.get("requirements", []), f"{where}.requirements", root, problems
    )
    builds = _builds(defaults.get("build", {}), raw.get("build", {}), f"{where}.build", problems)
    # the committed index only: PINNER_TORCH_INDEX_URL is a mirror (transport), applied when
    # resolving and installing, never part of a target's inputs
    index = text("torch-index-url", DEFAULT_TORCH_INDEX)
    index_key = f"{where}.torch-index-url"
    if _has_password(index):  # said without the URL: the message must not show the password
        problems.append(_credentials(index_key, TORCH_INDEX_ENV))
    else:
        try:
            safe.url(index, template=True)
        except safe.Unsafe as e:
            problems.append(
                f"{index_key}: {e}; give the index's URL, e.g. https://mirror.example/whl/{{variant}}"
            )
        else:
            if "{variant}" not in index:
                problems.append(
                    f"{index_key}: {index!r} must contain {{variant}} (e.g. .../whl/{{variant}})"
                )
    base_image = text("base-image", "")
    if base_image:
        checked(
            "base-image",
            base_image,
            safe.image,
            'write one image reference, e.g. "nvidia/cuda:12.8.1-runtime-ubuntu24.04"',
        )
    # apt and env merge with [defaults] entry by entry (the target's own win), not key-wise
    apt = _apt(
        [(defaults.get("apt", []), f"{defaults_where}.apt"), (raw.get("apt", []), f"{where}.apt")],
        problems,
    )
    env = _env(
        [(defaults.get("env", {}), f"{defaults_where}.env"), (raw.get("env", {}), f"{where}.env")],
        problems,
    )
    pin_images = merged.get("pin-images", False)
    if not isinstance(pin_images, bool):
        problems.append(f"{where}.pin-images: must be true or false, got {pin_images!r}")
    if len(problems) > before:
        return None
    return {
        "name": name,
        "gpu": gpu,
        "cuda": "cpu" if gpu.casefold() == "cpu" else cuda,
        "torch": torch,
        "python": python,
        "platform": platform,
        "driver": driver,
        "base_image": base_image,
        "requirements": requirements,
        "builds": builds,
        "torch_index_url": index.rstrip("/"),
        "origin": where,
        "pin_images": pin_images is True,
        "apt": apt,
        "env": env,
    }


def _has_password(url: object) -> bool:
    """Whether a URL carries a password (a user name alone is what netrc and keyring look up)."""
    if not isinstance(url, str):
        return False
    userinfo = url.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    return ":" in userinfo


def _credentials(key: str, variable: str) -> str:
    return (
        f"{key}: credentials in a URL would be written into pinner.lock and every recipe; set "
        f"{variable} (a mirror, never written) where pinner and the recipes run, or give the "
        "installer a netrc"
    )


def _cuda(value: str, where: str, problems: list[str]) -> str:
    v = value.lower()
    if v in ("auto", "cpu"):
        return v
    m = re.fullmatch(r"(?:cu(\d{2})(\d)|(\d{2})\.(\d)(?:\.\d+)?)", v)
    if not m:
        problems.append(f'{where}: {value!r} is not a CUDA version; use "12.8", "cu128" or "auto"')
        return "auto"
    major, minor = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"cu{int(major)}{minor}"


def _requirements(value: object, where: str, root: Path, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f'{where}: must be a list of file paths, e.g. ["requirements.in"]')
        return ()
    from pinner.load.requirements import pyproject_entry

    for rel in value:
        if safe.CONTROL.search(rel):
            problems.append(
                f"{where}: {safe.comment(repr(rel))} contains a control character; "
                "name the file without newlines or control characters"
            )
            continue
        entry = pyproject_entry(Path(rel))
        path, extras = entry if entry is not None else (Path(rel), ())
        outside = _outside_repository(path, root)
        if outside:
            problems.append(
                f"{where}: {safe.comment(repr(rel))} is {outside}; name a file of the project "
                "(relative to the matrix file, inside its repository)"
            )
        elif entry is not None and "[" in rel and not all(_EXTRA.match(e) for e in extras):
            problems.append(
                f'{where}: {rel!r}: name extras as in "pyproject.toml[train,eval]" '
                "(letters, digits, '-', '_', '.')"
            )
        elif not (root / path).is_file():
            problems.append(f"{where}: {path} does not exist (paths are relative to {root})")
    return tuple(value)


def _outside_repository(path: Path, root: Path) -> str:
    """Why a requirements path is not the project's ("" when it is): absolute, or outside the
    repository the project is in (the nearest folder above with `.git`; the project's own folder
    when there is none). A monorepo's `../shared.in` is inside its repository."""
    if path.is_absolute():
        return "an absolute path"
    top = root.resolve()
    for folder in (top, *top.parents):
        if (folder / ".git").exists():
            top = folder
            break
    try:
        (root / path).resolve().relative_to(top)
    except ValueError:
        return f"outside the repository ({top})"
    return ""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _builds(
    defaults: object, own: object, where: str, problems: list[str]
) -> tuple[tuple[str, str], ...]:
    merged: dict[str, str] = {}
    for table in (defaults, own):
        if not isinstance(table, dict):
            problems.append(f'{where}: must be a table such as {{ flash-attn = "wheel" }}')
            continue
        for pkg, how in table.items():
            try:
                safe.package_name(pkg)
            except safe.Unsafe as e:
                problems.append(f"{where}.{_key(pkg)}: {e}; name a package, e.g. flash-attn")
                continue
            if how not in BUILD_VALUES:
                problems.append(f"{where}.{pkg}: {how!r} must be one of {', '.join(BUILD_VALUES)}")
                continue
            merged[canonical(pkg)] = how
    return tuple(sorted(merged.items()))


def _apt(tables: list[tuple[object, str]], problems: list[str]) -> tuple[str, ...]:
    """`apt`: Debian package names, each optionally `=version`; [defaults]' first, then the
    target's own (a package named in both takes the target's entry)."""
    merged: dict[str, str] = {}
    for table, where in tables:
        if not isinstance(table, list):
            problems.append(f'{where}: must be a list of Debian package names, e.g. ["ffmpeg"]')
            continue
        seen: dict[str, str] = {}
        for entry in table:
            try:
                name = _apt_entry(entry)
                if name in seen:
                    problems.append(
                        f"{where}: {name} is listed twice ({seen[name]!r}, {entry!r}); keep one"
                    )
                seen[name] = merged[name] = entry
            except safe.Unsafe as e:
                problems.append(
                    f"{where}: {e}; write a Debian package name, optionally with =version "
                    '(e.g. "ffmpeg" or "libsndfile1=1.2.2-1")'
                )
    return tuple(merged.values())


def _apt_entry(entry: object) -> str:
    """The package name of one `apt` entry, after checking its name and version grammar."""
    if not isinstance(entry, str):
        msg = f"{entry!r} is not a string"
        raise safe.Unsafe(msg)
    name, sep, version = entry.partition("=")
    safe.apt_package(name)
    if sep:
        safe.apt_version(version)
    return name


def _env(tables: list[tuple[object, str]], problems: list[str]) -> tuple[tuple[str, str], ...]:
    """`env`: tables of variables; the target's own entries override [defaults]' by name."""
    merged: dict[str, str] = {}
    for table, where in tables:
        if not isinstance(table, dict):
            problems.append(f'{where}: must be a table such as {{ HF_HOME = "/models" }}')
            continue
        for name, value in table.items():
            key = f"{where}.{_key(name)}"
            try:
                safe.env_name(name)
                safe.env_value(value)
            except safe.Unsafe as e:
                problems.append(
                    f"{key}: {e}; use a name of letters, digits and '_' and a one-line string"
                )
                continue
            refused = reserved_env(name)
            if refused:
                problems.append(f"{key}: {refused}")
                continue
            merged[name] = value
    return tuple(merged.items())


def reserved_env(name: str) -> str:
    """Why `env` may not set this variable, with the fix ("" when it may): the matrix refuses
    it, and so does `generate` reading it from a hand-edited lock."""
    if name in BASH_READONLY:
        return (
            f"{name} is read-only in bash, so install.sh would stop at it; remove it, or set it "
            "where the recipe runs (docker run -e, the shell)"
        )
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        return (
            f"pinner sets {name} itself, or it would steer the installer; remove it (an index "
            "belongs in torch-index-url or an [indexes] table)"
        )
    return ""


def _indexes(
    doc: object, where: str, targets: set[str], problems: list[str]
) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """`[indexes.<name>]` tables: (name, url, packages, targets) each. A package is bound to its
    index by an explicit source (never an extra index), so it comes from there and nowhere else."""
    if not isinstance(doc, dict):
        problems.append(f"{where}: must be a table of [indexes.<name>] tables")
        return []
    out = []
    owner: dict[str, str] = {}
    variables: dict[str, str] = {}  # PINNER_INDEX_<NAME>_URL -> the table that has it
    for name, table in doc.items():
        here = f"{where}.{_key(name)}"
        try:
            safe.target_name(name)
        except safe.Unsafe as e:
            problems.append(f"{here}: {e}; name the index like [indexes.flashinfer]")
            continue
        if name in RESERVED_INDEXES:
            problems.append(f"{here}: {name!r} is a source pinner uses itself; rename the table")
            continue
        if not isinstance(table, dict):
            problems.append(f'{here}: must be a table with url = "..." and packages = [...]')
            continue
        before = len(problems)
        _unknown_keys(table, INDEX_KEYS, f"{here}.", problems)
        url = table.get("url")
        variable = index_env(name)
        if variable in variables:  # flash-infer and flash_infer: one mirror, one recipe variable
            problems.append(
                f"{here}: its variables {variable} and {variable.removeprefix('PINNER_')} are "
                f"those of [indexes.{variables[variable]}]; rename one of the tables"
            )
            continue
        variables[variable] = name
        try:
            if _has_password(url):
                problems.append(_credentials(f"{here}.url", variable))
            else:
                safe.url(url, template=True)
        except safe.Unsafe as e:
            problems.append(
                f"{here}.url: {e}; give the index's simple URL, e.g. "
                "https://flashinfer.ai/whl/cu128/torch2.7/ ({variant} stands for the torch build)"
            )
        packages = table.get("packages")
        if not isinstance(packages, list) or not packages:
            problems.append(
                f'{here}.packages: name the packages it serves, e.g. ["flashinfer-python"]'
            )
            packages = []
        names = []
        for pkg in packages:
            try:
                safe.package_name(pkg)
            except safe.Unsafe as e:
                problems.append(f"{here}.packages: {e}; name a package, e.g. flashinfer-python")
                continue
            pkg = canonical(pkg)  # noqa: PLW2901
            if pkg in ("torch", "torchvision", "torchaudio") or pkg.startswith(
                ("nvidia-", "triton", "pytorch-triton")
            ):
                problems.append(
                    f"{here}.packages: {pkg} belongs to the torch layer, which comes from "
                    "torch-index-url; remove it here"
                )
            elif pkg in owner:
                problems.append(
                    f"{here}.packages: {pkg} is already bound to [indexes.{owner[pkg]}]; "
                    "bind each package to one index"
                )
            else:
                owner[pkg] = name
                names.append(pkg)
        only = table.get("targets", [])
        if not isinstance(only, list) or not all(isinstance(t, str) for t in only):
            problems.append(f'{here}.targets: must be a list of target names, e.g. ["h100"]')
            only = []
        elif "targets" in table and not only:  # [] read as "every target" would surprise
            problems.append(
                f"{here}.targets: an empty list binds no target; name the targets, e.g. "
                '["h100"], or remove the key to bind the packages for every target'
            )
        for t in only:
            if t not in targets:
                problems.append(f"{here}.targets: {_key(t)} is not a [targets.<name>] table")
        if len(problems) == before:
            out.append((name, str(url).rstrip("/") + "/", tuple(names), tuple(only)))
    return out


def select_targets(matrix: Matrix, names: list[str] | tuple[str, ...]) -> tuple[Target, ...]:
    """The targets named on the command line, in that order (all, in matrix order, when none are)."""
    if not names:
        return matrix.targets
    known = {t.name: t for t in matrix.targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        source = str(matrix.path) if matrix.path else "the built-in presets"
        parts = []
        for n in unknown:
            import difflib

            close = difflib.get_close_matches(n, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"{n!r}{hint}")
        msg = (
            f"--target: unknown target {', '.join(parts)} in {source}; "
            f"known targets: {', '.join(known)}"
        )
        raise ConfigError(msg)
    return tuple(known[n] for n in dict.fromkeys(names))
