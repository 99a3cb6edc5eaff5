"""load: the packaged knowledge TOML files -> a checked, typed `Knowledge` (cached).

Every fact carries a `source`; a table without one is refused when the data is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from pinner.lock.fingerprint import KNOWLEDGE_FILES

HERE = Path(__file__).parent
FILES = KNOWLEDGE_FILES  # one list: the fingerprint reads the same files as bytes
CONFIDENCE = ("verified", "secondary", "unverified")


class KnowledgeError(Exception):
    """The packaged data breaks an invariant: a bug in pinner's data, not in the user's input."""


@dataclass(frozen=True, kw_only=True)
class Gpu:
    key: str
    name: str
    nvidia_smi: tuple[str, ...]
    aliases: tuple[str, ...]
    architecture: str
    compute_capability: str
    segment: str
    source: str
    confidence: str
    brand: str = ""  # product brand for NVIDIA_REQUIRE_CUDA brand= clauses (tesla, geforce, ...)
    min_driver: str = ""  # the GPU's own driver floor (its architecture's), "" when none
    min_driver_source: str = ""

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")


@dataclass(frozen=True, kw_only=True)
class RangedCompanion:
    """A companion release that admits a range of torch (packages.toml [[torchaudio]])."""

    version: str
    torch: str  # the torch requirement it admits, ">=2.11"
    pypi: bool  # on PyPI next to PyPI's own torch build
    index_variants: tuple[str, ...]  # PyTorch-index variants known to carry it
    source: str
    confidence: str

    def admits(self, version: str) -> bool:
        return spec_admits(self.torch, version)


@dataclass(frozen=True, kw_only=True)
class ExtensionBuild:
    """The build a PyPI wheel of a compiled extension was made for (extensions.toml
    [[extension_build]]): it runs next to a torch build of the same CUDA major whose version its
    torch requirement admits."""

    package: str
    version: str
    cuda: str  # CUDA major: "12"
    torch: str  # declared torch requirement: "==2.10.0", ">=2.10"
    built_for: str  # the torch build it was compiled against: "2.10.0+cu128"
    source: str
    confidence: str

    def runs_with(self, torch_version: str, cuda_major: str) -> bool:
        return cuda_major == self.cuda and spec_admits(self.torch, torch_version)


@dataclass(frozen=True, kw_only=True)
class TorchRelease:
    version: str
    date: str
    python: tuple[str, ...]
    pypi_cuda: str  # CUDA of PyPI's Linux x86_64 wheel
    cxx11_abi: bool
    numpy2: bool
    triton: str
    torchvision: str
    torchaudio: str  # "" when no torchaudio release matches
    variants: tuple[str, ...]  # variants on the PyTorch index (Linux x86_64)
    variants_confidence: str
    variants_source: str
    source: str
    variants_aarch64: tuple[str, ...] = ()  # variants with Linux aarch64 wheels, where sourced
    pypi_cuda_aarch64: str = ""  # CUDA of PyPI's aarch64 wheel; "" = a CPU-only wheel
    torchaudio_ranged: tuple[RangedCompanion, ...] = ()  # newest first, each admitting this torch

    def torchaudio_for(
        self, variant: str, on_pypi: bool, accept: Callable[[str], bool] = lambda _: True
    ) -> tuple[str, RangedCompanion | None]:
        """The newest torchaudio for this release's build that `accept` (the project's own
        torchaudio requirement) admits: (version, the ranged entry or None when it is the exact
        pair of torch.toml); ("", None) when none is known."""
        exact = self.torchaudio if self.torchaudio and accept(self.torchaudio) else ""
        for ranged in self.torchaudio_ranged:
            if not (ranged.pypi if on_pypi else variant in ranged.index_variants):
                continue
            if not accept(ranged.version):
                continue
            if not exact or _vkey(ranged.version) > _vkey(exact):
                return ranged.version, ranged
            break
        return exact, None

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def pypi_variant(self) -> str:
        return cuda_to_variant(self.pypi_cuda)


@dataclass(frozen=True, kw_only=True)
class Build:
    """The architectures compiled into one (torch minor, variant) build."""

    torch: tuple[str, ...]  # minors
    variant: str
    arches: tuple[str, ...]
    ptx: str
    confidence: str
    source: str
    platform: str = "linux-x86_64"


@dataclass(frozen=True, kw_only=True)
class CudaMajor:
    major: int
    min_driver: str
    dropped_arches: tuple[str, ...]
    source: str


@dataclass(frozen=True, kw_only=True)
class BaseImage:
    cuda: str
    runtime: str
    devel: str
    source: str
    # NVIDIA_REQUIRE_CUDA of the image (both tags): cuda>=require_cuda, or a GPU of one of the
    # brands on one of the driver branches (see cuda.toml)
    require_cuda: str = ""
    require_branches: tuple[str, ...] = ()
    require_brands: tuple[str, ...] = ()
    require_source: str = ""
    require_confidence: str = ""
    nvcc_max_cc: str = ""  # newest compute capability the devel image's nvcc compiles for

    @property
    def require(self) -> str:
        """The NVIDIA_REQUIRE_CUDA value as the image sets it ("" for a plain OS image)."""
        if not self.require_cuda:
            return ""
        clauses = [f"cuda>={self.require_cuda}"] + [
            f"brand={b},driver>={n},driver<{int(n) + 1}"
            for n in self.require_branches
            for b in self.require_brands
        ]
        return " ".join(clauses)


@dataclass(frozen=True, kw_only=True)
class Knowledge:
    as_of: str
    digest: str  # sha256 of the data files: part of every lock fingerprint
    index_url: str
    gpus: tuple[Gpu, ...]
    releases: tuple[TorchRelease, ...]  # newest first
    builds: tuple[Build, ...]
    majors: tuple[CudaMajor, ...]
    images: tuple[BaseImage, ...]
    docs: Mapping[str, Mapping[str, Any]]  # raw documents, for the smaller rule tables

    def release(self, version: str) -> TorchRelease | None:
        return next((r for r in self.releases if r.version == version), None)

    def build(self, minor: str, variant: str, platform: str = "linux-x86_64") -> Build | None:
        return next(
            (
                b
                for b in self.builds
                if minor in b.torch and b.variant == variant and b.platform == platform
            ),
            None,
        )

    def extension_builds(self, package: str) -> tuple[ExtensionBuild, ...]:
        """Every PyPI wheel version of `package` with its CUDA major and torch build, newest
        first; () for a package pinner has no such data for."""
        return self._extension_builds.get(package, ())

    @functools.cached_property
    def _extension_builds(self) -> dict[str, tuple[ExtensionBuild, ...]]:
        return _extension_builds(self.docs["extensions"])

    def major(self, major: int) -> CudaMajor | None:
        return next((m for m in self.majors if m.major == major), None)

    def image(self, cuda: str) -> BaseImage | None:
        return next((i for i in self.images if i.cuda == cuda), None)

    def find_gpu(self, name: str) -> Gpu | None:
        exact, loose = _gpu_index(self.gpus)
        hit = exact.get(normalize_gpu(name))
        if hit is None:
            hits = loose.get(loosen_gpu(name), ())
            hit = hits[0] if len(hits) == 1 else None
        return hit

    def suggest_gpus(self, name: str) -> list[str]:
        exact, _ = _gpu_index(self.gpus)
        import difflib

        close = difflib.get_close_matches(normalize_gpu(name), list(exact), n=3, cutoff=0.6)
        seen: list[str] = []
        for key in close:
            gpu_key = exact[key].key
            if gpu_key not in seen:
                seen.append(gpu_key)
        return seen


def cuda_to_variant(cuda: str) -> str:
    """'12.8' -> 'cu128'; '' -> 'cpu'."""
    return "cu" + cuda.replace(".", "") if cuda else "cpu"


def variant_to_cuda(variant: str) -> str:
    """'cu128' -> '12.8', 'cu118' -> '11.8', 'cpu' -> ''."""
    if not variant.startswith("cu"):
        return ""
    digits = variant[2:]
    return f"{digits[:-1]}.{digits[-1]}"


def spec_admits(spec: str, version: str) -> bool:
    """Whether a simple comma-separated specifier (>=, >, <=, <, ==, !=; numeric versions)
    admits `version`: enough for the knowledge's own data, without `packaging` on the hot path."""
    ops = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
    }
    have = _vkey(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op = next(o for o in ops if clause.startswith(o))
        want = _vkey(clause[len(op) :])
        padded = have[: len(want)] if op in ("==", "!=") else have
        if not ops[op](padded, want):
            return False
    return True


def normalize_gpu(name: str) -> str:
    text = re.sub(r"^\s*nvidia\s+", "", name.casefold())
    return re.sub(r"[^a-z0-9]", "", text)


_FORM_FACTOR = re.compile(r"^(\d+gb|pcie|sxm\d*|hbm\d*e?|nvl|nvidia|tesla|geforce)$")


def loosen_gpu(name: str) -> str:
    """Drop memory size, form factor and brand words: 'NVIDIA A100-SXM4-80GB' -> 'a100'."""
    tokens = re.split(r"[^a-z0-9]+", name.casefold())
    return "".join(t for t in tokens if t and not _FORM_FACTOR.match(t))


@functools.lru_cache(maxsize=4)
def _gpu_index(gpus: tuple[Gpu, ...]) -> tuple[dict[str, Gpu], dict[str, tuple[Gpu, ...]]]:
    exact: dict[str, Gpu] = {}
    loose: dict[str, list[Gpu]] = {}
    for gpu in gpus:
        for text in (gpu.key, gpu.name, *gpu.aliases, *gpu.nvidia_smi):
            exact[normalize_gpu(text)] = gpu
            bucket = loose.setdefault(loosen_gpu(text), [])
            if gpu not in bucket:
                bucket.append(gpu)
    return exact, {k: tuple(v) for k, v in loose.items()}


def _extension_builds(doc: Mapping[str, Any]) -> dict[str, tuple[ExtensionBuild, ...]]:
    out: dict[str, list[ExtensionBuild]] = {}
    for e in doc.get("extension_build", ()):
        out.setdefault(e["package"], []).append(
            ExtensionBuild(
                package=e["package"],
                version=e["version"],
                cuda=e["cuda"],
                torch=e["torch"],
                built_for=e["built_for"],
                source=e["source"],
                confidence=e.get("confidence", "verified"),
            )
        )
    return {
        k: tuple(sorted(v, key=lambda b: _vkey(b.version), reverse=True)) for k, v in out.items()
    }


def iter_facts(doc: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield every fact table (each element of an array of tables, and each top-level table)."""
    for key, value in doc.items():
        here = f"{path}.{key}" if path else key
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                yield f"{here}[{i}]", item
        elif isinstance(value, dict):
            yield here, value


# A public locator: an https URL, `owner/repo@ref:path` on GitHub, or a file name on PyPI.
_URL = re.compile(r"https://[A-Za-z0-9.-]+\.[a-z]{2,}(/\S*)?")
_REPO_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+@[A-Za-z0-9._/+-]+:[^\s:]+")
_PYPI_FILE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.]*-[0-9][A-Za-z0-9_.!+]*(-[A-Za-z0-9_.]+){0,4}\.(whl|tar\.gz|zip)"
)
# Words that mark a citation of private notes or opaque handles, not of something a user can open.
_PRIVATE = re.compile(r"facts(-addendum)?\.(md|toml)|docs/research|stored (file|cop)|\bids? \d{5,}")


def is_locator(text: str) -> bool:
    """True for one public locator (see _URL, _REPO_PATH, _PYPI_FILE)."""
    return any(p.fullmatch(text) for p in (_URL, _REPO_PATH, _PYPI_FILE))


def locators(source: str) -> tuple[str, ...]:
    """The locators of a `source` value: one or more, separated by whitespace."""
    return tuple(source.split())


def check_sources(name: str, doc: Mapping[str, Any]) -> list[str]:
    """Problems in one data document: every fact needs a `source` of public locators (URLs,
    `owner/repo@ref:path`, PyPI file names) and a known confidence; notes name no private handle."""
    problems = []
    if not doc.get("as_of"):
        problems.append(f"{name}: missing as_of")
    top = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    for where, fact in [("(top)", top), *iter_facts(doc)]:
        if where != "(top)" and not str(fact.get("source", "")).strip():
            problems.append(f"{name}: {where}: fact without a source")
        for key, value in fact.items():
            if key.endswith("source") and isinstance(value, str):
                bad = [loc for loc in locators(value) if not is_locator(loc)]
                if bad:
                    problems.append(
                        f"{name}: {where}.{key}: {' '.join(bad) or 'empty'!r} is not a public "
                        "locator (an https URL, owner/repo@ref:path, or a PyPI file name)"
                    )
            elif key.endswith("confidence") and value not in CONFIDENCE:
                problems.append(f"{name}: {where}.{key}: {value!r} not in {CONFIDENCE}")
            elif key.endswith(("note", "source")) and _PRIVATE.search(str(value)):
                problems.append(f"{name}: {where}.{key}: cites private notes or a handle")
    return problems


def _parse(name: str, raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode())
    except tomllib.TOMLDecodeError as e:
        msg = f"pinner/knowledge/{name}: {e}"
        raise KnowledgeError(msg) from e


def knowledge_as_of() -> str:
    """The knowledge date (the oldest file's as_of), cheap enough for `--version`: no TOML parse."""
    dates = []
    for name in FILES:
        match = re.search(
            r'^as_of = "([^"]+)"', (HERE / name).read_text(encoding="utf-8"), re.MULTILINE
        )
        if match:
            dates.append(match.group(1))
    return min(dates)


def digest() -> str:
    """Fingerprint of the data files, cheap enough for `pinner check` (no TOML parsing)."""
    from pinner.lock.fingerprint import knowledge_digest

    return knowledge_digest()


@functools.lru_cache(maxsize=1)
def load_knowledge() -> Knowledge:
    """Read, check and type the packaged knowledge. The checked documents are kept in pinner's
    cache as JSON, keyed by the data files' digest (reading them back is a tenth of parsing the
    TOML); a changed file has another digest, so it is parsed and checked again."""
    raws = {name: (HERE / name).read_bytes() for name in FILES}
    h = hashlib.sha256()
    for raw in raws.values():
        h.update(raw)
    sha = "sha256:" + h.hexdigest()
    cached = _cached_docs(sha)
    if cached is not None:
        return _build(cached, sha)
    docs: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, raw in raws.items():
        doc = _parse(name, raw)
        problems += check_sources(name, doc)
        docs[name.removesuffix(".toml")] = doc
    if problems:
        raise KnowledgeError("\n".join(problems))
    _keep_docs(sha, docs)
    return _build(docs, sha)


def _cache_file(sha: str) -> Path:
    """Where the checked documents of this digest are kept (pinner's cache folder, as
    pinner.pipeline.cache_dir names it)."""
    import os

    env = os.environ.get("PINNER_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base if env else base / "pinner"
    return folder / "knowledge" / f"{sha.removeprefix('sha256:')}.json"


def _cached_docs(sha: str) -> dict[str, dict[str, Any]] | None:
    import json

    try:
        data = json.loads(_cache_file(sha).read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError):
        return None
    ok = isinstance(data, dict) and data.get("digest") == sha and isinstance(data.get("docs"), dict)
    return data["docs"] if ok and set(data["docs"]) == {n[:-5] for n in FILES} else None


def _keep_docs(sha: str, docs: dict[str, dict[str, Any]]) -> None:
    """Best effort: a cache that cannot be written only costs the next run the parse."""
    import json
    import os

    path = _cache_file(sha)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"digest": sha, "docs": docs}), encoding="utf-8")
        tmp.replace(path)
    except (OSError, TypeError, ValueError):
        return


def _build(docs: dict[str, dict[str, Any]], sha: str) -> Knowledge:
    torch = docs["torch"]
    arch_driver = {a["name"]: a for a in docs["gpus"].get("architecture", ())}
    gpus = tuple(
        Gpu(
            key=g["key"],
            name=g["name"],
            nvidia_smi=tuple(g.get("nvidia_smi", ())),
            aliases=tuple(g.get("aliases", ())),
            architecture=g["architecture"],
            compute_capability=g["compute_capability"],
            segment=g["segment"],
            source=g["source"],
            confidence=g.get("confidence", "verified"),
            brand=g.get("brand", ""),
            min_driver=g.get(
                "min_driver", arch_driver.get(g["architecture"], {}).get("min_driver", "")
            ),
            min_driver_source=g.get(
                "min_driver_source", arch_driver.get(g["architecture"], {}).get("source", "")
            ),
        )
        for g in docs["gpus"]["gpu"]
    )
    releases = tuple(
        TorchRelease(
            version=r["version"],
            date=r["date"],
            python=tuple(r["python"]),
            pypi_cuda=r["pypi_cuda"],
            cxx11_abi=r["cxx11_abi"],
            numpy2=r["numpy2"],
            triton=r["triton"],
            torchvision=r["torchvision"],
            torchaudio=r["torchaudio"],
            variants=tuple(r["variants"]),
            variants_confidence=r["variants_confidence"],
            variants_source=r["variants_source"],
            source=r["source"],
            variants_aarch64=tuple(r.get("variants_aarch64", ())),
            pypi_cuda_aarch64=r.get("pypi_cuda_aarch64", ""),
        )
        for r in torch["release"]
    )
    ranged = sorted(
        (
            RangedCompanion(
                version=t["version"],
                torch=t["torch"],
                pypi=t["pypi"],
                index_variants=tuple(t["index_variants"]),
                source=t["source"],
                confidence=t.get("confidence", "verified"),
            )
            for t in docs["packages"].get("torchaudio", ())
        ),
        key=lambda c: _vkey(c.version),
        reverse=True,
    )
    releases = tuple(
        replace(r, torchaudio_ranged=tuple(c for c in ranged if c.admits(r.version)))
        for r in sorted(releases, key=lambda r: _vkey(r.version), reverse=True)
    )
    builds = tuple(
        Build(
            torch=tuple(b["torch"]),
            variant=b["variant"],
            arches=tuple(b["arches"]),
            ptx=b["ptx"],
            confidence=b["confidence"],
            source=b["source"],
            platform=b.get("platform", "linux-x86_64"),
        )
        for b in torch["build"]
    )
    majors = tuple(
        CudaMajor(
            major=m["major"],
            min_driver=m["min_driver"],
            dropped_arches=tuple(m["dropped_arches"]),
            source=m["source"],
        )
        for m in docs["cuda"]["major"]
    )
    images = tuple(
        BaseImage(
            cuda=i["cuda"],
            runtime=i["runtime"],
            devel=i["devel"],
            source=i["source"],
            require_cuda=i.get("require_cuda", ""),
            require_branches=tuple(i.get("require_branches", ())),
            require_brands=tuple(i.get("require_brands", ())),
            require_source=i.get("require_source", ""),
            require_confidence=i.get("require_confidence", ""),
            nvcc_max_cc=i.get("nvcc_max_cc", ""),
        )
        for i in docs["cuda"].get("image", ())
    )
    return Knowledge(
        as_of=min(str(d["as_of"]) for d in docs.values()),
        digest=sha,
        index_url=torch["index_url"],
        gpus=gpus,
        releases=releases,
        builds=builds,
        majors=majors,
        images=images,
        docs=docs,
    )


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))
