"""check: is pinner.lock fresh for its inputs, and is every generated file what the lock renders?

Offline and fast (a pre-commit hook): no resolver, no network, no Jinja, no dataclasses. Every
rendered file carries the fingerprint of what it was rendered from (the lock values it renders,
its template, the installer, the pinner version) and the hash of its own bytes; the lock's head
holds every digest precomputed (per input, per section, per file), so checking is comparing
strings. Only the head is read as TOML; a target's section is parsed only when its digest says it
was edited, to name the packages.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pinner.errors import ConfigError
from pinner.lock.fingerprint import (
    artifact_inputs,
    changed_inputs,
    file_inputs,
    input_digests,
    knowledge_digest,
    lock_sections,
    misplaced_seal,
    package_digest,
    read_seal,
    regenerate_command,
    relative,
    sha256,
    template_digests,
    templates_digest,
)
from pinner.render.output import ARTIFACTS, template_folders

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The lock formats `check` reads: keep in step with pinner.lock.lockfile.FORMAT (a test compares them;
# importing pinner.lock here would load the dataclasses `check` never needs).
LOCK_FORMATS = (2,)
Problem = tuple[str, str, str]  # (path, what is wrong, command that refreshes it)


def read_inputs(path: Path) -> dict[str, str] | None:
    """Only the lock's `[inputs]` table; None when there is no lock."""
    head = read_head(path)
    return None if head is None else head[0]


def read_head(path: Path) -> tuple[dict[str, str], dict[str, str]] | None:
    """The lock's `[inputs]` and `[generated]` tables (target -> out folder, relative to the
    project root); None when there is no lock."""
    doc = read_head_doc(path)
    if doc is None:
        return None
    tables = [doc.get("inputs", {}), doc.get("generated", {})]
    inputs, generated = (
        {str(k): str(v) for k, v in t.items() if not isinstance(v, dict)}
        if isinstance(t, dict)
        else {}
        for t in tables
    )
    return inputs, generated


def read_head_doc(path: Path) -> dict[str, Any] | None:
    """The lock's head (every table before the first `[targets.*]`), parsed; None when there is
    no lock, {} when the head is not TOML (each target then reads as stale)."""
    try:
        text = read_text(path, "the lock", "regenerate it with `pinner lock`")
    except FileNotFoundError:
        return None
    return _parse_head(path, text)


def _parse_head(path: Path, text: str) -> dict[str, Any]:
    head = text.split("\n[targets.", 1)[0]
    doc = parse_head(head)
    if doc is None:  # not as pinner writes it: TOML decides
        try:
            doc = tomllib.loads(head)
        except (tomllib.TOMLDecodeError, RecursionError):
            return {}
    version = doc.get("version")
    if version not in LOCK_FORMATS:
        msg = (
            f"{path}: lock format version {safe_repr(version)} is not one this pinner reads "
            f"({', '.join(map(str, LOCK_FORMATS))}); regenerate it with `pinner lock`, or "
            "upgrade pinner"
        )
        raise ConfigError(msg)
    generated = doc.get("generated", {})
    for name, folder in generated.items() if isinstance(generated, dict) else ():
        why = generated_problem(folder) if isinstance(folder, str) else "is not a folder name"
        if why:  # never printed raw, nor offered as `--out` (what `pinner generate` refuses too)
            msg = (
                f"{path}: generated.{safe_repr(name)[1:-1]} = {safe_repr(folder)} {why}; remove "
                "the line and run `pinner generate`"
            )
            raise ConfigError(msg)
    return doc


_KEY = r'[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"'
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_LINE = re.compile(rf"({_KEY}) = ({_STRING}|[0-9]+|\{{.*\}})")
_TABLE = re.compile(rf"\[({_KEY})(?:\.({_KEY}))?\]")
_ITEM = re.compile(rf"\s*({_KEY}) = ({_STRING})\s*(,|$)")


def parse_head(head: str) -> dict[str, Any] | None:
    """The lock's head as pinner writes it (tables of strings, one-line tables of strings, an
    integer version), read line by line, about twice as fast as a TOML parser. None for
    anything else (then TOML reads it)."""
    doc: dict[str, Any] = {}
    table = doc
    try:
        for line in head.split("\n"):
            if not line or line.startswith("#"):
                continue
            m = _LINE.fullmatch(line)
            if m is not None:
                key, value = _unquote(m.group(1)), m.group(2)
                if key in table:
                    return None
                if value.startswith("{"):
                    table[key] = _inline_table(value)
                else:
                    table[key] = int(value) if value[0] != '"' else _string(value)
                continue
            t = _TABLE.fullmatch(line)
            if t is None:
                return None
            outer = doc.setdefault(_unquote(t.group(1)), {})
            table = outer.setdefault(_unquote(t.group(2)), {}) if t.group(2) else outer
            if not isinstance(table, dict):
                return None
    except (ValueError, TypeError, AttributeError):  # json.JSONDecodeError is a ValueError
        return None
    return doc


def _inline_table(value: str) -> dict[str, str]:
    inner = value[1:-1].strip()
    out: dict[str, str] = {}
    at = 0
    while at < len(inner):
        m = _ITEM.match(inner, at)
        if m is None:
            raise ValueError(value)
        out[_unquote(m.group(1))] = _string(m.group(2))
        at = m.end()
    return out


def _unquote(key: str) -> str:
    return _string(key) if key.startswith('"') else key


def _string(quoted: str) -> str:
    return quoted[1:-1] if "\\" not in quoted else str(json.loads(quoted))


def _tables(doc: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    table = doc.get(key, {})
    if not isinstance(table, dict):
        return {}
    return {str(k): v for k, v in table.items() if isinstance(v, dict)}


def _strings(doc: dict[str, Any], key: str) -> dict[str, str]:
    table = doc.get(key, {})
    if not isinstance(table, dict):
        return {}
    return {str(k): v for k, v in table.items() if isinstance(v, str)}


def generated_problem(folder: str) -> str:
    """Why a `[generated]` folder is not one `generate` records ("" when it is): a relative
    folder inside the project, one line of text."""
    parts = folder.split("/")
    inside = folder and not folder.startswith("/") and ".." not in parts
    if not inside or any(ord(c) < 32 or ord(c) == 127 for c in folder):
        return "is not a folder inside the project"
    return ""


def read_text(path: Path, what: str, fix: str) -> str:
    """A file's text; a ConfigError naming the file when it is not readable UTF-8 text
    (FileNotFoundError passes through)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        msg = f"{path}: cannot read {what}: {e.strerror}; {fix}"
        raise ConfigError(msg) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        msg = f"{path}:{line}: {what} is not UTF-8 text (byte {e.start}); {fix}"
        raise ConfigError(msg) from None


class Head:
    """What `check` reads of a lock: its head tables and the raw text of each target's section."""

    def __init__(self, path: Path) -> None:
        text = read_text(path, "the lock", "regenerate it with `pinner lock`")
        doc = _parse_head(path, text)
        self.inputs = _strings(doc, "inputs")
        table = doc.get("inputs", {})  # what the head says instead of a digest, per target
        self.bad_inputs = (
            {str(k): v for k, v in table.items() if not isinstance(v, str)}
            if isinstance(table, dict)
            else {}
        )
        self.details = _tables(doc, "inputs-detail")
        self.renders = _tables(doc, "renders")
        self.generated = _strings(doc, "generated")
        self.sections = lock_sections(text)


def stale(matrix: dict[str, Any], out: Path | None = None) -> list[Problem]:
    """Every stale thing; [] when the lock and the generated files are fresh. One line per target
    whose lock entry is stale (naming each input that changed, with the one command that
    refreshes the entry and its files), one per target whose files are behind the lock, and one
    per file edited by hand or missing. `out` (from the command line) overrides where each
    target was generated (the lock's `[generated]` table, else the matrix's `out`)."""
    root: Path = matrix["root"]
    lock: Path = matrix["lock"]
    lock_name = shown(lock, root)
    try:
        head = Head(lock)
    except FileNotFoundError:
        return [(lock_name, "missing", "pinner lock")]
    names = [t["name"] for t in matrix["targets"]]
    folders = {n: out_folder(matrix, head.generated, n, out) for n in names}
    present = [n for n in names if (folders[n] / n).is_dir()]
    commands = {n: f"pinner lock --target {n}" for n in names}
    for n in present:  # `pinner generate` when it has generated files (it locks too)
        commands[n] = regenerate_command(n, _installer(folders[n] / n), relative(folders[n], root))
    problems: list[Problem] = []
    behind = set()  # targets whose lock entry is stale: their files follow with the same command
    for target, reasons in lock_reasons(matrix, head).items():
        for reason, kind in reasons:
            # an entry edited by hand is re-resolved by `pinner lock`, not rendered from
            command = commands[target] if kind == "inputs" else f"pinner lock --target {target}"
            problems.append((lock_name, reason, command))
        behind.add(target)
    for name in sorted(set(head.inputs) - set(names)):
        problems.append((lock_name, f"target {name} is no longer in the matrix", "pinner lock"))
    if present:
        generated = {n: commands[n] for n in present}
        problems += file_problems(matrix, head, folders, generated, behind)
    problems += missing_folders(head.generated, names, root, out)
    return problems


def out_folder(
    matrix: dict[str, Any], recorded: dict[str, str], name: str, out: Path | None
) -> Path:
    """Where a target's files are: `--out`, else where `generate` last wrote them, else the
    matrix's `out`."""
    if out is not None:
        return out
    if name in recorded:
        return Path(matrix["root"]) / recorded[name]
    return Path(matrix["out"])


def _installer(folder: Path) -> str:
    try:
        with (folder / "constraints.txt").open("rb") as f:
            parsed = read_seal(f.read(4096) + b"\n")
    except OSError:
        return "pip"
    installer = parsed[0].get("installer", "pip") if parsed else "pip"
    return installer if installer in ("pip", "uv") else "pip"


def lock_reasons(matrix: dict[str, Any], head: Head) -> dict[str, list[tuple[str, str]]]:
    """For each target whose lock entry is stale, what is wrong, in words, and its kind:
    "inputs" (each input that changed, or no entry), "package" (a package entry edited by hand)
    or "section" (another edit of the target's section)."""
    root: Path = matrix["root"]
    source = shown(matrix["path"], root) if matrix.get("path") else "the built-in presets"
    digest = knowledge_digest()
    seen: dict[Any, Any] = {}  # requirements files read once for every target naming them
    found: dict[str, list[tuple[str, str]]] = {}
    for target in matrix["targets"]:
        name = target["name"]
        said: list[tuple[str, str]] = []
        if name in head.bad_inputs:
            bad = safe_repr(head.bad_inputs[name])
            said.append((f"inputs.{name} is {bad}, not a digest (edited by hand)", "inputs"))
        elif name not in head.inputs:
            said.append((f"has no entry for target {name}", "inputs"))
        else:
            combined, parts = input_digests(target, root, digest, seen=seen)
            if head.inputs[name] != combined:
                said.append((_why(name, head.details.get(name), parts, source), "inputs"))
            said += _hand_edits(name, head)
        if said:
            found[name] = said
    return found


def _why(name: str, recorded: dict[str, Any] | None, parts: dict[str, Any], source: str) -> str:
    if recorded is None:
        return (
            f"target {name} is stale (its matrix table, requirements files, pinner's knowledge "
            "or pinner version changed; this lock keeps no digest per input to say which)"
        )
    changed = changed_inputs(recorded, parts, source)
    if not changed:
        return f"target {name} is stale (its input fingerprint in the lock head was edited)"
    return f"target {name} is stale: " + "; ".join(changed)


def _hand_edits(name: str, head: Head) -> list[tuple[str, str]]:
    """A target's section edited by hand: its digest in `[renders]` no longer matches (the
    section is parsed only then, to name the packages); a lock without that digest has every
    package checked."""
    section = head.sections.get(name, "")
    recorded = head.renders.get(name, {}).get("section")
    if recorded is not None and sha256(section) == recorded:
        return []
    packages = hand_edited(section)
    said = [
        (
            (
                f"target {name}: package {package} was edited by hand (its integrity digest does "
                "not match its content)"
            ),
            "package",
        )
        for package in packages
    ]
    if not said and recorded is not None:
        what = f"target {name}: its [targets.{name}] section was edited by hand (its digest in "
        said.append((what + "[renders] does not match)", "section"))
    return said


def hand_edited(section: str) -> list[str]:
    """Packages of one target's lock section whose integrity digest does not match (the same
    digest as the lock writes: fingerprint.package_digest, here from the TOML)."""
    if not section:
        return []
    try:
        table = tomllib.loads(section)
    except (tomllib.TOMLDecodeError, RecursionError):
        return ["(unreadable section)"]
    targets: dict[str, Any] = table.get("targets", {})
    entry: dict[str, Any] = next(iter(targets.values()), {})
    packages: list[Any] = entry.get("packages", [])
    bad = []
    for p in packages:
        if not isinstance(p, dict) or not p.get("digest"):
            continue
        if package_digest(p) != p["digest"]:
            bad.append(str(p.get("name", "?")))
    return bad


def file_problems(
    matrix: dict[str, Any],
    head: Head,
    folders: dict[str, Path],
    commands: dict[str, str],
    behind: set[str],
) -> list[Problem]:
    """One line per generated file edited by hand or missing, one per target whose files are
    out of date with its lock entry (none for a target whose entry is stale itself: refreshing
    it regenerates them). `commands`: the targets with generated files, and how each is
    regenerated."""
    root: Path = matrix["root"]
    every = (*ARTIFACTS, INDEX_TEMPLATE)
    templates = template_digests(template_folders(matrix["templates"]), every)
    legacy = ""
    problems: list[Problem] = []
    for name, command in commands.items():
        folder = folders[name]
        renders = head.renders.get(name)
        section = head.sections.get(name)
        if renders is None and section is not None and not legacy:
            legacy = templates_digest(template_folders(matrix["templates"]))
        behind_files = []
        files = ARTIFACTS + index_files(section or "")
        for file, what, inputs in _read_files(folder / name, files):
            if what:
                problems.append((shown(folder / name / file, root), what, command))
                continue
            if name in behind:
                continue
            installer = inputs[1]
            if section is None:
                expected = ""
            elif renders is None:
                expected = artifact_inputs(section, legacy, installer)
            else:
                key = INDEX_TEMPLATE if file.startswith("index-") else file
                template, own = templates[key]
                fields = str(renders.get("section" if own else key, ""))
                expected = file_inputs(fields, template, installer)
            if inputs[0] != expected:
                behind_files.append(file)
        if behind_files:
            what = "out of date with pinner.lock: " + ", ".join(behind_files)
            problems.append((shown(folder / name, root) + "/", what, command))
        problems += _leftovers(folder / name, files, root, command)
    return problems


def _leftovers(folder: Path, files: tuple[str, ...], root: Path, command: str) -> list[Problem]:
    """An `index-<name>.txt` pinner generated for this target that it no longer renders (the
    target stopped using that index): `generate` removes it; one edited since is for the user."""
    problems: list[Problem] = []
    for file, intact in leftover_index_files(folder, files):
        index = file[len("index-") : -len(".txt")]
        what = f"left over: target {folder.name} no longer uses [indexes.{index}]"
        if intact:
            problems.append((shown(folder / file, root), what, command))
        else:
            import shlex

            path = shown(folder / file, root)
            what += " (edited by hand since: pinner leaves it to you)"
            problems.append((path, what, f"rm -- {shlex.quote(path)}"))
    return problems


_INDEX_FILE = re.compile(r"index-([a-z0-9][a-z0-9_-]*)\.txt")


def leftovers(paths: list[Path]) -> list[Path]:
    """The `index-<name>.txt` files pinner generated in the target folders of `paths` (the files
    just rendered) that the targets no longer render (they stopped using that index), with
    their seal intact: what `generate` removes. A file edited since, or without pinner's seal,
    is left."""
    files: dict[Path, set[str]] = {}
    for path in paths:
        files.setdefault(path.parent, set()).add(path.name)
    return [
        folder / file
        for folder, names in sorted(files.items())
        for file, intact in leftover_index_files(folder, tuple(names))
        if intact
    ]


def leftover_index_files(folder: Path, files: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(file, whether its seal is intact) for each `index-<name>.txt` in a target's folder that
    is not among `files` (what the target renders now) and that pinner generated for this
    target: it carries pinner's seal naming the target. Any other file is not pinner's."""
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    found = []
    for file in names:
        path = folder / file
        if file in files or not _INDEX_FILE.fullmatch(file) or path.is_symlink():
            continue
        try:
            parsed = read_seal(path.read_bytes()) if path.is_file() else None
        except OSError:
            continue
        if parsed is not None and parsed[0].get("target") == folder.name:
            found.append((file, parsed[1]))
    return found


def _read_files(folder: Path, files: tuple[str, ...]) -> list[tuple[str, str, tuple[str, str]]]:
    """(file, what is wrong with it or "", (its header's inputs, installer)) for each generated
    file of a target's folder."""
    found = []
    for file in files:
        try:
            data = (folder / file).read_bytes()
        except FileNotFoundError:
            found.append((file, "missing", ("", "")))
            continue
        except OSError as e:
            found.append((file, f"unreadable ({e.strerror})", ("", "")))
            continue
        parsed = read_seal(data)
        if parsed is None:
            what = (
                "edited by hand (lines were added above the pinner seal)"
                if misplaced_seal(data)
                else "not generated by pinner (no header)"
            )
            found.append((file, what, ("", "")))
            continue
        fields, intact = parsed
        installer = fields.get("installer", "pip")
        if installer not in ("pip", "uv") or not intact:
            found.append((file, "edited by hand", ("", "")))
            continue
        if fields.get("target") != folder.name:
            what = f"edited by hand (a copy of target {fields.get('target')}'s file)"
            found.append((file, what, ("", "")))
            continue
        found.append((file, "", (fields.get("inputs", ""), installer)))
    return found


def lock_problems(matrix: dict[str, Any], names: list[str]) -> list[Problem]:
    """What is stale in the lock itself for the named targets: changed inputs, package entries
    edited by hand (`generate --frozen` refuses to render from it then; any other edit of a
    section is for its checks of every field to name)."""
    root: Path = matrix["root"]
    lock_name = shown(matrix["lock"], root)
    try:
        head = Head(matrix["lock"])
    except FileNotFoundError:
        return [(lock_name, "missing", "pinner lock")]
    reasons = lock_reasons(matrix, head)
    return [
        (lock_name, reason, f"pinner lock --target {name}")
        for name in names
        for reason, kind in reasons.get(name, [])
        if kind != "section"
    ]


INDEX_TEMPLATE = "index-requirements.txt"  # the template of every index-<name>.txt


def index_files(section: str) -> tuple[str, ...]:
    """The `index-<name>.txt` files a target renders: one per [indexes] table its lock's
    `indexes = {...}` line names (the PyTorch index has torch-requirements.txt)."""
    line = re.search(r"^indexes = \{(.*)\}$", section, re.MULTILINE)
    names = re.findall(r"([a-z0-9][a-z0-9_-]*) = \"", line.group(1)) if line else []
    return tuple(f"index-{n}.txt" for n in sorted(names) if n != "pytorch")


def missing_folders(
    recorded: dict[str, str], names: list[str], root: Path, out: Path | None = None
) -> list[Problem]:
    """A target the lock says was generated whose folder is gone: a failure, not a note."""
    problems = []
    for name in names:
        folder = recorded.get(name)
        if folder is None or (out is not None and (out / name).is_dir()):
            continue
        if not (root / folder / name).is_dir():
            where = shown(root / folder / name, root) + "/"
            command = regenerate_command(name, "pip", folder)
            problems.append((where, "missing (generated before)", command))
    return problems


def never_generated(matrix: dict[str, Any], out: Path | None = None) -> list[str]:
    """Targets of the matrix with no generated folder (a note, not a failure), but for those
    the lock's `[generated]` table says were generated (a failure, see `missing_folders`)."""
    head = read_head(matrix["lock"])
    recorded = head[1] if head else {}
    if out is not None:  # the folder asked for: a target recorded elsewhere is not there
        here = relative(out, matrix["root"])
        return [
            t["name"]
            for t in matrix["targets"]
            if not (out / t["name"]).is_dir() and recorded.get(t["name"]) != here
        ]
    return [
        t["name"]
        for t in matrix["targets"]
        if t["name"] not in recorded and not (Path(matrix["out"]) / t["name"]).is_dir()
    ]


def safe_repr(value: object) -> str:
    from pinner.safe import comment

    return comment(repr(value))


def shown(path: Path, root: Path) -> str:
    """A path as the user should read it: relative to the working folder, else to the root."""
    for base in (Path.cwd(), root):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)
