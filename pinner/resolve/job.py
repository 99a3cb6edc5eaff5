"""The resolve stage's data: a `Job` for an engine, the `ResolvedPin`s it answers, the
`Resolver` protocol, and the names of the torch family (the torch layer). No engine, no I/O."""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from pinner.model import File


FAMILY_ROOTS = ("torch", "torchvision", "torchaudio")
# Names that belong to the torch layer when torch (or a companion) pulls them.
FAMILY_PATTERNS = (
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "pytorch-triton*",
    "nvidia-*",
    "cuda-toolkit",
    "cuda-bindings",
    "cuda-pathfinder",
)
PLATFORMS = {"linux-x86_64": "x86_64-manylinux_2_28", "linux-aarch64": "aarch64-manylinux_2_28"}

# set when the user interrupts a lock run (Ctrl-C): the resolver threads start no engine run,
# and one the interrupt killed is not taken for a failed resolution (no other segment is tried)
INTERRUPTED = threading.Event()


def stop_if_interrupted() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


@dataclass(frozen=True, kw_only=True)
class Job:
    """Everything an engine needs for one resolution (built from a plan; pure data)."""

    target: str
    python: str
    platform: str  # pinner's name: linux-x86_64
    root: Path  # project root: local paths are relative to it
    requirements: tuple[str, ...]  # the user's requirements, normalized by pinner (no options)
    direct: tuple[str, ...]  # pinner's own top-level requirements: torch family pins, build deps
    constraints: tuple[str, ...]
    torch_index: str  # the run's PyTorch index ("" when the torch build comes from the default)
    torch_committed: str  # the same index as the matrix names it (a mirror replaces the other)
    routed: tuple[str, ...]  # names that must come from torch_index (each is in `direct`)
    metadata: tuple[
        tuple[str, str, tuple[str, ...]], ...
    ]  # (name, version, requires) of sdist-only extensions
    preferences: tuple[tuple[str, str], ...]  # versions to keep (from the old lock)
    upgrade: bool
    offline: bool
    # routed names pinner adds only to route them (remembered from the old lock, or pulled by a
    # requirement): dropped from the result when nothing but pinner requires them
    optional: tuple[str, ...] = ()
    mirror: str = ""  # the default index's mirror (PINNER_INDEX_URL), "" for the engine's own
    urls: tuple[str, ...] = ()  # direct URLs the user wrote
    roots: tuple[tuple[str, tuple[str, ...], str], ...] = ()  # (name, extras, via label)
    hashes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # the user's --hash values per name
    timeout: float = 0.0  # seconds for the whole engine run, 0 for none
    files_pass: bool = True  # list every file an installer may pick (off for comparison runs)
    no_deps: bool = False  # each requirement alone: its newest release installable on the target
    # engine's cache first (`--offline`), the network only when it lacks something: for a run
    # whose index pages a resolution of this pinner run has just read (the probe after it)
    cache_first: bool = False
    # [indexes] tables: (name, the run's URL (a mirror's when one is set), the committed URL,
    # the packages bound to it by an explicit source; each is in `direct`)
    indexes: tuple[tuple[str, str, str, tuple[str, ...]], ...] = ()

    @property
    def bound(self) -> dict[str, str]:
        """Package -> the [indexes] table it must come from."""
        return {pkg: name for name, _, _, pkgs in self.indexes for pkg in pkgs}


@dataclass(frozen=True, kw_only=True)
class ResolvedPin:
    name: str
    version: str
    files: tuple[File, ...]
    source: str  # default | pytorch | url | local
    url: str = ""  # source url: the URL; local: the path relative to the project root
    via: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # its Requires-Dist, where the engine read it

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(sorted({h for f in self.files for h in f.hashes}))


class Resolver(Protocol):
    name: str

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]: ...


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_family_name(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in FAMILY_PATTERNS)


def family_closure(pins: Iterable[ResolvedPin]) -> set[str]:
    """Names pulled (transitively) by torch, torchvision or torchaudio."""
    children: dict[str, set[str]] = {}
    present = set()
    for pin in pins:
        present.add(pin.name)
        for parent in pin.via:
            children.setdefault(canonical(parent.split()[0]), set()).add(pin.name)
    seen = {r for r in FAMILY_ROOTS if r in present}
    todo = list(seen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def torch_layer(pins: Sequence[ResolvedPin]) -> set[str]:
    return {n for n in family_closure(pins) if is_family_name(n)}


FAMILY = ("torch", "torchvision", "torchaudio")


def requirement_name(text: str) -> str:
    """The canonical name a requirement line starts with ("" for none: a URL, a path)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return canonical(match.group(1)) if match else ""


def direct_names(job: Job) -> list[str]:
    """The user's direct requirements that name a range (not an exact pin, URL or path), in
    file order: the ones that can be held back."""
    out = []
    for text in job.requirements:
        head = text.split(";")[0]
        if "@" in head or "==" in head:
            continue
        name = requirement_name(text)
        if name not in FAMILY and name not in out:
            out.append(name)
    return out
