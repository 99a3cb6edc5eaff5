"""The pre-commit entry `pinner init` writes: pinner's repository at the installed version's tag
(`rev: v<version>`), or a `repo: local` entry that runs the project's own pinner.

Whether a config already has pinner's hooks is read from the parsed YAML (PyYAML, as pre-commit
reads it), so a URL in a comment does not count; the entry is appended as text, so every line of
the user's file is kept, and the result is parsed again before it is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pinner.errors import ConfigError

PRE_COMMIT = Path(".pre-commit-config.yaml")
HookMode = Literal["remote", "local"]
# The hooks of .pre-commit-hooks.yaml (tests/test_init.py checks they agree).
HOOKS = (
    {
        "id": "pinner-check",
        "name": "pinner check (pinner.lock and pinned/ are fresh)",
        "entry": "pinner check",
        "files": r"^(pinner\.toml|pyproject\.toml|pinner\.lock|.*requirements.*\.(in|txt)|pinned/.*)$",
    },
    {
        "id": "pinner-lock",
        "name": "pinner generate (re-lock and re-render when inputs change)",
        "entry": "pinner generate",
        "files": r"^(pinner\.toml|pyproject\.toml|.*requirements.*\.in)$",
    },
)
HOOK_IDS = tuple(h["id"] for h in HOOKS)
REPO_URL = re.compile(r"^(https://|ssh://|git@|file://)[^\s'\"#]+$")


def hook_block(mode: HookMode, repo: str, version: str, indent: str = "  ") -> str:
    """The pinner entry for a `repos:` list, items indented by `indent`."""
    i = indent
    lines = [
        f"{i}# pinner: pinner-check is offline and fast; pinner-lock re-locks when the matrix",
        f"{i}# or requirements change (it needs the network: drop it if your CI has none).",
    ]
    if mode == "local":
        lines += [f"{i}# `repo: local`: runs the pinner installed in this project's environment."]
        lines += [f"{i}- repo: local", f"{i}  hooks:"]
        for hook in HOOKS:
            lines += [
                f"{i}    - id: {hook['id']}",
                f"{i}      name: {hook['name']}",
                f"{i}      entry: {hook['entry']}",
                f"{i}      language: system",
                f"{i}      pass_filenames: false",
                f"{i}      files: '{hook['files']}'",
            ]
    else:
        if not REPO_URL.match(repo):
            msg = (
                f"--hook-repo: {repo!r} is not a repository URL (https://..., ssh://... or git@...)"
            )
            raise ConfigError(msg)
        lines += [f"{i}- repo: {repo}", f"{i}  rev: v{version}", f"{i}  hooks:"]
        lines += [f"{i}    - id: {hook_id}" for hook_id in HOOK_IDS]
    return "".join(f"{line}\n" for line in lines)


def parse(text: str, where: Path = PRE_COMMIT) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        msg = f"{where}:{line}: not valid YAML ({getattr(e, 'problem', e)}); fix it, or use --no-hooks"
        raise ConfigError(msg) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        msg = f"{where}: is not a mapping with a `repos:` list; fix it, or use --no-hooks"
        raise ConfigError(msg)
    return data


def pinner_repos(config: dict[str, Any]) -> list[str]:
    """The `repo` of every entry of the parsed config that has a pinner hook."""
    found = []
    for entry in config.get("repos") or []:
        if not isinstance(entry, dict):
            continue
        hooks = entry.get("hooks") or []
        if any(isinstance(h, dict) and h.get("id") in HOOK_IDS for h in hooks):
            found.append(str(entry.get("repo", "")))
    return found


def append_hooks(text: str, block: str) -> str:
    """`text` with `block` (an entry of `repos:`) added at the end of its top-level `repos:` block
    list, every other line kept; refused unless the result parses with the entry added."""
    result = _appended(text, block)
    before, after = parse(text), parse(result)
    expected = (before.get("repos") or []) + (parse("repos:\n" + _reindent(block, "  "))["repos"])
    others = {k: v for k, v in before.items() if k != "repos"}
    if after.get("repos") != expected or {k: v for k, v in after.items() if k != "repos"} != others:
        msg = f"{PRE_COMMIT}: pinner cannot append to its repos: list; add this entry yourself:\n"
        raise ConfigError(msg + block)
    return result


def _appended(text: str, block: str) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    head = next((i for i, ln in enumerate(lines) if re.match(r"^repos\s*:\s*(#.*)?$", ln)), None)
    if head is None:
        if any(re.match(r"^repos\s*:", ln) for ln in lines):
            msg = (
                f"{PRE_COMMIT}: repos: is not a block list, so pinner cannot append to it; "
                f"add this entry yourself:\n{block}"
            )
            raise ConfigError(msg)
        return "".join(lines) + "repos:\n" + block
    end = head + 1
    indent: str | None = None  # of the existing items ("" for items at column 0)
    last_item = head + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lead = line[: len(line) - len(line.lstrip())]
            if not lead and not stripped.startswith("-"):
                break  # the next top-level key
            if stripped.startswith("-") and indent is None:
                indent = lead
            last_item = end + 1
        end += 1
    block = _reindent(block, "  " if indent is None else indent)
    return "".join(lines[:last_item]) + block + "".join(lines[last_item:])


def _reindent(block: str, indent: str) -> str:
    lead = min(len(ln) - len(ln.lstrip()) for ln in block.splitlines() if ln.strip())
    return "".join(f"{indent}{ln[lead:]}\n" for ln in block.splitlines())
