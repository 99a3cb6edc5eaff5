"""Every value that crosses a stage boundary: frozen dataclasses, no dicts of dicts."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path, PurePosixPath

Severity = Literal["error", "warning", "note"]
Layer = Literal["torch", "build", "main", "extension"]
Strategy = Literal["wheel", "source"]


@dataclass(frozen=True, kw_only=True)
class Target:
    """One `[targets.<name>]` table after defaults are merged and keys are checked."""

    name: str
    gpu: str  # as written; plan resolves aliases. "cpu" for none
    cuda: str  # "auto", "cpu" or a variant such as "cu128"
    torch: str  # PEP 440 specifier set, "" for any
    python: str  # "3.11"
    platform: str  # "linux-x86_64" | "linux-aarch64"
    driver: str  # host driver, "" when not given
    base_image: str  # override, "" to let the plan choose
    requirements: tuple[str, ...]  # paths relative to the project root
    builds: tuple[tuple[str, str], ...]  # (package, "auto" | "wheel" | "source")
    torch_index_url: str  # template, "{variant}" stands for cu128, cpu, ...
    origin: str  # "matrices/default.toml: targets.rtx5090", for messages
    pin_images: bool = False  # record image digests (base image, uv image) in the lock
    apt: tuple[str, ...] = ()  # Debian packages the project needs: "ffmpeg", "libsndfile1=1.2-1"
    env: tuple[tuple[str, str], ...] = ()  # environment of the recipes, in the matrix's order
    # [indexes] tables that serve this target: (name, URL as written, {variant} allowed, the
    # packages bound to it by an explicit source)
    indexes: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Matrix:
    path: Path | None  # None: the built-in presets
    root: Path  # project root: the matrix's folder, or the working folder for presets
    targets: tuple[Target, ...]
    lock: Path
    out: Path
    templates: Path | None
    notes: tuple[str, ...] = ()  # said once by the commands: which requirements a default chose


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """One requirement line (or pyproject.toml entry) as pinner hands it to the resolver."""

    name: str  # canonical (PEP 503) name; for a bare wheel URL, from the file name
    text: str  # normalized PEP 508, no marker: "flash-attn[x]>=2.7", "pkg @ https://.../pkg.whl"
    specifier: str  # version specifier only (">=2.7"), "" when none or a URL
    origin: str  # "requirements.in:3", "pyproject.toml:project.dependencies[2]"
    constraint: bool  # came from a -c file
    extras: tuple[str, ...] = ()  # canonical, sorted
    marker: str = ""  # normalized str(Marker), "" when none
    url: str = ""  # direct URL (name @ URL, a bare URL, a file: URL of a wheel or sdist)
    path: str = ""  # a local file or project: POSIX path relative to the project root
    editable: bool = False  # -e
    local_project: bool = False  # -e ., ./pkg, pkg @ file:./dir: a folder with a project
    hashes: tuple[str, ...] = ()  # the user's --hash and #sha256= values, "sha256:<hex>"


@dataclass(frozen=True, kw_only=True)
class Requirements:
    items: tuple[Requirement, ...]  # lines whose marker holds for the target (or have none)
    files: tuple[Path, ...]  # every file read, nested -r/-c and pyproject.toml included
    skipped: tuple[Requirement, ...] = ()  # lines whose marker is false for the target


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One fact-backed verdict; errors stop the target, warnings and notes travel on."""

    target: str
    severity: Severity
    code: str  # "no-kernels", "unknown-gpu", ...
    message: str
    fix: str
    source: str


@dataclass(frozen=True, kw_only=True)
class TorchBuild:
    version: str  # "2.7.1"
    variant: str  # "cu128" or "cpu"
    cuda: str  # "12.8", "" for a CPU build
    on_pypi: bool  # PyPI's own build: no local tag, installed from the default index
    arches: tuple[str, ...]  # "sm_75", ...; empty for CPU builds
    ptx: str  # highest arch also shipped as PTX, "" when none or unknown
    cxx11_abi: bool

    @property
    def pin(self) -> str:
        return self.version if self.on_pypi else f"{self.version}+{self.variant}"


@dataclass(frozen=True, kw_only=True)
class Step:
    """One link of the reasoning chain that `explain` prints."""

    topic: str  # "gpu", "arch", "variant", "torch", "companions", "base image", ...
    choice: str
    why: str
    source: str


@dataclass(frozen=True, kw_only=True)
class Rejection:
    variant: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Constraint:
    requirement: str  # "numpy<2"
    why: str
    source: str


@dataclass(frozen=True, kw_only=True)
class Extension:
    """How one compiled extension is installed so that it imports on the target."""

    name: str  # canonical name, "flash-attn"
    version: str
    strategy: Strategy
    wheel: str  # file name of the prebuilt wheel, "" for a source build
    url: str  # download URL of that wheel, "" for a source build
    sha256: str  # "" when the hash is not known
    deps: tuple[str, ...]  # runtime requirements, resolved into the main layer
    build_deps: tuple[str, ...]  # installed before a source build
    env: tuple[tuple[str, str], ...]  # build environment (MAX_JOBS, FORCE_BUILD flags)
    why: str
    source: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every decision render needs, so that render works from the lock alone."""

    target: Target
    gpu_name: str  # "GeForce RTX 5090", or "cpu"
    compute_capability: str  # "12.0", "" for cpu
    torch: TorchBuild
    index_url: str  # PyTorch index of the variant; "" when PyPI's own build is used
    companions: tuple[str, ...]  # exact pins that exist for this build: "torchvision==0.22.1+cu128"
    base_image: str
    min_driver: str  # "" for cpu
    apt: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    constraints: tuple[Constraint, ...]
    extensions: tuple[Extension, ...]
    steps: tuple[Step, ...]
    rejected: tuple[Rejection, ...]
    # (image reference, "sha256:...") of each image pinned by digest (matrix key pin-images)
    images: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    plan: Plan | None  # None when any finding is an error
    findings: tuple[Finding, ...]
    # The torch builds that fit, split into segments that one resolver run can serve (one index,
    # one set of plan constraints), in preference order; each a tuple of pins ("2.15.0",
    # "2.7.1+cu128"). `plan` is made for the first pin of the first segment.
    segments: tuple[tuple[str, ...], ...] = ()


Source = str  # "default" | "pytorch" | "url" | "local" | the name of an [indexes] table


@dataclass(frozen=True, kw_only=True)
class File:
    """One distribution file of a locked package."""

    name: str  # file name: "torch-2.7.1+cu128-cp311-cp311-manylinux_2_28_x86_64.whl"; "" unknown
    hashes: tuple[str, ...]  # "sha256:<hex>"
    url: str = ""  # only for the committed indexes and URLs the user wrote (never a mirror's)


@dataclass(frozen=True, kw_only=True)
class Pin:
    name: str
    version: str  # with local tag where the index has one: "2.7.1+cu128"
    source: Source  # where its files come from: the role, never a mirror's URL
    layer: Layer
    via: tuple[str, ...]  # what required it: "-r requirements.in", "torch", "pinner plan"
    files: tuple[File, ...] = ()
    url: str = ""  # source "url": the URL the user wrote (or an extension wheel's); "local": path
    digest: str = ""  # integrity digest of this entry (see pinner.lock.lockfile.pin_digest)

    @property
    def hashes(self) -> tuple[str, ...]:
        """Every acceptable hash (any of the files may be the one installed)."""
        return tuple(sorted({h for f in self.files for h in f.hashes}))


@dataclass(frozen=True, kw_only=True)
class TargetLock:
    plan: Plan
    pins: tuple[Pin, ...]
    inputs: str  # "sha256:..." fingerprint of the target's inputs
    findings: tuple[Finding, ...]  # warnings and notes found while locking (held back, ...)
    indexes: tuple[tuple[str, str], ...] = ()  # (source role, committed URL) the files came from


@dataclass(frozen=True, kw_only=True)
class LockFile:
    pinner: str  # pinner version that wrote it
    knowledge: str  # knowledge as_of date
    targets: tuple[TargetLock, ...]
    legacy: bool = False  # read from a previous format: versions are preferences, nothing more
    generated: tuple[tuple[str, str], ...] = ()  # (target, out folder relative to the root)


@dataclass(frozen=True, kw_only=True)
class Artifact:
    path: PurePosixPath  # relative to the output root: "rtx5090/constraints.txt"
    text: str
    executable: bool = False


@dataclass(frozen=True, kw_only=True)
class Stale:
    path: PurePosixPath
    problem: str  # "missing", "out of date", "edited by hand", "not generated by pinner"
    diff: str


_FIELDS: dict[type, tuple[str, ...]] = {}
_LEAVES = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """`dataclasses.asdict` for these values, without its deep copy of every leaf (the values are
    frozen; the copies cost a lock of 80 packages 10-20 ms): dataclasses become dicts, tuples stay
    tuples, lists lists and dicts dicts, as asdict leaves them."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    names = _FIELDS.get(kind)
    if names is None and hasattr(kind, "__dataclass_fields__"):
        names = _FIELDS[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if kind is tuple or kind is list:
        return kind(plain(v) for v in value)
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    return value
